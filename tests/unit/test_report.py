"""Experiment reports from a synthetic run (no lab): the metrics lab.analysis derives
from probe reports and logs, and the JSON, PNG and HTML files lab.report writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.analysis import Sampler, analyze, log_errors, parse_sync_lag
from lab.compare import compare_results, write_compare
from lab.report import fault_table_rows, print_summary, summary_lines, write_reports
from lab.scenario import load_scenario
from lab.soak import soak_summary

T0 = 1_700_000_000.0
KILL = T0 + 2.0


def gap(start: float, end: float, resumed: bool = True) -> dict[str, Any]:
    return {"start": start, "end": end, "resumed": resumed,
            "duration_ms": round((end - start) * 1000, 3)}


def tcp_probe(survivors: int, total: int, outage: float) -> dict[str, Any]:
    """tcp merge report: ``survivors`` streams paused ``outage`` s at the kill, the
    others reset by it."""
    conns, sink = [], []
    for i in range(total):
        ok = i < survivors
        g = [gap(KILL + 0.05, KILL + 0.05 + outage)] if ok else []
        conns.append({
            "id": i, "connected": True, "survived": ok, "source_state": "open" if ok else "reset",
            "source_error": None if ok else "ECONNRESET", "messages_sent": 250,
            "messages_received": 250 if ok else 100, "undelivered_messages": 0 if ok else 150,
            "lost_messages": 0, "duplicated_messages": 1 if i == 0 else 0,
            "bytes_sent": 5000, "bytes_received": 5000 if ok else 2000,
            "max_gap_ms": round(outage * 1000, 3) if ok else 20.0, "gaps": g,
        })
        sink.append({"id": i, "first_arrival": T0 + 0.01, "last_arrival":
                     T0 + 5.0 if ok else KILL + 0.04, "trailing_gap": None})
    bins = [[b, 40 if not 20 <= b < 20 + outage * 10 else 0] for b in range(50)]
    return {"kind": "tcp", "connections": conns,
            "summary": {"conns": total, "survived": survivors},
            "source": {}, "sink": {"connections": sink,
                                   "timeline": {"start": T0, "bin_s": 0.1, "bins": bins}}}


def synthetic(system: str = "fgcp", survivors: int = 4, outage: float = 0.35) -> dict[str, Any]:
    probes = {
        "tcp": tcp_probe(survivors, 4, outage),
        "udp": {"kind": "udp", "flows": [{"id": 0, "sent": 500, "received": 470, "lost": 30,
                                          "duplicates": 0, "max_gap_ms": 310.0,
                                          "gaps": [gap(KILL + 0.02, KILL + 0.33)]}],
                "sink": {"flows": [{"id": 0, "first_arrival": T0, "last_arrival": T0 + 5,
                                    "trailing_gap": None}]}},
        "ping": {"kind": "ping", "transmitted": 500, "received": 470, "lost": 30,
                 "duplicates": 0, "max_gap_ms": 320.0, "gaps": [gap(KILL, KILL + 0.32)],
                 "trailing_gap": None, "first_reply": T0, "last_reply": T0 + 5},
    }
    applied = [{"index": 0, "kind": "kill-primary", "member": "fgt1", "t": KILL, "port": None,
                "restored_at": None, "primary_before": "fgt1", "detail": "", "extra": {}}]
    logs = {"fgt1": f"2026 INFO fgcp.hamember: HA became primary t={T0:.6f} (from hello): x\n",
            "fgt2": (f"x INFO fgcp.hamember: HA peer lost t={KILL + 0.31:.6f} serial=F: lost\n"
                     f"x INFO fgcp.hamember: HA became primary t={KILL + 0.312:.6f} (standby)\n"
                     "x ERROR fgcp.daemon: something broke\n")}
    if system == "reference":
        logs = {"fgt1": "", "fgt2": f"{KILL + 0.4:.6f} notify primary\n"
                                    f"{KILL + 0.45:.6f} conntrackd -c rc=0\n"}
    info = {
        "member_logs": logs,
        "controller_log": f"reroute t={KILL + 0.33:.6f} dpid=1 mac=00:09:0f:09:0a:00\n",
        "members": {m: {"config": f"config system ha\n    set priority {p}\nend\n",
                        "config_source": f"{m}.conf", "ha_history": f"history of {m} <b>",
                        "ha_status": "HA Health Status: OK",
                        "errors": log_errors(logs[m])} for m, p in (("fgt1", 200),
                                                                    ("fgt2", 100))},
        "roles_end": {"fgt2": "work"},
        "settings": ({"hb_interval_ms": 100, "hb_lost_threshold": 3, "detect_budget_ms": 300}
                     if system == "fgcp" else {"advert_int_ms": 100, "master_down_ms": 300}),
    }
    sampler = Sampler()
    sampler.add_roles(T0, {"fgt1": "work", "fgt2": "standby"})
    sampler.add_roles(KILL + 0.4, {"fgt2": "work"})
    sampler.sync_lag.append((T0 + 1, 3, 12.5))
    return analyze(load_scenario("default"), system, T0, T0 + 5.2, applied, probes, info,
                        sampler)


def test_fault_metrics_from_logs_and_probes() -> None:
    r = synthetic(survivors=3)
    f = r["faults"][0]
    assert f["detect_ms"] == pytest.approx(310, abs=1)
    assert f["takeover_ms"] == pytest.approx(312, abs=1)
    assert f["new_primary"] == "fgt2"
    assert f["reroute_ms"] == pytest.approx(330, abs=1)
    tcp = f["traffic"]["tcp"]
    assert (tcp["flows"], tcp["not_resumed"], tcp["max_gap_ms"]) == (4, 1, 350.0)
    s = r["summary"]["tcp"]
    assert (s["survived"], s["flows"]) == (3, 4)
    assert s["lost_bytes"] == 150 * 20 and s["dup_bytes"] == 20
    assert r["cluster"]["member_errors"]["fgt2"] == ["x ERROR fgcp.daemon: something broke"]
    assert r["cluster"]["sync_lag"]["max_oldest_unacked_ms"] == 12.5
    assert not r["cluster"]["split_brain"]["detected"]


def test_summary_table_and_lines(capsys: pytest.CaptureFixture[str]) -> None:
    r = synthetic(survivors=4)
    row = fault_table_rows(r)[0]
    assert row[:4] == ["+2.00", "kill-primary", "fgt1", "fgt2"]
    assert row[7:9] == ["4/4", "350"]
    lines = summary_lines(r)
    assert lines[0].startswith("TCP streams: 4/4 survived, max gap 350 ms")
    assert any(line.startswith("member errors: fgt2: 1") for line in lines)
    from rich.console import Console

    print_summary(r, Console(width=200, force_terminal=False))
    out = capsys.readouterr().out
    assert "kill-primary" in out and "4/4" in out


def test_json_png_html_written(tmp_path: Path) -> None:
    r = synthetic(survivors=2)
    paths = write_reports(r, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["summary"]["tcp"]["survived"] == 2
    assert data["faults"][0]["kind"] == "kill-primary"
    assert data["members"]["fgt1"]["config"].startswith("config system ha")
    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = paths["html"].read_text()
    assert paths["html"].parent == paths["json"].parent
    assert "data:image/png;base64," in page
    assert "set priority 200" in page  # member configs
    assert "history of fgt2 &lt;b&gt;" in page  # HA history, escaped
    assert "kill-primary" in page


def test_compare_ratios_and_files(tmp_path: Path) -> None:
    fg = synthetic("fgcp", survivors=4, outage=0.35)
    ref = synthetic("reference", survivors=2, outage=0.7)
    assert ref["faults"][0]["takeover_ms"] == pytest.approx(400, abs=1)
    assert ref["faults"][0]["sync_commit_ms"] == pytest.approx(450, abs=1)
    cmp = compare_results(fg, ref)
    assert cmp["ratios"]["tcp_gap_fgcp_over_reference"] == pytest.approx(0.5)
    assert cmp["ratios"]["sessions_kept_fgcp_over_reference"] == pytest.approx(2.0)
    assert "300 ms" in cmp["settings"]["fgcp"] and "300 ms" in cmp["settings"]["reference"]
    paths = write_compare(cmp, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data["systems"]) == {"fgcp", "reference"}
    assert data["systems"]["reference"]["summary"]["tcp"]["survived"] == 2
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_soak_summary_reports_errors_and_distribution() -> None:
    s = soak_summary(synthetic(survivors=4))
    assert s["failovers"] == 1 and s["per_failover"][0]["new_primary"] == "fgt2"
    assert s["gap_ms"]["max"] == 350.0
    assert s["member_errors"] == {"fgt2": ["x ERROR fgcp.daemon: something broke"]}
    assert not s["ok"]


def test_parse_sync_lag() -> None:
    text = "sync: create=3\n  lag: unacked_records=7 oldest_unacked=1.5ms\n"
    assert parse_sync_lag(text) == (7, 1.5)
    assert parse_sync_lag("session sync: not running\n") is None


def test_expectations_checked_against_the_result() -> None:
    from lab.analysis import check_expectations

    r = synthetic(survivors=3)
    assert check_expectations({"tcp_survived": 3}, r) == []
    assert check_expectations({"tcp_survived": "all"}, r) == [
        "tcp_survived: expected all, got 3/4"]
    assert check_expectations({"member_errors": "none"}, r)[0].startswith("member_errors")
    assert check_expectations({"split_brain": "resolved"}, r)[0].startswith("split_brain")
    assert check_expectations({"max_tcp_gap_ms": 400}, r) == []
    assert r["expect_failures"][0] == "tcp_survived: expected all, got 3/4"  # default.yaml
