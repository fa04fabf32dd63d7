"""Sync engine over an in-memory lossy link: convergence, stale rejection, bulk, links, pickup."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from fgcp.hakeys import derive_sync_key
from fgcp.model import HAConfig
from fgcp.session import PROXY, REPLY, SYNCED, Session, SessionTable
from fgcp.sync import (
    SyncReceiver,
    SyncSender,
    SyncTuning,
    should_sync,
    sync_eligible_at,
)
from fgcp.syncdiag import render_sync_stats
from fgcp.syncframe import (
    T_ACK,
    T_BULK_BEGIN,
    T_BULK_END,
    T_DATA,
    T_HELLO,
    decode_frame,
    encode_bulk_begin,
    encode_challenge,
    encode_frame,
    encode_total,
)
from fgcp.syncrecord import (
    EXT_IPS,
    EXT_ZTNA,
    OP_ADD,
    OP_UPDATE,
    SessionRecord,
    TcpWindow,
    apply_record,
    encode_delete,
    encode_record,
    record_from_session,
)
from fgcp.tcptrack import TcpPeer
from tests.unit.fakes import LossyLink, SyncNet

KEY = derive_sync_key("secret", 10)
INSIDE = 0xC6336400  # 198.51.100.0
SERVER = 0xCB00710A  # 203.0.113.10
NAT_IP = 0xCB007101  # 203.0.113.1
SYNC_LINKS = ["port5", "port6"]
HB_LINKS = ["port3", "port4"]


def make_record(rng: random.Random, i: int, now: float, proto: int = 6) -> SessionRecord:
    tcp = None
    if proto == 6:
        tcp = (TcpWindow(rng.randrange(1 << 32), rng.randrange(1 << 32), rng.randrange(1, 65535),
                         0x80 | rng.randrange(15), 4),
               TcpWindow(rng.randrange(1 << 32), rng.randrange(1 << 32), rng.randrange(1, 65535),
                         0x80 | rng.randrange(15), 4))
    port = 20000 + i % 40000
    return SessionRecord(
        proto=proto, orig=(INSIDE + 10 + i % 200, 1024 + i % 60000, SERVER, 80 if proto == 6 else 53),
        reply=(SERVER, 80 if proto == 6 else 53, NAT_IP, port), state=rng.choice([1, 2, 3, 4]),
        policy_id=rng.randrange(1, 10), nat=True, nat_ip=NAT_IP, nat_port=port, tcp=tcp,
        flags=0 if proto == 6 else 2, inspection="flow", in_intf="port1", out_intf="port2",
        ext=[(EXT_IPS, rng.randbytes(rng.randrange(0, 12)))] if rng.random() < 0.3 else [],
        created=now)


class Load:
    """Random adds / updates (state, windows, NAT port) / deletes on the sender."""

    def __init__(self, sender: SyncSender, rng: random.Random, until: float, per_tick: int = 5,
                 start_index: int = 0) -> None:
        self.sender = sender
        self.rng = rng
        self.until = until
        self.per_tick = per_tick
        self.n = start_index
        self.live: dict = dict(sender.records)
        self.ops = {"add": 0, "update": 0, "delete": 0}

    def __call__(self, now: float) -> None:
        if now > self.until:
            return
        rng = self.rng
        for _ in range(self.per_tick):
            c = rng.random()
            if c < 0.4 or not self.live:
                self.n += 1
                rec = make_record(rng, self.n, now, rng.choice([6, 6, 17]))
                if rec.key in self.live:
                    continue
                self.ops["add"] += 1
            elif c < 0.85:
                key = rng.choice(list(self.live))
                old = self.live[key]
                fresh = make_record(rng, 0, old.created, old.proto)
                rec = replace(fresh, orig=old.orig, reply=old.reply, nat_port=old.nat_port,
                              ext=list(old.ext))
                self.ops["update"] += 1
            else:
                key = rng.choice(list(self.live))
                del self.live[key]
                self.sender.delete(key, now)
                self.ops["delete"] += 1
                continue
            self.live[rec.key] = rec
            self.sender.upsert(rec, now)


def lossy(rng: random.Random, loss: float = 0.2):
    return lambda: LossyLink(rng, loss=loss, dup=0.05, reorder=0.2, jitter=0.001,
                             reorder_delay=0.004)


def pair(rng: random.Random, loss: float = 0.2, tuning: SyncTuning | None = None,
         key: bytes | None = KEY) -> tuple[SyncSender, SyncReceiver, SyncNet]:
    s = SyncSender("FGT1", 10, key, tuning=tuning)
    r = SyncReceiver("FGT2", 10, key, tuning=tuning)
    for e in (s, r):
        e.set_links(SYNC_LINKS, HB_LINKS)
    return s, r, SyncNet(s, {"FGT2": r}, lossy(rng, loss))


def assert_tables_equal(s: SyncSender, r: SyncReceiver, now: float) -> None:
    assert set(r.table) == set(s.records)
    mismatched = [k for k in s.records if r.table[k] != s.records[k]]
    assert not mismatched, f"{len(mismatched)} records differ, e.g. {mismatched[:1]}"
    for k, rec in s.records.items():
        assert r.table[k].version == rec.version
        # created travels as an age: off by the transit delay (<= 7.5 ms here) + 1 ms rounding
        assert abs(r.table[k].created - rec.created) < 0.01


# --------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_link_converges_to_equal_tables(seed: int) -> None:
    rng = random.Random(seed)
    s, r, net = pair(rng, loss=0.2)
    load = Load(s, rng, until=1.5)
    end = net.run(1.5, on_tick=load)
    assert load.ops["add"] > 500 and load.ops["update"] > 500 and load.ops["delete"] > 100
    net.run(end + 5.0)
    assert r.bulk_complete
    assert_tables_equal(s, r, net.now)
    down = net.down["FGT2"].counters
    assert down["lost"] > 50 and down["duplicated"] > 5 and down["reordered"] > 20
    assert s.stats.resends > 0 and r.stats.nacks_tx > 0
    assert r.stats.dropped_replay > 0  # the link's duplicates: the same counter twice
    assert s.lag(net.now) == (0, 0.0)  # everything acknowledged


def test_no_loss_needs_no_resend_and_batches() -> None:
    rng = random.Random(5)
    s, r, _ = pair(rng, loss=0.0)
    net = SyncNet(s, {"FGT2": r}, lambda: LossyLink(rng))  # no loss, no reordering
    net.step(0.0)
    t = net.run(0.1)
    for i in range(1000):  # a burst: 1000 sessions in one instant
        s.upsert(make_record(rng, i, t, 6), t)
    net.run(t + 1.0)
    assert_tables_equal(s, r, net.now)
    assert s.stats.resends == 0
    assert s.stats.records_tx == 1000
    # batched: about 15 TCP records per 1500-byte frame, not one frame per record
    data_frames = s.stats.acked - 2  # minus BULK_BEGIN / BULK_END
    assert data_frames <= 1000 // 12


def test_small_changes_wait_for_the_batch_delay() -> None:
    rng = random.Random(6)
    s, _r, net = pair(rng, loss=0.0)
    net.run(0.2)
    before = s.stats.frames_tx
    s.upsert(make_record(rng, 1, 0.2), 0.2)
    assert s.poll(0.201) == []  # one record: held for the flush delay (10 ms)
    assert s.stats.frames_tx == before
    txs = s.poll(0.211)
    assert len(txs) == 1 and decode_frame(txs[0].payload, KEY).count == 1


def test_resend_carries_current_state_and_delete() -> None:
    """A lost frame is resent from the sessions' current state (DELETE when gone)."""
    rng = random.Random(7)
    s, r, net = pair(rng, loss=0.0)
    net.run(0.2)
    a, b = make_record(rng, 1, 0.2), make_record(rng, 2, 0.2)
    s.upsert(a, 0.2)
    s.upsert(b, 0.2)
    net.down["FGT2"].up = False  # the frame carrying a and b is lost
    net.run(0.25)
    net.down["FGT2"].up = True
    a2 = replace(a, state=a.state % 4 + 1)
    s.upsert(a2, 0.25)
    s.delete(b.key, 0.25)
    net.run(2.0)
    assert r.table == {a2.key: a2}
    assert s.stats.resends >= 1


# --------------------------------------------------------------------------- stale


class Forger:
    """Frames of one run (``epoch``) of FGT1, counters growing, as the real sender makes."""

    def __init__(self, epoch: int = 0xE1, key: bytes | None = KEY) -> None:
        self.epoch = epoch
        self.key = key
        self.counter = 0

    def frame(self, ftype: int, stream: int, seq: int, payload: bytes = b"", count: int = 0,
              ack: int = 0, counter: int | None = None) -> bytes:
        if counter is None:
            self.counter += 1
            counter = self.counter
        return encode_frame(ftype, 10, "FGT1", stream, seq, ack, 1000, self.key,
                            epoch=self.epoch, counter=counter, count=count, payload=payload)

    def verified_by(self, r: SyncReceiver, now: float = 1.0) -> None:
        """The challenge: FGT1's HELLO, the receiver's HELLO with a nonce, FGT1 echoes it."""
        out = r.receive(self.frame(T_HELLO, 0, 0, encode_challenge(0)), now)
        nonce = decode_frame(out[0].payload, self.key).nonce
        assert nonce and r.fresh.verified_epoch("FGT1") is None
        r.receive(self.frame(T_HELLO, 0, 0, encode_challenge(0, nonce)), now)
        assert r.fresh.verified_epoch("FGT1") == self.epoch


FGT1 = Forger()


def _frame(seq: int, payload: bytes, count: int, ftype: int = T_DATA, stream: int = 7) -> bytes:
    if ftype == T_BULK_BEGIN:
        payload = encode_bulk_begin(0)
    return FGT1.frame(ftype, stream, seq, payload, count)


def test_stale_update_rejected_newest_kept() -> None:
    r = SyncReceiver("FGT2", 10, KEY)
    r.set_links(SYNC_LINKS, [])
    FGT1.verified_by(r)
    rng = random.Random(8)
    rec = make_record(rng, 1, 0.0)
    new = replace(rec, state=4, version=9)
    old = replace(rec, state=2, version=5)
    r.receive(_frame(1, encode_total(0), 0, T_BULK_BEGIN), 1.0)
    r.receive(_frame(3, encode_record(OP_UPDATE, new), 1), 1.0)  # overtook frame 2
    r.receive(_frame(2, encode_record(OP_UPDATE, old), 1), 1.0)
    assert r.table[rec.key].state == 4 and r.table[rec.key].version == 9
    assert r.stats.stale == 1
    # a stale ADD after a newer DELETE does not resurrect the session
    r.receive(_frame(5, encode_delete(rec.key, 12), 1), 1.0)
    r.receive(_frame(4, encode_record(OP_ADD, replace(rec, version=10)), 1), 1.0)
    assert rec.key not in r.table
    assert r.stats.stale == 2
    # the same sequence number again (a retransmission) is a duplicate, not applied twice
    r.receive(_frame(5, encode_delete(rec.key, 12), 1), 1.0)
    assert r.stats.dup_frames == 1


def test_sender_skips_unchanged_state() -> None:
    s = SyncSender("FGT1", 10, KEY)
    rec = make_record(random.Random(9), 1, 0.0)
    assert s.upsert(rec, 0.0)
    assert not s.upsert(replace(rec), 0.1)  # same state: nothing to send
    assert s.upsert(replace(rec, state=rec.state % 4 + 1), 0.2)
    assert s.records[rec.key].version == 2
    assert not s.delete((6, 1, 2, 3, 4), 0.3)


# --------------------------------------------------------------------------- bulk


def test_bulk_sync_10000_sessions_with_live_updates() -> None:
    rng = random.Random(10)
    s = SyncSender("FGT1", 10, KEY)
    s.set_links(SYNC_LINKS, HB_LINKS)
    for i in range(10000):
        s.upsert(make_record(rng, i, 0.0, 6 if i % 3 else 17), 0.0)
    r = SyncReceiver("FGT2", 10, KEY)
    r.set_links(SYNC_LINKS, HB_LINKS)
    net = SyncNet(s, {"FGT2": r}, lossy(rng, 0.05))
    load = Load(s, rng, until=0.6, per_tick=3, start_index=10000)
    seen_pending = []

    def tick(now: float) -> None:
        load(now)
        if r.stream and not r.bulk_complete:
            seen_pending.append(len(r.table))

    end = net.run(0.6, on_tick=tick)
    net.run(end + 5.0, stop=lambda: r.bulk_complete and s.lag(net.now)[0] == 0
            and not any(p.dirty for p in s.peers.values()))
    assert r.bulk_complete
    assert r.bulk_total >= 10000  # the table when the stream started
    assert seen_pending and 0 < max(seen_pending) < len(s.records)  # it was pending a while
    assert load.ops["update"] > 300 and load.ops["delete"] > 50
    net.run(net.now + 1.0)
    assert_tables_equal(s, r, net.now)


def test_bulk_sweeps_sessions_the_new_primary_does_not_have() -> None:
    """A secondary holding an old primary's sessions keeps only the new primary's after bulk."""
    rng = random.Random(11)
    old = SyncSender("FGT0", 10, KEY)
    r = SyncReceiver("FGT2", 10, KEY)
    for e in (old, r):
        e.set_links(SYNC_LINKS, [])
    for i in range(50):
        old.upsert(make_record(rng, i, 0.0), 0.0)
    net = SyncNet(old, {"FGT2": r}, lossy(rng, 0.0))
    net.run(1.0)
    assert len(r.table) == 50 and r.bulk_complete
    # FGT0 dies; FGT1 becomes primary with 30 of those sessions (changed) and 10 new ones
    new = SyncSender("FGT1", 10, KEY)
    new.set_links(SYNC_LINKS, [])
    keys = list(r.table)
    for k in keys[:30]:
        new.upsert(replace(r.table[k], state=4), 1.0)
    for i in range(100, 110):
        new.upsert(make_record(rng, i, 1.0), 1.0)
    net.sender = new
    net._route_from_sender(new.start(1.0), 1.0)  # HELLO -> the secondary answers
    net.run(3.0)
    assert r.sender == "FGT1" and r.bulk_complete
    assert_tables_equal(new, r, net.now)
    assert r.stats.streams == 2


def test_bulk_request_restarts_the_stream() -> None:
    rng = random.Random(12)
    s, r, net = pair(rng, loss=0.1)
    for i in range(200):
        s.upsert(make_record(rng, i, 0.0), 0.0)
    net.run(2.0)
    assert r.bulk_complete
    first = r.stream
    r.table.clear()  # e.g. the daemon lost its copy: ask for everything again
    net._route_from_receiver("FGT2", r.request_bulk(2.0), 2.0)
    assert not r.bulk_complete
    net.run(5.0)
    assert r.bulk_complete and r.stream != first
    assert_tables_equal(s, r, net.now)


def test_receiver_restart_gets_a_new_stream() -> None:
    rng = random.Random(13)
    s, _r, net = pair(rng, loss=0.1)
    for i in range(100):
        s.upsert(make_record(rng, i, 0.0), 0.0)
    net.run(2.0)
    r2 = SyncReceiver("FGT2", 10, KEY)  # same member, restarted: empty
    r2.set_links(SYNC_LINKS, HB_LINKS)
    net.receivers["FGT2"] = r2
    net.run(6.0, on_tick=Load(s, rng, until=4.0, per_tick=1, start_index=1000))
    assert r2.bulk_complete
    assert_tables_equal(s, r2, net.now)


# --------------------------------------------------------------------------- links


def test_round_robin_then_fallback_to_heartbeat_links_and_back() -> None:
    rng = random.Random(14)
    s, r, net = pair(rng, loss=0.0)
    load = Load(s, rng, until=3.0, per_tick=2)
    net.run(1.0, on_tick=load)
    assert net.link_names["port5"] > 20 and net.link_names["port6"] > 20
    assert abs(net.link_names["port5"] - net.link_names["port6"]) <= 0.2 * net.link_names["port5"]
    assert not net.link_names["port3"] and not net.link_names["port4"]
    # every session-sync-dev link down: frames go on the heartbeat links
    for e in (s, r):
        e.set_links([], HB_LINKS)
    net.link_names.clear()
    net.run(2.0, on_tick=load)
    assert set(net.link_names) == {"port3", "port4"}
    assert s.stats.fallback_frames > 0
    assert "fallback" in render_sync_stats(s.snapshot(net.now), None)
    # one sync link back: sync returns to it
    for e in (s, r):
        e.set_links(["port6"], HB_LINKS)
    net.link_names.clear()
    net.run(4.0, on_tick=load)
    assert set(net.link_names) == {"port6"}
    net.run(5.0)
    assert_tables_equal(s, r, net.now)


def test_no_link_up_keeps_changes_until_a_link_returns() -> None:
    rng = random.Random(15)
    s, r, net = pair(rng, loss=0.0)
    net.run(0.5)
    for e in (s, r):
        e.set_links([], [])
    load = Load(s, rng, until=1.0, per_tick=2)
    net.run(1.0, on_tick=load)
    assert s.poll(1.0) == []
    for e in (s, r):
        e.set_links(["port5"], [])
    net.run(3.0)
    assert_tables_equal(s, r, net.now)


# --------------------------------------------------------------------------- dropped frames


def test_auth_failures_and_malformed_frames_are_counted_and_dropped() -> None:
    rng = random.Random(16)
    s, r, net = pair(rng, loss=0.0)
    for i in range(20):
        s.upsert(make_record(rng, i, 0.0), 0.0)
    net.run(1.0)
    before = dict(r.table)
    intruder = SyncSender("EVIL", 10, derive_sync_key("guess", 10))
    intruder.set_links(SYNC_LINKS, [])
    guessed = Forger(key=derive_sync_key("guess", 10))
    for payload in [tx.payload for tx in intruder.start(1.0)] + [
            guessed.frame(T_DATA, r.stream, 99, encode_record(OP_ADD, make_record(rng, 999, 1.0)),
                          1)]:
        assert r.receive(payload, 1.0) == []
    assert r.stats.dropped_auth >= 2
    garbage = [b"", b"\x46\x53", rng.randbytes(60), rng.randbytes(1500),
               FGT1.frame(T_DATA, r.stream, 99, b"\x01\x00\x05abcde", 3)]
    for g in garbage:
        assert r.receive(g, 1.0) == []
        assert s.receive(g, 1.0) == []
    assert r.stats.dropped_malformed >= 4 and s.stats.dropped_malformed >= 4
    other_group = encode_frame(T_DATA, 11, "FGT9", 5, 1, 0, 0, None, epoch=1, counter=1)
    r.receive(other_group, 1.0)
    assert r.table == before
    net.run(2.0)
    assert_tables_equal(s, r, net.now)
    text = render_sync_stats(s.snapshot(net.now), r.snapshot(net.now))
    assert f"auth={r.stats.dropped_auth}" in text
    assert "bulk=complete" in text


def test_retired_stream_frames_are_ignored() -> None:
    r = SyncReceiver("FGT2", 10, KEY)
    r.set_links(SYNC_LINKS, [])
    FGT1.verified_by(r)
    rec = make_record(random.Random(17), 1, 0.0)
    r.receive(_frame(1, encode_total(0), 0, T_BULK_BEGIN, stream=7), 1.0)
    r.receive(_frame(1, encode_total(0), 0, T_BULK_BEGIN, stream=8), 1.0)
    assert r.stream == 8
    r.receive(_frame(2, encode_record(OP_ADD, replace(rec, version=3)), 1, stream=7), 1.0)
    assert r.table == {}  # late frame of the previous stream
    r.receive(_frame(1, encode_total(0), 0, T_BULK_BEGIN, stream=7), 1.0)
    assert r.stream == 8  # an earlier stream of that run is never adopted again
    r.receive(_frame(2, encode_total(0), 0, T_BULK_END, stream=8), 1.0)
    assert r.bulk_complete


def test_owes_ack_while_frames_are_unacknowledged_or_a_gap_is_open() -> None:
    """The public view of the receiver's ACK/NACK work (the daemon's poll pace reads it)."""
    r = SyncReceiver("FGT2", 10, KEY)
    r.set_links(SYNC_LINKS, [])
    fgt1 = Forger(epoch=0xE7)
    fgt1.verified_by(r)
    assert not r.owes_ack  # no stream yet
    r.receive(fgt1.frame(T_BULK_BEGIN, 9, 1, encode_bulk_begin(0)), 1.0)
    assert r.owes_ack  # BULK_BEGIN not acknowledged yet
    assert any(decode_frame(tx.payload, KEY).type == T_ACK for tx in r.poll(1.1))
    assert not r.owes_ack
    r.receive(fgt1.frame(T_DATA, 9, 3), 1.2)  # frame 2 missing: a gap to NACK
    r.poll(1.3)
    assert r.owes_ack
    r.receive(fgt1.frame(T_DATA, 9, 2), 1.4)  # the gap closes
    r.poll(1.5)
    assert not r.owes_ack


# --------------------------------------------------------------------------- pickup filter


def sess(proto: int = 6, created: float = 0.0, flags: int = 0,
         inspection: str = "flow", ext: dict[int, bytes] | None = None) -> Session:
    """A real Session with what the pickup rules read (addresses do not matter to them)."""
    return Session(1, proto, (INSIDE + 10, 40000, SERVER, 80), (SERVER, 80, NAT_IP, 61000),
                   "port1", "port2", created=created, flags=flags, inspection=inspection,
                   ext=dict(ext or {}))


OFF = HAConfig()
ON = HAConfig(session_pickup=True)
CONNLESS = HAConfig(session_pickup=True, session_pickup_connectionless=True)
DELAY = HAConfig(session_pickup=True, session_pickup_connectionless=True,
                 session_pickup_delay=True)
CONNLESS_NO_PICKUP = HAConfig(session_pickup_connectionless=True)


@pytest.mark.parametrize(("ha", "session", "now", "expected"), [
    (OFF, sess(6), 100.0, False),  # default: nothing synced
    (CONNLESS_NO_PICKUP, sess(17), 100.0, False),  # connectionless needs pickup on
    (ON, sess(6), 0.0, True),  # TCP at creation
    (ON, sess(17), 0.0, False),
    (ON, sess(1), 0.0, False),
    (CONNLESS, sess(17), 0.0, True),
    (CONNLESS, sess(1), 0.0, True),
    (CONNLESS, sess(47), 0.0, True),  # other IP protocols count as connectionless
    (DELAY, sess(6, created=0.0), 29.9, False),  # TCP younger than 30 s
    (DELAY, sess(6, created=0.0), 30.0, True),
    (DELAY, sess(17, created=0.0), 1.0, True),  # the delay is for TCP
    (ON, sess(6, inspection="proxy"), 100.0, False),  # proxy-inspected: never
    (ON, sess(6, flags=PROXY), 100.0, False),
    (ON, sess(6, inspection="proxy", ext={EXT_ZTNA: b"x"}), 100.0, True),  # ZTNA proxy
    (ON, sess(6, inspection="ztna"), 0.0, True),
])
def test_pickup_filter(ha: HAConfig, session: Session, now: float, expected: bool) -> None:
    assert should_sync(session, ha, now) is expected


def test_pickup_delay_time_scale_knob() -> None:
    s = sess(6, created=10.0)
    assert not should_sync(s, DELAY, 12.0, delay_s=3.0)
    assert should_sync(s, DELAY, 13.0, delay_s=3.0)
    assert sync_eligible_at(s, DELAY, delay_s=3.0) == 13.0
    assert sync_eligible_at(s, ON) == 10.0
    assert sync_eligible_at(sess(17), ON) is None
    assert sync_eligible_at(sess(6, inspection="proxy"), ON) is None


# --------------------------------------------------------------------------- converters


def test_record_from_session_and_apply_round_trip() -> None:
    s = Session(1, 6, (INSIDE + 10, 40000, SERVER, 80), (SERVER, 80, NAT_IP, 61000),
                "port1", "port2", policy_id=3, nat=True, nat_ip=NAT_IP, nat_port=61000, state=1,
                tcp=(TcpPeer(1, 2, 3, 0x87, 4), TcpPeer(5, 6, 7, 0x82, 4)), created=5.0,
                ext={EXT_IPS: b"st"})
    rec = record_from_session(s)
    assert rec.key == (6, INSIDE + 10, 40000, SERVER, 80)
    assert rec.tcp is not None and rec.tcp[1].seqhi == 6 and rec.ext == [(EXT_IPS, b"st")]
    built = apply_record(rec, lambda **kw: Session(sid=2, **kw), TcpPeer)
    assert built.flags & SYNCED
    assert built.tcp is not None
    assert (built.orig, built.reply, built.nat_port, built.tcp[0], built.ext) == (
        s.orig, s.reply, 61000, TcpPeer(1, 2, 3, 0x87, 4), {EXT_IPS: b"st"})
    existing = Session(77, 6, s.orig, s.reply, "port1", "port2")
    same = apply_record(replace(rec, state=4), lambda **kw: Session(sid=3, **kw), TcpPeer,
                        existing=existing)
    assert same is existing and existing.sid == 77 and existing.state == 4


def test_converters_with_the_real_session_table_types() -> None:
    table = SessionTable(100)
    s = Session(
        table.next_sid(), 6, (INSIDE + 10, 40000, SERVER, 80), (SERVER, 80, NAT_IP, 61000),
        "port1", "port2", policy_id=3, nat=True, nat_ip=NAT_IP, nat_port=61000, state=1,
        tcp=(TcpPeer(1, 2, 3, 0x87, 4), TcpPeer(5, 6, 7, 0x82, 4)),
        created=5.0, ext={EXT_IPS: b"st"})
    rec = record_from_session(s)
    frame = encode_frame(T_DATA, 10, "FGT1", 1, 1, 0, 5000, None, epoch=1, counter=1, count=1,
                         payload=encode_record(OP_ADD, rec))
    got = decode_frame(frame, None, now=5.0).records[0].record
    assert got == rec
    other = SessionTable(100)
    new = apply_record(got, lambda **kw: Session(sid=other.next_sid(), **kw), TcpPeer)
    assert other.add(new, 5.0)
    found, direction = other.lookup((6, SERVER, 80, NAT_IP, 61000))
    assert found is new and direction == REPLY
    assert new.flags & SYNCED and new.tcp is not None
    assert new.tcp[1].seqhi == 6 and new.nat_port == 61000


def test_two_secondaries_one_joining_under_load() -> None:
    rng = random.Random(18)
    s = SyncSender("FGT1", 10, KEY)
    r2 = SyncReceiver("FGT2", 10, KEY, track_changes=True)
    r3 = SyncReceiver("FGT3", 10, KEY)
    for e in (s, r2, r3):
        e.set_links(SYNC_LINKS, HB_LINKS)
    net = SyncNet(s, {"FGT2": r2}, lossy(rng, 0.1))
    load = Load(s, rng, until=2.0, per_tick=4)
    net.run(1.0, on_tick=load)
    assert r2.bulk_complete and not r3.bulk_complete
    # FGT3 joins while the load goes on
    net.receivers["FGT3"] = r3
    net.down["FGT3"], net.up["FGT3"] = lossy(rng, 0.1)(), lossy(rng, 0.1)()
    net.run(2.0, on_tick=load)
    net.run(5.0)
    assert r3.bulk_complete and r3.bulk_total > 300
    assert_tables_equal(s, r2, net.now)
    assert_tables_equal(s, r3, net.now)
    # the change feed replays into the same table
    mirror: dict = {}
    for ch in r2.drain_changes():
        if ch.record is None:
            mirror.pop(ch.key, None)
        else:
            mirror[ch.key] = ch.record
    assert mirror == s.records
    assert r2.drain_changes() == []


def test_diag_text_fortios_style() -> None:
    rng = random.Random(19)
    s, r, net = pair(rng, loss=0.2)
    net.run(1.0, on_tick=Load(s, rng, until=0.5))
    ha = HAConfig(session_pickup=True, session_pickup_connectionless=True,
                  session_sync_dev=("port5", "port6"))
    text = render_sync_stats(s.snapshot(net.now), r.snapshot(net.now), ha)
    lines = text.splitlines()
    assert lines[0] == ("sync_ctx: sync_started=1, sync_tcp=1, sync_others=1, sync_nat=1, "
                        "sync_delay=0, session_sync_dev=port5,port6")
    assert f"sync: create={s.stats.creates}, update={s.stats.updates}, " \
           f"delete={s.stats.deletes}" in lines
    assert f"recv: create={r.stats.creates}, update={r.stats.updates}, " \
           f"delete={r.stats.deletes}" in lines
    assert f"resends={s.stats.resends}," in text and s.stats.resends > 0
    assert f"stale={r.stats.stale}," in text
    assert "peer FGT2: stream=" in text and "bulk=complete" in text
    assert render_sync_stats(None, None, HAConfig()).splitlines() == [
        ("sync_ctx: sync_started=0, sync_tcp=0, sync_others=0, sync_nat=0, sync_delay=0, "
        "session_sync_dev=(hbdev)"), "session sync: not running"]


def test_stream_is_renewed_before_the_sequence_wraps() -> None:
    rng = random.Random(20)
    s, r, net = pair(rng, loss=0.0)
    for i in range(30):
        s.upsert(make_record(rng, i, 0.0), 0.0)
    net.run(0.5)
    first = r.stream
    s.peers["FGT2"].next_seq = 0xFFFF0000
    net.run(1.5)
    assert r.stream != first and r.bulk_complete
    assert_tables_equal(s, r, net.now)
