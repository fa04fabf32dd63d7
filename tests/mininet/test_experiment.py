"""Failover experiments end to end (issue 5 acceptance): short runs of shipped scenarios
checked against the expected outcome in their JSON, `fgcp-lab compare` on a small
workload, and Ctrl-C tearing everything down. Fast HA timers (hb-interval 1, threshold 3).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.experiment import run_experiment
from lab.gaps import Gap, outage_window
from lab.report import write_reports
from lab.scenario import Scenario, load_scenario
from tests.conftest import call_failed
from topologies.lab import REPO_ROOT, existing_lab_names

SMALL_TRAFFIC = {"conns": 8, "rate": 50.0}


@pytest.fixture
def out_dir(tmp_path: Path, request: pytest.FixtureRequest, artefact_dir: Path) -> Iterator[Path]:
    yield tmp_path
    if call_failed(request.node):
        shutil.copytree(tmp_path, artefact_dir, dirs_exist_ok=True)


def small(name: str, **changes: Any) -> Scenario:
    """A shipped scenario with a small TCP workload and a short settle time."""
    sc = load_scenario(name)
    traffic = {k: dict(v) for k, v in sc.traffic.items()}
    traffic["tcp"].update(SMALL_TRAFFIC)
    return dataclasses.replace(sc, traffic=traffic, settle=changes.pop("settle", 2.5), **changes)


def run(sc: Scenario, out: Path) -> dict[str, Any]:
    result = run_experiment(sc, out, "fgcp", console=None, live=False)
    paths = write_reports(result, out)
    data = json.loads(paths["json"].read_text())
    assert paths["png"].stat().st_size > 0 and paths["html"].is_file()
    assert data["cluster"]["member_errors"] == {m: [] for m in sc.member_names()}
    return data


def test_kill_primary_with_pickup_every_tcp_stream_survives(out_dir: Path) -> None:
    data = run(small("default"), out_dir)
    f = data["faults"][0]
    assert (f["kind"], f["member"], f["new_primary"]) == ("kill-primary", "fgt1", "fgt2")
    tcp = data["summary"]["tcp"]
    assert tcp["survived"] == tcp["flows"] == SMALL_TRAFFIC["conns"], data["flows"]
    assert tcp["lost_bytes"] == 0
    # after the fault, in this order: fgt2 detects the loss, becomes primary, the fabric
    # moves the virtual MACs to it; the first ping after the outage came after the reroute
    assert 0 < f["detect_ms"] <= f["takeover_ms"] <= f["reroute_ms"], f
    (ping,) = [r for r in data["flows"] if r["kind"] == "ping"]
    out = outage_window([Gap.from_dict(g) for g in ping["gaps"]], f["t"], 10.0)
    assert out is not None and out.resumed, ping["gaps"]
    assert f["t"] + f["reroute_ms"] / 1000 <= out.end + 0.001, (f, out)
    assert data["summary"]["ping"]["resumed"] == 1
    assert data["summary"]["udp"]["resumed"] == data["summary"]["udp"]["flows"]
    assert "is lost" in data["members"]["fgt2"]["ha_history"]


def test_kill_primary_without_pickup_no_tcp_stream_survives(out_dir: Path) -> None:
    data = run(small("pickup-off"), out_dir)
    assert data["faults"][0]["new_primary"] == "fgt2"
    tcp = data["summary"]["tcp"]
    assert tcp["flows"] == SMALL_TRAFFIC["conns"] and tcp["survived"] == 0, data["flows"]
    assert data["summary"]["ping"]["resumed"] == 1  # new flows still pass the new primary
    assert data["summary"]["short_tcp"]["ok"] > 0


def test_split_brain_is_recorded_and_resolved(out_dir: Path) -> None:
    data = run(small("split-brain"), out_dir)
    sb = data["cluster"]["split_brain"]
    assert sb["detected"] and sb["resolved"], data["cluster"]
    histories = "".join(m["ha_history"] for m in data["members"].values())
    assert "split brain" in histories
    assert data["faults"][0]["restored_at"] > data["faults"][0]["t"]
    assert sum(1 for r in data["cluster"]["roles_end"].values() if r == "work") == 1


def test_compare_json_holds_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cmd = [sys.executable, "-m", "fgcplab.cli", "compare", "compare", "--conns", "8",
           "--settle", "2.5", "--no-live", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / "compare.json").read_text())
    assert set(data["systems"]) == {"fgcp", "reference"}
    for system in ("fgcp", "reference"):
        r = data["systems"][system]
        assert r["summary"]["tcp"]["flows"] == 8
        assert r["faults"][0]["kind"] == "power-off"
    assert data["systems"]["fgcp"]["summary"]["tcp"]["survived"] == 8
    assert "hb-interval 100 ms x hb-lost-threshold 3" in data["settings"]["fgcp"]
    assert "advert_int 100 ms" in data["settings"]["reference"]
    assert (out / "compare.png").stat().st_size > 0
    assert "keepalived + conntrackd" in proc.stdout


def _our_processes() -> list[str]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "/run/fgcp-run-fgcp-" in cmd:
                out.append(f"{p.name}: {cmd}")
    return out


def test_ctrl_c_tears_everything_down(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fgcplab.cli", "run", "default", "--conns", "4", "--no-live",
           "--settle", "30", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "150"})
    assert proc.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            seen.append(line)
            if "kill-primary on" in line or "settling" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        assert _our_processes(), "the experiment's daemons should be running"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + (rest or "")
    assert "interrupted" in rest
    assert existing_lab_names() == []
    assert _our_processes() == []


def test_every_fault_kind_in_one_run_keeps_every_tcp_stream(out_dir: Path) -> None:
    data = run(small("all-faults", settle=3.0), out_dir)
    f = {x["kind"]: x for x in data["faults"]}
    assert list(f) == ["failover-set", "monitor-link-down", "hb-link-cut", "sync-link-down",
                       "kill-primary", "old-primary-back"]
    for kind in ("failover-set", "monitor-link-down", "kill-primary"):
        assert f[kind]["new_primary"] not in (None, f[kind]["member"]), f[kind]
    assert f["hb-link-cut"]["new_primary"] is None  # the other heartbeat link holds
    assert f["hb-link-cut"]["restored_at"] > f["hb-link-cut"]["t"]
    tcp = data["summary"]["tcp"]
    assert tcp["survived"] == tcp["flows"] == SMALL_TRAFFIC["conns"], data["flows"]
    assert set(data["cluster"]["roles_end"]) == {"fgt1", "fgt2"}  # the old primary is back
