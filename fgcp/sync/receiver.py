"""Session-sync receiver (a secondary's side): follows one stream, ACKs and NACKs (pure).

Keeps the synced table (newest version per session, stale ones counted), completes the
bulk sync, and queues the applied operations for the daemon; ``now`` in, frames (Tx) out.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fgcp.sync.common import BROADCAST, SEQUENCED, SyncEndpoint, SyncTuning
from fgcp.sync.fresh import SyncFreshness, Verdict
from fgcp.sync.links import Tx
from fgcp.syncframe import (
    MAX_RANGES,
    T_ACK,
    T_ALIVE,
    T_BULK_BEGIN,
    T_BULK_REQ,
    T_DATA,
    T_HELLO,
    T_NACK,
    SyncFrame,
    encode_challenge,
    encode_nack_ranges,
)
from fgcp.syncrecord import OP_DELETE, RecordOp, SessionRecord, SyncKey

__all__ = ["SyncReceiver"]


class SyncReceiver(SyncEndpoint):
    """A secondary's side: follows one stream, keeps the synced table, ACKs and NACKs.

    ``table`` maps the orig 5-tuple key to the newest SessionRecord received;
    ``bulk_complete`` becomes True once the stream's bulk sync has been
    received entirely (the HA FSM must not take over before, unless no other
    member is left).  With ``track_changes`` the applied operations are queued
    for ``drain_changes`` (the daemon mirrors them into its session table).

    A stream is adopted only from a sender epoch verified by a challenge (its HELLO or
    BULK_BEGIN echoed this member's nonce; fgcp/sync/fresh.py) and only if its id is
    newer than the last one adopted from that epoch.  ``max_sessions`` bounds the table
    (the session limit, ``lab-session-max``): new sessions beyond it are refused and
    counted (``table_full``); a takeover could not install them anyway.
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None, track_changes: bool = False,
                 fresh: SyncFreshness | None = None, max_sessions: int = 65536) -> None:
        super().__init__(serial, group_id, key, tuning, fresh)
        self.table: dict[SyncKey, SessionRecord] = {}
        self.max_sessions = max_sessions
        self.sender: str | None = None
        self.sender_epoch = 0
        self.stream = 0
        self.bulk_complete = False
        self.bulk_total = 0
        self.track_changes = track_changes
        self._changes: list[RecordOp] = []
        self._tag: tuple[int, int] = (0, 0)  # (sender epoch, stream): stream ids are per epoch
        self._estream: dict[SyncKey, tuple[int, int]] = {}  # stream that wrote each entry
        self._evict_stream = (0, 0)  # table full: entries of earlier streams to drop first
        self._evict_keys: list[SyncKey] = []
        self._tomb: dict[SyncKey, tuple[int, tuple[int, int], float]] = {}  # (version, tag, t)
        self._cum = 0
        self._above: set[int] = set()
        self._highest = 0
        self._bulk_end_seq = 0
        self._unacked = 0
        self._ack_due = False
        self._last_ack = float("-inf")
        self._last_nack = float("-inf")
        self._last_hello = float("-inf")
        self._last_rx = float("-inf")  # last fresh frame of the stream's sender
        self._want_bulk = False
        self._last_bulk_req = float("-inf")
        self._last_gc = float("-inf")
        self._probed = 0
        self._probe_highest = 0
        self._last_probe = float("-inf")

    @property
    def owes_ack(self) -> bool:
        """True while an ACK or NACK is owed to the sender: frames not acknowledged yet,
        an ACK due (a duplicate, ALIVE) or a gap in the sequence (the daemon then polls
        the receiver at its ACK-delay pace instead of idling)."""
        return bool(self._unacked or self._ack_due or self._above or self._highest > self._cum)

    def drain_changes(self) -> list[RecordOp]:
        """The operations applied since the last call (with ``track_changes``)."""
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
        if ftype in (T_HELLO, T_BULK_REQ):
            return self._encode(ftype, self.stream, seq, self._cum, now,
                                payload=encode_challenge(0))
        payload = encode_nack_ranges(ranges) if ranges else b""
        return self._encode(ftype, self.stream, seq, self._cum, now,
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
        self._send(out, self.sender, payload)

    def _hello(self, out: list[Tx], fr: SyncFrame, nonce: int, now: float) -> None:
        """HELLO to ``fr``'s sender: our challenge ``nonce`` (0: none), its nonce echoed."""
        stream = self.stream if fr.serial == self.sender else 0
        self._send(out, fr.serial, self._encode(T_HELLO, stream, 0, self._cum, now,
                                                payload=encode_challenge(nonce, fr.nonce)))

    def receive(self, payload: bytes, now: float) -> list[Tx]:
        """A frame from the primary; returns the frames to send back (NACK, ACK, HELLO)."""
        got = self._accept(payload, now)
        if got is None:
            return []
        fr, verdict = got
        out: list[Tx] = []
        pending = verdict is Verdict.PENDING
        if fr.type == T_HELLO:  # a sender (re)started: introduce ourselves (challenge it)
            if not pending or self._challenge_due(fr, now):
                self._hello(out, fr, self.fresh.nonce_for(fr.serial, fr.epoch), now)
            return out
        if fr.type not in SEQUENCED and fr.type != T_ALIVE:
            self.stats.dropped_foreign += 1
            self.accepted = None
            return out
        if pending:  # a sender of an unverified epoch: challenge it, use nothing
            if self._challenge_due(fr, now):
                self._hello(out, fr, self.fresh.nonce_for(fr.serial, fr.epoch), now)
            return out
        if fr.serial != self.sender or fr.epoch != self.sender_epoch or fr.stream != self.stream:
            # a stream is adopted only at its first frame (BULK_BEGIN, seq 1): a lost one is
            # retransmitted; a member that restarted mid-stream gets a new stream on HELLO
            if fr.stream == 0:
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
                    self._send(out, fr.serial, self._encode(
                        T_NACK, fr.stream, 1, 0, now, count=1,
                        payload=encode_nack_ranges([(1, 1)])))
                return out
            if not self.fresh.adopt(fr.serial, fr.stream):  # an earlier stream of that run
                self.stats.dropped_foreign += 1
                return out
            self._adopt(fr.serial, fr.epoch, fr.stream)
            if fr.stream == self._probed and self._probe_highest > 1:
                # frames seen before adoption: NACK them at once
                self._highest = self._probe_highest
                self._ack_due = True
                self._last_ack = float("-inf")
        self._last_rx = now
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

    def _adopt(self, sender: str, epoch: int, stream: int) -> None:
        self.sender = sender
        self.sender_epoch = epoch
        self.stream = stream
        self._tag = (epoch, stream)
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
        cur = self._tag
        for k in [k for k, s in self._estream.items() if s != cur]:
            rec = self.table.pop(k, None)
            del self._estream[k]
            if self.track_changes and rec is not None:
                self._changes.append(RecordOp(OP_DELETE, k, rec.version, None))
        for k in [k for k, v in self._tomb.items() if v[1] != cur]:
            del self._tomb[k]

    def _apply(self, records: list[RecordOp], now: float) -> None:
        st = self.stats
        cur = self._tag
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
            if r.op == OP_DELETE:
                if old is None and k not in tomb and len(tomb) >= self.max_sessions:
                    st.table_full += 1  # tombstones are bounded like the table
                    continue
                st.applied += 1
                st.deletes += 1
                if old is not None:
                    del table[k]
                    del estream[k]
                tomb[k] = (r.version, cur, now)
            else:
                assert r.record is not None
                if old is None and len(table) >= self.max_sessions and not self._evict_old():
                    st.table_full += 1
                    continue
                st.applied += 1
                if old is None:
                    st.creates += 1
                else:
                    st.updates += 1
                table[k] = r.record
                estream[k] = cur
                tomb.pop(k, None)
            if self.track_changes:
                self._changes.append(r)

    def _evict_old(self) -> bool:
        """Room for a session of the current stream: drop one an earlier stream wrote (the
        bulk's end would sweep it unless the current stream confirms it first)."""
        cur = self._tag
        if self._evict_stream != cur:
            self._evict_stream = cur
            self._evict_keys = [k for k, s in self._estream.items() if s != cur]
        keys, estream = self._evict_keys, self._estream
        while keys:
            k = keys.pop()
            if estream.get(k, cur) != cur:
                rec = self.table.pop(k)
                del estream[k]
                if self.track_changes:
                    self._changes.append(RecordOp(OP_DELETE, k, rec.version, None))
                return True
        return False

    def poll(self, now: float) -> list[Tx]:
        """Timers: HELLO while no stream, BULK_REQ retries, delayed ACK, NACK retries."""
        out: list[Tx] = []
        t = self.tuning
        lost = self.sender is None or now - self._last_rx >= t.sender_silence
        if lost and now - self._last_hello >= t.hello_interval:
            # no stream, or its sender went silent (restarted?): introduce ourselves
            self._last_hello = now
            self._send(out, BROADCAST, self._encode(
                T_HELLO, self.stream, 0, self._cum, now,
                payload=encode_challenge(self.fresh.hello_nonce)))
        if self.sender is not None:
            if self._want_bulk and now - self._last_bulk_req >= t.bulk_req_interval:
                self._last_bulk_req = now
                self._send(out, self.sender,
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
        """Plain data for the diag renderer / control socket."""
        return {
            "role": "receiver", "serial": self.serial, "epoch": self.fresh.epoch,
            "sender": self.sender or "", "sender_epoch": self.sender_epoch,
            "stream": self.stream, "sessions": len(self.table), "cum_seq": self._cum,
            "highest_seq": self._highest, "gaps": self._gaps()[:8],
            "bulk_complete": self.bulk_complete, "bulk_total": self.bulk_total,
            "links": list(self.links.sync_up or self.links.hb_up),
            "fallback": self.links.fallback, "stats": asdict(self.stats),
        }
