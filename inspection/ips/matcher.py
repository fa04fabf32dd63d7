"""Matching across segment boundaries: carry-over scan plus per-signature progress.

Each in-order chunk is scanned with the last ``RuleSet.carry`` bytes before it; matches
ending in the old tail were reported before and are skipped. --distance/--within chains
keep bounded candidate match ends (``Progress``) so they too survive any split.
"""

from __future__ import annotations

from inspection.ips.ruleset import RuleSet
from inspection.ips.signature import Content, IccpMatch
from inspection.ips.state import DirState, Progress

MAX_CANDIDATES = 8  # match ends kept per content for the next relative content


def _fits(c: Content, start: int, end: int) -> bool:
    if c.anchored and start != 0:
        return False  # hyperscan's ^ is the start of the scanned buffer, not of the stream
    if c.offset is not None and start < c.offset:
        return False
    return c.depth is None or end <= (c.offset or 0) + c.depth


def _chained(c: Content, prev_ends: list[int], start: int, end: int) -> bool:
    dist = c.distance or 0
    for p in prev_ends:
        if start >= p + dist and (c.within is None or end <= p + dist + c.within):
            return True
    return False


def _record(p: Progress, ci: int, end: int) -> None:
    ends = p.cands.setdefault(ci, [])
    if end not in ends:
        ends.append(end)
        if len(ends) > MAX_CANDIDATES:  # keep the first (best for --distance) and the latest
            del ends[1]


def full_mask(rs: RuleSet, ri: int) -> int:
    sig = rs.rules[ri].signature
    n = len(sig.contents)
    return (1 << n) - 1 | ((1 << n) if sig.iccp else 0)


def scan_chunk(rs: RuleSet, d: DirState, data: bytes, applicable: frozenset[int],
               stream: bool = True) -> tuple[list[int], int]:
    """Scan ``data`` (delivered at ``d.offset``); returns (rules now complete, matches).

    With ``stream`` the tail is carried over and ``d.offset``/``d.tail`` advance;
    without it (UDP, ICMP) ``data`` is one datagram scanned on its own.
    """
    carry = d.tail[-rs.carry:] if stream and rs.carry else b""
    base = d.offset - len(carry)
    completed: list[int] = []
    nmatches = 0
    progress = d.progress if stream else {}
    for hs_id, s, e in rs.scan(carry + data):
        start, end = base + s, base + e
        if end <= d.offset:
            continue  # ended in the carried-over tail: reported by the previous scan
        for ri, ci in rs.targets[hs_id]:
            if ri not in applicable:
                continue
            c = rs.rules[ri].signature.contents[ci]
            if not _fits(c, start, end):
                continue
            p = progress.get(ri)
            if c.relative and (p is None or not _chained(c, p.cands.get(ci - 1, []), start, end)):
                continue
            if p is None:
                p = progress[ri] = Progress()
            nmatches += 1
            contents = rs.rules[ri].signature.contents
            if ci + 1 < len(contents) and contents[ci + 1].relative:
                _record(p, ci, end)
            before = p.mask
            p.mask |= 1 << ci
            if p.mask != before and p.mask == full_mask(rs, ri):
                completed.append(ri)
    if stream:
        d.offset += len(data)
        d.tail = (d.tail + data)[-rs.retain:] if rs.retain else b""
        prune(rs, d)
    return completed, nmatches


def prune(rs: RuleSet, d: DirState) -> None:
    """Forget candidate ends no later --within window can use; drop empty progress."""
    for ri in list(d.progress):
        p = d.progress[ri]
        contents = rs.rules[ri].signature.contents
        for ci in list(p.cands):
            nxt = contents[ci + 1] if ci + 1 < len(contents) else None
            if nxt is not None and nxt.within is not None:
                limit = (nxt.distance or 0) + nxt.within
                p.cands[ci] = [e for e in p.cands[ci] if e + limit > d.offset]
                if not p.cands[ci]:
                    del p.cands[ci]
        if not p.mask and not p.cands:
            del d.progress[ri]


def iccp_matches(m: IccpMatch, event: object) -> bool:
    """Does one IccpEvent (inspection.iccp contract) satisfy all ICCP keywords of ``m``?"""
    kind = getattr(event, "kind", None)
    if m.anomaly != (kind == "anomaly"):
        return False
    if m.service is not None and getattr(event, "service", None) != m.service:
        return False
    if m.domain is not None:
        dom = getattr(event, "domain", None) or ""
        if (dom.lower() != m.domain.lower()) if m.no_case else dom != m.domain:
            return False
    if m.item is not None:
        items = getattr(event, "items", ()) or ()
        needle = m.item.lower() if m.no_case else m.item
        if not any(needle in (i.lower() if m.no_case else i) for i in items):
            return False
    if m.pdu_size is not None:
        op, n = m.pdu_size
        size = getattr(event, "end", 0) - getattr(event, "start", 0)
        if not (size > n if op == ">" else size < n if op == "<" else size == n):
            return False
    return True
