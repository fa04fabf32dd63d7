"""Session-sync receiver (a secondary's side): follows one stream, ACKs and NACKs (pure).

Keeps the synced table (newest version per session, stale ones counted), completes the
bulk sync, and queues the applied operations for the daemon; ``now`` in, frames (Tx) out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

from fgcp.sync.common import BROADCAST, SEQUENCED, SyncEndpoint, SyncTuning
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
    encode_frame,
    encode_nack_ranges,
)
from fgcp.syncrecord import OP_DELETE, RecordOp, SessionRecord, SyncKey, ms32

__all__ = ["SyncReceiver"]


class SyncReceiver(SyncEndpoint):
    """A secondary's side: follows one stream, keeps the synced table, ACKs and NACKs.

    ``table`` maps the orig 5-tuple key to the newest SessionRecord received;
    ``bulk_complete`` becomes True once the stream's bulk sync has been
    received entirely (the HA FSM must not take over before, unless no other
    member is left).  With ``track_changes`` the applied operations are queued
    for ``drain_changes`` (the daemon mirrors them into its session table).
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None, track_changes: bool = False) -> None:
        super().__init__(serial, group_id, key, tuning)
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
        payload = encode_nack_ranges(ranges) if ranges else b""
        return encode_frame(ftype, self.group_id, self.serial, self.stream, seq, self._cum,
                            ms32(now), self.key,
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

    def receive(self, payload: bytes, now: float) -> list[Tx]:
        """A frame from the primary; returns the frames to send back (NACK, ACK, HELLO)."""
        fr = self._decode(payload, now)
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
                                   self._cum, ms32(now), self.key)
            self._send(out, fr.serial, payload)
            return out
        if fr.type not in SEQUENCED and fr.type != T_ALIVE:
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
                    self._send(out, fr.serial, encode_frame(
                        T_NACK, self.group_id, self.serial, fr.stream, 1, 0,
                        ms32(now), self.key, count=1,
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
                self._send(out, BROADCAST,
                             encode_frame(T_HELLO, self.group_id, self.serial, 0, 0, 0,
                                          ms32(now), self.key))
        else:
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
            "role": "receiver", "serial": self.serial, "sender": self.sender or "",
            "stream": self.stream, "sessions": len(self.table), "cum_seq": self._cum,
            "highest_seq": self._highest, "gaps": self._gaps()[:8],
            "bulk_complete": self.bulk_complete, "bulk_total": self.bulk_total,
            "links": list(self.links.sync_up or self.links.hb_up),
            "fallback": self.links.fallback, "stats": asdict(self.stats),
        }
