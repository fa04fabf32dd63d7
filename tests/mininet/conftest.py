"""Mininet tests: every test here is marked ``mininet`` (root + Open vSwitch).

``lab_rundir`` gives each test a fresh run directory under /run; on teardown
the member and controller logs go to artefacts/<test>/ when the test failed
or a log contains a Python traceback (which then fails the test).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import call_failed, keep_artefacts


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.mininet)


@pytest.fixture
def lab_rundir(request: pytest.FixtureRequest, artefact_dir: Path) -> Iterator[Path]:
    rundir = Path(tempfile.mkdtemp(prefix="fgcp-test-", dir="/run"))
    yield rundir
    keep_artefacts(rundir, artefact_dir, call_failed(request.node))


@pytest.fixture
def make_lab(lab_rundir: Path) -> Callable[..., object]:
    """``make_lab(**kwargs)`` -> LabNetwork using this test's run directory."""
    from topologies.lab import LabNetwork

    def factory(**kwargs: object) -> LabNetwork:
        kwargs.setdefault("rundir", lab_rundir)
        return LabNetwork(**kwargs)

    return factory
