"""Soak: N consecutive failovers alternating the primary under one traffic run
(kill the primary, bring it back as secondary, kill the new primary, ...).

`soak_scenario(sc)` derives the fault list from ``soak: {failovers, interval}``;
`soak_summary(result)` (pure) reports survival per failover, the gap
distribution of every flow kind and whether any member logged an error.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Any

from lab.gaps import percentiles
from lab.report import KIND_LABEL, fmt_gap, fmt_ms
from lab.scenario import Fault, Scenario

if TYPE_CHECKING:  # for annotations: rich is imported where it prints
    from rich.console import Console


def soak_scenario(sc: Scenario, failovers: int | None = None,
                  interval: float | None = None) -> Scenario:
    """``sc`` with its faults replaced: kill-primary every ``interval`` seconds,
    old-primary-back halfway between (the runner waits for a stable, synced
    cluster before each kill, so slow rejoins stretch the run instead of failing it)."""
    n = int(failovers if failovers is not None else sc.soak["failovers"])
    step = float(interval if interval is not None else sc.soak["interval"])
    faults = []
    for i in range(n):
        at = sc.warmup + i * step
        faults.append(Fault("kill-primary", at))
        if i < n - 1:
            faults.append(Fault("old-primary-back", at + step / 2))
    return dataclasses.replace(sc, faults=tuple(faults), name=f"{sc.name}-x{n}")


KINDS = ("tcp", "udp", "ping", "short_tcp")
FAILOVER_KINDS = ("kill-primary", "power-off")


def soak_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per failover (kill-primary / power-off): killed member, new primary, TCP
    streams kept, the max gap of every flow kind; over all: per kind the gap
    percentiles over the failovers that measured one (those with no silence above
    the probes' threshold are counted apart, not as zeros), alternation, member errors.

    The gaps come from `lab.analysis.fault_metrics`: each one belongs to the
    fault it started after, so the outage of a kill that runs past the old
    primary's restart stays with the kill; a failover with no traffic of a
    kind has no gap (None) and stays out of that kind's percentiles."""
    rows = []
    gaps: dict[str, list[float]] = {k: [] for k in KINDS}
    below: dict[str, int] = dict.fromkeys(KINDS, 0)
    for f in result["faults"]:
        if f["kind"] not in FAILOVER_KINDS:
            continue
        traffic = f.get("traffic", {})
        tcp = traffic.get("tcp") or {}
        kept = tcp.get("flows", 0) - tcp.get("not_resumed", 0)
        row: dict[str, Any] = {
            "killed": f["member"], "new_primary": f.get("new_primary"),
            "tcp_kept": kept, "tcp_flows": tcp.get("flows", 0),
            "detect_ms": f.get("detect_ms"), "reroute_ms": f.get("reroute_ms"),
            "gap_ms": {}}
        for kind in KINDS:
            if kind not in traffic:
                continue
            g = traffic[kind].get("max_gap_ms")
            row["gap_ms"][kind] = g
            if g == 0:
                below[kind] += 1  # traffic flowed, no silence above the threshold
            elif g is not None:
                gaps[kind].append(g)
        row["max_gap_ms"] = row["gap_ms"].get("tcp")
        rows.append(row)
    killed = [r["killed"] for r in rows]
    alternated = all(a != b for a, b in itertools.pairwise(killed))
    errors = {m: e for m, e in result["cluster"]["member_errors"].items() if e}
    pct = {kind: {"n": len(v), "below_threshold": below[kind], **{k: (None if math.isnan(x) else round(x, 1))
                                  for k, x in percentiles(v).items()}}
           for kind, v in gaps.items() if any(kind in r["gap_ms"] for r in rows)}
    tcp = result["summary"].get("tcp", {})
    return {
        "failovers": len(rows), "alternated": alternated, "per_failover": rows,
        "gap_ms": pct.get("tcp", {"n": 0, "below_threshold": 0,
                                  **dict.fromkeys(("p50", "p90", "p99", "max"))}),
        "gaps_by_kind": pct, "tcp_survived": tcp.get("survived"),
        "tcp_flows": tcp.get("flows"),
        "member_errors": errors, "ok": bool(rows) and not errors
        and tcp.get("survived") == tcp.get("flows"),
    }


def print_soak(summary: dict[str, Any], console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    kinds = list(summary["gaps_by_kind"])
    table = Table(title=f"soak: {summary['failovers']} failovers",
                  caption="gaps in ms: the longest silence of each flow kind after the "
                          "failover (<100: none above the probes' 100 ms threshold, "
                          "-: no traffic of that kind)")
    for col in ("#", "killed", "new primary", "TCP kept", *(f"{KIND_LABEL[k]} gap"
                                                            for k in kinds),
                "detect ms", "reroute ms"):
        table.add_column(col, justify="right")
    for i, r in enumerate(summary["per_failover"], 1):
        table.add_row(str(i), r["killed"], r["new_primary"] or "-",
                      f"{r['tcp_kept']}/{r['tcp_flows']}",
                      *(fmt_gap(r["gap_ms"].get(k)) for k in kinds),
                      fmt_ms(r["detect_ms"]), fmt_ms(r["reroute_ms"]))
    console.print(table)
    for kind, g in summary["gaps_by_kind"].items():
        below = f", {g['below_threshold']} under 100 ms" if g["below_threshold"] else ""
        console.print(f"  {KIND_LABEL[kind]} gap per failover ({g['n']} measured{below}): "
                      f"p50 {fmt_ms(g['p50'])} ms, p90 {fmt_ms(g['p90'])} ms, max "
                      f"{fmt_ms(g['max'])} ms", highlight=False)
    console.print(f"  primary alternated: {'yes' if summary['alternated'] else 'no'}; TCP "
                  f"streams surviving the whole soak: {summary['tcp_survived']}/"
                  f"{summary['tcp_flows']}; member errors: "
                  f"{summary['member_errors'] or 'none'}", highlight=False)
