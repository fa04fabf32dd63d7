"""Pure analysis of probe measurements: arrival-time gaps, outage windows
around a fault, sequence-number loss/duplicates, percentiles (no I/O, no clock).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Gap:
    """A silence between two arrivals: ``start`` = last arrival before it,
    ``end`` = first arrival after it (or the end of the measurement when
    traffic never resumed: ``resumed`` False)."""

    start: float
    end: float
    resumed: bool = True

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000.0

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end

    def to_dict(self) -> dict[str, float | bool]:
        d: dict[str, float | bool] = asdict(self)
        d["duration_ms"] = round(self.duration_ms, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, float | bool]) -> Gap:
        return cls(float(d["start"]), float(d["end"]), bool(d.get("resumed", True)))


def max_gap(times: Sequence[float], start: float | None = None,
            end: float | None = None) -> Gap | None:
    """The longest interval between consecutive arrival times; with ``start``
    / ``end`` only within [start, end], the silence from ``start`` to the first
    arrival and from the last arrival to ``end`` counting too (no arrival at
    all: the whole window). None with fewer than two times to compare."""
    if start is not None or end is not None:
        times = sorted(t for t in times
                       if (start is None or t >= start) and (end is None or t <= end))
        if start is not None and (not times or times[0] > start):
            times.insert(0, start)
        if end is not None and (not times or times[-1] < end):
            times.append(end)
    best: Gap | None = None
    for a, b in itertools.pairwise(times):
        if best is None or b - a > best.end - best.start:
            best = Gap(a, b)
    return best


def gaps_above(times: Sequence[float], threshold_ms: float) -> list[Gap]:
    """Every interval between consecutive arrivals longer than ``threshold_ms``."""
    limit = threshold_ms / 1000.0
    return [Gap(a, b) for a, b in itertools.pairwise(times) if b - a > limit]


def trailing_gap(times: Sequence[float], end: float, threshold_ms: float) -> Gap | None:
    """The silence from the last arrival to ``end`` (traffic that never came
    back), when longer than ``threshold_ms``; None otherwise."""
    if not times or (end - times[-1]) * 1000.0 <= threshold_ms:
        return None
    return Gap(times[-1], end, resumed=False)


def loss_windows(sent_at: Mapping[int, float]) -> list[Gap]:
    """Where a numbered stream lost datagrams, on the sender's clock: for each run
    of missing sequence numbers, the gap from the send time of the last datagram
    delivered before it to the send time of the first one delivered after it.
    ``sent_at`` maps each delivered sequence number to its send timestamp. Unlike
    arrival gaps, these windows do not shrink when a starved receiver reads a
    backlog in one go (the silence is then hidden in its socket buffer)."""
    seqs = sorted(sent_at)
    return [Gap(sent_at[a], sent_at[b]) for a, b in itertools.pairwise(seqs) if b - a > 1]


def outage_window(gaps: Iterable[Gap], fault_time: float, within_s: float = 10.0) -> Gap | None:
    """The outage caused by a fault at ``fault_time``: the longest gap that
    contains the fault time or starts within ``within_s`` after it (traffic
    may keep flowing until the fault is detected). None when there is none."""
    best: Gap | None = None
    for g in gaps:
        near = g.end > fault_time and g.start < fault_time + within_s
        if near and (best is None or g.duration_ms > best.duration_ms):
            best = g
    return best


def gap_owner(gap: Gap, fault_times: Sequence[float], onset_s: float,
              within_s: float = 10.0) -> int | None:
    """Index of the fault that caused ``gap``: the latest fault at or before the
    gap's onset, never a later one. ``gap.start`` is the last arrival before the
    silence, so the fault that caused it can come up to ``onset_s`` (about one
    or two inter-arrival periods of the flow) after it; the onset is capped at
    half the gap, so a fault during an outage already under way (the old
    primary restarting 0.5 s into a 680 ms gap) never takes it. None when no
    fault lies within ``within_s`` before the onset. ``fault_times`` sorted."""
    onset = gap.start + min(onset_s, (gap.end - gap.start) / 2)
    owner: int | None = None
    for i, t in enumerate(fault_times):
        if t > onset or t >= gap.end:
            break
        owner = i
    if owner is not None and onset - fault_times[owner] > within_s:
        return None
    return owner


class GapTracker:
    """Online max-gap / gaps-above-threshold over a stream of arrival times
    (for receivers that must not keep every timestamp)."""

    def __init__(self, threshold_ms: float = 100.0, keep: int = 1000) -> None:
        self.threshold = threshold_ms / 1000.0
        self.keep = keep
        self.first: float | None = None
        self.last: float | None = None
        self.count = 0
        self.max: Gap | None = None
        self.gaps: list[Gap] = []
        self.gaps_dropped = 0

    def add(self, t: float) -> None:
        """Record one arrival at ``t`` (non-decreasing)."""
        self.count += 1
        if self.last is None:
            self.first = t
        else:
            d = t - self.last
            if self.max is None or d > self.max.end - self.max.start:
                self.max = Gap(self.last, t)
            if d > self.threshold:
                if len(self.gaps) < self.keep:
                    self.gaps.append(Gap(self.last, t))
                else:
                    self.gaps_dropped += 1
        self.last = t

    def report(self, end: float | None = None) -> dict[str, object]:
        """JSON-ready summary; ``end`` (the report time) adds the silence since
        the last arrival as a non-resumed gap when above the threshold."""
        tail = None
        if end is not None and self.last is not None:
            tail = trailing_gap([self.last], end, self.threshold * 1000.0)
        return {
            "arrivals": self.count,
            "first": self.first,
            "last": self.last,
            "max_gap_ms": round(self.max.duration_ms, 3) if self.max else 0.0,
            "max_gap": self.max.to_dict() if self.max else None,
            "gaps": [g.to_dict() for g in self.gaps],
            "gaps_dropped": self.gaps_dropped,
            "trailing_gap": tail.to_dict() if tail else None,
        }


@dataclass
class SeqStats:
    """Loss/duplicate/reorder counts of a sequence-number stream."""

    received: int = 0          # datagrams received, duplicates included
    unique: int = 0
    duplicates: int = 0
    reordered: int = 0         # arrived after a higher sequence number
    lost: int = 0              # missing between 0 (or ``first``) and the highest
    highest: int = -1
    missing: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["missing"] = [list(r) for r in self.missing]  # as JSON reads it back
        return d


def missing_ranges(seen: set[int], first: int, last: int, limit: int = 100) -> list[tuple[int, int]]:
    """Inclusive ranges of numbers in [first, last] absent from ``seen``."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for n in range(first, last + 1):
        if n not in seen:
            if start is None:
                start = n
        elif start is not None:
            out.append((start, n - 1))
            start = None
            if len(out) >= limit:
                return out
    if start is not None and len(out) < limit:
        out.append((start, last))
    return out


def seq_stats(seqs: Iterable[int], first: int = 0, sent: int | None = None) -> SeqStats:
    """Stats of sequence numbers in arrival order; numbering starts at
    ``first``; ``sent`` (count the sender reports) also counts trailing loss."""
    st = SeqStats()
    seen: set[int] = set()
    for s in seqs:
        st.received += 1
        if s in seen:
            st.duplicates += 1
            continue
        if s < st.highest:
            st.reordered += 1
        seen.add(s)
        st.highest = max(st.highest, s)
    st.unique = len(seen)
    last = st.highest if sent is None else max(st.highest, first + sent - 1)
    in_range = sum(1 for s in seen if first <= s <= last)
    st.lost = max(0, last - first + 1 - in_range)
    st.missing = missing_ranges(seen, first, last)
    return st


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (``p`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, not {p}")
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": .., "p90": .., "p99": .., "max": ..}`` of ``values``."""
    out = {f"p{p:g}": percentile(values, p) for p in ps}
    out["max"] = max(values) if values else math.nan
    return out


def bin_counts(times: Iterable[float], start: float, bin_s: float) -> list[int]:
    """Arrivals per ``bin_s`` bin from ``start`` (for throughput timelines)."""
    counts: list[int] = []
    for t in times:
        i = int((t - start) // bin_s)
        if i < 0:
            continue
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += 1
    return counts
