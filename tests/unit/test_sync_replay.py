"""Replays of genuine sync frames and state grown by fake peers (issue 13, items 1, 2, 5).

Written as the attacks: the frames are recorded off the simulated wire while the engines
run, then replayed into them later (no frame is forged, the layout does not matter).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from fgcp.sync import SyncReceiver, SyncSender
from fgcp.sync.fresh import REPLAY_WINDOW, ReplayWindow
from fgcp.syncframe import T_ACK, T_BULK_BEGIN, T_DATA, T_HELLO, T_NACK, decode_frame
from tests.unit.fakes import LossyLink, SyncNet
from tests.unit.test_sync import HB_LINKS, KEY, SYNC_LINKS, assert_tables_equal, make_record


@dataclass
class Wired:
    """One frame seen on the wire: ``src`` sent it, ``payload`` as sent."""

    src: str
    payload: bytes
    type: int
    seq: int
    ack: int


class Recording(SyncNet):
    """SyncNet that records every frame it carries; ``drop(frame)`` loses chosen ones."""

    def __init__(self, *a: Any, key: bytes | None = KEY, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.key = key
        self.wire: list[Wired] = []
        self.drop: Any = None

    def _seen(self, src: str, payload: bytes) -> Wired:
        fr = decode_frame(payload, self.key)
        w = Wired(src, payload, fr.type, fr.seq, fr.ack)
        self.wire.append(w)
        return w

    def _route_from_sender(self, txs: list[Any], now: float) -> None:
        keep = []
        for tx in txs:
            w = self._seen(self.sender.serial, tx.payload)
            if self.drop is None or not self.drop(w):
                keep.append(tx)
        super()._route_from_sender(keep, now)

    def _route_from_receiver(self, serial: str, txs: list[Any], now: float) -> None:
        for tx in txs:
            self._seen(serial, tx.payload)
        super()._route_from_receiver(serial, txs, now)

    def inject_to_receiver(self, serial: str, payload: bytes, now: float) -> None:
        """An attacker's frame arrives at ``serial``; its answers go out as usual."""
        self._route_from_receiver(serial, self.receivers[serial].receive(payload, now), now)

    def inject_to_sender(self, payload: bytes, now: float) -> None:
        self._route_from_sender(self.sender.receive(payload, now), now)

    def sent_by(self, src: str, *types: int) -> list[Wired]:
        return [w for w in self.wire if w.src == src and w.type in types]


def clean() -> LossyLink:
    return LossyLink(random.Random(0))


def recorded_pair(key: bytes | None = KEY) -> tuple[SyncSender, SyncReceiver, Recording]:
    s = SyncSender("FGT1", 10, key)
    r = SyncReceiver("FGT2", 10, key)
    for e in (s, r):
        e.set_links(SYNC_LINKS, HB_LINKS)
    return s, r, Recording(s, {"FGT2": r}, clean, key=key)


def replays_counted(e: SyncSender | SyncReceiver) -> int:
    return e.stats.dropped_replay + e.stats.dropped_unverified


# --------------------------------------------------------------------------- item 1


def test_replayed_old_stream_after_receiver_restart_changes_nothing() -> None:
    """Four recorded frames of an old stream, replayed once into a restarted secondary."""
    rng = random.Random(21)
    s, r, net = recorded_pair()
    old = [make_record(rng, i, 0.0) for i in range(20)]
    for rec in old:
        s.upsert(rec, 0.0)
    net.run(1.0)
    assert_tables_equal(s, r, net.now)
    old_stream = net.sent_by("FGT1", T_BULK_BEGIN, T_DATA, 8)  # 8: BULK_END
    assert [w.type for w in old_stream][:1] == [T_BULK_BEGIN] and len(old_stream) == 4
    # the primary's table moves on; the secondary's fgcpd restarts (empty, new run)
    for rec in old:
        s.delete(rec.key, 1.0)
    for i in range(100, 160):
        s.upsert(make_record(rng, i, 1.0), 1.0)
    r2 = SyncReceiver("FGT2", 10, KEY)
    r2.set_links(SYNC_LINKS, HB_LINKS)
    net.receivers["FGT2"] = r2
    net.run(3.0)
    assert_tables_equal(s, r2, net.now)
    stream = r2.stream
    # the attacker replays the old stream once, with the primary's own frames
    for w in old_stream:
        net.inject_to_receiver("FGT2", w.payload, net.now)
    for i in range(200, 210):  # live changes go on and must still arrive
        s.upsert(make_record(rng, i, net.now), net.now)
    net.run(33.0, step=0.005)
    assert r2.stream == stream == s.peers["FGT2"].stream
    assert r2.bulk_complete
    assert_tables_equal(s, r2, net.now)
    assert len(r2.table) == 70
    assert replays_counted(r2) >= 4


# --------------------------------------------------------------------------- item 2


def converged_300() -> tuple[SyncSender, SyncReceiver, Recording]:
    rng = random.Random(22)
    s, r, net = recorded_pair()
    for i in range(300):
        s.upsert(make_record(rng, i, 0.0, 17), 0.0)
    net.run(2.0)
    assert_tables_equal(s, r, net.now)
    return s, r, net


def test_replayed_hello_does_not_restart_the_stream() -> None:
    s, r, net = converged_300()
    hellos = net.sent_by("FGT2", T_HELLO)
    assert hellos
    streams, bulks, records = s.stats.streams, s.stats.bulks, s.stats.records_tx
    t = net.now
    for _ in range(9):  # one captured HELLO every 1.1 s
        t += 1.1
        net.run(t, step=0.005)
        for w in hellos:
            net.inject_to_sender(w.payload, net.now)
    net.run(t + 1.0, step=0.005)
    assert (s.stats.streams, s.stats.bulks) == (streams, bulks)
    assert s.stats.records_tx == records  # no record resent
    assert r.stream == s.peers["FGT2"].stream and r.bulk_complete
    assert_tables_equal(s, r, net.now)
    assert replays_counted(s) >= 9 * len(hellos)


def test_replayed_not_adopted_probe_does_not_restart_the_stream() -> None:
    """A NACK with ack 0 (the secondary's probe when a BULK_BEGIN was lost), replayed."""
    s, r, net = converged_300()
    lost: list[int] = []

    def lose_next_bulk_begin(w: Wired) -> bool:
        if w.type == T_BULK_BEGIN and not lost:
            lost.append(w.seq)
            return True
        return False

    net.drop = lose_next_bulk_begin
    r.table.clear()  # the secondary asks for a new stream; its BULK_BEGIN is lost
    net._route_from_receiver("FGT2", r.request_bulk(net.now), net.now)
    net.run(net.now + 2.0)
    assert lost and r.bulk_complete
    assert_tables_equal(s, r, net.now)
    probes = [w for w in net.sent_by("FGT2", T_NACK) if w.ack == 0]
    assert probes
    streams, records = s.stats.streams, s.stats.records_tx
    for _ in range(5):
        net.run(net.now + 1.1, step=0.005)
        for w in probes:
            net.inject_to_sender(w.payload, net.now)
    net.run(net.now + 1.0, step=0.005)
    assert s.stats.streams == streams and s.stats.records_tx == records
    assert_tables_equal(s, r, net.now)
    assert replays_counted(s) >= 5 * len(probes)


def test_replayed_acks_and_data_change_nothing() -> None:
    """Every frame of a converged run replayed once, both ways: no state moves."""
    s, r, net = converged_300()
    wire = list(net.wire)
    table, stream = dict(r.table), r.stream
    streams, records = s.stats.streams, s.stats.records_tx
    for w in wire:
        if w.src == "FGT1":
            net.inject_to_receiver("FGT2", w.payload, net.now)
        else:
            net.inject_to_sender(w.payload, net.now)
    net.run(net.now + 2.0, step=0.005)
    assert r.table == table and r.stream == stream
    assert (s.stats.streams, s.stats.records_tx) == (streams, records)
    assert replays_counted(s) + replays_counted(r) >= len(wire) - 1
    acks = net.sent_by("FGT2", T_ACK)
    assert acks


# --------------------------------------------------------------------------- item 5


def test_fake_secondaries_without_password_are_bounded() -> None:
    """200 HELLOs from fake serials (no password: anyone can send them): at most 3 peers."""
    rng = random.Random(24)
    s, r, net = recorded_pair(key=None)
    for i in range(200):
        s.upsert(make_record(rng, i, 0.0, 17), 0.0)
    net.run(1.0)
    assert_tables_equal(s, r, net.now)
    fakes = {f"FAKE{i:04d}": SyncReceiver(f"FAKE{i:04d}", 10, None) for i in range(200)}
    for f in fakes.values():
        f.set_links(SYNC_LINKS, [])
    net.receivers.update(fakes)
    for name in fakes:
        net.down[name], net.up[name] = clean(), clean()
    tx_before = s.stats.frames_tx
    net.run(net.now + 1.0, step=0.005)
    assert len(s.peers) <= 3 and "FGT2" in s.peers  # the member that was there stays
    assert s.stats.peers_refused >= 190
    assert s.stats.frames_tx - tx_before < 2000  # not a bulk sync per fake
    assert_tables_equal(s, r, net.now)


def test_synced_table_is_bounded_by_the_session_limit() -> None:
    """A sender (a forged primary without password) streams more sessions than the limit."""
    rng = random.Random(25)
    s = SyncSender("EVIL", 10, None)
    r = SyncReceiver("FGT2", 10, None, max_sessions=100)
    for e in (s, r):
        e.set_links(SYNC_LINKS, [])
    for i in range(150):
        s.upsert(make_record(rng, i, 0.0, 17), 0.0)
    net = SyncNet(s, {"FGT2": r}, clean)
    net.run(2.0)
    assert len(r.table) == 100
    assert r.stats.table_full == 50
    # deletes free room; updates of held sessions are still applied
    gone = list(r.table)[:10]
    for k in gone:
        s.delete(k, net.now)
    for i in range(300, 305):
        s.upsert(make_record(rng, i, net.now, 17), net.now)
    net.run(net.now + 1.0)
    assert len(r.table) == 95 and not set(gone) & set(r.table)


# --------------------------------------------------------------------------- restarts


class ClockBehind:
    """A sender whose clock is ``lag`` seconds behind the others' (restarted, no NTP yet)."""

    def __init__(self, inner: SyncSender, lag: float) -> None:
        self.inner = inner
        self.lag = lag
        self.serial = inner.serial

    def receive(self, payload: bytes, now: float) -> list[Any]:
        return self.inner.receive(payload, now - self.lag)

    def poll(self, now: float) -> list[Any]:
        return self.inner.poll(now - self.lag)


def test_primary_restart_with_clock_behind_resyncs_and_its_old_run_is_a_replay() -> None:
    rng = random.Random(26)
    s, r, net = recorded_pair()
    for i in range(50):
        s.upsert(make_record(rng, i, 0.0, 17), 0.0)
    net.run(1.0)
    old_run = [w.payload for w in net.wire if w.src == "FGT1"]
    # FGT1's fgcpd restarts with its clock 10 s behind and a smaller table
    s2 = SyncSender("FGT1", 10, KEY)
    s2.set_links(SYNC_LINKS, HB_LINKS)
    for i in range(100, 130):
        s2.upsert(make_record(rng, i, net.now - 10.0, 17), net.now - 10.0)
    net.sender = ClockBehind(s2, 10.0)
    net._route_from_sender(s2.start(net.now - 10.0), net.now)
    net.run(net.now + 2.0)
    assert r.sender_epoch == s2.fresh.epoch and r.bulk_complete
    assert set(r.table) == set(s2.records)
    stream = r.stream
    for p in old_run:  # the previous run of FGT1, replayed: a retired epoch
        net.inject_to_receiver("FGT2", p, net.now)
    net.run(net.now + 1.0)
    assert r.stream == stream and set(r.table) == set(s2.records)
    assert r.stats.dropped_replay >= len(old_run)


def test_counters_accepted_once_reordering_inside_the_window() -> None:
    w = ReplayWindow(100)
    assert not w.accept(100) and not w.accept(7)  # closed at the floor
    assert w.accept(105) and w.accept(103) and w.accept(101)  # overtaken frames, once each
    assert not w.accept(103) and not w.accept(105)
    assert w.accept(105 + REPLAY_WINDOW)
    assert not w.accept(105)  # fell out of the window
    assert w.accept(106) and not w.accept(106)  # the oldest still inside: once
