"""The session-sync daemon component over in-memory HA links: pickup, takeover, loss, fallback."""

from __future__ import annotations

import random
from collections import deque
from ipaddress import IPv4Address

import pytest
from scapy.layers.inet import IP, TCP, UDP

from fgcp import diag
from fgcp.component import SyncCompleteListener
from fgcp.hafsm import HAStateMachine
from fgcp.hamember import HaMember
from fgcp.model import HAConfig
from fgcp.session import SYNCED
from fgcp.syncmember import DELAY_SCALE_ENV, SyncMember, SyncMemberError, pickup_delay_s
from tests.unit.test_forward import (
    OUT_IP,
    P1,
    P2,
    from_client,
    from_server,
    make_fwd,
    one,
    send,
    tcp_handshake,
)

SERIALS = ("FGVM01TM00000001", "FGVM01TM00000002")


def ha_cfg(**kw: object) -> HAConfig:
    base = {"group_name": "lab", "group_id": 10, "mode": "a-p", "password": "secret",
            "hbdev": (("port3", 50), ("port4", 50)), "session_sync_dev": ("port5",),
            "session_pickup": True, "session_pickup_connectionless": True}
    base.update(kw)
    return HAConfig(**base)  # type: ignore[arg-type]


class Wire:
    """Both ends of one HA link (same port name on every member), lossy on demand."""

    def __init__(self, rng: random.Random) -> None:
        self.ends: list[FakeLink] = []
        self.loss = 0.0
        self.up = True
        self.rng = rng
        self.frames = 0
        self.tap: list[tuple[bytes, bytes]] = []  # (source MAC, payload) of every frame

    def carry(self, src: FakeLink, dst_mac: bytes, payload: bytes) -> None:
        self.frames += 1
        self.tap.append((src.mac, payload))
        if self.loss and self.rng.random() < self.loss:
            return
        for end in self.ends:
            if end is not src and (dst_mac == b"\xff" * 6 or dst_mac == end.mac):
                end.q.append((src.mac, payload))


class FakeLink:
    _next_fd = 1000

    def __init__(self, name: str, mac: bytes, wire: Wire) -> None:
        self.name = name
        self.mac = mac
        self.wire = wire
        self.q: deque[tuple[bytes, bytes]] = deque()
        FakeLink._next_fd += 1
        self.fd = FakeLink._next_fd
        wire.ends.append(self)

    def fileno(self) -> int:
        return self.fd

    def recv(self, limit: int) -> list[tuple[bytes, bytes]]:
        out = []
        while self.q and len(out) < limit:
            out.append(self.q.popleft())
        return out

    def send(self, dst: bytes, payload: bytes) -> bool:
        if not self.wire.up:
            return False
        self.wire.carry(self, dst, payload)
        return True

    def is_up(self) -> bool:
        return self.wire.up

    def close(self) -> None:
        self.wire.ends.remove(self)


class FakeHa:
    name = "ha"

    def __init__(self) -> None:
        self.calls: list[bool] = []

    def set_sync_complete(self, now: float, done: bool) -> None:
        self.calls.append(done)


class FakeDaemon:
    def __init__(self, idx: int, ha: HAConfig, **cfg_kw: object) -> None:
        self.fwd = make_fwd(ha=ha, serial=SERIALS[idx], **cfg_kw)
        self.cfg = self.fwd.cfg
        self.table = diag.default_table()
        self.ha = FakeHa()
        self.role = "hello"

    def component(self, name: str) -> object:
        return self.ha if name == "ha" else None


class Cluster:
    """Members sharing in-memory port3/port4/port5 wires; ``run`` drives their loops."""

    def __init__(self, n: int = 2, seed: int = 1, delay_s: float | None = None,
                 cfg_kw: dict[str, object] | None = None, **ha_kw: object) -> None:
        self.rng = random.Random(seed)
        self.wires = {p: Wire(self.rng) for p in ("port3", "port4", "port5")}
        self.ha = ha_cfg(**ha_kw)
        self.delay_s = delay_s
        self.cfg_kw = cfg_kw or {}
        self.now = 1.0
        self.daemons: list[FakeDaemon] = []
        self.members: list[SyncMember] = []  # running (run() drives them)
        self.all: list[SyncMember] = []  # by index, also the stopped ones
        for i in range(n):
            self.add(i)

    def add(self, i: int) -> SyncMember:
        d = FakeDaemon(i, self.ha, **self.cfg_kw)

        def factory(name: str, i: int = i) -> FakeLink:
            return FakeLink(name, bytes((2, 0, 0, 0, i + 1, int(name[-1]))), self.wires[name])

        m = SyncMember(link_factory=factory, delay_s=self.delay_s, clock=lambda: self.now,
                       tune_gc=False)
        m.open(d)
        self.daemons.append(d)
        self.members.append(m)
        self.all.append(m)
        return m

    def run(self, seconds: float, step: float = 0.002) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for m in self.members:
                for fd in m.fds():
                    m.on_readable(fd, self.now)
                d = m.next_deadline()
                if d is not None and self.now >= d:
                    m.on_tick(self.now)

    def takeover(self, i: int) -> None:
        self.all[i].before_takeover(self.now)
        self.daemons[i].role = "primary"


def keys(m: SyncMember) -> set:
    return set(m.table_records())


def test_pickup_tcp_synced_shown_on_secondary_and_continued_after_takeover() -> None:
    c = Cluster()
    a, b = c.members
    c.takeover(0)
    c.run(0.2)
    s, nport = tcp_handshake(c.daemons[0].fwd)
    c.run(0.2)
    assert keys(b) == {s.orig_key}
    assert s.flags & SYNCED  # the primary's list marks it synced too
    rec = b.receiver.table[s.orig_key]  # type: ignore[union-attr]
    assert rec.nat_port == nport and rec.state == s.state and rec.tcp is not None
    text = c.daemons[1].table.run("diagnose sys session list", diag.DiagState(
        cfg=c.daemons[1].cfg, forwarder=c.daemons[1].fwd, now=c.now))
    assert "state=may_dirty synced" in text and "total session 1" in text
    assert f"act=snat 198.51.100.10:40001->203.0.113.10:80({OUT_IP}:{nport})" in text
    stats = c.daemons[1].table.run("diag sys session sync", diag.DiagState(
        cfg=c.daemons[1].cfg, forwarder=None, now=c.now))
    assert "recv: create=1" in stats and "bulk=complete" in stats
    assert c.daemons[1].ha.calls == [False, True]  # pending until the bulk sync completed
    # the primary dies; the secondary installs the session before taking traffic
    c.members.remove(a)
    a.close()
    c.takeover(1)
    fwd_b = c.daemons[1].fwd
    assert len(fwd_b.sessions) == 1
    got = next(iter(fwd_b.sessions))
    assert got.flags & SYNCED and got.nat_port == nport and got.expires > c.now
    _, out = one(send(fwd_b, P1, from_client(TCP(sport=40001, dport=80, seq=500_000, ack=9_000,
                                                  flags="PA") / b"x")))
    assert out[IP].src == OUT_IP and out[TCP].sport == nport  # same NAT mapping, mid-stream
    _, back = one(send(fwd_b, P2, from_server(TCP(sport=80, dport=nport, seq=9_000,
                                                    ack=500_001, flags="A"))))
    assert back[IP].dst == "198.51.100.10" and back[TCP].dport == 40001


def test_pickup_off_nothing_synced_and_mid_stream_dropped_after_takeover() -> None:
    c = Cluster(session_pickup=False, session_pickup_connectionless=False)
    a, b = c.members
    c.takeover(0)
    c.run(0.2)
    tcp_handshake(c.daemons[0].fwd)
    send(c.daemons[0].fwd, P1, from_client(UDP(sport=40000, dport=53)))
    c.run(0.3)
    assert len(c.daemons[0].fwd.sessions) == 2 and keys(b) == set()
    assert not any(s.flags & SYNCED for s in c.daemons[0].fwd.sessions)
    assert False not in c.daemons[1].ha.calls  # nothing to wait for: never pending
    c.members.remove(a)
    c.takeover(1)
    fwd_b = c.daemons[1].fwd
    assert send(fwd_b, P1, from_client(TCP(sport=40001, dport=80, seq=1001, ack=5001,
                                           flags="PA") / b"x")) == []
    assert fwd_b.counters["no_session"] == 1


def test_connectionless_off_syncs_tcp_only() -> None:
    c = Cluster(session_pickup_connectionless=False)
    c.takeover(0)
    c.run(0.1)
    s, _ = tcp_handshake(c.daemons[0].fwd)
    send(c.daemons[0].fwd, P1, from_client(UDP(sport=40000, dport=53)))
    c.run(0.2)
    assert keys(c.members[1]) == {s.orig_key}


def test_pickup_delay_syncs_tcp_only_once_older_than_delay() -> None:
    c = Cluster(delay_s=0.5, session_pickup_delay=True)
    c.takeover(0)
    c.run(0.1)
    s, _ = tcp_handshake(c.daemons[0].fwd)  # created at now = 1.0 (test_forward's clock)
    send(c.daemons[0].fwd, P1, from_client(UDP(sport=40000, dport=53)), now=c.now)
    c.run(0.1)
    b = c.members[1]
    assert len(keys(b)) == 1 and s.orig_key not in keys(b)  # UDP at once, TCP not yet
    c.run(0.6)
    assert s.orig_key in keys(b)
    assert b.receiver.table[s.orig_key].state == s.state  # type: ignore[union-attr]
    assert c.members[0].counters["delayed_synced"] == 1


def test_tcp_gone_before_delay_never_synced() -> None:
    c = Cluster(delay_s=0.5, session_pickup_delay=True, session_pickup_connectionless=False)
    c.takeover(0)
    fwd = c.daemons[0].fwd
    _s, nport = tcp_handshake(fwd)
    one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5001, flags="R"))))
    fwd.expire(10.0)
    c.run(1.0)
    assert keys(c.members[1]) == set() and c.members[0].counters["delayed_synced"] == 0


def udp_sessions(c: Cluster, n: int, start: int = 0) -> None:
    fwd = c.daemons[0].fwd
    for i in range(start, start + n):
        send(fwd, P1, from_client(UDP(sport=10000 + i, dport=53)), now=c.now)


def test_lossy_sync_link_converges_to_the_primary_table() -> None:
    c = Cluster(seed=7)
    c.wires["port5"].loss = 0.2
    c.takeover(0)
    c.run(0.1)
    for burst in range(10):
        udp_sessions(c, 60, burst * 60)
        c.run(0.01)
    fwd = c.daemons[0].fwd
    for s in list(fwd.sessions)[::3]:
        fwd.sessions.remove(s)
    c.run(3.0)
    a, b = c.members
    want = {s.orig_key for s in fwd.sessions}
    assert len(want) == 400
    assert keys(a) == want and keys(b) == want
    for k in want:
        assert b.receiver.table[k] == a.sender.records[k]  # type: ignore[union-attr]
    assert a.sender.stats.resends > 0  # type: ignore[union-attr]


def test_sync_link_down_falls_back_to_heartbeat_links_and_back() -> None:
    c = Cluster()
    c.takeover(0)
    c.run(0.2)
    udp_sessions(c, 20)
    c.run(0.2)
    c.wires["port5"].up = False
    c.run(0.3)
    hb_before = c.wires["port3"].frames + c.wires["port4"].frames
    udp_sessions(c, 30, 20)
    c.run(0.5)
    a, b = c.members
    assert len(keys(b)) == 50 and keys(b) == keys(a)
    assert c.wires["port3"].frames + c.wires["port4"].frames > hb_before
    assert a.sender.stats.fallback_frames > 0  # type: ignore[union-attr]
    assert "fallback to heartbeat links" in a.stats_text(c.now)
    c.wires["port5"].up = True
    c.run(0.3)
    sync_before = c.wires["port5"].frames
    udp_sessions(c, 10, 50)
    c.run(0.3)
    assert len(keys(b)) == 60 and c.wires["port5"].frames > sync_before


def test_joining_member_gets_bulk_then_survives_takeover() -> None:
    c = Cluster(n=1)
    c.takeover(0)
    udp_sessions(c, 500)
    c.run(0.1)
    b = c.add(1)
    assert c.daemons[1].ha.calls == [False]
    # load goes on while the new member joins
    for burst in range(5):
        udp_sessions(c, 20, 500 + burst * 20)
        c.run(0.05)
    c.run(1.0)
    assert b.receiver.bulk_complete  # type: ignore[union-attr]
    assert c.daemons[1].ha.calls == [False, True]
    assert keys(b) == {s.orig_key for s in c.daemons[0].fwd.sessions}
    assert len(keys(b)) == 600
    c.members.pop(0)
    c.takeover(1)
    assert len(c.daemons[1].fwd.sessions) == 600 and b.counters["installed"] == 600


def test_release_drops_forwarder_sessions_and_receives_again() -> None:
    c = Cluster()
    c.takeover(0)
    udp_sessions(c, 5)
    c.run(0.2)
    a, b = c.members
    a.after_release(c.now)
    assert a.sender is None and len(c.daemons[0].fwd.sessions) == 0
    c.takeover(1)
    c.run(1.0)
    assert keys(a) == keys(b) and len(keys(a)) == 5  # the new primary's bulk sync


def test_standalone_opens_nothing() -> None:
    d = FakeDaemon(0, ha_cfg(mode="standalone"))
    m = SyncMember(link_factory=lambda n: pytest.fail("no link in standalone"), tune_gc=False)
    m.open(d)
    assert m.fds() == [] and m.next_deadline() is None
    assert "session sync: not running" in m.stats_text(0.0)


def test_pickup_delay_scale_knob() -> None:
    assert pickup_delay_s({}) == 30.0
    assert pickup_delay_s({DELAY_SCALE_ENV: "0.1"}) == pytest.approx(3.0)
    for bad in ("0", "2", "x", "-1"):
        with pytest.raises(SyncMemberError):
            pickup_delay_s({DELAY_SCALE_ENV: bad})


def test_nat_port_clash_on_install_counted() -> None:
    c = Cluster()
    c.takeover(0)
    _s, nport = tcp_handshake(c.daemons[0].fwd)
    c.run(0.2)
    # the secondary's forwarder already holds that NAT port for another flow
    fwd_b = c.daemons[1].fwd
    assert fwd_b.nat.reserve(int(IPv4Address(OUT_IP)), 6, nport)
    c.members.pop(0)
    c.takeover(1)
    assert c.all[1].counters["install_failed"] == 1
    assert fwd_b.counters["sync_nat_clash"] == 1


def test_takeover_replaces_a_session_the_forwarder_already_holds() -> None:
    c = Cluster()
    c.takeover(0)
    s, nport = tcp_handshake(c.daemons[0].fwd)
    c.run(0.2)
    fwd_b = c.daemons[1].fwd
    tcp_handshake(fwd_b)  # the same tuple, e.g. forwarded during a split brain
    c.members.pop(0)
    c.takeover(1)
    b = c.all[1]
    assert b.counters["replaced"] == 1 and b.counters["installed"] == 1
    assert len(fwd_b.sessions) == 1
    got = next(iter(fwd_b.sessions))
    assert got.flags & SYNCED and got.nat_port == nport and got.orig_key == s.orig_key
    assert got.tcp is not None and got.tcp[0].pickup and got.expires > c.now
    assert fwd_b.nat.in_use(int(IPv4Address(OUT_IP)), 6) == 1


def test_sync_state_reaches_the_real_ha_component() -> None:
    """The fake HA above and the real HaMember are both what sync reports to
    (fgcp.component.SyncCompleteListener); the real one feeds its state machine."""
    assert isinstance(FakeHa(), SyncCompleteListener)
    c = Cluster(n=1)
    c.takeover(0)
    d = FakeDaemon(1, c.ha)
    ha = HaMember()
    assert isinstance(ha, SyncCompleteListener)
    ha.daemon = d  # type: ignore[assignment]
    ha.fsm = HAStateMachine(c.ha, SERIALS[1], c.now)
    d.component = lambda name: ha if name == "ha" else None  # type: ignore[method-assign]
    m = SyncMember(link_factory=lambda n: FakeLink(n, b"\x02\0\0\0\x02" + n[-1].encode(),
                                                    c.wires[n]),
                   clock=lambda: c.now, tune_gc=False)
    m.open(d)
    assert ha.fsm.sync_complete is False  # joined: waits for its bulk sync
    c.members.append(m)
    c.run(0.3)
    assert ha.fsm.sync_complete is True and m.counters["no_ha"] == 0
    sync = [h.text for h in ha.fsm.history if h.event == "sync"]
    assert sync == ["bulk session sync pending", "bulk session sync complete"]
