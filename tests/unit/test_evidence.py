"""A failing lab test keeps its evidence (tests/evidence.py, the ``evidence`` fixture).

A small pytest run in a subprocess: two tests share one module-scoped fake lab (as
test_sync.py and test_ha.py share theirs); the failing one must leave artefacts/<test>/
with every member's diag output, the logs and the HA-link pcaps, the passing one
nothing; every capture process is stopped.  No root: the lab is tests.unit.fakes.FakeLab.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.evidence import DIAG_COMMANDS, HA_PORTS, artefact_name, keep_artefacts

REPO_ROOT = Path(__file__).resolve().parents[2]

INNER_TEST = '''
from pathlib import Path

import pytest

from tests.unit.fakes import FakeLab

RUN = Path(__file__).parent / "run"


@pytest.fixture(scope="module")
def lab():
    return FakeLab(RUN, answering=("fgt1",), hung=("fgt2",), dead=("fgt3",))


@pytest.fixture(autouse=True)
def _evidence(lab, evidence):
    evidence.watch(lab)


def test_fails(lab):
    lab.diag("fgt1", "diagnose lab ha")
    assert lab.captures and "fgt1" == "fgt2", "a deliberate failure"


def test_passes(lab):
    assert lab.captures
'''


def run_inner(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    art = tmp_path / "artefacts"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--artefacts",
         str(art), "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc, art


def test_a_failing_test_keeps_diag_logs_and_pcaps_a_passing_one_nothing(
        tmp_path: Path) -> None:
    proc, art = run_inner(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "1 failed, 1 passed" in out, out
    kept = art / artefact_name("test_inner.py::test_fails")
    assert kept.is_dir(), (sorted(art.rglob("*")) if art.exists() else "no artefacts", out)
    # the answering member: every diag command with its output, in order
    fgt1 = (kept / "fgt1.diag.txt").read_text()
    for cmd in DIAG_COMMANDS:
        assert f"### {cmd}\nfgt1 answers {cmd}\n" in fgt1, fgt1
    assert fgt1.index(DIAG_COMMANDS[0]) < fgt1.index(DIAG_COMMANDS[-1])
    # a hung member and a dead one are reported, not raised
    assert "fgt2 did not answer: OSError" in (kept / "fgt2.diag.txt").read_text()
    assert "fgcpd not running (exit code -9)" in (kept / "fgt3.diag.txt").read_text()
    # the logs as they were at the failure, and one pcap per member and HA port
    assert (kept / "controller.log").read_text() == "reroute t=1.0 dpid=1\n"
    assert (kept / "fgt1.log").read_text() == "fgt1 started\n"
    for member in ("fgt1", "fgt2", "fgt3"):
        for port in HA_PORTS:
            assert (kept / f"{member}-{port}.pcap").read_bytes() == b"fake pcap"
    # the passing test kept nothing (its pcaps deleted)
    assert not (art / artefact_name("test_inner.py::test_passes")).exists()
    assert sorted(p.name for p in art.iterdir()) == [kept.name]
    # every capture was stopped by its PID (two tests x three members x three ports)
    pids = [int(x) for x in (tmp_path / "run" / "capture.pids").read_text().split()]
    assert len(pids) == 2 * 3 * len(HA_PORTS)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_keep_artefacts_copies_on_failure_only_and_fails_on_a_traceback(
        tmp_path: Path) -> None:
    run, dest = tmp_path / "run", tmp_path / "dest"
    run.mkdir()
    (run / "fgt1.log").write_text("fine\n")
    keep_artefacts(run, dest, failed=False)
    assert not run.exists() and not dest.exists()
    run.mkdir()
    (run / "fgt1.log").write_text("fine\n")
    keep_artefacts(run, dest, failed=True)
    assert (dest / "fgt1.log").read_text() == "fine\n" and not run.exists()
    run.mkdir()
    (run / "fgt2.log").write_text("Traceback (most recent call last):\n")
    with pytest.raises(pytest.fail.Exception, match="Traceback in fgt2.log"):
        keep_artefacts(run, dest, failed=False)
    assert (dest / "fgt2.log").exists()
