"""The lab's Mininet CLI (topologies.labcli.LabCLI) driven by command scripts, as
Mininet's batch mode runs them, on a 2-member lab: diag output, kill of the
primary and the new primary, restart, a monitored link down and up, a ping through Mininet's own
node command, watch (sessions and synced sessions), failover. Fast HA timers (hb-interval 100 ms x 3, hello-holddown 5 s)."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mininet.log import OUTPUT, StreamHandlerNoNewline, lg

from topologies.lab import LabNetwork, wait_until, write_ha_config
from topologies.labcli import LabCLI

FAST = {"hb-interval": 1, "hb-lost-threshold": 3, "hello-holddown": 5,
        "ha-uptime-diff-margin": 5, "arps-interval": 1}


@pytest.fixture
def cli_output() -> Iterator[io.StringIO]:
    """What the CLI prints (Mininet's output() and error() go to its logger)."""
    buf = io.StringIO()
    handler = StreamHandlerNoNewline(buf)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old = lg.level
    lg.addHandler(handler)
    lg.setLevel(OUTPUT)
    try:
        yield buf
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)


def run_script(lab: LabNetwork, tmp: Path, out: io.StringIO, *commands: str) -> str:
    """Run ``commands`` through LabCLI's batch mode; returns what they printed."""
    script = tmp / f"cli-{len(list(tmp.glob('cli-*')))}.txt"
    script.write_text("".join(f"{c}\n" for c in commands))
    start = out.tell()
    with open(os.devnull) as stdin:  # batch mode: no terminal (pytest's stdin has no fd)
        LabCLI(lab, stdin=stdin, script=str(script))
    out.seek(start)
    text = out.read()
    print(text)
    return text


def watch_row(text: str, member: str) -> list[str]:
    """The last ``watch`` row of ``member`` in ``text``."""
    rows = [ln.split() for ln in text.splitlines() if ln.split()[:1] == [member]]
    assert rows, text
    return rows[-1]


def test_cli_commands_on_a_two_member_lab(make_lab: Callable[..., LabNetwork],
                                          lab_rundir: Path, cli_output: io.StringIO) -> None:
    configs = {m: write_ha_config(m, lab_rundir / f"{m}-fast.conf", FAST)
               for m in ("fgt1", "fgt2")}
    with make_lab(configs=configs) as lab:
        assert lab.primaries() == ["fgt1"]  # priority 200
        out = run_script(lab, lab_rundir, cli_output,
                         "diag fgt1 get system status",
                         "diag fgt2 get system ha status",
                         "diag fgt9 get system status",
                         "kill primary",
                         "watch 1 0.5")
        assert "Serial-Number: FGVM01TM00000001" in out and "Hostname: FGT1" in out
        assert "HA Health Status" in out
        assert "unknown member 'fgt9'" in out
        assert "fgt1: fgcpd killed (SIGKILL)" in out
        assert "new primary: fgt2, seen " in out
        assert lab.running_members() == ["fgt2"] and lab.primaries() == ["fgt2"]
        assert watch_row(out, "fgt1")[:2] == ["fgt1", "stopped"]
        assert watch_row(out, "fgt2")[:3] == ["fgt2", "running", "primary"]

        # restart fgt1 (secondary: fgt2's HA uptime is larger), then fgt2's
        # monitored port1 down: fgt1 takes over
        out = run_script(lab, lab_rundir, cli_output,
                         "restart fgt1", "links fgt2 down port1")
        assert "fgt1: fgcpd started, HA secondary after " in out
        assert "fgt2: port1 down" in out
        wait_until(lambda: lab.primaries() == ["fgt1"], 5, "fgt1 primary after fgt2's port1 down")

        out = run_script(lab, lab_rundir, cli_output,
                         "links fgt2 up port1", "c1 ping -c 3 -i 0.2 sv1", "watch 1 0.5",
                         "failover")
        assert "fgt2: port1 up" in out
        assert "3 received" in out  # Mininet's own node command, through fgt1
        primary, secondary = watch_row(out, "fgt1"), watch_row(out, "fgt2")
        assert primary[:3] == ["fgt1", "running", "primary"]
        assert secondary[:3] == ["fgt2", "running", "secondary"]
        # the ping's ICMP session on the primary, synced to the secondary
        assert int(primary[3]) >= 1 and int(secondary[4]) >= 1, (primary, secondary)
        assert "failover: fgt1 -> fgt2 in " in out
        assert lab.primaries() == ["fgt2"]
        assert lab.ha_state("fgt1")["failover_set"] == "1"
        up = lab.host("fgt2").cmd("cat /sys/class/net/port1/operstate").strip()
        assert up == "up"
