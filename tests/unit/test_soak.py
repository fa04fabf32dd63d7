"""Soak figures (lab.analysis.fault_metrics + lab.soak.soak_summary) on the case
issue 14 found: a kill's TCP outage of ~680 ms runs past the old primary's restart
0.5 s later; it must stay with the kill, and no kill may show a zero gap."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from lab.analysis import fault_metrics, summarize, traffic_periods
from lab.soak import print_soak, soak_summary

T0 = 1_700_000_000.0
KILLS = (T0 + 2.0, T0 + 8.0, T0 + 14.0, T0 + 20.0)
TCP_GAPS_MS = (314.0, 660.0, 680.0, 694.0)  # the real per-kill gaps of the run
PERIODS = traffic_periods({"tcp": {"rate": 50.0}, "udp": {"interval": 0.01},
                           "ping": {"interval": 0.01}, "short_tcp": {"rate": 10.0}})


def gap(start: float, end: float, resumed: bool = True) -> dict[str, Any]:
    return {"start": start, "end": end, "resumed": resumed,
            "duration_ms": round((end - start) * 1000, 3)}


def faults() -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(KILLS):
        out.append({"kind": "kill-primary", "member": "fgt1" if i % 2 == 0 else "fgt2",
                    "t": t})
        if i < len(KILLS) - 1:  # the old primary restarts 0.5 s after the kill
            out.append({"kind": "old-primary-back", "member": out[-1]["member"],
                        "t": t + 0.5})
    return out


def tcp_row(n: int, last_arrival_before: float = 0.012) -> dict[str, Any]:
    """Stream ``n``: silent from 12 ms before each kill for that kill's gap."""
    gaps = [gap(t - last_arrival_before, t - last_arrival_before + ms / 1000)
            for t, ms in zip(KILLS, TCP_GAPS_MS, strict=True)]
    return {"id": f"tcp-{n}", "kind": "tcp", "survived": True, "connected": True,
            "max_gap_ms": max(TCP_GAPS_MS), "gaps": gaps, "first": T0, "last": T0 + 25,
            "lost_bytes": 0, "dup_bytes": 0}


def rows() -> list[dict[str, Any]]:
    out = [tcp_row(n) for n in range(3)]
    # UDP 10 ms datagrams: ~330 ms at each kill, ended before the last kill
    out.append({"id": "udp-0", "kind": "udp", "survived": True, "max_gap_ms": 340.0,
                "gaps": [gap(t - 0.004, t + 0.33) for t in KILLS[:3]],
                "first": T0, "last": KILLS[2] + 2.0, "sent": 1, "received": 1, "lost": 0,
                "duplicates": 0, "lost_bytes": 0, "dup_bytes": 0})
    out.append({"id": "ping", "kind": "ping", "survived": True, "max_gap_ms": 350.0,
                "gaps": [gap(t - 0.002, t + 0.348) for t in KILLS], "first": T0,
                "last": T0 + 25, "sent": 1, "received": 1, "lost": 0, "duplicates": 0,
                "lost_bytes": None, "dup_bytes": None})
    return out


def soak_result() -> dict[str, Any]:
    rs = rows()
    fs = fault_metrics(faults(), rs, {}, "", T0 + 25, PERIODS)
    return {"faults": fs, "summary": summarize(rs), "cluster": {"member_errors": {}}}


def test_a_gap_past_the_restart_belongs_to_the_kill_it_started_after() -> None:
    r = soak_result()
    kills = [f for f in r["faults"] if f["kind"] == "kill-primary"]
    assert [f["traffic"]["tcp"]["max_gap_ms"] for f in kills] == pytest.approx(
        TCP_GAPS_MS, abs=0.2)
    assert [f["traffic"]["tcp"]["hit"] for f in kills] == [3, 3, 3, 3]
    # the restarts take none of the kills' outages: the streams were silent
    # (>500 ms gaps) or flowing without a gap (the 314 ms one ended before it)
    backs = [f["traffic"]["tcp"] for f in r["faults"] if f["kind"] == "old-primary-back"]
    assert [b["hit"] for b in backs] == [0, 0, 0]
    assert [b["idle"] for b in backs] == [0, 3, 3]
    assert [b["max_gap_ms"] for b in backs] == [0.0, None, None]


def test_soak_summary_has_no_zero_gaps_and_shows_every_flow_kind() -> None:
    s = soak_summary(soak_result())
    assert s["failovers"] == 4
    assert [row["gap_ms"]["tcp"] for row in s["per_failover"]] == pytest.approx(
        TCP_GAPS_MS, abs=0.2)
    assert s["gap_ms"]["n"] == 4 and s["gap_ms"]["below_threshold"] == 0
    assert s["gap_ms"]["p50"] == pytest.approx(670.0, abs=0.5)  # not 300 as the old code said
    assert s["gap_ms"]["max"] == pytest.approx(694.0, abs=0.2)
    # UDP had no traffic at the last kill: no gap (None), out of its percentiles
    assert [row["gap_ms"]["udp"] for row in s["per_failover"]] == pytest.approx(
        [334.0, 334.0, 334.0, None], abs=0.2)
    assert s["gaps_by_kind"]["udp"]["n"] == 3
    assert s["gaps_by_kind"]["ping"]["n"] == 4
    assert s["gaps_by_kind"]["ping"]["p50"] == pytest.approx(350.0, abs=0.2)
    assert "short_tcp" not in s["gaps_by_kind"]  # no such traffic in this run


def test_print_soak_shows_each_kind(capsys: pytest.CaptureFixture[str]) -> None:
    print_soak(soak_summary(soak_result()), Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "TCP streams gap" in out and "UDP gap" in out and "ICMP gap" in out
    assert "TCP streams gap per failover (4 measured): p50 670 ms" in out
    assert "UDP gap per failover (3 measured)" in out
