"""Real ICCP peers through an HA cluster across a failover (issue 10, acceptance): the
pyiec61850 MMS server on sv1:102, the benign TASE.2 client on c1, two fgcpd members with
session pickup (topologies/configs/sync-fgtN.conf), SIGKILL of the primary mid-association.

What a user checks: the client's one association (the same TCP connection: same local
port before and after, no new SYN to port 102 after the kill) carried on, and every read
and write it issued after the failover completed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inspection.iccp import ICCP_PORT
from lab.probes import REPO_ROOT, HostLike, probe_env
from topologies.lab import CONFIG_DIR, LabNetwork, wait_until

SV1 = "203.0.113.11"
RATE = 10.0      # MMS operations per second
DURATION = 14.0  # the client's run
KILL_AFTER = 5.0  # s after the association


def _popen(host: HostLike, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return host.popen([sys.executable, *args], cwd=str(REPO_ROOT), env=probe_env(),
                      stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                      stderr=subprocess.STDOUT)


def iccp_local_ports(host: Any) -> set[int]:
    """Local ports of ``host``'s (a Mininet host's) established TCP connections to sv1:102."""
    out = host.cmd(f"ss -tnH state established dst {SV1}:{ICCP_PORT}")
    return {int(m) for m in re.findall(r"\S+:(\d+)\s+\S+:102\b", out)}


def test_benign_iccp_association_survives_sigkill_of_the_primary(
        make_lab: Callable[..., LabNetwork], tmp_path: Path) -> None:
    configs = {m: CONFIG_DIR / f"sync-{m}.conf" for m in ("fgt1", "fgt2")}
    with make_lab(member_mode="fgcpd", configs=configs) as lab:
        primary = lab.wait_ha_stable(timeout=40)
        assert primary is not None
        secondary = next(m for m in ("fgt1", "fgt2") if m != primary)
        wait_until(lambda: "bulk=complete" in lab.diag(secondary, "diagnose sys session sync"),
                   20, f"{secondary}'s bulk sync")
        ready = tmp_path / "ready"
        sv1, c1 = lab.host("sv1"), lab.host("c1")
        srv = _popen(sv1, ["-m", "lab.iccp.server", "--port", str(ICCP_PORT),
                           "--ready-file", str(ready), "--die-with-parent"],
                     tmp_path / "server.log")
        syn = sv1.popen(  # every SYN to the server's port 102, with its time
            ["tcpdump", "-l", "-n", "-tt", "-i", "sv1-eth0",
             f"tcp dst port {ICCP_PORT} and tcp[tcpflags] & tcp-syn != 0"],
            stdout=(tmp_path / "syn.txt").open("wb"), stderr=subprocess.DEVNULL)
        cli = None
        try:
            wait_until(ready.exists, 10, "the ICCP server")
            time.sleep(0.5)  # tcpdump attached
            cli = _popen(c1, ["-m", "lab.iccp.client", "--dst", SV1, "--rate", str(RATE),
                              "--duration", str(DURATION), "--out", str(tmp_path / "c.json"),
                              "--die-with-parent"], tmp_path / "client.log")
            wait_until(lambda: bool(iccp_local_ports(c1)), 10, "the ICCP association")
            time.sleep(KILL_AFTER)
            before = iccp_local_ports(c1)
            # the association's session is in the secondary's table before the kill
            assert f"->{SV1}:{ICCP_PORT}" in lab.diag(secondary, "diagnose sys session list")
            t_kill = lab.kill_daemon(primary)
            wait_until(lambda: lab.ha_state(secondary).get("state") == "work", 5,
                       f"{secondary} primary")
            time.sleep(2.0)
            after = iccp_local_ports(c1)
            cli.wait(DURATION + 30)
        finally:
            if cli is not None and cli.poll() is None:
                cli.kill()
                cli.wait()
            srv.terminate()
            srv.wait(10)
            syn.terminate()
            syn.wait(10)
    rep = json.loads((tmp_path / "c.json").read_text())
    why = {k: rep.get(k) for k in ("associated", "ended", "ops_attempted", "ops_failed",
                                   "first_error", "max_gap_ms", "association_attempts")}
    assert rep["associated"] and rep["ended"] == "completed", why
    # one association, the same TCP connection across the failover, none opened later
    assert len(before) == 1 and after == before, (before, after)
    syns = [float(line.split()[0]) for line in (tmp_path / "syn.txt").read_text().splitlines()
            if line.strip()]
    assert syns and all(t < t_kill for t in syns), (syns, t_kill)
    # every read and write it issued after the failover completed, and it kept issuing them
    ops_after = [op for op in rep["ops"] if op[0] >= t_kill]
    reads = sum(1 for op in ops_after if op[1] == "read" and op[2])
    writes = sum(1 for op in ops_after if op[1] == "write" and op[2])
    assert rep["ops_failed"] == 0, why
    assert all(op[2] for op in ops_after), ops_after
    remaining = DURATION - KILL_AFTER - 1.0
    assert reads >= RATE * remaining * 2 / 3 * 0.6 and writes >= RATE * remaining / 3 * 0.6, (
        reads, writes, why)
    print(f"ICCP association across SIGKILL of {primary}: {reads} reads and {writes} writes "
          f"after the kill, all completed; {rep['ops_ok']} ops in all, longest gap between "
          f"completed ops {rep['max_gap_ms']} ms")


def _scenario_result(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "result.json").read_text())
    return data


def test_fgcp_lab_run_ips_iccp_blocks_the_split_attack_and_keeps_the_association(
        tmp_path: Path) -> None:
    """``fgcp-lab run ips-iccp``: exit 0, the split breaker write blocked by the new
    primary and logged there, the benign association intact, both inspected after the
    failover."""
    from lab.cli import main

    assert main("run", ["ips-iccp", "--no-live", "--out", str(tmp_path)]) == 0
    r = _scenario_result(tmp_path)
    rows = {f["id"]: f for f in r["flows"]}
    assoc, attack = rows["iccp-assoc"], rows["iccp-attack"]
    new_primary = r["faults"][0]["new_primary"]
    assert assoc["survived"] and assoc["failed"] == 0 and assoc["ops_after_fault"] > 10
    assert attack["split_across_fault"] and attack["attack_blocked"], attack
    assert not attack["reached_server"] and attack["logged_by"] == new_primary
    assert any('name="ICCP.Breaker.Oper.Write"' in ln for ln in attack["logged"])
    assert assoc["inspected_after_failover"] == attack["inspected_after_failover"] == "on"
    assert r["expect_failures"] == []


def test_fgcp_lab_run_ips_iccp_without_a_sensor_exits_non_zero(tmp_path: Path) -> None:
    """The same scenario on members without an IPS sensor (sync-fgtN.conf): the split
    write reaches the server and the run says so with a non-zero exit."""
    from lab.cli import main
    from lab.scenario import SCENARIO_DIR

    text = (SCENARIO_DIR / "ips-iccp.yaml").read_text()
    text = re.sub(r"topologies/configs/ips-(fgt\d)\.conf", rf"{CONFIG_DIR}/sync-\1.conf", text)
    scenario = tmp_path / "ips-iccp-no-sensor.yaml"
    scenario.write_text(text)
    out = tmp_path / "out"
    assert main("run", [str(scenario), "--no-live", "--out", str(out)]) == 1
    r = _scenario_result(out)
    attack = {f["id"]: f for f in r["flows"]}["iccp-attack"]
    assert attack["reached_server"] and not attack["attack_blocked"]
    assert attack["inspected_after_failover"] == "-" and attack["logged"] == []
    assert any(f.startswith("iccp_attack: expected blocked, got answered")
               for f in r["expect_failures"]), r["expect_failures"]
