"""The lab CLI's commands (topologies.labcmds) on a fake cluster: argument parsing,
what each command asks of the lab, what it prints; and `fgcp-lab topo` starting
every member by default (topologies.cli)."""

from __future__ import annotations

import signal
from collections.abc import Sequence

import pytest

from topologies.cli import build_parser, lab_from_args
from topologies.labcmds import (
    LabCommands,
    MemberView,
    UsageError,
    parse_diag,
    parse_links,
    parse_sessions,
    parse_synced,
    parse_watch,
    render_watch,
)

PORTS = {m: ("port1", "port2", "port3", "port4", "port5") for m in ("fgt1", "fgt2")}
PRIORITY = {"fgt1": 200, "fgt2": 100}
SERIAL = {"fgt1": "FGVM01", "fgt2": "FGVM02"}
TAKEOVER_S = 0.29  # a secondary becomes primary this long after the primary left
# (the commands poll every 20 ms: they see it 300 ms after)


class FakeCluster:
    """Two members electing by failover flag, then priority; a new primary
    appears TAKEOVER_S after the old one left (on a clock that ``sleep`` moves)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.running = {"fgt1": True, "fgt2": True}
        self.flag = {"fgt1": False, "fgt2": False}
        self.primary: str | None = "fgt1"
        self.change_at: float | None = None
        self.calls: list[tuple[object, ...]] = []
        self.links: dict[tuple[str, str], bool] = {}
        self.hello_until: dict[str, float] = {}

    # the clock the commands get
    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        if self.change_at is not None and self.now >= self.change_at:
            self.change_at = None
            self.primary = self.elect()

    def elect(self) -> str | None:
        up = [m for m, r in self.running.items() if r]
        return min(up, key=lambda m: (self.flag[m], -PRIORITY[m])) if up else None

    def _reelect(self) -> None:
        if self.elect() != self.primary:
            self.primary = None
            self.change_at = self.now + TAKEOVER_S

    # LabLike
    def running_members(self) -> list[str]:
        return [m for m, r in self.running.items() if r]

    def ha_state(self, member: str) -> dict[str, str]:
        if not self.running[member]:
            return {}
        if self.now < self.hello_until.get(member, 0.0):
            return {"state": "hello", "primary": "", "failover_set": "0"}
        return {"state": "work" if member == self.primary else "standby",
                "primary": SERIAL[self.primary] if self.primary else "",
                "failover_set": str(int(self.flag[member]))}

    def diag(self, member: str, command: str) -> str:
        self.calls.append(("diag", member, command))
        if not self.running[member]:
            raise ConnectionRefusedError(f"{member}.sock: connection refused")
        if command == "execute ha failover set 1":
            self.flag[member] = True
            self._reelect()
            return "Caution: This command will trigger an HA failover.\n"
        if command == "execute ha failover unset 1":
            self.flag[member] = False
            return ""
        if command == "diagnose sys session stat":
            return "misc info:\tsession_count=42 setup_rate=0 exp_count=0 clash=0\n"
        if command == "diagnose sys session sync":
            role = "primary (sender)" if member == self.primary else "secondary (receiver)"
            return f"sync: create=1\n  role: {role} serial={SERIAL[member]} sessions=40\n"
        return f"{member} answers {command}\n"

    def kill_daemon(self, name: str, sig: int = signal.SIGKILL, timeout: float = 5.0) -> float:
        self.calls.append(("kill", name, sig))
        self.running[name] = False
        self.flag[name] = False
        if self.primary == name:
            self._reelect()
        return self.now

    def stop_daemon(self, name: str, timeout: float = 5.0) -> int | None:
        self.calls.append(("stop", name))
        self.running[name] = False
        return 0

    def start_daemon(self, name: str, config: str | None = None) -> None:
        self.calls.append(("start", name))
        self.running[name] = True
        self.hello_until[name] = self.now + 0.45  # hello-holddown

    def set_links(self, member: str, up: bool, ports: Sequence[str] | None = None) -> float:
        self.calls.append(("links", member, up, tuple(ports or ())))
        for p in ports or ():
            self.links[(member, p)] = up
        return self.now


@pytest.fixture
def lab() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def cmds(lab: FakeCluster) -> LabCommands:
    return LabCommands(lab, PORTS, clock=lab.clock, sleep=lab.sleep)


# -- parsing -----------------------------------------------------------------------
def test_parse_diag_keeps_the_fortios_command_whole() -> None:
    assert parse_diag("fgt1 get system ha status") == ("fgt1", "get system ha status")
    assert parse_diag('fgt2 "diagnose sys session list"') == ("fgt2", "diagnose sys session list")
    for bad in ("", "fgt1", "fgt1   "):
        with pytest.raises(UsageError, match="usage: diag <member>"):
            parse_diag(bad)


def test_parse_links() -> None:
    a = parse_links("fgt1 down port1 port2", PORTS)
    assert (a.member, a.up, a.ports) == ("fgt1", False, ("port1", "port2"))
    assert parse_links("fgt2 up", PORTS).ports == ()
    assert parse_links("primary down port1", PORTS).member == "primary"
    with pytest.raises(UsageError, match="usage: links"):
        parse_links("fgt1 sideways", PORTS)
    with pytest.raises(UsageError, match="unknown member 'fgt9'"):
        parse_links("fgt9 up", PORTS)
    with pytest.raises(UsageError, match="fgt1 has no port port9"):
        parse_links("fgt1 down port1 port9", PORTS)


def test_parse_watch() -> None:
    assert parse_watch("") == (10.0, 1.0)
    assert parse_watch("3") == (3.0, 1.0)
    assert parse_watch("5 0.5") == (5.0, 0.5)
    for bad in ("x", "1 2 3", "0", "5 0.01"):
        with pytest.raises(UsageError, match="watch"):
            parse_watch(bad)


def test_parse_session_counts_from_the_diag_text() -> None:
    assert parse_sessions("misc info:\tsession_count=206 setup_rate=3 exp_count=0") == 206
    assert parse_sessions("nothing here") is None
    assert parse_synced("recv: create=9\n  role: secondary (receiver) serial=FGVM02 "
                        "sessions=205\n") == 205
    assert parse_synced("session sync: not running\n") is None


# -- commands ------------------------------------------------------------------------
def test_diag_runs_on_the_member_and_refuses_a_stopped_one(cmds: LabCommands,
                                                          lab: FakeCluster) -> None:
    assert cmds.diag("fgt2 get system status") == "fgt2 answers get system status\n"
    assert cmds.diag("primary get system status").startswith("fgt1 answers")
    lab.running["fgt2"] = False
    with pytest.raises(UsageError, match="fgt2: fgcpd is not running"):
        cmds.diag("fgt2 get system status")
    with pytest.raises(UsageError, match="unknown member 'fgt7'"):
        cmds.diag("fgt7 get system status")


def test_kill_of_the_primary_waits_for_the_new_one(cmds: LabCommands,
                                                   lab: FakeCluster) -> None:
    out = cmds.kill("fgt1")
    assert ("kill", "fgt1", signal.SIGKILL) in lab.calls
    assert out.splitlines() == ["fgt1: fgcpd killed (SIGKILL)",
                                "new primary: fgt2, seen 300 ms after the kill"]
    with pytest.raises(UsageError, match="fgt1: fgcpd is not running"):
        cmds.kill("fgt1")
    # a secondary's kill reports no takeover
    lab.running["fgt1"] = True
    assert cmds.kill("fgt1") == "fgt1: fgcpd killed (SIGKILL)\n"
    with pytest.raises(UsageError, match="usage: kill <member>"):
        cmds.kill("fgt1 fgt2")


def test_restart_stops_a_running_daemon_and_starts_a_stopped_one(cmds: LabCommands,
                                                                 lab: FakeCluster) -> None:
    out = cmds.restart("fgt2")
    assert [c for c in lab.calls if c[0] in ("stop", "start")] == [("stop", "fgt2"),
                                                                    ("start", "fgt2")]
    assert out == ("fgt2: fgcpd stopped (exit 0)\n"
                   "fgt2: fgcpd started, HA secondary after 0.5 s\n")  # hello for 0.5 s
    lab.running["fgt2"] = False
    lab.calls.clear()
    assert cmds.restart("fgt2") == "fgt2: fgcpd started, HA secondary after 0.5 s\n"
    assert lab.calls == [("start", "fgt2")]


def test_links_default_to_every_port(cmds: LabCommands, lab: FakeCluster) -> None:
    assert cmds.links("fgt1 down port1") == "fgt1: port1 down\n"
    assert lab.links == {("fgt1", "port1"): False}
    assert cmds.links("fgt2 down") == "fgt2: port1 port2 port3 port4 port5 down\n"
    assert cmds.links("primary up port1") == "fgt1: port1 up\n"
    assert lab.links[("fgt1", "port1")] is True


def test_failover_moves_the_primary_and_alternates(cmds: LabCommands,
                                                   lab: FakeCluster) -> None:
    out = cmds.failover("")
    assert out.startswith("failover: fgt1 -> fgt2 in 300 ms")
    assert lab.primary == "fgt2" and lab.flag == {"fgt1": True, "fgt2": False}
    # the second failover: set on fgt2, fgt1 (flag set earlier) wins, its flag cleared
    out = cmds.failover("")
    assert out.startswith("failover: fgt2 -> fgt1 in 300 ms")
    assert lab.primary == "fgt1" and lab.flag == {"fgt1": False, "fgt2": True}
    assert ("diag", "fgt1", "execute ha failover unset 1") in lab.calls
    with pytest.raises(UsageError, match="takes no arguments"):
        cmds.failover("fgt1")


def test_failover_needs_one_primary(cmds: LabCommands, lab: FakeCluster) -> None:
    lab.primary = None
    with pytest.raises(UsageError, match="exactly one primary, found none"):
        cmds.failover("")


def test_watch_refreshes_roles_and_session_counts(cmds: LabCommands,
                                                  lab: FakeCluster) -> None:
    frames = list(cmds.watch("3 1"))
    assert [round(t, 1) for t, _ in frames] == [0.0, 1.0, 2.0, 3.0]
    views = frames[0][1]
    assert views == [MemberView("fgt1", True, "work", "FGVM01", False, 42, 40),
                     MemberView("fgt2", True, "standby", "FGVM01", False, 42, 40)]
    lab.running["fgt2"] = False
    text = render_watch(cmds.views(), 4.0)
    lines = text.splitlines()
    assert lines[0] == "watch +4.0 s"
    assert lines[1].split() == ["member", "fgcpd", "HA", "state", "sessions", "synced",
                                "failover"]
    assert lines[2].split() == ["fgt1", "running", "primary", "42", "40"]
    assert lines[3].split() == ["fgt2", "stopped", "-", "-", "-"]


# -- fgcp-lab topo / scripts/lab-topo -------------------------------------------------
def test_topo_starts_every_member_by_default() -> None:
    lab = lab_from_args(build_parser().parse_args(["--members", "2"]))
    assert lab.active_members == ("fgt1", "fgt2")
    lab = lab_from_args(build_parser().parse_args(["--members", "3"]))
    assert lab.active_members == ("fgt1", "fgt2", "fgt3")
    lab = lab_from_args(build_parser().parse_args(["--active", "fgt2"]))
    assert lab.active_members == ("fgt2",)
    lab = lab_from_args(build_parser().parse_args(["--member-mode", "kernel"]))
    assert lab.active_members == ("fgt1",)  # one Linux router owns the gateways


def test_live_watch_renders_every_frame(capsys: pytest.CaptureFixture[str]) -> None:
    from topologies.labcli import LabCLI

    views = [MemberView("fgt1", True, "work", "FGVM01", False, 3, 3),
             MemberView("fgt2", False)]
    LabCLI._watch_live(iter([(0.0, views), (1.0, views)]))
    out = capsys.readouterr().out
    assert "cluster +1.0 s" in out and "fgt1" in out and "primary" in out
    assert "stopped" in out


def test_parse_synced_reads_the_sync_diag_with_its_epoch_field() -> None:
    # the line as fgcp.syncdiag renders it since session sync carries an epoch
    text = ("sync: create=3, update=0, delete=0\n"
            "  role: secondary (receiver) serial=FGT2 epoch=00000000deadbeef sessions=7\n")
    assert parse_synced(text) == 7
    assert parse_synced("  role: primary (sender) serial=FGT1 sessions=2\n") == 2
