"""Session-sync sender (the primary's side): one reliable stream per secondary (pure).

Keeps the synced records, sends live changes and the bulk sync in sequenced DATA frames,
retransmits from the *current* state on NACK or timeout; ``now`` in, frames (Tx) out.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import asdict
from typing import Any

from fgcp.sync.common import BROADCAST, MAX_PEERS, SEQUENCED, SyncEndpoint, SyncTuning
from fgcp.sync.fresh import SyncFreshness, Verdict
from fgcp.sync.links import Tx
from fgcp.syncframe import (
    FLAG_BULK,
    FLAG_RESEND,
    T_ALIVE,
    T_BULK_BEGIN,
    T_BULK_END,
    T_BULK_REQ,
    T_DATA,
    T_HELLO,
    T_NACK,
    FrameBuilder,
    SyncFrame,
    encode_bulk_begin,
    encode_challenge,
    encode_total,
)
from fgcp.syncrecord import (
    OP_ADD,
    OP_UPDATE,
    SessionRecord,
    SyncKey,
    SyncRecordError,
    encode_delete,
    encode_record,
)
from fgcp.tcptrack import M32

__all__ = ["SEQ_RESTART", "SyncSender"]

SEQ_RESTART = 0xFFFF0000  # a stream this long is replaced by a new one (no seq wrap-around)


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

    def __init__(self, serial: str, epoch: int, echo: int) -> None:
        self.serial = serial
        self.epoch = epoch  # the secondary's verified epoch this stream belongs to
        self.echo = echo  # the secondary's nonce, echoed in BULK_BEGIN
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


class SyncSender(SyncEndpoint):
    """The primary's side: keeps the synced records and one reliable stream per secondary.

    Feed it with ``upsert``/``delete`` (after ``should_sync``), the frames
    received from the secondaries with ``receive``, and call ``poll`` often
    (every few ms): both return the frames to send.  A stream starts only for a
    secondary whose epoch answered a challenge (fgcp/sync/fresh.py); stream ids are
    counted per epoch (``fresh``, shared with the member's receiver).  At most
    ``MAX_PEERS`` secondaries; more are refused and counted.
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None, fresh: SyncFreshness | None = None) -> None:
        super().__init__(serial, group_id, key, tuning, fresh)
        self.records: dict[SyncKey, SessionRecord] = {}
        self.peers: dict[str, _Peer] = {}
        self._version = 0
        self._ops: dict[SyncKey, int] = {}
        self._tomb: dict[SyncKey, int] = {}  # deleted key -> version, while a peer may need it
        self._enc: dict[SyncKey, bytes] = {}  # encoded current state (ADD/UPDATE or DELETE)
        self._last_gc = float("-inf")

    # -- configuration ------------------------------------------------------------------

    def start(self, now: float) -> list[Tx]:
        """Broadcast HELLO: secondaries answer with HELLO and get a stream + bulk sync."""
        out: list[Tx] = []
        self._send(out, BROADCAST, self._encode(T_HELLO, 0, 0, 0, now,
                                                payload=encode_challenge(self.fresh.hello_nonce)))
        return out

    def remove_peer(self, peer: str) -> None:
        """Forget the stream to ``peer`` (it left the cluster)."""
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

    def _restart(self, serial: str, epoch: int, echo: int, now: float) -> _Peer:
        p = _Peer(serial, epoch, echo)
        p.stream = self.fresh.next_stream() & M32 or 1
        p.started = now
        p.bulk_keys = list(self.records)
        p.bulk_begin_due = True
        p.bulk_end_due = True
        self.peers[serial] = p
        self.stats.streams += 1
        self.stats.bulks += 1
        return p

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
            payload = self._encode(T_DATA, p.stream, seq, 0, now, flags=flags, count=fb.count,
                                   payload=fb.payload())
            self.stats.records_tx += fb.count
            if resend:
                self.stats.resent_records += fb.count
        else:
            body = (encode_bulk_begin(inf.total, p.echo) if inf.kind == T_BULK_BEGIN
                    else encode_total(inf.total))
            payload = self._encode(inf.kind, p.stream, seq, 0, now, flags=flags, payload=body)
        if resend:
            self.stats.resends += 1
            inf.sends += 1
        inf.last_sent = now
        p.last_tx = now
        p.rto_due = min(p.rto_due, now + self.tuning.rto)
        self._send(out, p.serial, payload)

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
        """A frame from a secondary (ACK, NACK, HELLO, BULK_REQ); returns frames to send.

        Only a fresh frame of a verified epoch acts; a frame of an unverified epoch is
        answered with a challenge (HELLO with a nonce, echoing the peer's nonce).
        """
        got = self._accept(payload, now)
        if got is None:
            return []
        fr, verdict = got
        if fr.type in SEQUENCED or fr.type == T_ALIVE:
            self.stats.dropped_foreign += 1
            self.accepted = None
            return []
        out: list[Tx] = []
        if verdict is Verdict.PENDING:
            if self._challenge_due(fr, now):
                self._send(out, fr.serial, self._encode(
                    T_HELLO, 0, 0, 0, now,
                    payload=encode_challenge(self.fresh.nonce_for(fr.serial, fr.epoch),
                                             fr.nonce)))
            return out
        p = self.peers.get(fr.serial)
        if p is not None and p.epoch != fr.epoch:  # the secondary restarted: a new stream
            p = None
        if fr.type in (T_HELLO, T_BULK_REQ):
            if p is None or (fr.type == T_BULK_REQ and fr.stream == p.stream) or (
                    fr.type == T_HELLO and fr.stream != p.stream
                    and now - p.started >= self.tuning.restart_guard):
                if fr.serial not in self.peers and len(self.peers) >= MAX_PEERS:
                    self.stats.peers_refused += 1
                    return out
                self._restart(fr.serial, fr.epoch, fr.nonce, now)
                self.poll(now, out)
            elif fr.nonce:  # it challenges this member's epoch: echo the nonce
                self._send(out, fr.serial, self._encode(
                    T_HELLO, p.stream, 0, 0, now, payload=encode_challenge(0, fr.nonce)))
            return out
        if p is None or fr.stream != p.stream:
            self.stats.dropped_foreign += 1
            return out
        if fr.ack == 0 and 1 not in p.inflight and p.next_seq > 1:
            # "not adopted" but BULK_BEGIN was acknowledged: the member lost the stream
            # (a new receiver of the same run); a probe merely overtaken is younger than the guard
            if now - p.started >= self.tuning.restart_guard:
                self._restart(fr.serial, fr.epoch, 0, now)
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
                p = self._restart(p.serial, p.epoch, 0, now)
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
                self._send(out, p.serial,
                           self._encode(T_ALIVE, p.stream, (p.next_seq - 1) & M32, 0, now))
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
            "role": "sender", "serial": self.serial, "epoch": self.fresh.epoch,
            "sessions": len(self.records),
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
