"""Analysis of a failover run, pure: the probes' merged reports, the member and
controller logs and the applied faults in, the result dict (flows, faults, summary) out.

``analyze(...)`` builds the whole result; the helpers (``flow_rows``,
``fault_metrics``, ``summarize``, ``check_expectations``) are its steps, so
that reports can be tested from synthetic data (tests/unit/test_report.py).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.gaps import Gap, gap_owner, percentiles
from lab.probes.common import MSG
from lab.scenario import Scenario

MSG_SIZE = MSG.size  # bytes per counter message of the TCP and UDP probes
LOG_T = re.compile(r"t=(\d+\.\d+)")
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
SYNC_LAG = re.compile(r"lag: unacked_records=(\d+) oldest_unacked=([\d.]+)ms")
# member log lines that show the cluster noticed a fault (fgcp/hamember.py)
DETECT_NEEDLES = ("HA peer lost t=", "carrier down t=", "HA became primary t=",
                  "HA became secondary t=", "execute ha failover set 1 t=")


@dataclass
class Sampler:
    """What the progress loop records: role changes, primaries at once, sync lag."""

    roles: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    max_primaries: int = 0
    sync_lag: list[tuple[float, int, float]] = field(default_factory=list)

    def add_roles(self, now: float, roles: dict[str, str]) -> None:
        if not self.roles or self.roles[-1][1] != roles:
            self.roles.append((now, roles))
        self.max_primaries = max(self.max_primaries,
                                 sum(1 for v in roles.values() if v in ("work", "master")))


def log_events(text: str, needle: str) -> list[float]:
    """``t=`` times of the lines of ``text`` containing ``needle`` (sorted)."""
    out = []
    for line in text.splitlines():
        if needle in line:
            m = LOG_T.search(line)
            if m:
                out.append(float(m.group(1)))
    return sorted(out)


def first_after(times: Sequence[float], t: float, before: float = float("inf")) -> float | None:
    return next((x for x in sorted(times) if t <= x < before), None)


def _gap_list(row: dict[str, Any]) -> list[Gap]:
    return [Gap.from_dict(g) for g in row.get("gaps") or []]


def flow_rows(probes: dict[str, dict[str, Any]], end: float) -> list[dict[str, Any]]:
    """One uniform row per flow from the probes' merged reports (lab.probes):
    id, kind, survived, max_gap_ms, gaps (receiver timestamps), bytes lost/duplicated."""
    rows: list[dict[str, Any]] = []
    tcp = probes.get("tcp")
    if tcp:
        sink = {c["id"]: c for c in tcp.get("sink", {}).get("connections", [])
                if c.get("id") is not None}
        for r in tcp["connections"]:
            k = sink.get(r["id"], {})
            gaps = list(r.get("gaps") or [])
            last = k.get("last_arrival")
            if k.get("trailing_gap"):
                gaps.append(k["trailing_gap"])
            elif not r["survived"] and last is not None and end - last > 0.1:
                gaps.append(Gap(last, end, resumed=False).to_dict())
            rows.append({
                "id": f"tcp-{r['id']}", "kind": "tcp", "survived": bool(r["survived"]),
                "connected": r["connected"], "state": r["source_state"],
                "error": r.get("source_error"),
                "max_gap_ms": r.get("max_gap_ms"), "gaps": gaps,
                "first": k.get("first_arrival"), "last": last,
                "sent_bytes": r["bytes_sent"], "received_bytes": r["bytes_received"],
                "lost_bytes": max(0, r["undelivered_messages"]) * MSG_SIZE,
                "dup_bytes": r["duplicated_messages"] * MSG_SIZE,
            })
    udp = probes.get("udp")
    if udp:
        sink = {f["id"]: f for f in udp.get("sink", {}).get("flows", [])}
        # the sink outlives the source: silence after the source stopped is no outage
        src_end = (udp.get("source") or {}).get("ended") or end
        for r in udp["flows"]:
            k = sink.get(r["id"], {})
            gaps = list(r.get("gaps") or [])
            last = k.get("last_arrival")
            tail = None
            if last is None or src_end - last > 0.5:
                tail = Gap(last or src_end, max(src_end, last or src_end),
                           resumed=False).to_dict()
                gaps.append(tail)
            rows.append({
                "id": f"udp-{r['id']}", "kind": "udp", "survived": tail is None and bool(k),
                "max_gap_ms": r.get("max_gap_ms"), "gaps": gaps,
                "first": k.get("first_arrival"), "last": k.get("last_arrival"),
                "sent": r["sent"], "received": r["received"], "lost": r["lost"],
                "duplicates": r["duplicates"],
                "lost_bytes": r["lost"] * MSG_SIZE, "dup_bytes": r["duplicates"] * MSG_SIZE,
            })
    ping = probes.get("ping")
    if ping:
        gaps = list(ping.get("gaps") or [])
        if ping.get("trailing_gap"):
            gaps.append(ping["trailing_gap"])
        rows.append({
            "id": "ping", "kind": "ping", "survived": ping.get("trailing_gap") is None
            and bool(ping.get("received")),
            "max_gap_ms": ping.get("max_gap_ms"), "gaps": gaps,
            "first": ping.get("first_reply"), "last": ping.get("last_reply"),
            "sent": ping.get("transmitted"), "received": ping.get("received"),
            "lost": ping.get("lost"), "duplicates": ping.get("duplicates"),
            "lost_bytes": None, "dup_bytes": None,
        })
    short = probes.get("short_tcp")
    if short:
        windows = list(short.get("failure_windows") or [])
        rows.append({
            "id": "short-tcp", "kind": "short_tcp",
            "survived": not any(not w.get("resumed", True) for w in windows),
            "max_gap_ms": short.get("max_failure_window_ms"), "gaps": windows,
            "first": short.get("started"), "last": short.get("ended"),
            "attempts": short.get("attempts"), "ok": short.get("ok"),
            "failed": short.get("failed"), "lost_bytes": None, "dup_bytes": None,
        })
    iccp = probes.get("iccp")
    if iccp:
        rows += iccp_rows(iccp, end)
    return rows


def _inspected(iccp: dict[str, Any], role: str) -> str | None:
    """The new primary's ``ips=`` field of a probe's session ("-": absent or no
    session); None when no fault ran (there was no "after the failover")."""
    if iccp.get("fault_t") is None:
        return None
    return ((iccp.get("inspection") or {}).get(role) or {}).get("ips") or "-"


def iccp_rows(iccp: dict[str, Any], end: float) -> list[dict[str, Any]]:
    """The ICCP probe's flows (lab.probes.iccp): the benign association (``iccp``: its
    ops, failures, gaps and latency, before and after the fault) and the split attack
    (``iccp_attack``: blocked or answered, logged by the new primary)."""
    rows: list[dict[str, Any]] = []
    fault_t = iccp.get("fault_t")
    c = iccp.get("client")
    if c:
        ops = c.get("ops") or []
        after = [op for op in ops if fault_t is not None and op[0] >= fault_t]
        survived = bool(c["associated"] and c["ended"] == "completed"
                        and c["ops_failed"] == 0)
        gaps = list(c.get("gaps") or [])
        last = c.get("last_ok")
        if not survived and (last is None or end - last > 0.1):
            gaps.append(Gap(last or c.get("started") or end, end, resumed=False).to_dict())
        rows.append({
            "id": "iccp-assoc", "kind": "iccp", "survived": survived,
            "ended": c["ended"], "error": c.get("first_error"),
            "association_attempts": c.get("association_attempts"),
            "max_gap_ms": c.get("max_gap_ms"), "gaps": gaps,
            "first": c.get("first_ok"), "last": last,
            "ops": c["ops_attempted"], "ok": c["ops_ok"], "failed": c["ops_failed"],
            "reads_ok": c["reads_ok"], "writes_ok": c["writes_ok"],
            "ops_after_fault": len(after) if fault_t is not None else None,
            "failed_after_fault": (sum(1 for op in after if not op[2])
                                   if fault_t is not None else None),
            "latency_ms": _pcts([op[3] for op in ops if len(op) > 3 and op[2]]),
            # the failed ops: [time, kind, latency ms] (the first 20)
            "failed_ops": [[op[0], op[1], op[3] if len(op) > 3 else None]
                           for op in ops if not op[2]][:20],
            "inspected_after_failover": _inspected(iccp, "client"),
            "lost_bytes": None, "dup_bytes": None,
        })
    a = iccp.get("attack")
    if a:
        insp = (iccp.get("inspection") or {}).get("attack") or {}
        rows.append({
            "id": "iccp-attack", "kind": "iccp_attack",
            "survived": a["outcome"] == "answered", "outcome": a["outcome"],
            "attack_blocked": bool(a["associated"]) and a["outcome"] in
            ("reset", "closed", "no-answer"),
            "reached_server": a["outcome"] == "answered",
            "split_across_fault": a.get("second_half_on") == "fault",
            "split": a.get("split"), "pdu_len": a.get("pdu_len"),
            "error": a.get("error"), "max_gap_ms": None, "gaps": [],
            "first": a.get("first_half_at"), "last": a.get("second_half_at"),
            "inspected_after_failover": _inspected(iccp, "attack"),
            "logged": insp.get("anomalies") or [],
            "logged_by": iccp.get("new_primary") if insp.get("anomalies") else None,
            "lost_bytes": None, "dup_bytes": None,
        })
    return rows


DEFAULT_PERIOD_S = 0.05  # inter-arrival period assumed for a flow kind not given


def traffic_periods(traffic: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Nominal inter-arrival period (s) of each traffic kind of a scenario."""
    out: dict[str, float] = {}
    for kind, cfg in traffic.items():
        if "rate" in cfg:
            out[kind] = 1.0 / float(cfg["rate"])
        elif "interval" in cfg:
            out[kind] = float(cfg["interval"])
    return out


def _kind_outage(faults: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                 periods: dict[str, float]) -> list[dict[str, dict[str, Any]]]:
    """Per fault, per traffic kind: how many flows it hit and their outages.

    Each gap goes to the fault it started after (`lab.gaps.gap_owner`), never
    to a later one. A flow counts as ``idle`` at a fault when it carried no
    traffic then (not started, already ended, or silent in an outage an
    earlier fault caused); a kind whose every flow was idle reports no gap
    (None), not a zero."""
    times = [f["t"] for f in faults]
    per: list[dict[str, dict[str, Any]]] = [{} for _ in faults]
    for row in rows:
        onset = 2.0 * periods.get(row["kind"], DEFAULT_PERIOD_S)
        owned: list[list[Gap]] = [[] for _ in faults]
        gaps = _gap_list(row)
        owners = [gap_owner(g, times, onset) for g in gaps]
        for g, o in zip(gaps, owners, strict=True):
            if o is not None:
                owned[o].append(g)
        for i, t in enumerate(times):
            k = per[i].setdefault(row["kind"], {"flows": 0, "idle": 0, "hit": 0,
                                                "not_resumed": 0, "gaps_ms": []})
            k["flows"] += 1
            if owned[i]:
                w = max(owned[i], key=lambda g: g.duration_ms)
                k["hit"] += 1
                if w.resumed:
                    k["gaps_ms"].append(round(w.duration_ms, 1))
                else:
                    k["not_resumed"] += 1
                continue
            first, last = row.get("first"), row.get("last")
            silent = any(g.start <= t < g.end for g, o in zip(gaps, owners, strict=True)
                         if o is not None and o < i)
            if silent or (first is not None and t < first) or (last is not None and t > last):
                k["idle"] += 1
    for kinds in per:
        for k in kinds.values():
            g = k.pop("gaps_ms")
            active = k["flows"] - k["idle"]
            # 0.0: traffic flowed through the fault with no silence above the
            # probes' threshold; None: no gap measured (no traffic, or never resumed)
            k["max_gap_ms"] = (max(g) if g else
                               0.0 if active and not k["not_resumed"] else None)
            k["median_gap_ms"] = round(statistics.median(g), 1) if g else None
            k["gaps_ms"] = sorted(g)
    return per


def fault_metrics(faults: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                  member_logs: dict[str, str], controller_log: str,
                  end: float, periods: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per fault: detection / takeover / reroute times (ms after the fault, from the
    member and controller logs) and per traffic kind the outage it caused
    (``periods``: each kind's inter-arrival period, see `traffic_periods`)."""
    out = []
    faults = sorted(faults, key=lambda f: f["t"])
    times = [f["t"] for f in faults]
    detect: list[tuple[float, str]] = []
    takeover: list[tuple[float, str]] = []
    for member, text in member_logs.items():
        for needle in DETECT_NEEDLES:
            detect += [(t, member) for t in log_events(text, needle)]
        takeover += [(t, member) for t in log_events(text, "HA became primary t=")]
    detect.sort()
    takeover.sort()
    reroutes = log_events(controller_log, "reroute t=")
    outages = _kind_outage(faults, rows, periods or {})
    for i, f in enumerate(faults):
        t = f["t"]
        nxt = times[i + 1] if i + 1 < len(times) else float("inf")
        d = next((x for x in detect if t <= x[0] < nxt), None)
        tk = next((x for x in takeover if t <= x[0] < nxt), None)
        rr = first_after(reroutes, t, nxt)
        m = dict(f)
        m.update({
            "detect_ms": _ms(d[0] - t) if d else f.get("detect_ms"),
            "detected_by": d[1] if d else f.get("detected_by"),
            "takeover_ms": _ms(tk[0] - t) if tk else f.get("takeover_ms"),
            "new_primary": tk[1] if tk else f.get("new_primary"),
            "reroute_ms": _ms(rr - t) if rr is not None else f.get("reroute_ms"),
        })
        m["traffic"] = outages[i]
        out.append(m)
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the run: sessions kept, gaps, bytes lost/duplicated per kind."""
    s: dict[str, Any] = {}
    tcp = [r for r in rows if r["kind"] == "tcp"]
    if tcp:
        gaps = [r["max_gap_ms"] for r in tcp if r["survived"] and r["max_gap_ms"] is not None]
        s["tcp"] = {
            "flows": len(tcp), "connected": sum(1 for r in tcp if r["connected"]),
            "survived": sum(1 for r in tcp if r["survived"]),
            "survival_ratio": round(sum(1 for r in tcp if r["survived"]) / len(tcp), 4),
            "max_gap_ms": max(gaps) if gaps else None,
            "gap_ms": _pcts(gaps),
            "lost_bytes": sum(r["lost_bytes"] for r in tcp),
            "dup_bytes": sum(r["dup_bytes"] for r in tcp),
        }
    for kind in ("udp", "ping"):
        rs = [r for r in rows if r["kind"] == kind]
        if rs:
            s[kind] = {"flows": len(rs), "resumed": sum(1 for r in rs if r["survived"]),
                       "max_gap_ms": max((r["max_gap_ms"] or 0.0) for r in rs),
                       "lost": sum(r["lost"] or 0 for r in rs),
                       "duplicates": sum(r["duplicates"] or 0 for r in rs)}
    for r in rows:
        if r["kind"] == "iccp":
            s["iccp"] = {k: r[k] for k in (
                "survived", "ended", "ops", "ok", "failed", "ops_after_fault",
                "failed_after_fault", "max_gap_ms", "latency_ms", "inspected_after_failover")}
        elif r["kind"] == "iccp_attack":
            s["iccp_attack"] = {k: r[k] for k in (
                "outcome", "attack_blocked", "reached_server", "split_across_fault",
                "inspected_after_failover", "logged_by")}
    short = [r for r in rows if r["kind"] == "short_tcp"]
    if short:
        r = short[0]
        s["short_tcp"] = {"attempts": r["attempts"], "ok": r["ok"], "failed": r["failed"],
                          "max_failure_window_ms": r["max_gap_ms"]}
    return s


def _pcts(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    return {k: round(v, 1) for k, v in percentiles(values).items()}


def check_expectations(expect: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """What the scenario's ``expect:`` section says and the result contradicts
    (empty list: every expectation holds)."""
    bad = []
    tcp = result["summary"].get("tcp") or {}
    if "tcp_survived" in expect:
        want, got, total = expect["tcp_survived"], tcp.get("survived", 0), tcp.get("flows", 0)
        ok = (got == total if want == "all" else got == 0 if want == "none" else got >= want)
        if not ok:
            bad.append(f"tcp_survived: expected {want}, got {got}/{total}")
    if "split_brain" in expect:
        sb = result["cluster"]["split_brain"]
        if expect["split_brain"] == "resolved" and not (sb["detected"] and sb["resolved"]):
            bad.append(f"split_brain: expected resolved, got {sb}")
        if expect["split_brain"] == "none" and sb["detected"]:
            bad.append("split_brain: expected none, one was detected")
    if "max_tcp_gap_ms" in expect:
        gap = tcp.get("max_gap_ms")
        if gap is None or gap > expect["max_tcp_gap_ms"]:
            bad.append(f"max_tcp_gap_ms: expected <= {expect['max_tcp_gap_ms']}, got {gap}")
    bad += _iccp_expectations(expect, result)
    if expect.get("member_errors") == "none":
        errs = {m: e for m, e in result["cluster"]["member_errors"].items() if e}
        if errs:
            bad.append(f"member_errors: expected none, got {errs}")
    return bad


def _iccp_expectations(expect: dict[str, Any], result: dict[str, Any]) -> list[str]:
    bad = []
    s = result["summary"]
    assoc, attack = s.get("iccp") or {}, s.get("iccp_attack") or {}
    want = expect.get("iccp_association")
    if want is not None:
        got = "survived" if assoc.get("survived") else "broken"
        if got != want:
            bad.append(f"iccp_association: expected {want}, got {got} (ended "
                       f"{assoc.get('ended')}, {assoc.get('failed')} of {assoc.get('ops')} "
                       f"ops failed, {assoc.get('failed_after_fault')} after the fault)")
    want = expect.get("iccp_attack")
    if want is not None:
        got = "blocked" if attack.get("attack_blocked") else "answered" \
            if attack.get("reached_server") else f"{attack.get('outcome')}"
        if want == "blocked" and not attack.get("split_across_fault"):
            bad.append("iccp_attack: expected blocked, but the attack was not split across "
                       "a fault (no fault released its second half)")
        elif got != want:
            bad.append(f"iccp_attack: expected {want}, got {got} (outcome "
                       f"{attack.get('outcome')})")
    want = expect.get("iccp_inspected_after_failover")
    if want is not None:
        seen = {r["id"]: r.get("inspected_after_failover") for r in result["flows"]
                if r["kind"] in ("iccp", "iccp_attack")}
        if not seen or any(v != want for v in seen.values()):
            bad.append(f"iccp_inspected_after_failover: expected {want}, got {seen}")
    return bad


def log_errors(text: str, limit: int = 20) -> list[str]:
    """Lines of a member log that report an error (ERROR/CRITICAL or a traceback)."""
    return [ln for ln in text.splitlines() if ERROR_LINE.search(ln)][:limit]


def parse_sync_lag(text: str) -> tuple[int, float] | None:
    """(unacked records, oldest unacked ms) from ``diagnose sys session sync``."""
    m = SYNC_LAG.search(text)
    return (int(m.group(1)), float(m.group(2))) if m else None


def reference_fault_times(logs: dict[str, str], faults: list[dict[str, Any]]) -> None:
    """Fill detect/takeover of reference faults from the notify logs
    ("<epoch> notify primary" = VRRP master; "conntrackd -c" = state committed)."""
    prim: list[tuple[float, str]] = []
    commit: list[tuple[float, str]] = []
    for member, text in logs.items():
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                try:
                    t = float(parts[0])
                except ValueError:
                    continue
                if parts[1:3] == ["notify", "primary"]:
                    prim.append((t, member))
                elif parts[1:3] == ["conntrackd", "-c"]:
                    commit.append((t, member))
    prim.sort()
    commit.sort()
    for i, f in enumerate(faults):
        nxt = faults[i + 1]["t"] if i + 1 < len(faults) else float("inf")
        p = next((x for x in prim if f["t"] <= x[0] < nxt and x[1] != f["member"]), None)
        c = next((x for x in commit if f["t"] <= x[0] < nxt), None)
        if p:
            f["detect_ms"] = f["takeover_ms"] = _ms(p[0] - f["t"])
            f["new_primary"] = f["detected_by"] = p[1]
        if c:
            f["sync_commit_ms"] = _ms(c[0] - f["t"])


def analyze(sc: Scenario, system: str, t0: float, t_end: float,
                 applied: list[dict[str, Any]], probes: dict[str, Any],
                 info: dict[str, Any], sampler: Sampler | None = None) -> dict[str, Any]:
    """The result dict (pure: probe reports + logs + faults in, metrics out)."""
    sampler = sampler or Sampler()
    rows = flow_rows(probes, t_end)
    faults = fault_metrics(applied, rows, info["member_logs"], info["controller_log"], t_end,
                           traffic_periods(sc.traffic))
    if system == "reference":
        reference_fault_times(info["member_logs"], faults)
    histories = "\n".join(m["ha_history"] for m in info["members"].values())
    lags = [ms for _, _, ms in sampler.sync_lag]
    unacked = [n for _, n, _ in sampler.sync_lag]
    tcp = probes.get("tcp") or {}
    result = {
        "tool": "fgcp-lab run", "format": 1, "system": system,
        "scenario": {
            "name": sc.name, "description": sc.description, "source": sc.source,
            "topology": {"clients": sc.clients, "servers": sc.servers,
                         "members": len(sc.members)},
            "ha": sc.ha, "traffic": sc.traffic,
            "faults": [vars(f) for f in sc.faults], "warmup": sc.warmup, "settle": sc.settle,
        },
        "settings": info["settings"],
        "started": t0, "ended": t_end,
        "faults": faults,
        "expect": sc.expect,
        "flows": rows,
        "summary": summarize(rows),
        "cluster": {
            "roles": [{"t": t, "roles": r} for t, r in sampler.roles],
            "roles_end": info["roles_end"],
            "max_primaries_at_once": sampler.max_primaries,
            "split_brain": {
                "detected": "split brain" in histories or sampler.max_primaries > 1,
                "resolved": ("split brain resolved" in histories
                             or sampler.max_primaries > 1)
                and sum(1 for r in info["roles_end"].values() if r in ("work", "master")) == 1,
            },
            "sync_lag": {"samples": len(lags),
                         "max_oldest_unacked_ms": max(lags) if lags else None,
                         "max_unacked_records": max(unacked) if unacked else None},
            "member_errors": {m: v["errors"] for m, v in info["members"].items()},
        },
        "timeline": (tcp.get("sink") or {}).get("timeline"),
        "members": {m: {k: v[k] for k in ("config", "config_source", "ha_history",
                                           "ha_status")}
                    for m, v in info["members"].items()},
    }
    result["expect_failures"] = check_expectations(sc.expect, result)
    return result
