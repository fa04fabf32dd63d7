"""Side-by-side run: the same scenario (topology, traffic, faults) on fgcpd and on the
keepalived (VRRP) + conntrackd (FT-FW) reference; one table, one plot, ratios.

`compare_results(fgcp, reference)` is pure (two lab.experiment results -> the
comparison dict); `run_compare` runs both systems one after the other.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.report import STYLE, _img_html, fmt_ms, result_html, write_json, write_timeline
from lab.scenario import Scenario

if TYPE_CHECKING:  # for annotations: rich is imported where it prints
    from rich.console import Console

METRICS = (
    ("TCP streams kept", lambda r: _kept(r)),
    ("TCP max gap ms (kept streams)", lambda r: r["summary"].get("tcp", {}).get("max_gap_ms")),
    ("TCP median gap ms", lambda r: r["summary"].get("tcp", {}).get("gap_ms", {}).get("p50")),
    ("UDP max gap ms", lambda r: r["summary"].get("udp", {}).get("max_gap_ms")),
    ("ping max gap ms", lambda r: r["summary"].get("ping", {}).get("max_gap_ms")),
    ("detection ms (1st fault)", lambda r: _first_fault(r, "detect_ms")),
    ("takeover ms (1st fault)", lambda r: _first_fault(r, "takeover_ms")),
)


def _kept(r: dict[str, Any]) -> float | None:
    t = r["summary"].get("tcp")
    return None if not t else t["survived"]


def _first_fault(r: dict[str, Any], key: str) -> float | None:
    return r["faults"][0].get(key) if r["faults"] else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def comparable_settings(fgcp: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """FGCP detection budget (hb-interval x hb-lost-threshold) beside VRRP's
    master-down interval (3 x advert_int, plus skew)."""
    f, r = fgcp["settings"], ref["settings"]
    return {
        "fgcp": f"hb-interval {f.get('hb_interval_ms')} ms x hb-lost-threshold "
                f"{f.get('hb_lost_threshold')} = {f.get('detect_budget_ms')} ms",
        "reference": f"VRRP advert_int {r.get('advert_int_ms')} ms x 3 = "
                     f"{r.get('master_down_ms')} ms (+ skew)",
        "fgcp_detect_budget_ms": f.get("detect_budget_ms"),
        "reference_master_down_ms": r.get("master_down_ms"),
    }


def compare_results(fgcp: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Both systems' results, a metric table and ratios fgcp / reference."""
    rows = []
    for name, get in METRICS:
        a, b = get(fgcp), get(ref)
        rows.append({"metric": name, "fgcp": a, "reference": b, "ratio": _ratio(a, b)})
    ft, rt = fgcp["summary"].get("tcp", {}), ref["summary"].get("tcp", {})
    return {
        "tool": "fgcp-lab compare", "format": 1,
        "scenario": fgcp["scenario"],
        "settings": comparable_settings(fgcp, ref),
        "table": rows,
        "ratios": {
            "tcp_gap_fgcp_over_reference": _ratio(ft.get("max_gap_ms"), rt.get("max_gap_ms")),
            "ping_gap_fgcp_over_reference": _ratio(
                fgcp["summary"].get("ping", {}).get("max_gap_ms"),
                ref["summary"].get("ping", {}).get("max_gap_ms")),
            "sessions_kept_fgcp": ft.get("survival_ratio"),
            "sessions_kept_reference": rt.get("survival_ratio"),
            "sessions_kept_fgcp_over_reference": _ratio(ft.get("survival_ratio"),
                                                        rt.get("survival_ratio")),
        },
        "systems": {"fgcp": fgcp, "reference": ref},
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return fmt_ms(v) if abs(v) >= 10 else f"{v:.2f}"
    return "-" if v is None else str(v)


def print_compare(cmp: dict[str, Any], console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    sc = cmp["scenario"]
    table = Table(title=f"{sc['name']}: fgcpd vs keepalived + conntrackd")
    for col in ("metric", "fgcp", "keepalived + conntrackd", "ratio fgcp/ref"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    tcp_total = cmp["systems"]["fgcp"]["summary"].get("tcp", {}).get("flows")
    for row in cmp["table"]:
        a, b = _fmt(row["fgcp"]), _fmt(row["reference"])
        if row["metric"] == "TCP streams kept" and tcp_total:
            a, b = f"{a}/{tcp_total}", f"{b}/{tcp_total}"
        table.add_row(row["metric"], a, b, _fmt(row["ratio"]))
    console.print(table)
    s = cmp["settings"]
    console.print(f"  comparable settings: fgcp {s['fgcp']}  |  reference {s['reference']}",
                  highlight=False)


def write_compare(cmp: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """compare.json, compare.png (both timelines, one figure), compare.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = write_json(cmp, out_dir / "compare.json")
    f, r = cmp["systems"]["fgcp"], cmp["systems"]["reference"]
    png = write_timeline([f, r], out_dir / "compare.png",
                         titles=[f"fgcpd ({cmp['settings']['fgcp']})",
                                 f"keepalived + conntrackd ({cmp['settings']['reference']})"])
    rows = "".join(
        f"<tr><td>{html.escape(x['metric'])}</td><td>{_fmt(x['fgcp'])}</td>"
        f"<td>{_fmt(x['reference'])}</td><td>{_fmt(x['ratio'])}</td></tr>"
        for x in cmp["table"])
    s = cmp["settings"]
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>compare</title>"
           f"<style>{STYLE}</style></head><body><h1>{html.escape(cmp['scenario']['name'])}"
           f": fgcpd vs keepalived + conntrackd</h1>"
           f"<p>fgcp: {html.escape(s['fgcp'])}<br>reference: {html.escape(s['reference'])}</p>"
           f"<table><tr><th>metric</th><th>fgcp</th><th>keepalived + conntrackd</th>"
           f"<th>ratio</th></tr>{rows}</table>{_img_html(png)}"
           f"<h2>fgcpd</h2>{result_html(f)}<h2>keepalived + conntrackd</h2>{result_html(r)}"
           f"</body></html>\n")
    page = out_dir / "compare.html"
    page.write_text(doc)
    return {"json": js, "png": png, "html": page}


def run_compare(sc: Scenario, out_dir: Path, console: Console | None = None,
                live: bool = True) -> dict[str, Any]:
    """Run ``sc`` on fgcpd, then on the reference; returns compare_results(...)."""
    from lab.experiment import check_supported, run_experiment

    check_supported(sc, "reference")  # fail before the first lab is built
    fgcp = run_experiment(sc, out_dir, "fgcp", console, live)
    ref = run_experiment(sc, out_dir, "reference", console, live)
    return compare_results(fgcp, ref)
