"""Reports of failover experiments for people: the summary table (rich), the JSON
result file, the PNG timeline (matplotlib) and the HTML report written next to the JSON.

Everything here is a pure function of the result dict that lab.experiment
builds (or a synthetic one in tests); `write_reports` writes the three files.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib is imported only when a timeline is drawn
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from rich.console import Console

KIND_LABEL = {"tcp": "TCP streams", "udp": "UDP", "ping": "ICMP", "short_tcp": "short TCP",
              "iccp": "ICCP", "iccp_attack": "ICCP attack"}
MARKS = (("t", "fault", "tab:red", "-"), ("detect_ms", "detection", "tab:orange", "--"),
         ("takeover_ms", "takeover", "tab:purple", ":"), ("reroute_ms", "reroute", "tab:green",
                                                          "-."))


class ReportError(RuntimeError):
    """A report file could not be written."""


def fmt_ms(v: float | None) -> str:
    """A millisecond figure for tables: whole ms, "-" when absent."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.0f}"


def fmt_gap(v: float | None) -> str:
    """A per-fault outage: 0 means no silence above the probes' 100 ms threshold,
    None ("-") no gap measured (no traffic of that kind at the fault)."""
    return "<100" if v == 0 else fmt_ms(v)


# -- table ---------------------------------------------------------------------
def fault_table_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table: one per fault."""
    rows = []
    t0 = result.get("started") or 0.0
    for f in result["faults"]:
        tr = f.get("traffic", {})
        tcp = tr.get("tcp")
        kept = "-"
        if tcp:
            kept = f"{tcp['flows'] - tcp['not_resumed']}/{tcp['flows']}"
        rows.append([
            f"+{f['t'] - t0:.2f}", f["kind"], f["member"], f.get("new_primary") or "-",
            fmt_ms(f.get("detect_ms")), fmt_ms(f.get("takeover_ms")), fmt_ms(f.get("reroute_ms")),
            kept, fmt_gap((tcp or {}).get("max_gap_ms")),
            fmt_gap((tr.get("udp") or {}).get("max_gap_ms")),
            fmt_gap((tr.get("ping") or {}).get("max_gap_ms")),
            fmt_gap((tr.get("short_tcp") or {}).get("max_gap_ms")),
        ])
    return rows


FAULT_COLUMNS = ("at s", "fault", "member", "new primary", "detect", "takeover",
                 "reroute", "TCP kept", "TCP gap", "UDP gap", "ping gap", "short fail")
TABLE_CAPTION = ("times in ms after the fault (member/controller logs); gaps: longest "
                 "silence at the receivers that started with the fault (<100: none above "
                 "100 ms, -: no traffic of that kind then)")


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One line per traffic kind over the whole run, plus cluster facts."""
    s = result["summary"]
    out = []
    if "tcp" in s:
        t = s["tcp"]
        out.append(f"TCP streams: {t['survived']}/{t['flows']} survived, max gap "
                   f"{fmt_ms(t['max_gap_ms'])} ms (p50 {fmt_ms(t['gap_ms']['p50'])}), "
                   f"{t['lost_bytes']} bytes lost, {t['dup_bytes']} duplicated")
    for kind in ("udp", "ping"):
        if kind in s:
            u = s[kind]
            out.append(f"{KIND_LABEL[kind]}: {u['resumed']}/{u['flows']} resumed, max gap "
                       f"{fmt_ms(u['max_gap_ms'])} ms, {u['lost']} lost, "
                       f"{u['duplicates']} duplicated")
    if "short_tcp" in s:
        u = s["short_tcp"]
        out.append(f"short TCP: {u['ok']}/{u['attempts']} ok, {u['failed']} failed, longest "
                   f"failure window {fmt_ms(u['max_failure_window_ms'])} ms")
    out += iccp_lines(s)
    c = result["cluster"]
    lag = c["sync_lag"]
    if lag["samples"]:
        out.append(f"sync lag: max {fmt_ms(lag['max_oldest_unacked_ms'])} ms oldest unacked, "
                   f"max {lag['max_unacked_records']} unacked records "
                   f"({lag['samples']} samples)")
    sb = c["split_brain"]
    if sb["detected"]:
        out.append(f"split brain: detected, {'resolved' if sb['resolved'] else 'NOT resolved'} "
                   f"(max {c['max_primaries_at_once']} primaries at once)")
    errs = {m: e for m, e in c["member_errors"].items() if e}
    out.append("member errors: " + (", ".join(f"{m}: {len(e)}" for m, e in errs.items())
                                    if errs else "none"))
    out.append("settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()))
    return out


def iccp_lines(s: dict[str, Any]) -> list[str]:
    """The ICCP probe's lines of the summary (lab.analysis.summarize's iccp keys)."""
    out = []
    if "iccp" in s:
        a = s["iccp"]
        after = ("" if a["ops_after_fault"] is None else
                 f" ({a['ops_after_fault']} after the fault, {a['failed_after_fault']} failed)")
        lat = a["latency_ms"]
        out.append(f"ICCP association: {'survived' if a['survived'] else 'BROKEN'} "
                   f"({a['ended']}), {a['ok']}/{a['ops']} reads+writes ok{after}, longest gap "
                   f"{fmt_ms(a['max_gap_ms'])} ms, latency p50 {fmt_ms(lat['p50'])} / max "
                   f"{fmt_ms(lat['max'])} ms, inspected after failover: "
                   f"{a['inspected_after_failover'] or '-'}")
    if "iccp_attack" in s:
        a = s["iccp_attack"]
        what = "blocked" if a["attack_blocked"] else (
            "reached the server" if a["reached_server"] else "no result")
        out.append(f"ICCP split attack: {what} ({a['outcome']}), "
                   f"{'split across the fault' if a['split_across_fault'] else 'no fault split it'}"
                   f", inspected after failover: {a['inspected_after_failover'] or '-'}, "
                   f"logged by {a['logged_by'] or 'no member'}")
    return out


ICCP_COLUMNS = ("flow", "outcome", "ops ok/all", "after fault ok/all", "max gap ms",
                "inspected after failover", "attack blocked", "logged by")


def iccp_table_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per ICCP flow: what it did and whether the new primary inspected it."""
    rows = []
    for r in result["flows"]:
        if r["kind"] == "iccp":
            after = ("-" if r["ops_after_fault"] is None else
                     f"{r['ops_after_fault'] - r['failed_after_fault']}/{r['ops_after_fault']}")
            rows.append([r["id"], r["ended"], f"{r['ok']}/{r['ops']}", after,
                         fmt_ms(r["max_gap_ms"]), r["inspected_after_failover"] or "-", "-",
                         "-"])
        elif r["kind"] == "iccp_attack":
            rows.append([r["id"], r["outcome"], "-", "-", "-",
                         r["inspected_after_failover"] or "-",
                         "yes" if r["attack_blocked"] else "no", r["logged_by"] or "-"])
    return rows


def print_summary(result: dict[str, Any], console: Console | None = None) -> None:
    """The summary table and lines on a rich console."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    sc = result["scenario"]
    table = Table(title=escape(f"{sc['name']} [{result['system']}]: {sc['description']}"),
                  caption=TABLE_CAPTION)
    for col in FAULT_COLUMNS:
        table.add_column(col, justify="left" if col in ("fault", "member", "new primary")
                         else "right")
    for row in fault_table_rows(result):
        table.add_row(*row)
    console.print(table)
    iccp = iccp_table_rows(result)
    if iccp:
        t = Table(title="ICCP flows (inspected after failover: the new primary's ips= field)")
        for col in ICCP_COLUMNS:
            t.add_column(col, justify="right" if "/" in col or "ms" in col else "left")
        for row in iccp:
            t.add_row(*row)
        console.print(t)
    for line in summary_lines(result):
        console.print(f"  {line}", highlight=False)


# -- JSON ------------------------------------------------------------------------
def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_json(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(result), indent=1, sort_keys=False) + "\n")
    return path


# -- PNG timeline -----------------------------------------------------------------
def _throughput(result: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    tl = result.get("timeline")
    if not tl or not tl.get("bins"):
        return None
    t0 = result["started"]
    counts = {int(b): n for b, n in tl["bins"]}  # bins without arrivals are absent
    first, last = min(counts), max(counts)
    xs = [tl["start"] + b * tl["bin_s"] - t0 for b in range(first, last + 2)]
    ys = [counts.get(b, 0) / tl["bin_s"] for b in range(first, last + 2)]
    return xs, ys


def _draw_timeline(ax_tp: Axes, ax_flows: Axes, result: dict[str, Any], title: str,
                   max_flows: int = 40) -> None:
    t0 = result["started"]
    end = (result.get("ended") or t0) - t0
    tp = _throughput(result)
    if tp:
        ax_tp.step(tp[0], tp[1], where="post", color="tab:blue", lw=1)
        ax_tp.set_ylabel("TCP msgs/s\n(all streams)")
    else:
        ax_tp.text(0.5, 0.5, "no TCP throughput timeline", transform=ax_tp.transAxes,
                   ha="center")
    ax_tp.set_title(title, fontsize=10)
    flows = [r for r in result["flows"] if r["kind"] != "tcp"]
    tcp = [r for r in result["flows"] if r["kind"] == "tcp"][:max_flows]
    flows = tcp + flows
    labels = []
    for y, r in enumerate(flows):
        first = (r.get("first") or t0) - t0
        last = (r.get("last") or t0) - t0
        ok = "tab:green" if r["survived"] else "tab:gray"
        ax_flows.broken_barh([(first, max(0.0, last - first))], (y - 0.3, 0.6),
                             facecolors=ok, alpha=0.35)
        for g in r.get("gaps") or []:
            s, e = g["start"] - t0, g["end"] - t0
            color = "tab:red" if g.get("resumed", True) else "black"
            ax_flows.broken_barh([(s, max(e - s, 0.01))], (y - 0.4, 0.8), facecolors=color)
        labels.append(r["id"] + ("" if r["survived"] else " x"))
    ax_flows.set_yticks(range(len(flows)))
    ax_flows.set_yticklabels(labels, fontsize=6 if len(flows) > 15 else 8)
    ax_flows.set_ylim(-1, max(len(flows), 1))
    ax_flows.set_xlabel("seconds since traffic start (red: gap, black: never resumed)")
    for f in result["faults"]:
        for key, name, color, style in MARKS:
            v = f.get(key)
            if v is None:
                continue
            x = f["t"] - t0 if key == "t" else f["t"] - t0 + v / 1000.0
            for ax in (ax_tp, ax_flows):
                ax.axvline(x, color=color, ls=style, lw=1.2, label=name)
        if f.get("restored_at"):
            for ax in (ax_tp, ax_flows):
                ax.axvline(f["restored_at"] - t0, color="tab:brown", ls="-", lw=0.8,
                           label="restored")
    ax_flows.set_xlim(0, max(end, 0.1))
    ax_tp.set_xlim(0, max(end, 0.1))
    handles, labs = ax_tp.get_legend_handles_labels()
    seen: dict[str, Artist] = {}
    for h, lab in zip(handles, labs, strict=True):
        seen.setdefault(lab, h)
    if seen:
        ax_tp.legend(seen.values(), seen.keys(), fontsize=7, loc="lower left", ncol=5)


def write_timeline(results: Sequence[dict[str, Any]], path: Path,
                   titles: Sequence[str] | None = None) -> Path:
    """PNG: per system, TCP throughput over time and one row per flow with its
    gaps; vertical marks for each fault, detection, takeover and reroute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    nflows = max(min(len(r["flows"]), 48) for r in results) if results else 1
    height = sum(1.6 + 0.16 * min(len(r["flows"]), 48) + 0.6 for r in results)
    fig, axes = plt.subplots(2 * n, 1, figsize=(11, max(4.0, height)), squeeze=False,
                             gridspec_kw={"height_ratios": [1, max(1.5, nflows / 10)] * n})
    for i, r in enumerate(results):
        title = (titles[i] if titles else
                 f"{r['scenario']['name']} [{r['system']}]")
        _draw_timeline(axes[2 * i][0], axes[2 * i + 1][0], r, title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- HTML ------------------------------------------------------------------------
def _table_html(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img_html(png: Path | None) -> str:
    if png is None or not png.is_file():
        return ""
    data = base64.b64encode(png.read_bytes()).decode()
    return (f'<p><img alt="timeline" src="data:image/png;base64,{data}" '
            f'style="max-width:100%"></p>')


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;
font-size:13px}th{background:#eee}pre{background:#f6f6f6;padding:8px;font-size:12px;
overflow-x:auto;max-height:30em}details{margin:.5em 0}"""


def result_html(result: dict[str, Any], png: Path | None = None) -> str:
    """The HTML body of one system's result: table, summary, plot, configs, HA history."""
    parts = [_table_html(FAULT_COLUMNS, fault_table_rows(result)),
             f"<p><small>{html.escape(TABLE_CAPTION)}</small></p><ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in summary_lines(result)]
    parts.append("</ul>")
    parts.append(_img_html(png))
    flows = [[r["id"], "yes" if r["survived"] else "no", fmt_ms(r.get("max_gap_ms")),
              str(r.get("lost_bytes") if r.get("lost_bytes") is not None else "-"),
              str(r.get("dup_bytes") if r.get("dup_bytes") is not None else "-"),
              r.get("inspected_after_failover") or "-", str(r.get("error") or "")]
             for r in result["flows"]]
    iccp = iccp_table_rows(result)
    if iccp:
        parts.append("<h3>ICCP flows</h3>" + _table_html(ICCP_COLUMNS, iccp))
    parts.append("<details><summary>Per flow</summary>" + _table_html(
        ("flow", "survived", "max gap ms", "bytes lost", "bytes duplicated",
         "inspected after failover", "error"), flows) + "</details>")
    for name, m in result["members"].items():
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(f"<details><summary>configuration ({html.escape(m['config_source'])})"
                     f"</summary><pre>{html.escape(m['config'])}</pre></details>")
        parts.append("<details open><summary>HA history</summary>"
                     f"<pre>{html.escape(m['ha_history'] or '(none)')}</pre></details>")
        parts.append("<details><summary>HA status at the end</summary>"
                     f"<pre>{html.escape(m['ha_status'] or '')}</pre></details>")
    return "\n".join(parts)


def write_html(result: dict[str, Any], path: Path, png: Path | None = None) -> Path:
    sc = result["scenario"]
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>"
           f"{html.escape(sc['name'])}</title><style>{STYLE}</style></head><body>"
           f"<h1>{html.escape(sc['name'])} [{html.escape(result['system'])}]</h1>"
           f"<p>{html.escape(sc['description'])}</p>"
           f"<p>scenario: {html.escape(sc['source'])}; faults: "
           f"{html.escape(', '.join(f['kind'] for f in sc['faults']) or 'none')}</p>"
           f"{result_html(result, png)}</body></html>\n")
    path.write_text(doc)
    return path


def write_reports(result: dict[str, Any], out_dir: Path,
                  stem: str = "result") -> dict[str, Path]:
    """result.json, result.png and result.html in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = write_json(result, out_dir / f"{stem}.json")
    png = write_timeline([result], out_dir / f"{stem}.png")
    page = write_html(result, out_dir / f"{stem}.html", png)
    return {"json": js, "png": png, "html": page}
