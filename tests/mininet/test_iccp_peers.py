"""The real ICCP peers (lab.iccp) in Mininet hosts, through one fgcpd member with no
fault: the MMS server on sv1:102, the benign TASE.2 client and the attacker on c1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from inspection.iccp import ICCP_PORT
from lab.probes import REPO_ROOT, HostLike, probe_env
from topologies.lab import LabNetwork

SV1 = "203.0.113.11"


def _run(host: HostLike, args: list[str], timeout: float) -> int:
    proc = host.popen([sys.executable, *args], cwd=str(REPO_ROOT), env=probe_env(),
                      stdin=subprocess.DEVNULL)
    return int(proc.wait(timeout))


def test_iccp_association_reads_writes_and_split_write_through_fgcpd(
        make_lab: Callable[..., LabNetwork], tmp_path: Path) -> None:
    with make_lab(member_mode="fgcpd", active_members=("fgt1",)) as lab:
        ready = tmp_path / "ready"
        srv = lab.host("sv1").popen(
            [sys.executable, "-m", "lab.iccp.server", "--port", str(ICCP_PORT),
             "--ready-file", str(ready), "--die-with-parent"],
            cwd=str(REPO_ROOT), env=probe_env(), stdin=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if ready.exists():
                    break
                time.sleep(0.05)
            assert ready.exists(), "the ICCP server did not start"
            c1 = lab.host("c1")
            _run(c1, ["-m", "lab.iccp.client", "--dst", SV1, "--rate", "10", "--duration",
                      "3", "--reports", "--conclude", "--out", str(tmp_path / "c.json")], 60)
            _run(c1, ["-m", "lab.iccp.attack", "--dst", SV1, "--pause", "0.3",
                      "--out", str(tmp_path / "a.json")], 60)
        finally:
            srv.terminate()
            srv.wait(10)
    client = json.loads((tmp_path / "c.json").read_text())
    attack = json.loads((tmp_path / "a.json").read_text())
    assert client["associated"] and client["ended"] == "completed", client["first_error"]
    assert client["ops_failed"] == 0 and client["ops_ok"] >= 25
    assert client["reads_ok"] > 0 and client["writes_ok"] > 0
    assert client["reports_enabled"] and client["conclude_error"] is None
    assert attack["associated"] and attack["outcome"] == "answered", attack
    assert attack["answer"]["service"] == "write"
