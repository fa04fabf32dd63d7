"""Failover experiment runner: builds the lab for a scenario, starts the traffic mix,
applies the faults in sequence with a live display, and measures every flow and the cluster.

`run_experiment(scenario, out_dir)` returns the result dict (the JSON file's
content); `analyze(...)` is the pure part (probe reports + logs -> metrics) so
that reports can be tested from synthetic data. Systems: "fgcp" (fgcpd members
and the OpenFlow fabric) and "reference" (keepalived + conntrackd kernel routers).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from lab.faults import AppliedFault, FaultInjector, ReferenceFaultInjector
from lab.gaps import Gap, outage_window, percentiles
from lab.scenario import Scenario

MSG_SIZE = 20  # lab.probes.MSG: conn id u32, counter u64, time f64
LOG_T = re.compile(r"t=(\d+\.\d+)")
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")
SYNC_LAG = re.compile(r"lag: unacked_records=(\d+) oldest_unacked=([\d.]+)ms")
# member log lines that show the cluster noticed a fault (fgcp/hamember.py)
DETECT_NEEDLES = ("HA peer lost t=", "carrier down t=", "HA became primary t=",
                  "HA became secondary t=", "execute ha failover set 1 t=")


class ExperimentError(RuntimeError):
    """The experiment could not be run (lab, traffic or a fault failed)."""


# =============================================================================
# pure analysis
# =============================================================================
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
    return rows


def fault_metrics(faults: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                  member_logs: dict[str, str], controller_log: str,
                  end: float) -> list[dict[str, Any]]:
    """Per fault: detection / takeover / reroute times (ms after the fault, from the
    member and controller logs) and per traffic kind the outage around it."""
    out = []
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
    for i, f in enumerate(faults):
        t = f["t"]
        nxt = times[i + 1] if i + 1 < len(times) else float("inf")
        within = min(10.0, nxt - t) if nxt != float("inf") else 10.0
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
        kinds: dict[str, dict[str, Any]] = {}
        for row in rows:
            # a gap that spans the next fault belongs to that fault
            gaps = [g for g in _gap_list(row) if not g.start <= nxt < g.end]
            w = outage_window(gaps, t, within)
            k = kinds.setdefault(row["kind"], {"flows": 0, "hit": 0, "gaps_ms": [],
                                               "not_resumed": 0})
            k["flows"] += 1
            if w is not None:
                k["hit"] += 1
                if w.resumed:
                    k["gaps_ms"].append(round(w.duration_ms, 1))
                else:
                    k["not_resumed"] += 1
        for k in kinds.values():
            g = k.pop("gaps_ms")
            k["max_gap_ms"] = max(g) if g else (0.0 if not k["not_resumed"] else None)
            k["median_gap_ms"] = round(statistics.median(g), 1) if g else None
        m["traffic"] = kinds
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
    if expect.get("member_errors") == "none":
        errs = {m: e for m, e in result["cluster"]["member_errors"].items() if e}
        if errs:
            bad.append(f"member_errors: expected none, got {errs}")
    return bad


def log_errors(text: str, limit: int = 20) -> list[str]:
    """Lines of a member log that report an error (ERROR/CRITICAL or a traceback)."""
    return [ln for ln in text.splitlines() if ERROR_LINE.search(ln)][:limit]


def parse_sync_lag(text: str) -> tuple[int, float] | None:
    """(unacked records, oldest unacked ms) from ``diagnose sys session sync``."""
    m = SYNC_LAG.search(text)
    return (int(m.group(1)), float(m.group(2))) if m else None


# =============================================================================
# systems under test
# =============================================================================
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


class FgcpSystem:
    """fgcpd members behind the OpenFlow fabric (topologies.lab.LabNetwork)."""

    name = "fgcp"

    def __init__(self, sc: Scenario, rundir: Path) -> None:
        self.sc = sc
        self.rundir = rundir
        self.lab: Any = None
        self.history: dict[str, list[str]] = {m: [] for m in sc.member_names()}

    @contextlib.contextmanager
    def running(self, status: Callable[[str], None]) -> Iterator[None]:
        from topologies.lab import LabNetwork

        configs = {}
        for m in self.sc.members:
            path = self.rundir / f"{m.name}.conf"
            path.write_text(m.text)
            configs[m.name] = path
        status("starting the lab (Mininet, controller, fgcpd members)")
        with LabNetwork(clients=self.sc.clients, servers=self.sc.servers,
                        members=len(self.sc.members), configs=configs,
                        rundir=self.rundir, wait_ha=False) as lab:
            self.lab = lab
            status("waiting for one agreed HA primary")
            lab.wait_ha_stable(timeout=40)
            self._wait_traffic(status)
            self.wait_synced(status)
            yield

    def _wait_traffic(self, status: Callable[[str], None]) -> None:
        from topologies.lab import wait_until

        status("waiting for the first ping through the cluster")
        dst = self.lab.host("sv1").IP()
        wait_until(lambda: " 0% packet loss" in self.lab.host("c1").cmd(
            f"ping -c 1 -W 1 {dst}"), 20, "the first ping through the cluster")

    def wait_synced(self, status: Callable[[str], None], timeout: float = 20.0) -> None:
        """With session pickup: until every secondary's bulk sync is complete."""
        if not self.sc.pickup:
            return
        from topologies.lab import wait_until

        primary = self.lab.wait_ha_stable(timeout=40)
        secs = [m for m in self.lab.running_members() if m != primary]
        if secs:
            status("waiting for the secondaries' bulk session sync")

        def done() -> bool:
            return all("bulk=complete" in self._diag(m, "diagnose sys session sync")
                       for m in secs)

        wait_until(done, timeout, "the secondaries' bulk session sync", interval=0.2)

    def _diag(self, member: str, cmd: str) -> str:
        try:
            return self.lab.diag(member, cmd)
        except OSError:
            return ""
        except Exception as exc:  # noqa: BLE001 - ctl errors: member gone
            return f"({type(exc).__name__}: {exc})"

    def injector(self) -> FaultInjector:
        def stable() -> str | None:
            primary = self.lab.wait_ha_stable(timeout=40)
            return primary

        return FaultInjector(self.lab, stable)

    def before_fault(self, fault_kind: str, member: str | None) -> None:
        if fault_kind in ("kill-primary", "power-off"):
            self.wait_synced(lambda s: None)
            if member is not None:
                self.history[member].append(
                    self._diag(member, "diagnose sys ha history read"))

    def sample(self, s: Sampler, now: float) -> None:
        roles = self.lab.roles()
        s.add_roles(now, roles)
        primaries = [m for m, r in roles.items() if r == "work"]
        if primaries:
            lag = parse_sync_lag(self._diag(primaries[0], "diagnose sys session sync"))
            if lag is not None:
                s.sync_lag.append((now, *lag))

    def roles_text(self, s: Sampler) -> str:
        return ", ".join(f"{m}={r or '-'}" for m, r in (s.roles[-1][1] if s.roles else {})
                         .items()) or "-"

    def finish(self) -> dict[str, Any]:
        lab = self.lab
        for m in lab.running_members():
            self.history[m].append(self._diag(m, "diagnose sys ha history read"))
        status = {m: self._diag(m, "get system ha status") for m in lab.running_members()}
        logs = {m: _read(lab.member_log(m)) for m in self.sc.member_names()}
        return {
            "member_logs": logs, "controller_log": _read(lab.controller_log),
            "members": {m.name: {"config": m.text, "config_source": m.source,
                                 "ha_history": "\n--- daemon restarted ---\n".join(
                                     self.history[m.name]),
                                 "ha_status": status.get(m.name, "(not running)"),
                                 "errors": log_errors(logs[m.name])}
                        for m in self.sc.members},
            "roles_end": lab.roles(),
            "settings": {"hb_interval_ms": int(self.sc.ha["hb-interval"]) * 100,
                         "hb_lost_threshold": int(self.sc.ha["hb-lost-threshold"]),
                         "detect_budget_ms": round(self.sc.hb_detect_s() * 1000),
                         "session_pickup": self.sc.pickup},
        }

    def keep_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        if self.lab is not None:
            for p in self.lab.log_files():
                shutil.copy2(p, dest / p.name)


class ReferenceSystem:
    """keepalived (VRRP) + conntrackd (FT-FW) on kernel routers fgt1/fgt2."""

    name = "reference"

    def __init__(self, sc: Scenario, rundir: Path) -> None:
        self.sc = sc
        self.rundir = rundir
        self.lab: Any = None
        self.ref: Any = None

    @contextlib.contextmanager
    def running(self, status: Callable[[str], None]) -> Iterator[None]:
        from topologies.lab import LabNetwork, wait_until
        from topologies.reference import setup_reference

        status("starting the lab (Mininet, kernel routers)")
        with LabNetwork(clients=self.sc.clients, servers=self.sc.servers, members=2,
                        member_mode="kernel", active_members=(), rundir=self.rundir) as lab:
            self.lab = lab
            status(f"starting keepalived (advert_int {self.sc.advert_int():g} s) + conntrackd")
            with setup_reference(lab, advert_int=self.sc.advert_int(),
                                 conntrack_sync=bool(self.sc.reference["conntrack_sync"])) as ref:
                self.ref = ref
                dst = lab.host("sv1").IP()
                wait_until(lambda: " 0% packet loss" in lab.host("c1").cmd(
                    f"ping -c 1 -W 1 {dst}"), 20, "the first ping through the reference")
                yield

    def injector(self) -> ReferenceFaultInjector:
        return ReferenceFaultInjector(self.ref)

    def before_fault(self, fault_kind: str, member: str | None) -> None:
        return

    def sample(self, s: Sampler, now: float) -> None:
        roles = {m.name: ("master" if self.ref.holds_vip(m.name) else "backup")
                 for m in self.ref.members}
        s.add_roles(now, roles)

    def roles_text(self, s: Sampler) -> str:
        return ", ".join(f"{m}={r}" for m, r in (s.roles[-1][1] if s.roles else {}).items())

    def finish(self) -> dict[str, Any]:
        members = {}
        logs = {}
        for m in self.ref.members:
            notify = _read(m.notify_log)
            ka = _read(m.path("keepalived.out"))
            logs[m.name] = notify
            members[m.name] = {
                "config": (f"# keepalived.conf\n{_read(m.keepalived_conf)}\n"
                           f"# conntrackd.conf\n{_read(m.conntrackd_conf)}"),
                "config_source": str(m.workdir),
                "ha_history": notify + "\n--- keepalived ---\n" + "\n".join(
                    ka.splitlines()[-60:]),
                "ha_status": str(self.ref.status().get(m.name)),
                "errors": [ln for ln in ka.splitlines() if "error" in ln.lower()][:20],
            }
        return {
            "member_logs": logs, "controller_log": "", "members": members,
            "roles_end": {m.name: "master" if self.ref.holds_vip(m.name) else "backup"
                          for m in self.ref.members},
            "settings": {"advert_int_ms": round(self.sc.advert_int() * 1000),
                         "master_down_ms": round(3 * self.sc.advert_int() * 1000),
                         "conntrack_sync": bool(self.sc.reference["conntrack_sync"])},
        }

    def keep_logs(self, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        if self.lab is not None:
            for p in self.lab.log_files():
                shutil.copy2(p, dest / p.name)
        if self.ref is not None:
            for p in self.ref.members[0].workdir.glob("*"):
                if p.is_file():
                    shutil.copy2(p, dest / p.name)


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


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# =============================================================================
# traffic
# =============================================================================
@contextlib.contextmanager
def traffic(lab: Any, sc: Scenario, workdir: Path) -> Iterator[dict[str, Any]]:
    """Start the scenario's traffic; yields {kind: handle}; always stops it."""
    from lab import probes

    handles: dict[str, Any] = {}
    try:
        t = sc.traffic
        if "tcp" in t:
            c = t["tcp"]
            handles["tcp"] = probes.start_tcp_streams(
                lab, c["client"], c["server"], conns=int(c["conns"]), rate=float(c["rate"]),
                port=int(c["port"]), workdir=workdir / "tcp")
        if "udp" in t:
            c = t["udp"]
            handles["udp"] = probes.start_udp_streams(
                lab, c["client"], c["server"], flows=int(c["flows"]),
                interval=float(c["interval"]), port=int(c["port"]), workdir=workdir / "udp")
        if "ping" in t:
            c = t["ping"]
            handles["ping"] = probes.start_ping(lab, c["client"], c["server"],
                                                interval=float(c["interval"]),
                                                workdir=workdir / "ping")
        if "short_tcp" in t:
            c = t["short_tcp"]
            handles["short_tcp"] = probes.start_short_tcp(
                lab, c["client"], c["server"], rate=float(c["rate"]),
                port=int(c["port"]), timeout=float(c["timeout"]),
                workdir=workdir / "short")
        yield handles
    finally:
        for h in handles.values():
            if h.result is None:
                with contextlib.suppress(Exception):
                    h.stop(collect=False)


# =============================================================================
# progress display
# =============================================================================
class Progress:
    """Live display (rich) of an experiment: phase, time, roles, faults, sync lag."""

    def __init__(self, sc: Scenario, system: str, console: Any = None, live: bool = True) -> None:
        self.sc = sc
        self.system = system
        self.console = console
        self.phase = "starting"
        self.t0: float | None = None
        self.total = sc.duration
        self.lines: list[str] = []
        self.roles = "-"
        self.lag = ""
        self._live: Any = None
        self._enabled = live and console is not None

    def __enter__(self) -> Self:
        if self._enabled:
            from rich.live import Live

            self._live = Live(self.render(), console=self.console, refresh_per_second=4,
                              transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
            if self.console is not None:  # the live panel was transient: keep the events
                for line in self.lines:
                    self.console.print(f"  {line}", highlight=False)

    def status(self, phase: str) -> None:
        self.phase = phase
        if self._live is None and self.console is not None:
            self.console.print(f"[dim]{self.system}: {phase}[/dim]")
        self.refresh()

    def note(self, line: str) -> None:
        self.lines.append(line)
        if self._live is None and self.console is not None:
            self.console.print(f"  {self.system}: {line}", highlight=False)
        self.refresh()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Any:
        from rich.markup import escape
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        elapsed = 0.0 if self.t0 is None else time.time() - self.t0
        bar = ProgressBar(total=max(self.total, 0.1), completed=min(elapsed, self.total),
                          width=40)
        grid.add_row("phase", self.phase)
        grid.add_row("traffic", f"{elapsed:5.1f} / {self.total:.1f} s")
        grid.add_row("", bar)
        grid.add_row("roles", self.roles)
        if self.lag:
            grid.add_row("sync lag", self.lag)
        for line in self.lines[-6:]:
            grid.add_row("event", line)
        return Panel(grid, title=escape(f"{self.sc.name} [{self.system}]"), expand=False)


# =============================================================================
# the runner
# =============================================================================
def make_system(sc: Scenario, system: str, rundir: Path) -> FgcpSystem | ReferenceSystem:
    if system == "fgcp":
        return FgcpSystem(sc, rundir)
    if system == "reference":
        return ReferenceSystem(sc, rundir)
    raise ExperimentError(f"unknown system {system!r} (fgcp or reference)")


def check_supported(sc: Scenario, system: str) -> None:
    """Raise ExperimentError when a fault has no equivalent on ``system``."""
    if system == "reference":
        bad = [f"faults[{i}].kind: {f.kind}" for i, f in enumerate(sc.faults)
               if not ReferenceFaultInjector.supports(f.kind)]
        if bad:
            raise ExperimentError(
                f"{sc.source}: {'; '.join(bad)}: no equivalent on keepalived + conntrackd "
                "(supported: kill-primary, power-off, monitor-link-down, old-primary-back)")
        if len(sc.members) != 2 or sc.faults and any(
                f.member not in ("primary",) for f in sc.faults
                if f.kind != "old-primary-back"):
            raise ExperimentError(f"{sc.source}: the reference runs 2 members and fails "
                                  "the master only (member: primary)")


def run_experiment(sc: Scenario, out_dir: Path | None = None, system: str = "fgcp",
                   console: Any = None, live: bool = True,
                   keep_logs: bool = True) -> dict[str, Any]:
    """Run ``sc`` on ``system``; returns the result (see lab.report for the files)."""
    check_supported(sc, system)
    rundir = Path(tempfile.mkdtemp(prefix=f"fgcp-run-{system}-", dir=_run_base()))
    sys_ = make_system(sc, system, rundir)
    sampler = Sampler()
    applied: list[AppliedFault] = []
    probes: dict[str, Any] = {}
    t0 = t_end = 0.0
    try:
        with Progress(sc, system, console, live) as prog, sys_.running(prog.status):
            injector = sys_.injector()
            try:
                prog.status("starting traffic")
                with traffic(sys_.lab, sc, rundir / "probes") as handles:
                    t0 = time.time()
                    prog.t0 = t0
                    prog.status("traffic running")
                    pending: list[tuple[float, AppliedFault]] = []

                    def idle(until: float) -> None:
                        last_sample = 0.0
                        while True:
                            now = time.time()
                            for due, rec in list(pending):
                                if due <= now:
                                    pending.remove((due, rec))
                                    injector.restore(rec)
                                    prog.note(f"+{rec.restored_at - t0:5.2f} s  restored "
                                              f"{rec.kind} on {rec.member}")
                            if now >= until and not any(d <= until for d, _ in pending):
                                return
                            if now - last_sample >= 0.25:
                                last_sample = now
                                with contextlib.suppress(Exception):
                                    sys_.sample(sampler, now)
                                prog.roles = sys_.roles_text(sampler)
                                if sampler.sync_lag:
                                    _, n, ms = sampler.sync_lag[-1]
                                    prog.lag = f"{n} unacked records, oldest {ms:.1f} ms"
                                prog.refresh()
                            time.sleep(0.05)

                    for i, f in enumerate(sc.faults):
                        prog.status(f"next: {f.kind} at +{f.at:g} s")
                        idle(t0 + f.at)
                        target = None
                        if f.kind in ("kill-primary", "power-off") and system == "fgcp":
                            target = (sys_.lab.primaries() or [None])[0] \
                                if f.member == "primary" else f.member
                        sys_.before_fault(f.kind, target)
                        rec = injector.apply(f, i)
                        applied.append(rec)
                        prog.note(f"+{rec.t - t0:5.2f} s  {f.kind} on {rec.member}"
                                  + (f" ({rec.port})" if rec.port else ""))
                        if f.duration:
                            pending.append((rec.t + f.duration, rec))
                    last = max([t0 + sc.duration,
                                *[d + sc.settle for d, _ in pending]])
                    prog.status("settling")
                    idle(last)
                    prog.status("stopping traffic, collecting reports")
                    for kind, h in handles.items():
                        probes[kind] = h.stop()
                    t_end = time.time()
            finally:
                injector.cleanup()
            prog.status("collecting HA history and logs")
            info = sys_.finish()
    except BaseException:
        if keep_logs and out_dir is not None:
            with contextlib.suppress(Exception):
                sys_.keep_logs(Path(out_dir) / f"logs-{system}")
        raise
    else:
        if keep_logs and out_dir is not None:
            sys_.keep_logs(Path(out_dir) / f"logs-{system}")
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    return build_result(sc, system, t0, t_end, [a.to_dict() for a in applied], probes,
                        info, sampler)


def build_result(sc: Scenario, system: str, t0: float, t_end: float,
                 applied: list[dict[str, Any]], probes: dict[str, Any],
                 info: dict[str, Any], sampler: Sampler | None = None) -> dict[str, Any]:
    """The result dict (pure: probe reports + logs + faults in, metrics out)."""
    sampler = sampler or Sampler()
    rows = flow_rows(probes, t_end)
    faults = fault_metrics(applied, rows, info["member_logs"], info["controller_log"], t_end)
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


def _run_base() -> str:
    import os

    return "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()
