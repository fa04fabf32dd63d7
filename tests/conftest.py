"""Shared pytest set-up: the ``mininet`` marker's root requirement and
per-test artefact directories (artefacts/<test name>/) kept on failure.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = REPO_ROOT / "artefacts"


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
    """True when the test body failed (or never ran)."""
    rep = getattr(node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def artefact_dir(request: pytest.FixtureRequest) -> Path:
    """artefacts/<test name>/ (created on demand, emptied first)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", request.node.nodeid)
    path = ARTEFACTS / name
    if path.exists():
        for old in path.iterdir():
            if old.is_file():
                old.unlink()
    return path


def keep_artefacts(rundir: Path, dest: Path, failed: bool,
                   suffixes: tuple[str, ...] = (".log", ".out")) -> None:
    """A lab run directory's teardown: copy its files with ``suffixes`` to ``dest``
    when the test failed or a log holds a Python traceback, remove the directory,
    then fail the test on such a traceback (pcaps are copied, never scanned)."""
    files = sorted(p for p in rundir.glob("*") if p.suffix in suffixes)
    crashed = [p.name for p in files if p.suffix in (".log", ".out")
               and "Traceback" in p.read_text(errors="replace")]
    if failed or crashed:
        dest.mkdir(parents=True, exist_ok=True)
        for p in files:
            shutil.copy2(p, dest / p.name)
    shutil.rmtree(rundir, ignore_errors=True)
    if crashed:
        pytest.fail(f"Traceback in {', '.join(crashed)} (copied to {dest})")
