"""Heartbeat freshness, written as the attacks (issue 13 items 4 and 5, HA side).

Two or more HA state machines on an in-memory heartbeat segment with simulated time;
each member may run with its own clock offset.  The attacker records every frame on
the segment and replays it later, or forges frames (no password) for fake serials.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from fgcp.hadiag import render_ha_status
from fgcp.hafsm import WORK, HAStateMachine, SendHeartbeat
from fgcp.hbframe import STATE_WORK, decode_heartbeat, encode_heartbeat
from fgcp.model import HAConfig

T0 = 1_790_000_000.0
LATENCY = 0.0005
S1, S2 = "FGVM01TM00000001", "FGVM01TM00000002"
SERIALS = {"fgt1": S1, "fgt2": S2}
NO_AUTH = ("HA authentication: none (password not set): heartbeats and sync frames are "
           "accepted unauthenticated")


def ha(priority: int, password: str = "secret") -> HAConfig:
    return HAConfig(group_name="lab", group_id=10, mode="a-p", password=password,
                    hbdev=(("port3", 50),), priority=priority, hb_interval=1,
                    hb_lost_threshold=3, hello_holddown=1)


class Segment:
    """One heartbeat segment: members with clock offsets, a recorder, replay and injection."""

    def __init__(self, cfgs: dict[str, HAConfig]) -> None:
        self.t = T0
        self.cfgs = cfgs
        self.offset: dict[str, float] = {}
        self.members: dict[str, HAStateMachine] = {}
        self.queue: list[tuple[float, str, bytes]] = []
        self.recorded: list[tuple[float, str, bytes]] = []  # (t, sender, frame)
        self.out: dict[str, list[bytes]] = {}  # frames each member sent
        for name in cfgs:
            self.start(name)

    def now(self, name: str) -> float:
        return self.t + self.offset.get(name, 0.0)

    def start(self, name: str, clock_offset: float = 0.0, **cfg_change: object) -> None:
        self.offset[name] = clock_offset
        if cfg_change:
            self.cfgs[name] = dataclasses.replace(self.cfgs[name], **cfg_change)  # type: ignore[arg-type]
        m = HAStateMachine(self.cfgs[name], SERIALS[name], self.now(name), hostname=name)
        self.members[name] = m
        self.handle(name, m.on_tick(self.now(name)))

    def kill(self, name: str) -> None:
        del self.members[name]
        self.queue = [q for q in self.queue if q[1] != name]  # its socket's frames are gone

    def handle(self, name: str, actions: Iterable[object]) -> None:
        for a in actions:
            if isinstance(a, SendHeartbeat):
                self.recorded.append((self.t, name, a.frame))
                self.out.setdefault(name, []).append(a.frame)
                for other in self.members:
                    if other != name:
                        self.queue.append((self.t + LATENCY, other, a.frame))

    def inject(self, name: str, frame: bytes) -> None:
        m = self.members[name]
        self.handle(name, m.on_frame(self.now(name), "port3", frame))

    def run(self, duration: float, replay: list[tuple[float, bytes]] | None = None,
            into: str = "") -> None:
        """Run ``duration`` s; ``replay`` = (time offset from now, frame) injected into ``into``."""
        start = self.t
        end = self.t + duration
        pending = sorted(replay or [], key=lambda r: r[0])
        while True:
            cands = [q[0] for q in self.queue]
            cands += [m.next_deadline() - self.offset[n] for n, m in self.members.items()]
            if pending:
                cands.append(start + pending[0][0])
            nt = min(cands)
            if nt > end:
                break
            # a deadline may sit a rounding error before the member's own test: step past it
            self.t = max(self.t + 1e-6, nt)
            while pending and start + pending[0][0] <= self.t:
                self.inject(into, pending.pop(0)[1])
            due = [q for q in self.queue if q[0] <= self.t]
            self.queue = [q for q in self.queue if q[0] > self.t]
            for _, dst, frame in due:
                if dst in self.members:
                    m = self.members[dst]
                    self.handle(dst, m.on_frame(self.now(dst), "port3", frame))
            for name, m in list(self.members.items()):
                if m.next_deadline() <= self.now(name):
                    self.handle(name, m.on_tick(self.now(name)))
        self.t = end

    def primaries(self) -> set[str]:
        return {n for n, m in self.members.items() if m.state == WORK}

    def frames_of(self, sender: str, since: float = 0.0) -> list[tuple[float, bytes]]:
        """Recorded frames of ``sender`` as (time since the first one, frame)."""
        mine = [(t, f) for t, s, f in self.recorded if s == sender and t >= since]
        return [(t - mine[0][0], f) for t, f in mine]


def stable_pair() -> Segment:
    seg = Segment({"fgt1": ha(200), "fgt2": ha(100)})
    seg.run(5.0)
    assert seg.primaries() == {"fgt1"}
    assert S1 in seg.members["fgt2"].peers
    return seg


def test_recorded_heartbeats_replayed_after_the_receiver_restarts_are_ignored() -> None:
    seg = stable_pair()
    recording = seg.frames_of("fgt1", since=seg.t - 4.0)  # 4 s of the live primary
    seg.kill("fgt1")  # the primary dies ...
    seg.kill("fgt2")
    seg.start("fgt2")  # ... and fgt2 restarts: empty memory
    seg.run(3.8, replay=recording, into="fgt2")  # the recording at the normal rate
    m2 = seg.members["fgt2"]
    assert seg.primaries() == {"fgt2"}, "a replayed dead primary kept fgt2 in standby"
    assert S1 not in m2.peers
    assert m2.counters.get("drop-unverified", 0) + m2.counters.get("drop-replay", 0) >= 30


def test_sender_restarting_with_its_clock_10s_behind_is_accepted_after_the_challenge() -> None:
    seg = stable_pair()
    seg.kill("fgt1")
    seg.run(0.2)
    seg.start("fgt1", clock_offset=-10.0)
    seg.run(4.0)
    m2 = seg.members["fgt2"]
    assert S1 in m2.peers and S2 in seg.members["fgt1"].peers, "restarted fgt1 not accepted"
    assert len(seg.primaries()) == 1, f"split brain after the restart: {seg.primaries()}"
    assert m2.counters.get("drop-replay", 0) == 0


def test_replay_across_epochs_does_not_bring_back_the_old_run() -> None:
    seg = stable_pair()
    old_run = seg.frames_of("fgt1", since=seg.t - 3.0)  # priority 200, state work
    seg.kill("fgt1")
    seg.run(0.2)
    seg.start("fgt1", clock_offset=-10.0, priority=50)  # back with priority 50
    seg.run(4.0)
    assert seg.primaries() == {"fgt2"}
    seg.run(3.0, replay=old_run, into="fgt2")  # the old run replayed, new one alive
    m2 = seg.members["fgt2"]
    assert seg.primaries() == {"fgt2"}
    assert m2.peers[S1].info.priority == 50, "a replayed frame of the old run was believed"
    assert m2.counters.get("drop-replay", 0) >= len(old_run) - 1


def _forged(serial: str, seq: int, echo: tuple[tuple[str, int], ...] = (),
            epoch: int = 0x5EED) -> bytes:
    """A heartbeat of a fake member, as an attacker without the password builds it."""
    tmpl = decode_heartbeat(encode_heartbeat(HAStateMachine(ha(1, ""), "X", T0)
                                             .heartbeat_info(T0, "port3")))
    change = {"serial": serial, "hostname": "fake", "priority": 1, "seq": seq,
              "state": STATE_WORK, "role": 1, "uptime_ms": 10**9, "epoch": epoch,
              "responses": echo, "challenges": ()}
    known = {f.name for f in dataclasses.fields(tmpl)}
    return encode_heartbeat(dataclasses.replace(tmpl, **{k: v for k, v in change.items()
                                                         if k in known}))


def test_3000_fake_serials_leave_bounded_counted_tables() -> None:
    seg = Segment({"fgt2": ha(100, password="")})
    seg.run(2.0)
    m2 = seg.members["fgt2"]
    for i in range(3000):
        serial = f"FAKE{i:012d}"
        seg.inject("fgt2", _forged(serial, 1))
        # the attacker reads fgt2's challenge and answers it (nothing stops it without HMAC)
        last = decode_heartbeat(seg.out["fgt2"][-1])
        echo = tuple((S2, c.nonce) for c in getattr(last, "challenges", ()) if c.serial == serial)
        seg.inject("fgt2", _forged(serial, 2, echo))
        seg.run(0.25)
        assert len(m2.peers) <= 3 and len(m2.lost) <= 3, (i, len(m2.peers), len(m2.lost))
    assert m2.counters.get("ha_peers_refused", 0) >= 2000
    assert len(m2.status(seg.now("fgt2")).lost) <= 3
    assert NO_AUTH in render_ha_status(m2.status(seg.now("fgt2")))
    seg.run(400.0)  # quiet: lost entries age out
    assert not m2.peers and not m2.lost


def test_status_says_when_heartbeats_are_authenticated() -> None:
    seg = stable_pair()
    text = render_ha_status(seg.members["fgt1"].status(seg.t))
    assert "HA authentication: HMAC-SHA256" in text and NO_AUTH not in text
