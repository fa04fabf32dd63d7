"""FGCP primary election: a pure function of the members' advertised state.

Implements the FortiOS selection order (override disabled / enabled) with the
``ha-uptime-diff-margin`` rule; used by ``fgcp.hafsm`` on every member alike.

Order, override **disabled** (FortiOS default):
  1. "execute ha failover set 1" (a member with the flag loses),
  2. connected monitored interfaces (fewer failed monitored interfaces wins),
  3. lab extension: a member whose bulk session sync is not complete loses
     (pfsync's rule: it must not take the traffic before it has the state),
  4. HA uptime, only when the two uptimes differ by more than the margin (larger wins),
  5. priority (higher wins), 6. serial number (higher wins).
Override **enabled**: the same with priority (5) before uptime (4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Candidate", "Decision", "compare", "decide", "elect", "rank"]

# reasons, one per criterion (keys of REASON_TEXT)
R_ONLY = "only-member"
R_FAILOVER = "failover-flag"
R_MONITOR = "monitor"
R_SYNC = "sync"
R_UPTIME = "uptime"
R_PRIORITY = "priority"
R_SERIAL = "serial"


@dataclass(frozen=True)
class Candidate:
    """What the election knows of one member (from its heartbeats or its own state)."""

    serial: str
    priority: int = 128
    failed_monitors: int = 0  # monitored interfaces down
    uptime_s: float = 0.0  # HA uptime: age since start or the last uptime reset
    failover_set: bool = False  # "execute ha failover set 1"
    sync_complete: bool = True  # bulk session sync done (lab extension)


@dataclass(frozen=True)
class Decision:
    """The primary, the full order (primary first) and why the primary won."""

    primary: str
    order: tuple[str, ...]
    reason: str  # one of the R_* keys
    runner_up: str | None  # the member the primary beat last (None when alone)

    def explain(self) -> str:
        """FortiOS ``get system ha status`` wording ("... is selected as the primary because ...")."""
        peer = self.runner_up or ""
        why = {
            R_ONLY: "it's the only member in the cluster",
            R_FAILOVER: f"peer member {peer} has EXE_FAIL_OVER flag set",
            R_MONITOR: f"the value of link-failure is less than peer member {peer}",
            R_SYNC: f"peer member {peer} has not completed its session synchronization",
            R_UPTIME: f"its uptime is larger than peer member {peer}",
            R_PRIORITY: "it has the largest value of override priority",
            R_SERIAL: "it has the largest value of serialno",
        }[self.reason]
        return f"{self.primary} is selected as the primary because {why}."


def compare(a: Candidate, b: Candidate, override: bool, uptime_margin_s: float) -> tuple[int, str]:
    """(+1 if ``a`` beats ``b``, -1 if ``b`` beats ``a``; the deciding criterion).

    Serial numbers are unique, so 0 is only returned for the same serial.
    """
    if a.failover_set != b.failover_set:
        return (-1 if a.failover_set else 1), R_FAILOVER
    if a.failed_monitors != b.failed_monitors:
        return (1 if a.failed_monitors < b.failed_monitors else -1), R_MONITOR
    if a.sync_complete != b.sync_complete:
        return (1 if a.sync_complete else -1), R_SYNC

    def by_uptime() -> int:
        diff = a.uptime_s - b.uptime_s
        if abs(diff) > uptime_margin_s:
            return 1 if diff > 0 else -1
        return 0

    def by_priority() -> int:
        return (a.priority > b.priority) - (a.priority < b.priority)

    steps = (
        ((R_PRIORITY, by_priority), (R_UPTIME, by_uptime))
        if override
        else ((R_UPTIME, by_uptime), (R_PRIORITY, by_priority))
    )
    for reason, step in steps:
        r = step()
        if r:
            return r, reason
    return (a.serial > b.serial) - (a.serial < b.serial), R_SERIAL


def _best(pool: list[Candidate], override: bool, margin: float) -> Candidate:
    # A tournament over a serial-sorted pool: deterministic even though the uptime
    # margin makes "beats" non-transitive (a ~ b, b ~ c but a >> c).
    best = pool[0]
    for c in pool[1:]:
        if compare(c, best, override, margin)[0] > 0:
            best = c
    return best


def rank(
    candidates: Iterable[Candidate], override: bool, uptime_margin_s: float
) -> list[Candidate]:
    """All candidates, best first (primary, then the secondaries in takeover order)."""
    pool = sorted(candidates, key=lambda c: c.serial, reverse=True)
    out = []
    while pool:
        best = _best(pool, override, uptime_margin_s)
        out.append(best)
        pool.remove(best)
    return out


def decide(candidates: Iterable[Candidate], override: bool, uptime_margin_s: float) -> Decision:
    """The election result with its reason; raises ValueError without candidates."""
    pool = sorted(candidates, key=lambda c: c.serial, reverse=True)
    if not pool:
        raise ValueError("election without candidates")
    if len({c.serial for c in pool}) != len(pool):
        raise ValueError("duplicate serial numbers among the candidates")
    ranked = rank(pool, override, uptime_margin_s)
    if len(ranked) == 1:
        return Decision(ranked[0].serial, (ranked[0].serial,), R_ONLY, None)
    _, reason = compare(ranked[0], ranked[1], override, uptime_margin_s)
    return Decision(ranked[0].serial, tuple(c.serial for c in ranked), reason, ranked[1].serial)


def elect(
    candidates: Iterable[Candidate],
    override: bool,
    uptime_margin_s: float,
    now: float | None = None,
) -> str:
    """The serial number of the primary (``now`` is accepted for symmetry; uptimes are ages)."""
    del now
    return decide(candidates, override, uptime_margin_s).primary
