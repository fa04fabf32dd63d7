"""Shared pytest set-up: the ``mininet`` marker's root requirement and
per-test artefact directories (artefacts/<test name>/) kept on failure.
"""

from __future__ import annotations

import os
import re
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
