"""HaMember (the daemon's HA component) without root: two members joined by
socketpairs as heartbeat links, fake interfaces (carrier, MAC), simulated time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from fgcp import diag
from fgcp.config import load_config
from fgcp.daemon import Daemon, virtual_mac
from fgcp.hamember import HaMember
from fgcp.model import MemberConfig
from fgcp.roles import Role
from topologies.lab import CONFIG_DIR, ha_config_text

FAST = {"hb-interval": 1, "hb-lost-threshold": 3, "hello-holddown": 5,
        "ha-uptime-diff-margin": 5}
PORTS = ("port1", "port2", "port3", "port4", "port5")


class FakeLinks:
    """fgcp.hamember.Links over dicts: the interfaces of one member."""

    def __init__(self, macs: dict[str, bytes]) -> None:
        self.macs = macs
        self.up = {name: True for name in macs}

    def exists(self, ifname: str) -> bool:
        return ifname in self.macs

    def carrier(self, ifname: str) -> bool:
        return self.up.get(ifname, False)

    def mac(self, ifname: str) -> bytes:
        return self.macs.get(ifname, bytes(6))


class FakeDaemon:
    """What HaMember sees of the daemon (fgcp.component.Host): cfg, table, the role calls.
    ``refuse_takeovers``: so many become_primary calls fail (a takeover hook failed)."""

    def __init__(self, cfg: MemberConfig) -> None:
        self.cfg = cfg
        self.table = diag.default_table()
        self.fwd = None
        self.role = Role.INIT
        self.changes: list[tuple[str, float]] = []
        self.announces = 0
        self.refuse_takeovers = 0
        self.refused: list[float] = []

    def component(self, name: str) -> None:
        return None

    def enter_hello(self, now: float, reason: str = "") -> None:
        self.role = Role.HELLO

    def become_primary(self, now: float, reason: str) -> bool:
        if self.refuse_takeovers:
            self.refuse_takeovers -= 1
            self.refused.append(now)
            return False
        if self.role != "primary":
            self.role = Role.PRIMARY
            self.changes.append(("primary", now))
            self.announces += 1
        return True

    def become_secondary(self, now: float, reason: str) -> None:
        if self.role != "secondary":
            self.role = Role.SECONDARY
            self.changes.append(("secondary", now))

    def announce(self, now: float) -> None:
        if self.role == "primary":
            self.announces += 1

    def diag(self, line: str) -> str:
        return self.table.run(line, diag.DiagState(cfg=self.cfg, forwarder=None,
                                                   now=time.time()))


class Member:
    def __init__(self, name: str, tmp: Path, socks: dict[str, socket.socket],
                 settings: dict[str, object]) -> None:
        conf = tmp / f"{name}.conf"
        conf.write_text(ha_config_text((CONFIG_DIR / f"{name}.conf").read_text(), settings))
        self.cfg = load_config(conf)
        self.links = FakeLinks({port: bytes([2, 0, 0, 0, int(name[-1]), i])
                                for i, port in enumerate(PORTS)})
        self.daemon = FakeDaemon(self.cfg)
        self.ha = HaMember(links=self.links, opener=lambda ifn: socks[ifn], bring_up=False)
        self.alive = True

    def carrier(self, port: str, up: bool) -> None:
        self.links.up[port] = up

    def lab(self) -> dict[str, str]:
        text = self.daemon.diag("diagnose lab ha")
        return dict(line.split("=", 1) for line in text.splitlines())


def _pairs() -> tuple[dict[str, socket.socket], dict[str, socket.socket]]:
    a, b = {}, {}
    for port in ("port3", "port4"):
        x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        x.setblocking(False)
        y.setblocking(False)
        a[port], b[port] = x, y
    return a, b


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Member, Member]:
    sa, sb = _pairs()
    m1 = Member("fgt1", tmp_path, sa, FAST)
    m2 = Member("fgt2", tmp_path, sb, FAST)
    for m in (m1, m2):
        m.ha.open(m.daemon)
    yield m1, m2
    for m in (m1, m2):
        m.ha.close()


def run(members: tuple[Member, ...], t0: float, t1: float, step: float = 0.02) -> float:
    t = t0
    while t < t1:
        for m in members:
            if not m.alive:
                continue
            for fd in m.ha.fds():
                m.ha.on_readable(fd, t)
            deadline = m.ha.next_deadline()
            if deadline is not None and t >= deadline:
                m.ha.on_tick(t)
        t += step
    return t


def test_election_then_heartbeat_loss_failover(cluster: tuple[Member, Member]) -> None:
    m1, m2 = cluster
    assert m1.daemon.role == "hello" and m2.daemon.role == "hello"
    t = run(cluster, time.time(), time.time() + 6.0)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    assert m1.lab()["state"] == "work" and m2.lab()["primary"] == m1.cfg.serial
    status = m2.daemon.diag("get system ha status")
    assert "Mode: HA A-P" in status and m1.cfg.serial in status

    m1.alive = False  # SIGKILL: fgt1 sends nothing any more
    killed = t
    t = run(cluster, t, t + 1.0)
    when = next(w for role, w in m2.daemon.changes if role == "primary")
    # hb-lost-threshold 3 x hb-interval 0.1 s after the last heartbeat heard
    assert 0.2 <= when - killed <= 0.3 + 0.05
    assert "is lost" in m2.daemon.diag("diagnose sys ha history read")


def test_failed_takeover_keeps_the_member_out_and_is_retried(
        cluster: tuple[Member, Member]) -> None:
    m1, m2 = cluster
    t = run(cluster, time.time(), time.time() + 6.0)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    m2.daemon.refuse_takeovers = 2  # the takeover hooks fail twice, then succeed
    m1.alive = False
    killed = t
    t = run(cluster, t, t + 1.0)
    assert len(m2.daemon.refused) == 2
    # each failure was retried on the next tick (carrier poll: 50 ms), then it took over
    (when,) = [w for role, w in m2.daemon.changes if role == "primary"]
    assert when - m2.daemon.refused[0] <= 2 * 0.05 + 0.05 and when > killed
    assert m2.daemon.role == "primary" and m2.lab()["state"] == "work"
    assert m2.lab()["counter.takeover-failed"] == "2"
    assert m2.lab()["counter.io-takeover_failed"] == "2"
    assert "takeover failed" in m2.daemon.diag("diagnose sys ha history read")


def test_heartbeats_leave_each_port_in_counter_order_across_a_takeover_hook(
        cluster: tuple[Member, Member]) -> None:
    """A takeover hook that reports the bulk sync complete (as session sync does) sends a
    heartbeat from inside ``become_primary``: the heartbeats built before it must not
    follow it on the wire, or the peer drops them as replays (strict per-port counters)."""
    m1, m2 = cluster
    t = time.time()
    m1.ha.set_sync_complete(t, False)  # a receiver with its bulk pending, as fgcpd starts
    plain = m1.daemon.become_primary

    def hooked(now: float, reason: str) -> bool:
        ok = plain(now, reason)
        m1.ha.set_sync_complete(now, True)  # SyncMember's takeover: the table is installed
        return ok

    m1.daemon.become_primary = hooked  # type: ignore[method-assign]
    run(cluster, t, t + 6.0)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    assert "counter.drop-replay" not in m2.lab(), m2.lab()
    assert int(m1.lab()["counter.io-tx_stale"]) >= 1  # the stale frames were held back


def test_monitor_failure_and_forced_failover(cluster: tuple[Member, Member]) -> None:
    m1, m2 = cluster
    t = run(cluster, time.time(), time.time() + 6.0)
    m1.carrier("port1", False)
    t = run(cluster, t, t + 0.5)
    assert (m1.daemon.role, m2.daemon.role) == ("secondary", "primary")
    assert "port1 link status changed: 1->0" in m1.daemon.diag("diag sys ha history read")
    m1.carrier("port1", True)
    t = run(cluster, t, t + 0.5)
    # fgt1's HA uptime was reset: fgt2's is more than the 5 s margin longer, it stays
    assert (m1.daemon.role, m2.daemon.role) == ("secondary", "primary")
    out = m2.daemon.diag("execute ha failover set 1")
    assert "failover" in out
    t = run(cluster, t, t + 0.5)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    assert m2.lab()["failover_set"] == "1"
    assert "failover set 1" in m2.daemon.diag("diagnose sys ha history read")
    m2.daemon.diag("execute ha failover unset 1")
    run(cluster, t, t + 0.5)
    assert m2.lab()["failover_set"] == "0"
    assert "parse error" in m2.daemon.diag("execute ha failover set 2")


def test_bad_frames_are_counted_and_change_nothing(cluster: tuple[Member, Member]) -> None:
    m1, m2 = cluster
    t = run(cluster, time.time(), time.time() + 6.0)
    injector = m2.ha.socks["port3"]  # frames "from the wire" towards fgt1
    injector.send(b"\xff" * 6 + b"\x02" * 6 + b"\x88\x90" + b"garbage")
    injector.send(b"\xff" * 6 + b"\x02" * 6 + b"\x88\x90")
    t = run(cluster, t, t + 0.3)
    counters = {k: v for k, v in m1.lab().items() if k.startswith("counter.drop-")}
    assert sum(int(v) for v in counters.values()) >= 2, counters
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")


def test_both_heartbeat_links_down_is_split_brain(cluster: tuple[Member, Member]) -> None:
    m1, m2 = cluster
    t = run(cluster, time.time(), time.time() + 6.0)
    m1.carrier("port3", False)
    t = run(cluster, t, t + 0.5)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")  # one link is enough
    for m in cluster:
        m.carrier("port3", False)
        m.carrier("port4", False)
    t = run(cluster, t, t + 0.5)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "primary")
    assert "split brain" in m2.daemon.diag("diagnose sys ha history read")
    for m in cluster:
        m.carrier("port4", True)
    announces = m1.daemon.announces
    run(cluster, t, t + 1.0)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    assert m1.daemon.announces > announces  # the primary re-announces for the fabric


def test_standalone_member_opens_nothing(tmp_path: Path) -> None:
    conf = tmp_path / "solo.conf"
    conf.write_text(ha_config_text((CONFIG_DIR / "fgt1.conf").read_text(),
                                   {"mode": "standalone"}))
    d = FakeDaemon(load_config(conf))
    ha = HaMember(links=FakeLinks({}), opener=lambda ifn: pytest.fail("opened a socket"))
    ha.open(d)
    assert d.role == "init" and ha.fds() == [] and ha.next_deadline() is None


def test_virtual_mac_layout() -> None:
    assert virtual_mac(10, 0) == bytes.fromhex("00090f090a00")
    assert virtual_mac(10, 1, vcluster=1) == bytes.fromhex("00090f090a81")


class _Port:
    def __init__(self, index: int) -> None:
        self.index = index
        self.ifname = f"nosuchif{index}"
        self.sent: list[bytes] = []
        self.sock = socket.socketpair()[0]
        self.mac = bytes([2, 0, 0, 0, 0, index])

    def send(self, frame: bytes) -> bool:
        self.sent.append(bytes(frame))
        return True

    def flush(self) -> None:
        return

    def fileno(self) -> int:
        return self.sock.fileno()

    def counters(self) -> dict[str, int]:
        return {"rx": 0}


class _Fwd:
    def __init__(self) -> None:
        self.active = True
        self.macs: dict[int, bytes] = {}
        self.counters: dict[str, int] = {}

    def set_active(self, active: bool) -> None:
        self.active = active

    def set_port_mac(self, index: int, mac: bytes) -> None:
        self.macs[index] = mac

    def gratuitous_arps(self, index: int) -> list[tuple[int, bytes]]:
        return [(index, b"garp-from-" + self.macs[index])]


class _Recorder:
    name = "rec"

    def __init__(self, fwd: _Fwd) -> None:
        self.fwd = fwd
        self.calls: list[tuple[str, bool]] = []

    def before_takeover(self, now: float) -> None:
        self.calls.append(("before_takeover", self.fwd.active))

    def after_release(self, now: float) -> None:
        self.calls.append(("after_release", self.fwd.active))


def _daemon(tmp_path: Path, *components: object) -> tuple[Daemon, _Fwd]:
    """A Daemon with fake ports and forwarder (no open(): no root, no sockets)."""
    cfg = load_config(CONFIG_DIR / "fgt1.conf")
    d = Daemon(cfg, tmp_path, components=components)  # type: ignore[arg-type]
    fwd = _Fwd()
    d.fwd = fwd  # type: ignore[assignment]
    d.ports = [_Port(0), _Port(1)]  # type: ignore[list-item]
    d.names = ["port1", "port2"]
    d.own_macs = [p.mac for p in d.ports]
    d.vmacs = [virtual_mac(10, 0), virtual_mac(10, 1)]
    return d, fwd


class _FailingHook(_Recorder):
    name = "failing"

    def __init__(self, fwd: _Fwd, failures: int) -> None:
        super().__init__(fwd)
        self.failures = failures

    def before_takeover(self, now: float) -> None:
        super().before_takeover(now)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("cannot install the synced sessions")


def test_failed_takeover_hook_never_forwards_without_the_state(tmp_path: Path) -> None:
    d, fwd = _daemon(tmp_path)
    hook = _FailingHook(fwd, failures=1)
    d.components = [hook]
    d.enter_hello(0.0)
    assert d.become_primary(1.0, "elected") is False
    # stays out: no forwarding, own MACs, no gratuitous ARP, counted and shown
    assert d.role == "hello" and not fwd.active and fwd.macs == {}
    assert d.ports[0].sent == [] and d.stats["loop_errors"] == 1
    assert "takeover_hook_failures=1" in d.answer("diagnose lab stats").splitlines()
    # the retry (the HA FSM's next tick) takes over once the hook succeeds
    assert d.become_primary(1.05, "elected") is True
    assert d.role == "primary" and fwd.active
    assert d.stats["takeover_hook_failures"] == 1
    assert hook.calls == [("before_takeover", False), ("before_takeover", False)]


def test_daemon_runs_takeover_hooks_before_forwarding(tmp_path: Path) -> None:
    d, fwd = _daemon(tmp_path)
    rec = _Recorder(fwd)
    d.components = [rec]
    d.enter_hello(0.0)
    assert not fwd.active
    assert d.become_primary(1.0, "test")
    # the sync hook ran while the member still forwarded nothing
    assert rec.calls == [("before_takeover", False)]
    assert fwd.active and d.role == "primary"
    assert fwd.macs == {0: bytes.fromhex("00090f090a00"), 1: bytes.fromhex("00090f090a01")}
    assert d.ports[0].sent == [b"garp-from-" + bytes.fromhex("00090f090a00")]  # at once
    d.become_secondary(2.0, "test")
    assert rec.calls[-1] == ("after_release", False)
    assert fwd.macs == {0: d.ports[0].mac, 1: d.ports[1].mac}
    assert d._garp_left == 0  # no more announcements from a secondary


def test_no_password_is_said_at_start_in_the_log_and_in_ha_status(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 item 5: HA without ``set password`` accepts anything that decodes."""
    text = (CONFIG_DIR / "fgt1.conf").read_text().replace('    set password "secret"\n', "")
    conf = tmp_path / "nopass.conf"
    conf.write_text(ha_config_text(text, FAST))
    cfg = load_config(conf)
    assert cfg.ha.password == ""
    daemon = FakeDaemon(cfg)
    socks, _peer = _pairs()
    ha = HaMember(links=FakeLinks({port: bytes([2, 0, 0, 0, 9, i])
                                   for i, port in enumerate(PORTS)}),
                  opener=lambda ifn: socks[ifn], bring_up=False)
    with caplog.at_level("WARNING", logger="fgcpd.ha"):
        ha.open(daemon)
    try:
        assert any("HA authentication: none (password not set)" in r.getMessage()
                   for r in caplog.records)
        assert "HA authentication: none (password not set)" in daemon.diag(
            "get system ha status")
    finally:
        ha.close()
