"""Bucketed expiry queue of the session table: incremental sweeps with a bounded step.

A session is filed in the bucket of the tick its expiry falls in (``TICKS_PER_SECOND``
ticks a second, rounded up); a step visits the due buckets in order and touches at most
``budget`` entries, so expiring a million sessions is many short steps, never one pause.
Pure: time is passed in.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["STEP_BUDGET", "TICKS_PER_SECOND", "Expiring", "ExpiryQueue"]

TICKS_PER_SECOND = 10  # bucket width 0.1 s: a session goes at most 0.1 s after its expiry
STEP_BUDGET = 500  # entries one step touches at most (about 1-2 ms in CPython, README Scale)


class Expiring(Protocol):
    """What the queue needs of an entry (fgcp.session.Session has it)."""

    sid: int
    expires: float
    expiry_bucket: dict[int, Any] | None  # the bucket holding it, None when not filed


Bucket = dict[int, Any]  # sid -> entry


class ExpiryQueue:
    """Sessions bucketed by expiry tick; ``step`` removes the due ones, a budget at a time.

    Refreshes are lazy: a packet only moves ``Session.expires`` later, and the session
    stays in its older bucket; when that bucket comes due the session is re-filed by
    its current expiry.  An expiry moved *earlier* (a state change) must be told with
    ``refile`` (the table's ``set_state`` and ``set_expires`` do).  Every entry is a live
    session: removal takes it out of its bucket at once (``discard``).

    Bound: a session whose expiry ``e`` has passed is removed by the first step at a time
    ``>= ceil(e * TICKS_PER_SECOND) / TICKS_PER_SECOND`` after the entries filed in
    earlier or equal ticks have been stepped through: at most ``ceil(D / budget)`` steps,
    D being the entries due (and the due buckets) at that time.
    """

    __slots__ = ("_buckets", "_heap", "_tps", "behind", "last_work")

    def __init__(self, ticks_per_second: int = TICKS_PER_SECOND) -> None:
        if ticks_per_second < 1:
            raise ValueError(f"ticks_per_second {ticks_per_second} < 1")
        self._tps = ticks_per_second
        self._buckets: dict[int, Bucket] = {}
        self._heap: list[int] = []  # bucket ticks, each once, smallest first
        self.behind = False  # the last step stopped at its budget with due entries left
        self.last_work = 0  # entries (and buckets) the last step touched

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def tick(self, t: float) -> int:
        """The bucket a session expiring at ``t`` is filed in."""
        return math.ceil(t * self._tps)

    def file(self, s: Expiring) -> None:
        """File ``s`` by its current expiry (a session not filed yet)."""
        self._put(s, math.ceil(s.expires * self._tps))

    def _put(self, s: Expiring, k: int) -> None:
        b = self._buckets.get(k)
        if b is None:
            b = self._buckets[k] = {}
            heapq.heappush(self._heap, k)
        b[s.sid] = s
        s.expiry_bucket = b

    def discard(self, s: Expiring) -> None:
        """Take ``s`` out of its bucket (removed from the table)."""
        b = s.expiry_bucket
        if b is not None:
            if b.get(s.sid) is s:
                del b[s.sid]
            s.expiry_bucket = None

    def refile(self, s: Expiring) -> None:
        """File ``s`` by its current expiry again (it moved earlier than its bucket)."""
        b = s.expiry_bucket
        k = math.ceil(s.expires * self._tps)
        if b is not None and self._buckets.get(k) is b:
            return
        self.discard(s)
        self._put(s, k)

    def clear(self) -> None:
        for b in self._buckets.values():
            for s in b.values():
                s.expiry_bucket = None
        self._buckets.clear()
        self._heap.clear()
        self.behind = False

    def step(self, now: float, budget: int, expire: Callable[[Any], object]) -> int:
        """Call ``expire(s)`` for due sessions (``s.expires <= now``), touching at most
        ``budget`` entries; returns how many expired.  ``expire`` must remove ``s``."""
        due = math.floor(now * self._tps)
        heap, buckets, tps = self._heap, self._buckets, self._tps
        work = done = 0
        self.behind = False
        while heap and heap[0] <= due:
            if work >= budget:
                self.behind = True
                break
            k = heap[0]
            b = buckets[k]
            work += 1
            while b and work < budget:
                s = b.popitem()[1]
                s.expiry_bucket = None
                work += 1
                if s.expires <= now:
                    expire(s)
                    done += 1
                else:  # refreshed since it was filed: file it by its current expiry
                    nk = math.ceil(s.expires * tps)
                    self._put(s, nk if nk > k else k + 1)
            if b:
                self.behind = True
                break
            heapq.heappop(heap)
            del buckets[k]
        self.last_work = work
        return done
