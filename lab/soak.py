"""Soak: N consecutive failovers alternating the primary under one traffic run
(kill the primary, bring it back as secondary, kill the new primary, ...).

`soak_scenario(sc)` derives the fault list from ``soak: {failovers, interval}``;
`soak_summary(result)` (pure) reports survival per failover, the gap
distribution and whether any member logged an error.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Any

from lab.gaps import percentiles
from lab.report import fmt_ms
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


def soak_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per failover (kill-primary): killed member, new primary, TCP streams kept,
    max gap; over all: gap percentiles, alternation, member errors."""
    rows = []
    gaps = []
    for f in result["faults"]:
        if f["kind"] not in ("kill-primary", "power-off"):
            continue
        tcp = f.get("traffic", {}).get("tcp") or {}
        kept = tcp.get("flows", 0) - tcp.get("not_resumed", 0)
        g = tcp.get("max_gap_ms")
        if g is not None:
            gaps.append(g)
        rows.append({"killed": f["member"], "new_primary": f.get("new_primary"),
                     "tcp_kept": kept, "tcp_flows": tcp.get("flows", 0), "max_gap_ms": g,
                     "detect_ms": f.get("detect_ms"), "reroute_ms": f.get("reroute_ms")})
    killed = [r["killed"] for r in rows]
    alternated = all(a != b for a, b in itertools.pairwise(killed))
    errors = {m: e for m, e in result["cluster"]["member_errors"].items() if e}
    pct = {k: (None if math.isnan(v) else round(v, 1))
           for k, v in percentiles(gaps).items()}
    tcp = result["summary"].get("tcp", {})
    return {
        "failovers": len(rows), "alternated": alternated, "per_failover": rows,
        "gap_ms": pct, "tcp_survived": tcp.get("survived"), "tcp_flows": tcp.get("flows"),
        "member_errors": errors, "ok": bool(rows) and not errors
        and tcp.get("survived") == tcp.get("flows"),
    }


def print_soak(summary: dict[str, Any], console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"soak: {summary['failovers']} failovers")
    for col in ("#", "killed", "new primary", "TCP kept", "max gap ms", "detect ms",
                "reroute ms"):
        table.add_column(col, justify="right")
    for i, r in enumerate(summary["per_failover"], 1):
        table.add_row(str(i), r["killed"], r["new_primary"] or "-",
                      f"{r['tcp_kept']}/{r['tcp_flows']}", fmt_ms(r["max_gap_ms"]),
                      fmt_ms(r["detect_ms"]), fmt_ms(r["reroute_ms"]))
    console.print(table)
    g = summary["gap_ms"]
    console.print(f"  gap distribution (max TCP gap per failover): p50 {fmt_ms(g['p50'])} ms, "
                  f"p90 {fmt_ms(g['p90'])} ms, max {fmt_ms(g['max'])} ms; primary alternated: "
                  f"{'yes' if summary['alternated'] else 'no'}; TCP streams surviving the "
                  f"whole soak: {summary['tcp_survived']}/{summary['tcp_flows']}; member "
                  f"errors: {summary['member_errors'] or 'none'}", highlight=False)
