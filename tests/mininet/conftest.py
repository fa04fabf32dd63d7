"""Mininet tests: every test here is marked ``mininet`` (root + Open vSwitch).

``lab_rundir`` gives each test a fresh run directory under /run; on teardown the
member and controller logs go to artefacts/<test>/ when the test failed or a log
contains a Python traceback (which then fails the test).  A lab made by
``make_lab`` is watched by the test's ``evidence`` (HA-link pcaps from its start,
diag output and logs just before it stops); a module's shared lab is watched per
test by an autouse fixture of the module (``evidence.watch(lab)``, see test_sync.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import call_failed
from tests.evidence import Evidence, keep_artefacts
from topologies.lab import LabNetwork


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.mininet)


class WatchedLab(LabNetwork):
    """A LabNetwork whose HA links are captured from its start and whose members'
    diag output and logs are saved in ``evidence`` just before it stops."""

    def __init__(self, evidence: Evidence, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evidence = evidence

    def start(self) -> None:
        super().start()
        self.evidence.watch(self)

    def stop(self) -> None:
        try:
            if self.net is not None:
                self.evidence.release(self)
        finally:
            super().stop()


@pytest.fixture
def lab_rundir(request: pytest.FixtureRequest, artefact_dir: Path) -> Iterator[Path]:
    rundir = Path(tempfile.mkdtemp(prefix="fgcp-test-", dir="/run"))
    yield rundir
    keep_artefacts(rundir, artefact_dir, call_failed(request.node))


@pytest.fixture
def make_lab(lab_rundir: Path, evidence: Evidence) -> Callable[..., LabNetwork]:
    """``make_lab(**kwargs)`` -> a LabNetwork (WatchedLab) using this test's run directory."""

    def factory(**kwargs: Any) -> LabNetwork:
        kwargs.setdefault("rundir", lab_rundir)
        return WatchedLab(evidence, **kwargs)

    return factory

