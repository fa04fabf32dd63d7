"""Failover experiment runner: builds the lab for a scenario, starts the traffic mix,
applies the faults in sequence with a live display, and measures every flow and the cluster.

`run_experiment(scenario, out_dir)` returns the result dict (the JSON file's
content), computed by the pure ``lab.analysis.analyze``. Systems (lab.systems):
"fgcp" (fgcpd members and the OpenFlow fabric) and "reference" (keepalived +
conntrackd kernel routers); traffic: lab.traffic; live display: lab.progress.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.analysis import Sampler, analyze
from lab.faults import AppliedFault
from lab.progress import Progress
from lab.scenario import Scenario
from lab.systems import ExperimentError, check_supported, make_system
from lab.traffic import traffic
from topologies.util import make_run_dir

if TYPE_CHECKING:  # for annotations: rich is imported where it prints
    from rich.console import Console

__all__ = ["ExperimentError", "check_supported", "run_experiment"]


def run_experiment(sc: Scenario, out_dir: Path | None = None, system: str = "fgcp",
                   console: Console | None = None, live: bool = True,
                   keep_logs: bool = True) -> dict[str, Any]:
    """Run ``sc`` on ``system``; returns the result (see lab.report for the files)."""
    check_supported(sc, system)
    rundir = make_run_dir(f"fgcp-run-{system}-")
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
                                    if rec.restored_at is None:  # nothing was down
                                        prog.note(f"nothing to restore for {rec.kind} on "
                                                  f"{rec.member}")
                                    else:
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

                    # a fault applied late (the runner waited for a synced cluster
                    # before a kill) delays every later one as much: the intervals
                    # between faults hold (a soak's restart stays interval/2 after
                    # its kill instead of landing inside the kill's outage)
                    late = 0.0
                    for i, f in enumerate(sc.faults):
                        prog.status(f"next: {f.kind} at +{f.at + late:.1f} s")
                        idle(t0 + f.at + late)
                        target = None
                        if f.kind in ("kill-primary", "power-off") and system == "fgcp":
                            target = (next(iter(sys_.lab.primaries()), None)
                                      if f.member == "primary" else f.member)
                        sys_.before_fault(f.kind, target)
                        rec = injector.apply(f, i)
                        applied.append(rec)
                        late = max(late, rec.t - (t0 + f.at))
                        for h in handles.values():  # e.g. the ICCP attack's second half
                            h.fault_applied(rec.t)
                        prog.note(f"+{rec.t - t0:5.2f} s  {f.kind} on {rec.member}"
                                  + (f" ({rec.port})" if rec.port else ""))
                        if f.duration:
                            pending.append((rec.t + f.duration, rec))
                    last = max([t0 + sc.duration + late,
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
    return analyze(sc, system, t0, t_end, [a.to_dict() for a in applied], probes,
                        info, sampler)
