"""Failover benchmark: kill the primary's fgcpd N times, measure the traffic gap.

``python -m lab.failover_bench --trials 10`` (root) runs a ping at 10 ms from c1
to sv1 through the cluster and, per kill, reports the gap seen by the probe
(receiver timestamps of ping -D), the detection time (survivor's "peer lost"
log line), the takeover time and the controller's reroute time (its log), at
hb-interval 1 / hb-lost-threshold 3 and at the FortiOS defaults 2 / 6 (``--timers``;
``1/3/10ms`` is hb-interval 1 with ``hb-interval-in-milliseconds 10ms``).
The probes are lab.probes' (ping and UDP), the log parsing lab.analysis'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.analysis import first_after, log_events
from lab.benchkit import BenchError
from lab.gaps import max_gap
from lab.probes import ProbeHandle, start_ping, start_udp_streams, stop_all
from lab.report import fmt_ms
from topologies.lab import LabNetwork, write_ha_config
from topologies.util import make_run_dir, read_text

UNITS = ("100ms", "10ms")  # hb-interval-in-milliseconds


def parse_timers(name: str) -> tuple[int, int, int]:
    """``H/T`` or ``H/T/10ms`` (hb-interval / hb-lost-threshold / hb-interval-in-milliseconds,
    default 100ms) -> (hb-interval, hb-lost-threshold, unit in ms); ValueError if invalid."""
    parts = name.split("/")
    if len(parts) == 2:
        parts.append("100ms")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError(f"{name!r}: expected hb-interval/hb-lost-threshold[/100ms|10ms]")
    hb, thr, unit = int(parts[0]), int(parts[1]), parts[2]
    if not 1 <= hb <= 20 or not 1 <= thr <= 60 or unit not in UNITS:
        raise ValueError(f"{name!r}: hb-interval 1-20, hb-lost-threshold 1-60, unit "
                         f"{' or '.join(UNITS)}")
    return hb, thr, int(unit.removesuffix("ms"))


@dataclass
class Trial:
    killed: str
    new_primary: str
    gap: float  # seconds, from the probe's receive timestamps
    udp_gap: float | None  # seconds, UDP stream c1 -> sv1 every 10 ms (lab.probes), if run
    detect: float | None  # kill -> survivor logs the peer lost
    takeover: float | None  # kill -> survivor becomes primary
    reroute: float | None  # kill -> controller moves the virtual MAC (first reroute line)

    @property
    def controller(self) -> float | None:
        """Takeover -> reroute: the gratuitous ARP's trip through the controller."""
        if self.reroute is None or self.takeover is None:
            return None
        return self.reroute - self.takeover


def kill_trial(lab: LabNetwork, client: str = "c1", server_ip: str = "203.0.113.11",
               warmup: float = 0.5, settle: float = 1.0, timeout: float = 20.0,
               udp: bool = True) -> Trial:
    """SIGKILL the primary's fgcpd under a 10 ms ping (and a 10 ms UDP stream);
    restart it; measure."""
    primary = lab.wait_ha_stable()
    if primary is None:
        raise BenchError("no HA primary (standalone configuration?)")
    others = [m for m in lab.running_members() if m != primary]
    handles: dict[str, ProbeHandle] = {}
    try:
        if udp:
            handles["udp"] = start_udp_streams(lab, client, interval=0.01,
                                               workdir=lab.rundir / "probes")
        handles["ping"] = start_ping(lab, client, server_ip=server_ip,
                                     workdir=lab.rundir / "ping", wait_reply=True)
        time.sleep(warmup)
        t_kill = lab.kill_daemon(primary)
        deadline = time.time() + timeout
        new = None
        while time.time() < deadline and new is None:
            work = [m for m in others if lab.ha_state(m).get("state") == "work"]
            new = work[0] if work else None
            time.sleep(0.05)
        if new is None:
            raise BenchError(f"no member took over within {timeout:.0f} s after killing {primary}")
        time.sleep(settle)
    finally:
        results = stop_all(handles)
    replies = results["ping"]["reply_times"]
    udp_result = results.get("udp")
    g = max_gap(replies, start=t_kill - warmup / 2, end=time.time() - 0.1)
    udp_ms = udp_result["summary"]["max_gap_ms"] if udp_result else None
    log = read_text(lab.member_log(new))
    ctl_log = read_text(lab.controller_log)
    trial = Trial(
        killed=primary,
        new_primary=new,
        gap=(g.end - g.start) if g else float("inf"),
        udp_gap=None if udp_ms is None else udp_ms / 1000.0,
        detect=_since(first_after(log_events(log, "HA peer lost"), t_kill), t_kill),
        takeover=_since(first_after(log_events(log, "HA became primary"), t_kill), t_kill),
        reroute=_since(first_after(log_events(ctl_log, "reroute t="), t_kill), t_kill),
    )
    lab.start_daemon(primary)
    lab.wait_ha_stable()
    return trial


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else t - t0


# ----------------------------------------------------------------------------- runner


def bench_settings(hb_interval: int, hb_lost_threshold: int,
                   unit_ms: int = 100) -> dict[str, object]:
    """HA settings of a run: the timers under test; hello-holddown 5 s and
    ha-uptime-diff-margin 5 s so that a restarted member rejoins as secondary quickly."""
    return {"hb-interval": hb_interval, "hb-lost-threshold": hb_lost_threshold,
            "hb-interval-in-milliseconds": f"{unit_ms}ms",
            "hello-holddown": 5, "ha-uptime-diff-margin": 5}


def run_set(name: str, trials: int, rundir: Path, udp: bool = True) -> list[Trial]:
    rundir.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(*parse_timers(name))
    configs = {m: write_ha_config(m, rundir / f"{m}.conf", settings) for m in ("fgt1", "fgt2")}
    results = []
    with LabNetwork(configs=configs, rundir=rundir) as lab:
        lab.wait_ha_stable()
        ok = lab.host("c1").cmd("ping -c 3 -i 0.2 -W 1 203.0.113.11")
        if " 0% packet loss" not in ok and "3 received" not in ok:
            time.sleep(1.0)
        for i in range(trials):
            t = kill_trial(lab, udp=udp)
            results.append(t)
            print(f"  [{name}] trial {i + 1}: killed {t.killed}, "
                  f"ping gap {t.gap * 1000:.0f} ms, udp gap {_ms(t.udp_gap)} ms",
                  file=sys.stderr, flush=True)
    return results


def _ms(v: float | None) -> str:
    """Seconds as a whole-ms table figure."""
    return fmt_ms(None if v is None else v * 1000)


def summarize(results: dict[str, list[Trial]]) -> list[dict[str, Any]]:
    rows = []
    for name, trials in results.items():
        hb, thr, unit = parse_timers(name)
        row: dict[str, Any] = {"timers": name, "trials": len(trials),
                               "budget": hb * unit / 1000 * thr + 0.3}
        for key in ("gap", "udp_gap", "detect", "takeover", "reroute", "controller"):
            vals = [getattr(t, key) for t in trials if getattr(t, key) is not None]
            row[f"{key}_median"] = statistics.median(vals) if vals else None
            row[f"{key}_max"] = max(vals) if vals else None
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="FGCP failover: SIGKILL of the primary's fgcpd, "
                  "ping c1 -> sv1 every 10 ms (median / max, ms)")
    table.add_column("hb-interval x lost-threshold")
    table.add_column("trials", justify="right")
    table.add_column("budget", justify="right")
    for key in ("gap", "udp_gap", "detect", "takeover", "reroute", "controller"):
        table.add_column(key, justify="right")
    for r in rows:
        hb, thr, unit = parse_timers(r["timers"])
        table.add_row(
            f"{hb * unit} ms x {thr}", str(r["trials"]), f"{r['budget'] * 1000:.0f}",
            *(f"{_ms(r[f'{k}_median'])} / {_ms(r[f'{k}_max'])}"
              for k in ("gap", "udp_gap", "detect", "takeover", "reroute", "controller")),
        )
    console = Console(width=max(130, Console().width))
    console.print(table)
    console.print("gap: longest interval between ping replies (receiver timestamps); "
                  "udp_gap: longest interval between UDP datagrams at the sink; "
                  "detect / takeover: survivor's log (peer lost / became primary); "
                  "reroute: controller's log (virtual MAC moved); all counted from the kill; "
                  "controller: reroute - takeover (GARP -> flow moved).")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.failover_bench", description=__doc__)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--timers", default="1/3,2/6",
                   help="comma-separated hb-interval/hb-lost-threshold[/10ms] sets, e.g. "
                   "1/3,2/6 or 1/3,1/3/10ms (10ms: hb-interval-in-milliseconds 10ms)")
    p.add_argument("--rundir", default=None)
    p.add_argument("--no-udp", action="store_true", help="ping only (no lab.probes UDP stream)")
    args = p.parse_args(argv)
    sets = [s.strip() for s in args.timers.split(",") if s.strip()]
    for s in sets:
        try:
            parse_timers(s)
        except ValueError as exc:
            p.error(str(exc))
    base = Path(args.rundir) if args.rundir else make_run_dir("fgcp-failover-")
    results = {}
    for name in sets:
        results[name] = run_set(name, args.trials, base / name.replace("/", "-"),
                                udp=not args.no_udp)
    rows = summarize(results)
    (base / "failover_bench.json").write_text(json.dumps(
        {"summary": rows, "trials": {k: [asdict(t) for t in v] for k, v in results.items()}},
        indent=1))
    render(rows)
    print(f"logs: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
