"""Per-direction in-order TCP stream reassembly for the IPS (pure, bounded).

Policy (docs/ips.md): first-received data wins; out-of-order segments are held up to
``max_segments``/``max_bytes``; overlaps that change bytes are an anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inspection.ips.state import DirState

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
SEQ_MOD = 1 << 32
MAX_AHEAD = 1 << 20  # a segment starting further than this past the next byte is bogus

OVERLAP_CHANGED = "overlap with different data"
REASSEMBLY_OVERFLOW = "reassembly buffer full"
GAP_SKIPPED = "stream gap skipped"
GAP_UNRECOVERABLE = "stream gap unrecoverable"
GAP_TIMEOUT = 2.0  # seconds a gap may stay open while later data is held


@dataclass(slots=True)
class Accepted:
    """What one segment did: in-order bytes now deliverable, anomalies, drop/retransmit."""

    data: bytes = b""
    anomalies: list[str] = field(default_factory=list)  # OVERLAP_CHANGED
    dropped: bool = False  # REASSEMBLY_OVERFLOW: limits exceeded, not held, drop the packet
    retransmit: bool = False  # nothing new in it
    held: bool = False  # out of order, held for later
    gap: tuple[int, int] | None = None  # GAP_SKIPPED: stream offsets never seen here
    orphan: bytes = b""  # late bytes of a skipped gap: scan them on their own
    withheld: bool = False  # restored direction, beyond a gap: neither held nor forwarded
    unrecoverable: tuple[int, int] | None = None  # GAP_UNRECOVERABLE: fail the session closed


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in 32-bit sequence space (handles wraparound)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def _differs_from_tail(d: DirState, start: int, data: bytes) -> bool:
    """Do ``data`` at stream ``start`` (before d.offset) differ from the retained tail?"""
    tail_start = d.offset - len(d.tail)
    lo = max(start, tail_start)
    hi = min(start + len(data), d.offset)
    if lo >= hi:
        return False
    return data[lo - start:hi - start] != d.tail[lo - tail_start:hi - tail_start]


def _insert(d: DirState, start: int, data: bytes) -> tuple[bool, bool]:
    """Insert into the held list, held bytes win; returns (anything new, bytes changed)."""
    end = start + len(data)
    pieces: list[tuple[int, bytes]] = []
    changed = False
    cur = start
    for ps, pd in d.pending:
        pe = ps + len(pd)
        if pe <= cur or ps >= end:
            continue
        if ps > cur:
            pieces.append((cur, data[cur - start:ps - start]))
        lo, hi = max(ps, start), min(pe, end)
        if data[lo - start:hi - start] != pd[lo - ps:hi - ps]:
            changed = True
        cur = max(cur, pe)
    if cur < end:
        pieces.append((cur, data[cur - start:]))
    if pieces:
        d.pending = sorted(d.pending + pieces)
    return bool(pieces), changed


def accept(d: DirState, seq: int, payload: bytes, flags: int, max_segments: int,
           max_bytes: int, now: float = 0.0, gap_timeout: float = GAP_TIMEOUT) -> Accepted:
    """Take one TCP segment of direction ``d``; never raises.

    A gap is skipped (``Accepted.gap``) when it stayed open ``gap_timeout`` while
    later data was held.  A restored direction (``DirState.restored``: resumed from
    another member's state, which may have forwarded bytes this one never saw) never
    holds or passes data beyond a gap (``Accepted.withheld``: drop it, the sender
    retransmits it after the filler) and never skips one: a gap still open
    ``gap_timeout`` after the first withheld segment is ``Accepted.unrecoverable``.
    """
    res = Accepted()
    if flags & TCP_SYN:
        if not d.init:
            d.init, d.next_seq = True, (seq + 1) % SEQ_MOD
        seq = (seq + 1) % SEQ_MOD
    if not payload:
        return res
    if not d.init:  # mid-stream pick-up: the first data byte seen starts the stream
        d.init, d.next_seq = True, seq % SEQ_MOD
    rel = seq_diff(seq, d.next_seq)
    if rel < 0:  # (partly) already delivered: compare, then keep only the new part
        old = payload[:-rel]
        lo = d.offset + rel
        if d.skipped and lo < d.skipped[1] and lo + len(old) > d.skipped[0]:
            a, b = max(lo, d.skipped[0]), min(lo + len(old), d.skipped[1])
            res.orphan = old[a - lo:b - lo]
        elif _differs_from_tail(d, lo, old):
            res.anomalies.append(OVERLAP_CHANGED)
        payload, rel = payload[-rel:], 0
        if not payload:
            res.retransmit = True
            return res
    timed_out = d.gap_since is not None and now - d.gap_since >= gap_timeout
    if rel > 0 and d.restored:
        # The receiver may already hold the gap's bytes (the old member forwarded them
        # after its last sync): forwarding or holding this segment could complete, at the
        # receiver, a stream this member never inspected.  Only a filler may pass.
        if rel > MAX_AHEAD:
            res.dropped = True
            return res
        if d.gap_since is None:
            d.gap_since = now
        elif timed_out:
            res.unrecoverable = (d.offset, d.offset + rel)
        res.withheld = True
        return res
    if rel > 0 and timed_out:
        gap_end = min([d.offset + rel] + [ps for ps, _ in d.pending[:1]])
        res.gap = d.skipped = (d.offset, gap_end)
        d.next_seq = (d.next_seq + gap_end - d.offset) % SEQ_MOD
        d.offset, d.tail, d.gap_since = gap_end, b"", None
        rel = seq_diff(seq, d.next_seq)
    if rel > MAX_AHEAD:
        res.dropped = True
        return res
    start = d.offset + rel
    if rel > 0:
        held_already = any(ps <= start and start + len(payload) <= ps + len(pd)
                           for ps, pd in d.pending)
        if not held_already and (len(d.pending) >= max_segments
                        or d.pending_bytes + len(payload) > max_bytes):
            res.dropped = True
            return res
    new, changed = _insert(d, start, payload)
    if changed:
        res.anomalies.append(OVERLAP_CHANGED)
    if not new:
        res.retransmit = True
    out = bytearray()
    at = d.offset
    while d.pending and d.pending[0][0] == at:
        _, pd = d.pending.pop(0)
        out += pd
        at += len(pd)
    res.held = rel > 0 and not out
    res.data = bytes(out)
    d.next_seq = (d.next_seq + len(out)) % SEQ_MOD
    if not d.pending:
        d.gap_since = None
    elif d.gap_since is None:
        d.gap_since = now
    return res
