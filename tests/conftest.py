"""Shared pytest set-up: the ``mininet`` marker's root requirement, the failure flag
of each test (``item.rep_call``) and per-test artefact directories (artefacts/<test>/,
``--artefacts`` moves them) that keep a failing test's evidence (tests/evidence.py).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.evidence import Evidence, artefact_name, keep_artefacts

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = REPO_ROOT / "artefacts"

__all__ = ["ARTEFACTS", "REPO_ROOT", "artefact_dir", "artefacts_root", "call_failed",
           "evidence", "keep_artefacts", "pytest_addoption", "pytest_collection_modifyitems",
           "pytest_runtest_makereport"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--artefacts", default=str(ARTEFACTS), metavar="DIR",
                     help="where failing tests keep their evidence (default: artefacts/)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (Mininet)")
    for item in items:
        if item.get_closest_marker("mininet") is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item (``item.rep_call``) for fixtures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def call_failed(node: pytest.Item) -> bool:
    """True when the test body failed (or never ran: its set-up failed)."""
    rep = getattr(node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def artefacts_root(pytestconfig: pytest.Config) -> Path:
    return Path(pytestconfig.getoption("--artefacts"))


@pytest.fixture
def artefact_dir(request: pytest.FixtureRequest, artefacts_root: Path) -> Path:
    """artefacts/<test node id>/ (created on demand; the files of an earlier run removed)."""
    path = artefacts_root / artefact_name(request.node.nodeid)
    if path.exists():
        for old in path.iterdir():
            if old.is_file():
                old.unlink()
    return path


@pytest.fixture
def evidence(request: pytest.FixtureRequest, artefact_dir: Path) -> Iterator[Evidence]:
    """This test's Evidence: labs it watches leave their diag output, logs and HA-link
    pcaps in artefact_dir when the test fails; nothing is kept when it passes."""
    ev = Evidence(artefact_dir)
    try:
        yield ev
    finally:
        kept = ev.finish(call_failed(request.node))
        if kept is not None:
            print(f"evidence kept in {kept}")
