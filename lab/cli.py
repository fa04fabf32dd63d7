"""``fgcp-lab run | compare | soak``: failover experiments from a YAML scenario
(or a shipped one by name) and CLI flags; writes JSON, PNG and HTML under results/.

Only argument handling: lab.scenario validates, lab.experiment runs, lab.report,
lab.compare and lab.soak render. Ctrl-C (or SIGTERM) tears everything down, exit 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from lab.scenario import FAULT_KINDS, Scenario, ScenarioError, load_scenario, shipped_scenarios

if TYPE_CHECKING:
    from rich.console import Console


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C so that every context manager tears down."""


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def build_parser(cmd: str) -> argparse.ArgumentParser:
    names = ", ".join(p.stem for p in shipped_scenarios())
    desc = {
        "run": "Run a failover experiment: lab up, traffic, faults, measurements, reports.",
        "compare": "Run a scenario on fgcpd and on keepalived + conntrackd; compare them.",
        "soak": "N consecutive failovers alternating the primary under traffic.",
    }[cmd]
    p = argparse.ArgumentParser(prog=f"fgcp-lab {cmd}", description=desc,
                                epilog=f"shipped scenarios (lab/scenarios): {names}. "
                                f"Fault kinds: {', '.join(FAULT_KINDS)}.")
    p.add_argument("scenario", nargs="?", default="compare" if cmd == "compare" else (
        "soak" if cmd == "soak" else "default"),
                   help="YAML file or shipped scenario name (default: %(default)s)")
    p.add_argument("--fault", action="append", metavar="KIND[@SECONDS]",
                   help="replace the scenario's faults (repeatable), e.g. kill-primary@2")
    p.add_argument("--pickup", choices=("enable", "disable"),
                   help="session-pickup (and -connectionless) on every member")
    p.add_argument("--hb-interval", type=int, help="hb-interval (units of 100 ms)")
    p.add_argument("--hb-lost-threshold", type=int, help="hb-lost-threshold")
    p.add_argument("--hb-interval-in-milliseconds", choices=("100ms", "10ms"),
                   help="the unit of hb-interval (10ms: FortiOS's sub-50 ms failover)")
    p.add_argument("--conns", type=int, help="long-lived TCP streams")
    p.add_argument("--settle", type=float, help="seconds of traffic after the last fault")
    if cmd == "compare":
        p.add_argument("--advert-int", type=float,
                       help="VRRP advert interval in s (default: 3 x advert = hb budget)")
    if cmd == "soak":
        p.add_argument("--failovers", type=int, help="number of failovers")
        p.add_argument("--interval", type=float, help="seconds between failovers")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default results/<scenario>-<time>)")
    p.add_argument("--no-live", action="store_true", help="no live progress display")
    p.add_argument("--check", action="store_true", help="validate the scenario and exit")
    return p


def _overrides(args: argparse.Namespace) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        ha = data.setdefault("ha", {}) if isinstance(data.get("ha", {}), dict) else None
        if ha is not None:
            if args.pickup:
                ha["session-pickup"] = args.pickup
                ha["session-pickup-connectionless"] = args.pickup
            if args.hb_interval is not None:
                ha["hb-interval"] = args.hb_interval
            if args.hb_lost_threshold is not None:
                ha["hb-lost-threshold"] = args.hb_lost_threshold
            if args.hb_interval_in_milliseconds is not None:
                ha["hb-interval-in-milliseconds"] = args.hb_interval_in_milliseconds
        if args.fault:
            data["faults"] = list(args.fault)
        if args.fault or args.pickup:  # the scenario's expectations were for its own set-up
            data.pop("expect", None)
        if args.conns is not None:
            tr = data.get("traffic")
            if tr is None:
                from lab.scenario import default_traffic

                tr = data["traffic"] = default_traffic()
            if isinstance(tr, dict):
                tcp = tr.get("tcp")
                tr["tcp"] = {**(tcp if isinstance(tcp, dict) else {}), "conns": args.conns}
        if args.settle is not None:
            data["settle"] = args.settle
        if getattr(args, "advert_int", None) is not None:
            ref = data.setdefault("reference", {})
            if isinstance(ref, dict):
                ref["advert_int"] = args.advert_int
        if getattr(args, "failovers", None) is not None or getattr(args, "interval", None):
            soak = data.setdefault("soak", {})
            if isinstance(soak, dict):
                if args.failovers is not None:
                    soak["failovers"] = args.failovers
                if args.interval is not None:
                    soak["interval"] = args.interval
    return apply


def main(cmd: str, argv: Sequence[str]) -> int:
    """``fgcp-lab <cmd> ...`` where cmd is run, compare or soak; returns the exit status."""
    args = build_parser(cmd).parse_args(list(argv))
    try:
        sc = load_scenario(args.scenario, _overrides(args))
    except ScenarioError as exc:
        print(f"fgcp-lab {cmd}: {exc}", file=sys.stderr)
        return 2
    if cmd == "soak":
        from lab.soak import soak_scenario

        sc = soak_scenario(sc)
    if cmd == "compare":
        from lab.experiment import ExperimentError, check_supported

        try:
            check_supported(sc, "reference")
        except ExperimentError as exc:
            print(f"fgcp-lab compare: {exc}", file=sys.stderr)
            return 2
    if args.check:
        print(f"{sc.source}: OK ({sc.name}: {len(sc.members)} members, traffic "
              f"{', '.join(sc.traffic) or 'none'}, faults "
              f"{', '.join(f'{f.kind}@{f.at:g}' for f in sc.faults) or 'none'}, "
              f"{sc.duration:.1f} s)")
        return 0
    out = args.out or Path("results") / f"{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 150)
    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        return _run(cmd, sc, out, console, not args.no_live)
    except (KeyboardInterrupt, Terminated):
        console.print(f"[bold red]fgcp-lab {cmd}: interrupted; lab torn down[/bold red]")
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(cmd: str, sc: Scenario, out: Path, console: Console, live: bool) -> int:
    # Here, not at the top: they load Mininet and the plotting stack, which
    # ``--check`` and ``--help`` do not need (no cycle is hidden: tests/unit/test_imports.py).
    from lab.experiment import ExperimentError, run_experiment
    from lab.faults import FaultError
    from lab.probes import ProbeError
    from topologies.lab import LabError
    from topologies.reference import ReferenceError

    errors = (ExperimentError, FaultError, ProbeError, LabError, ReferenceError, OSError)
    try:
        result: dict[str, Any] = {}
        cmp: dict[str, Any] = {}
        if cmd == "compare":
            from lab.compare import print_compare, run_compare, write_compare

            cmp = run_compare(sc, out, console, live)
            paths = write_compare(cmp, out)
            print_compare(cmp, console)
        else:
            from lab.report import print_summary, write_reports

            result = run_experiment(sc, out, "fgcp", console, live)
            if cmd == "soak":
                from lab.soak import print_soak, soak_summary

                result["soak"] = soak_summary(result)
            paths = write_reports(result, out)
            print_summary(result, console)
            if cmd == "soak":
                print_soak(result["soak"], console)
    except errors as exc:
        console.print(f"[bold red]fgcp-lab {cmd}: {exc}[/bold red]")
        console.print(f"  logs: {out}")
        return 1
    console.print("  results: " + ", ".join(str(p) for p in paths.values()), highlight=False)
    checked = cmp["systems"]["fgcp"] if cmd == "compare" else result
    if sc.expect:
        failures = checked["expect_failures"]
        for line in failures:
            console.print(f"[bold red]  expectation failed: {line}[/bold red]")
        if failures:
            return 1
        console.print("  expectations met: " + ", ".join(f"{k}={v}" for k, v in
                                                          sc.expect.items()), highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "run", sys.argv[2:]))
