"""Session-sync engine: reliable, state-based replication of the session table (pure).

``SyncSender`` (primary) and ``SyncReceiver`` (secondary) take ``now`` and frame
bytes and return the frames to send (``Tx``); ``should_sync`` is the FortiOS
session-pickup filter; ``render_sync_stats`` (the diag renderer) is re-exported
from fgcp.syncdiag.

Reliability (conntrackd FT-FW style, docs/protocol.md "Session sync"): every sequenced frame
(DATA, BULK_BEGIN, BULK_END) carries a per-peer stream id and sequence number;
the receiver ACKs cumulatively and NACKs gaps (a NACK also selectively
acknowledges everything between the cumulative point and the highest sequence it
saw); the sender retransmits a missing sequence number rebuilt from the *current*
state of the sessions it carried (or DELETE for the gone ones), and on timeout
when the acknowledgements stop.  Every record carries the sender's global update
counter; the receiver keeps the newest and counts the older ones as stale
(pfsync).  Every stream starts with a bulk sync of the whole table.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from fgcp.syncdiag import render_sync_stats
from fgcp.syncframe import (
    FLAG_BULK,
    FLAG_RESEND,
    MAX_RANGES,
    MAX_RECORDS_BYTES,
    T_ACK,
    T_ALIVE,
    T_BULK_BEGIN,
    T_BULK_END,
    T_BULK_REQ,
    T_DATA,
    T_HELLO,
    T_NACK,
    FrameBuilder,
    MalformedSyncFrame,
    SyncAuthError,
    SyncFrame,
    decode_frame,
    encode_frame,
    encode_nack_ranges,
    encode_total,
)
from fgcp.syncrecord import (
    EXT_ZTNA,
    OP_ADD,
    OP_DELETE,
    OP_UPDATE,
    RecordOp,
    SessionRecord,
    SyncKey,
    SyncRecordError,
    encode_delete,
    encode_record,
)

__all__ = [
    "LinkSelector",
    "SyncReceiver",
    "SyncSender",
    "SyncStats",
    "SyncTuning",
    "Tx",
    "render_sync_stats",
    "should_sync",
    "sync_eligible_at",
]

M32 = 0xFFFFFFFF
BROADCAST = ""  # Tx.peer for frames to every member (HELLO)
PROXY_FLAG = 4  # fgcp.session.PROXY
SEQ_RESTART = 0xFFFF0000  # a stream this long is replaced by a new one (no seq wrap-around)
_SEQUENCED = (T_DATA, T_BULK_BEGIN, T_BULK_END)


class Tx(NamedTuple):
    """One frame to send: on link ``link`` (port name) to member ``peer`` (serial, "" = all).

    ``payload`` is the bytes after the Ethernet header (ethertype 0x8892).
    """

    link: str
    peer: str
    payload: bytes


@dataclass(frozen=True)
class SyncTuning:
    """Timers and sizes of the protocol (seconds, frames, bytes)."""

    flush_delay: float = 0.010  # a partly filled DATA frame waits at most this long
    batch_records: int = 16  # ... unless this many sessions are waiting (about a full frame)
    window: int = 256  # sequenced frames in flight (unacknowledged) per peer
    rto: float = 0.200  # retransmit an unacknowledged frame after this, doubling per resend
    rto_max: float = 2.0
    min_resend_gap: float = 0.020  # a NACKed frame is not resent twice within this
    alive_interval: float = 1.0  # ALIVE after this long without a frame to the peer
    ack_every: int = 8  # the receiver ACKs every N new frames...
    ack_delay: float = 0.020  # ... or this long after the first unacknowledged one
    nack_interval: float = 0.050  # outstanding gaps are NACKed again this often
    hello_interval: float = 0.5  # receiver without a stream repeats HELLO
    bulk_req_interval: float = 0.5  # receiver repeats BULK_REQ until a new stream starts
    restart_guard: float = 1.0  # HELLO does not restart a stream younger than this
    tombstone_ttl: float = 30.0  # receiver remembers deleted sessions' versions this long
    frame_capacity: int = MAX_RECORDS_BYTES  # record bytes per DATA frame


@dataclass
class SyncStats:
    """Counters of one engine (what ``diagnose sys ha session-sync`` shows)."""

    frames_tx: int = 0
    frames_rx: int = 0
    records_tx: int = 0
    records_rx: int = 0
    resends: int = 0  # frames retransmitted
    resent_records: int = 0
    acked: int = 0  # sequenced frames acknowledged by the peers
    acked_records: int = 0
    applied: int = 0  # records installed by the receiver
    stale: int = 0  # records older than the state held (rejected)
    dup_frames: int = 0
    dup_records: int = 0
    dropped_auth: int = 0
    dropped_malformed: int = 0
    dropped_foreign: int = 0  # other group, own frames, retired stream, wrong role
    oversize: int = 0  # records larger than a frame (never sent)
    no_link: int = 0  # frames not sent: no link up
    fallback_frames: int = 0  # frames sent on heartbeat links (all sync links down)
    creates: int = 0  # sessions added (sender: recorded, receiver: installed)
    updates: int = 0
    deletes: int = 0
    acks_tx: int = 0
    nacks_tx: int = 0
    bulks: int = 0  # bulk syncs started (sender) / completed (receiver)
    streams: int = 0  # streams started (sender) / adopted (receiver)


class LinkSelector:
    """Round robin over the up session-sync links; the up heartbeat links when none is up."""

    def __init__(self) -> None:
        self.sync_up: list[str] = []
        self.hb_up: list[str] = []
        self._rr = 0

    def set_links(self, sync_links_up: list[str], hb_links_up: list[str]) -> None:
        self.sync_up = list(sync_links_up)
        self.hb_up = list(hb_links_up)

    @property
    def fallback(self) -> bool:
        return not self.sync_up and bool(self.hb_up)

    @property
    def any_up(self) -> bool:
        return bool(self.sync_up or self.hb_up)

    def pick(self) -> str | None:
        links = self.sync_up or self.hb_up
        if not links:
            return None
        self._rr = (self._rr + 1) % len(links)
        return links[self._rr]


def _count_frame(stats: SyncStats, links: LinkSelector, out: list[Tx], peer: str,
                 payload: bytes) -> None:
    link = links.pick()
    if link is None:
        stats.no_link += 1
        return
    if links.fallback:
        stats.fallback_frames += 1
    stats.frames_tx += 1
    out.append(Tx(link, peer, payload))


def _decode(payload: bytes, key: bytes | None, now: float, stats: SyncStats) -> SyncFrame | None:
    try:
        return decode_frame(payload, key, now)
    except SyncAuthError:
        stats.dropped_auth += 1
    except MalformedSyncFrame:
        stats.dropped_malformed += 1
    return None


# --------------------------------------------------------------------------- sender


class _Inflight:
    __slots__ = ("first_sent", "keys", "kind", "last_sent", "sends", "total")

    def __init__(self, kind: int, keys: list[SyncKey], total: int, now: float) -> None:
        self.kind = kind
        self.keys = keys
        self.total = total
        self.first_sent = now
        self.last_sent = now
        self.sends = 1


class _Peer:
    """The sender's state of the stream to one secondary."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.stream = 0
        self.started = 0.0
        self.next_seq = 1
        self.acked = 0  # cumulative
        self.inflight: dict[int, _Inflight] = {}
        self.dirty: set[SyncKey] = set()  # keys to send (live changes) ...
        self.dirty_q: deque[SyncKey] = deque()  # ... in the order they changed
        self.dirty_since: float | None = None
        self.bulk_keys: list[SyncKey] = []
        self.bulk_pos = 0
        self.bulk_sent = 0
        self.bulk_begin_due = False
        self.bulk_end_due = False
        self.bulk_done = False
        self.last_tx = float("-inf")
        self.rto_due = float("inf")  # earliest retransmission timeout among inflight


class SyncSender:
    """The primary's side: keeps the synced records and one reliable stream per secondary.

    Feed it with ``upsert``/``delete`` (after ``should_sync``), the frames
    received from the secondaries with ``receive``, and call ``poll`` often
    (every few ms): both return the frames to send.  ``boot_id`` (random or a
    boot time, from the daemon) makes stream ids differ across restarts.
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None, boot_id: int,
                 tuning: SyncTuning | None = None) -> None:
        self.serial = serial
        self.group_id = group_id
        self.key = key
        self.tuning = tuning or SyncTuning()
        self.stats = SyncStats()
        self.links = LinkSelector()
        self.records: dict[SyncKey, SessionRecord] = {}
        self.peers: dict[str, _Peer] = {}
        self._boot_id = boot_id & M32
        self._streams = 0
        self._version = 0
        self._ops: dict[SyncKey, int] = {}
        self._tomb: dict[SyncKey, int] = {}  # deleted key -> version, while a peer may need it
        self._enc: dict[SyncKey, bytes] = {}  # encoded current state (ADD/UPDATE or DELETE)
        self._last_gc = float("-inf")

    # -- configuration ------------------------------------------------------------------

    def set_links(self, sync_links_up: list[str], hb_links_up: list[str]) -> None:
        """Links usable now: session-sync-dev links up, heartbeat links up (fallback)."""
        self.links.set_links(sync_links_up, hb_links_up)

    def start(self, now: float) -> list[Tx]:
        """Broadcast HELLO: secondaries answer with HELLO and get a stream + bulk sync."""
        out: list[Tx] = []
        _count_frame(self.stats, self.links, out, BROADCAST,
                     encode_frame(T_HELLO, self.group_id, self.serial, 0, 0, 0,
                                  self._ms(now), self.key))
        return out

    def add_peer(self, peer: str, now: float) -> None:
        """Start a stream (beginning with a bulk sync) to ``peer`` unless it has one."""
        if peer not in self.peers:
            self._restart(peer, now)

    def remove_peer(self, peer: str) -> None:
        self.peers.pop(peer, None)

    # -- table changes ------------------------------------------------------------------

    def upsert(self, rec: SessionRecord, now: float) -> bool:
        """Record a new or changed session (the record must not be mutated afterwards).

        Returns False when the state is unchanged (nothing to send).
        """
        key = rec.key
        old = self.records.get(key)
        if old is not None and old == rec:
            return False
        self._version += 1
        rec.version = self._version
        self.records[key] = rec
        self._ops[key] = OP_ADD if old is None else OP_UPDATE
        if old is None:
            self.stats.creates += 1
        else:
            self.stats.updates += 1
        self._enc.pop(key, None)
        self._tomb.pop(key, None)
        self._mark(key, now)
        return True

    def delete(self, key: SyncKey, now: float) -> bool:
        """The session ``key`` is gone; False when it was never synced."""
        if self.records.pop(key, None) is None:
            return False
        self._ops.pop(key, None)
        self.stats.deletes += 1
        self._version += 1
        self._tomb[key] = self._version
        self._enc.pop(key, None)
        self._mark(key, now)
        return True

    def _mark(self, key: SyncKey, now: float) -> None:
        for p in self.peers.values():
            if key not in p.dirty:
                p.dirty.add(key)
                p.dirty_q.append(key)
                if p.dirty_since is None:
                    p.dirty_since = now

    def _encoded(self, key: SyncKey) -> bytes | None:
        enc = self._enc.get(key)
        if enc is not None:
            return enc
        rec = self.records.get(key)
        try:
            if rec is not None:
                enc = encode_record(self._ops.get(key, OP_UPDATE), rec)
            elif key in self._tomb:
                enc = encode_delete(key, self._tomb[key])
            else:
                return None
        except SyncRecordError:
            self.stats.oversize += 1
            return None
        if len(enc) > self.tuning.frame_capacity:
            self.stats.oversize += 1
            return None
        self._enc[key] = enc
        return enc

    # -- streams ------------------------------------------------------------------------

    def _restart(self, serial: str, now: float) -> _Peer:
        p = _Peer(serial)
        self._streams += 1
        sid = (self._boot_id + self._streams * 0x9E3779B9) & M32
        p.stream = sid or 1
        p.started = now
        p.bulk_keys = list(self.records)
        p.bulk_begin_due = True
        p.bulk_end_due = True
        self.peers[serial] = p
        self.stats.streams += 1
        self.stats.bulks += 1
        return p

    def _ms(self, now: float) -> int:
        return int(now * 1000.0) & M32

    def _send_seq(self, p: _Peer, out: list[Tx], seq: int, inf: _Inflight, now: float,
                  resend: bool, built: FrameBuilder | None = None) -> None:
        flags = FLAG_RESEND if resend else 0
        if not p.bulk_done:
            flags |= FLAG_BULK
        if inf.kind == T_DATA and built is not None:
            fb = built
        elif inf.kind == T_DATA:
            fb = FrameBuilder(self.tuning.frame_capacity)
            sent: list[SyncKey] = []
            for k in inf.keys:
                enc = self._encoded(k)
                if enc is None:
                    continue
                if fb.add(enc):
                    sent.append(k)
                elif k not in p.dirty:  # grew since: goes in a later frame
                    p.dirty.add(k)
                    p.dirty_q.append(k)
                    if p.dirty_since is None:
                        p.dirty_since = now
            inf.keys = sent
        if inf.kind == T_DATA:
            payload = encode_frame(T_DATA, self.group_id, self.serial, p.stream, seq, 0,
                                   self._ms(now), self.key, flags=flags, count=fb.count,
                                   payload=fb.payload())
            self.stats.records_tx += fb.count
            if resend:
                self.stats.resent_records += fb.count
        else:
            payload = encode_frame(inf.kind, self.group_id, self.serial, p.stream, seq, 0,
                                   self._ms(now), self.key, flags=flags,
                                   payload=encode_total(inf.total))
        if resend:
            self.stats.resends += 1
            inf.sends += 1
        inf.last_sent = now
        p.last_tx = now
        p.rto_due = min(p.rto_due, now + self.tuning.rto)
        _count_frame(self.stats, self.links, out, p.serial, payload)

    def _new_seq(self, p: _Peer, out: list[Tx], kind: int, keys: list[SyncKey], total: int,
                 now: float, built: FrameBuilder | None = None) -> None:
        seq = p.next_seq
        p.next_seq = (seq + 1) & M32 or 1
        inf = _Inflight(kind, keys, total, now)
        p.inflight[seq] = inf
        self._send_seq(p, out, seq, inf, now, resend=False, built=built)

    def _fill(self, p: _Peer, now: float) -> tuple[list[SyncKey], FrameBuilder] | None:
        """Keys and records of the next DATA frame (live changes first, then bulk), or None."""
        t = self.tuning
        live_due = bool(p.dirty) and (
            len(p.dirty) >= t.batch_records
            or (p.dirty_since is not None and now - p.dirty_since >= t.flush_delay)
            or p.bulk_pos < len(p.bulk_keys))
        bulk_left = p.bulk_pos < len(p.bulk_keys)
        if not live_due and not bulk_left:
            return None
        fb = FrameBuilder(t.frame_capacity)
        keys: list[SyncKey] = []
        dirty, q = p.dirty, p.dirty_q
        if live_due:
            while q:
                k = q[0]
                enc = self._encoded(k)
                if enc is not None and not fb.add(enc):
                    break
                q.popleft()
                dirty.discard(k)
                if enc is not None:
                    keys.append(k)
            if not dirty:
                p.dirty_since = None
        bk = p.bulk_keys
        while p.bulk_pos < len(bk) and fb.size < fb.capacity:
            k = bk[p.bulk_pos]
            if k not in self.records or k in dirty:
                p.bulk_pos += 1
                continue
            enc = self._encoded(k)
            if enc is None:
                p.bulk_pos += 1
                continue
            if not fb.add(enc):
                break
            p.bulk_pos += 1
            p.bulk_sent += 1
            keys.append(k)
        return (keys, fb) if keys else None

    # -- events -------------------------------------------------------------------------

    def receive(self, payload: bytes, now: float) -> list[Tx]:
        """A frame from a secondary (ACK, NACK, HELLO, BULK_REQ); returns frames to send."""
        fr = _decode(payload, self.key, now, self.stats)
        if fr is None:
            return []
        self.stats.frames_rx += 1
        if fr.group_id != self.group_id or fr.serial == self.serial or fr.type in _SEQUENCED \
                or fr.type == T_ALIVE:
            self.stats.dropped_foreign += 1
            return []
        out: list[Tx] = []
        p = self.peers.get(fr.serial)
        if fr.type in (T_HELLO, T_BULK_REQ):
            if p is None or (fr.type == T_BULK_REQ and fr.stream == p.stream) or (
                    fr.type == T_HELLO and fr.stream != p.stream
                    and now - p.started >= self.tuning.restart_guard):
                self._restart(fr.serial, now)
                self.poll(now, out)
            return out
        if p is None or fr.stream != p.stream:
            self.stats.dropped_foreign += 1
            return out
        if fr.ack == 0 and 1 not in p.inflight and p.next_seq > 1:
            # "not adopted" but BULK_BEGIN was acknowledged: the member lost the stream
            # (restarted); a probe that was merely overtaken is younger than the guard
            if now - p.started >= self.tuning.restart_guard:
                self._restart(fr.serial, now)
                self.poll(now, out)
            return out
        self._on_ack(p, fr, now, out)
        return out

    def _on_ack(self, p: _Peer, fr: SyncFrame, now: float, out: list[Tx]) -> None:
        cum = fr.ack
        infl = p.inflight
        st = self.stats
        while infl:
            s = next(iter(infl))
            if s > cum:
                break
            inf = infl.pop(s)
            st.acked += 1
            st.acked_records += len(inf.keys)
        p.acked = max(p.acked, cum)
        if fr.type != T_NACK:
            return
        highest = fr.seq
        starts = [a for a, _ in fr.ranges]
        for s in list(infl):
            if s > highest:
                break
            i = bisect.bisect_right(starts, s) - 1
            if i >= 0 and fr.ranges[i][0] <= s <= fr.ranges[i][1]:
                inf = infl[s]
                if now - inf.last_sent >= self.tuning.min_resend_gap:
                    self._send_seq(p, out, s, inf, now, resend=True)
            else:  # selectively acknowledged
                inf = infl.pop(s)
                st.acked += 1
                st.acked_records += len(inf.keys)

    def poll(self, now: float, out: list[Tx] | None = None) -> list[Tx]:
        """Timers: flush batches, stream the bulk, retransmit, ALIVE. Returns frames to send."""
        if out is None:
            out = []
        if not self.links.any_up:
            return out
        t = self.tuning
        for p in list(self.peers.values()):
            if p.next_seq >= SEQ_RESTART:  # never wrap: a new stream (and bulk) instead
                p = self._restart(p.serial, now)
            # retransmission on timeout (oldest first)
            if p.inflight and now >= p.rto_due:
                due = now + t.rto_max
                for s, inf in list(p.inflight.items()):
                    rto = min(t.rto * (1 << min(inf.sends - 1, 8)), t.rto_max)
                    if now - inf.last_sent >= rto:
                        self._send_seq(p, out, s, inf, now, resend=True)
                        rto = min(t.rto * (1 << min(inf.sends - 1, 8)), t.rto_max)
                    due = min(due, inf.last_sent + rto)
                p.rto_due = due
            # new sequenced frames while the window allows
            while len(p.inflight) < t.window:
                if p.bulk_begin_due:
                    p.bulk_begin_due = False
                    self._new_seq(p, out, T_BULK_BEGIN, [], len(p.bulk_keys), now)
                    continue
                filled = self._fill(p, now)
                if filled is not None:
                    self._new_seq(p, out, T_DATA, filled[0], 0, now, built=filled[1])
                    continue
                if p.bulk_end_due and p.bulk_pos >= len(p.bulk_keys):
                    p.bulk_end_due = False
                    self._new_seq(p, out, T_BULK_END, [], p.bulk_sent, now)
                    p.bulk_done = True
                    p.bulk_keys = []
                    p.bulk_pos = 0
                    continue
                break
            if now - p.last_tx >= t.alive_interval:
                p.last_tx = now
                _count_frame(self.stats, self.links, out, p.serial,
                             encode_frame(T_ALIVE, self.group_id, self.serial, p.stream,
                                          (p.next_seq - 1) & M32, 0, self._ms(now), self.key))
        if now - self._last_gc >= 1.0:
            self._last_gc = now
            self._gc_tombstones()
        return out

    def _gc_tombstones(self) -> None:
        if not self._tomb:
            return
        needed: set[SyncKey] = set()
        for p in self.peers.values():
            needed.update(k for k in p.dirty if k in self._tomb)
            for inf in p.inflight.values():
                needed.update(k for k in inf.keys if k in self._tomb)
        for k in [k for k in self._tomb if k not in needed]:
            del self._tomb[k]
            self._enc.pop(k, None)

    # -- diagnostics --------------------------------------------------------------------

    def lag(self, now: float) -> tuple[int, float]:
        """(records sent but not acknowledged, age in s of the oldest unacknowledged frame)."""
        n = 0
        oldest = now
        for p in self.peers.values():
            for inf in p.inflight.values():
                n += len(inf.keys)
                oldest = min(oldest, inf.first_sent)
        return n, now - oldest

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain data for the diag renderer / control socket."""
        n, age = self.lag(now)
        return {
            "role": "sender", "serial": self.serial, "sessions": len(self.records),
            "links": list(self.links.sync_up or self.links.hb_up),
            "fallback": self.links.fallback, "unacked_records": n, "oldest_unacked_s": age,
            "stats": asdict(self.stats),
            "peers": [{
                "serial": p.serial, "stream": p.stream, "seq": (p.next_seq - 1) & M32,
                "acked": p.acked, "inflight": len(p.inflight),
                "unacked_records": sum(len(i.keys) for i in p.inflight.values()),
                "queued": len(p.dirty) + max(0, len(p.bulk_keys) - p.bulk_pos),
                "bulk": "done" if p.bulk_done else f"{p.bulk_pos}/{len(p.bulk_keys)}",
            } for p in self.peers.values()],
        }


# --------------------------------------------------------------------------- receiver


class SyncReceiver:
    """A secondary's side: follows one stream, keeps the synced table, ACKs and NACKs.

    ``table`` maps the orig 5-tuple key to the newest SessionRecord received;
    ``bulk_complete`` becomes True once the stream's bulk sync has been
    received entirely (the HA FSM must not take over before, unless no other
    member is left).  With ``track_changes`` the applied operations are queued
    for ``drain_changes`` (the daemon mirrors them into its session table).
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None, track_changes: bool = False) -> None:
        self.serial = serial
        self.group_id = group_id
        self.key = key
        self.tuning = tuning or SyncTuning()
        self.stats = SyncStats()
        self.links = LinkSelector()
        self.table: dict[SyncKey, SessionRecord] = {}
        self.sender: str | None = None
        self.stream = 0
        self.bulk_complete = False
        self.bulk_total = 0
        self.track_changes = track_changes
        self._changes: list[RecordOp] = []
        self._estream: dict[SyncKey, int] = {}  # stream that wrote each entry
        self._tomb: dict[SyncKey, tuple[int, int, float]] = {}  # key -> (version, stream, t)
        self._retired: deque[int] = deque(maxlen=64)
        self._cum = 0
        self._above: set[int] = set()
        self._highest = 0
        self._bulk_end_seq = 0
        self._unacked = 0
        self._ack_due = False
        self._last_ack = float("-inf")
        self._last_nack = float("-inf")
        self._last_hello = float("-inf")
        self._want_bulk = False
        self._last_bulk_req = float("-inf")
        self._last_gc = float("-inf")
        self._probed = 0
        self._probe_highest = 0
        self._last_probe = float("-inf")

    def set_links(self, sync_links_up: list[str], hb_links_up: list[str]) -> None:
        self.links.set_links(sync_links_up, hb_links_up)

    def drain_changes(self) -> list[RecordOp]:
        ch, self._changes = self._changes, []
        return ch

    def request_bulk(self, now: float) -> list[Tx]:
        """Ask the primary for a new stream with a full bulk sync (repeated until it starts)."""
        self._want_bulk = True
        self.bulk_complete = False
        self._last_bulk_req = float("-inf")
        return self.poll(now)

    # -- frames -------------------------------------------------------------------------

    def _frame(self, ftype: int, peer: str, seq: int, now: float,
               ranges: list[tuple[int, int]] | None = None) -> bytes:
        payload = encode_nack_ranges(ranges) if ranges else b""
        return encode_frame(ftype, self.group_id, self.serial, self.stream, seq, self._cum,
                            int(now * 1000.0) & M32, self.key,
                            count=len(ranges) if ranges else 0, payload=payload)

    def _gaps(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        prev = self._cum
        for s in sorted(self._above):
            if s > prev + 1:
                out.append((prev + 1, s - 1))
                if len(out) >= MAX_RANGES:
                    return out
            prev = s
        if self._highest > prev and len(out) < MAX_RANGES:
            out.append((prev + 1, self._highest))
        return out

    def _ack(self, out: list[Tx], now: float) -> None:
        if self.sender is None:
            return
        gaps = self._gaps()
        if gaps:
            payload = self._frame(T_NACK, self.sender, self._highest, now, gaps)
            self.stats.nacks_tx += 1
            self._last_nack = now
        else:
            payload = self._frame(T_ACK, self.sender, self._cum, now)
            self.stats.acks_tx += 1
        self._unacked = 0
        self._ack_due = False
        self._last_ack = now
        _count_frame(self.stats, self.links, out, self.sender, payload)

    def receive(self, payload: bytes, now: float) -> list[Tx]:
        """A frame from the primary; returns the frames to send back (NACK, ACK, HELLO)."""
        fr = _decode(payload, self.key, now, self.stats)
        if fr is None:
            return []
        self.stats.frames_rx += 1
        out: list[Tx] = []
        if fr.group_id != self.group_id or fr.serial == self.serial:
            self.stats.dropped_foreign += 1
            return out
        if fr.type == T_HELLO:  # a sender (re)started: introduce ourselves
            payload = encode_frame(T_HELLO, self.group_id, self.serial,
                                   self.stream if fr.serial == self.sender else 0, 0,
                                   self._cum, int(now * 1000.0) & M32, self.key)
            _count_frame(self.stats, self.links, out, fr.serial, payload)
            return out
        if fr.type not in _SEQUENCED and fr.type != T_ALIVE:
            self.stats.dropped_foreign += 1
            return out
        if fr.serial != self.sender or fr.stream != self.stream:
            # a stream is adopted only at its first frame (BULK_BEGIN, seq 1): a lost one is
            # retransmitted; a member that restarted mid-stream gets a new stream on HELLO
            if fr.stream in self._retired or fr.stream == 0:
                self.stats.dropped_foreign += 1
                return out
            if fr.type != T_BULK_BEGIN or fr.seq != 1:
                # BULK_BEGIN lost or overtaken: ask for it (NACK 1-1, ack 0 = not adopted)
                self.stats.dropped_foreign += 1
                if fr.stream != self._probed:
                    self._probed = fr.stream
                    self._probe_highest = 0
                    self._last_probe = float("-inf")
                self._probe_highest = max(self._probe_highest, fr.seq)
                if now - self._last_probe >= self.tuning.nack_interval:
                    self._last_probe = now
                    self.stats.nacks_tx += 1
                    _count_frame(self.stats, self.links, out, fr.serial, encode_frame(
                        T_NACK, self.group_id, self.serial, fr.stream, 1, 0,
                        int(now * 1000.0) & M32, self.key, count=1,
                        payload=encode_nack_ranges([(1, 1)])))
                return out
            self._adopt(fr.serial, fr.stream)
            if fr.stream == self._probed and self._probe_highest > 1:
                # frames seen before adoption: NACK them at once
                self._highest = self._probe_highest
                self._ack_due = True
                self._last_ack = float("-inf")
        if fr.type == T_ALIVE:
            self._highest = max(self._highest, fr.seq)
            self._ack(out, now)
            return out
        seq = fr.seq
        if seq <= self._cum or seq in self._above:
            self.stats.dup_frames += 1
            self._ack_due = True
            return out
        new_gap = seq > self._highest + 1
        self._highest = max(self._highest, seq)
        if seq == self._cum + 1:
            self._cum = seq
            above = self._above
            while self._cum + 1 in above:
                self._cum += 1
                above.discard(self._cum)
        else:
            self._above.add(seq)
        self.stats.records_rx += len(fr.records)
        if fr.type == T_DATA:
            self._apply(fr.records, now)
        elif fr.type == T_BULK_BEGIN:
            self.bulk_total = fr.total
        else:
            self._bulk_end_seq = seq
        if self._bulk_end_seq and not self.bulk_complete and self._cum >= self._bulk_end_seq:
            self._finish_bulk()
        self._unacked += 1
        if new_gap or self._unacked >= self.tuning.ack_every or (
                self._ack_due and self._last_ack == float("-inf")):
            self._ack(out, now)
        return out

    def _adopt(self, sender: str, stream: int) -> None:
        if self.stream:
            self._retired.append(self.stream)
        self.sender = sender
        self.stream = stream
        self._cum = 0
        self._above = set()
        self._highest = 0
        self._bulk_end_seq = 0
        self.bulk_complete = False
        self._want_bulk = False
        self.stats.streams += 1

    def _finish_bulk(self) -> None:
        """The whole bulk is in: entries the new stream did not confirm are gone."""
        self.bulk_complete = True
        self.stats.bulks += 1
        cur = self.stream
        for k in [k for k, s in self._estream.items() if s != cur]:
            rec = self.table.pop(k, None)
            del self._estream[k]
            if self.track_changes and rec is not None:
                self._changes.append(RecordOp(OP_DELETE, k, rec.version, None))
        for k in [k for k, v in self._tomb.items() if v[1] != cur]:
            del self._tomb[k]

    def _apply(self, records: list[RecordOp], now: float) -> None:
        st = self.stats
        cur = self.stream
        table, estream, tomb = self.table, self._estream, self._tomb
        for r in records:
            k = r.key
            have = -1
            old = table.get(k)
            if old is not None:
                if estream.get(k) == cur:
                    have = old.version
            else:
                t = tomb.get(k)
                if t is not None and t[1] == cur:
                    have = t[0]
            if r.version < have:
                st.stale += 1
                continue
            if r.version == have:
                st.dup_records += 1
                continue
            st.applied += 1
            if r.op == OP_DELETE:
                st.deletes += 1
                if old is not None:
                    del table[k]
                    del estream[k]
                tomb[k] = (r.version, cur, now)
            else:
                assert r.record is not None
                if old is None:
                    st.creates += 1
                else:
                    st.updates += 1
                table[k] = r.record
                estream[k] = cur
                tomb.pop(k, None)
            if self.track_changes:
                self._changes.append(r)

    def poll(self, now: float) -> list[Tx]:
        """Timers: HELLO while no stream, BULK_REQ retries, delayed ACK, NACK retries."""
        out: list[Tx] = []
        t = self.tuning
        if self.sender is None:
            if now - self._last_hello >= t.hello_interval:
                self._last_hello = now
                _count_frame(self.stats, self.links, out, BROADCAST,
                             encode_frame(T_HELLO, self.group_id, self.serial, 0, 0, 0,
                                          int(now * 1000.0) & M32, self.key))
        else:
            if self._want_bulk and now - self._last_bulk_req >= t.bulk_req_interval:
                self._last_bulk_req = now
                _count_frame(self.stats, self.links, out, self.sender,
                             self._frame(T_BULK_REQ, self.sender, 0, now))
            ack_due = (self._unacked or self._ack_due) and now - self._last_ack >= t.ack_delay
            gaps = self._above or self._highest > self._cum
            if ack_due or (gaps and now - self._last_nack >= t.nack_interval):
                self._ack(out, now)
        if now - self._last_gc >= 1.0 and self._tomb:
            self._last_gc = now
            limit = now - t.tombstone_ttl
            for k in [k for k, v in self._tomb.items() if v[2] < limit]:
                del self._tomb[k]
        return out

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "role": "receiver", "serial": self.serial, "sender": self.sender or "",
            "stream": self.stream, "sessions": len(self.table), "cum_seq": self._cum,
            "highest_seq": self._highest, "gaps": self._gaps()[:8],
            "bulk_complete": self.bulk_complete, "bulk_total": self.bulk_total,
            "links": list(self.links.sync_up or self.links.hb_up),
            "fallback": self.links.fallback, "stats": asdict(self.stats),
        }


# --------------------------------------------------------------------------- pickup filter


def _is_ztna(session: Any) -> bool:
    return session.inspection == "ztna" or EXT_ZTNA in (session.ext or {})


def should_sync(session: Any, ha_cfg: Any, now: float, delay_s: float = 30.0) -> bool:
    """FortiOS session-pickup rules: is this session synced to the secondaries now?

    ``session`` has the fields of fgcp.session.Session, ``ha_cfg`` those of
    fgcp.model.HAConfig.  session-pickup off: nothing.  On: TCP (at creation and
    every state change: the caller asks again on each change).  Connectionless:
    UDP, ICMP and every other non-TCP protocol too.  session-pickup-delay: TCP
    sessions only once older than ``delay_s`` (30 s in FortiOS; a smaller value
    is a test-only time-scale knob, not a different rule).  Sessions of
    proxy-inspected policies are never synced; ZTNA access-proxy sessions
    (inspection "ztna" or an EXT_ZTNA record) are.
    """
    if not ha_cfg.session_pickup:
        return False
    if (session.inspection == "proxy" or session.flags & PROXY_FLAG) and not _is_ztna(session):
        return False
    if session.proto == 6:
        return not ha_cfg.session_pickup_delay or now - session.created >= delay_s
    return bool(ha_cfg.session_pickup_connectionless)


def sync_eligible_at(session: Any, ha_cfg: Any, delay_s: float = 30.0) -> float | None:
    """When ``should_sync`` turns True for this session (None: never by itself)."""
    if not ha_cfg.session_pickup:
        return None
    if (session.inspection == "proxy" or session.flags & PROXY_FLAG) and not _is_ztna(session):
        return None
    if session.proto == 6:
        return session.created + (delay_s if ha_cfg.session_pickup_delay else 0.0)
    return session.created if ha_cfg.session_pickup_connectionless else None
