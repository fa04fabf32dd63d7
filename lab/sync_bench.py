"""Session sync benchmark: fgcpd's session sync vs conntrackd FT-FW, side by side, same run.

The fgcpd half runs the member's own sync component (fgcp.syncmember.SyncMember with
its AF_PACKET links, a real Forwarder session table, the daemon's poll-loop pattern)
in two network namespaces joined by a veth named port5; the conntrackd half is
lab.conntrackd_bench on the same kind of link.  Usage (root)::

    python -m lab.sync_bench [--entries 100000] [--lag-rate 1000] [--json FILE]
    python -m lab.sync_bench --skip-conntrackd      # fgcpd only

Method (fgcpd; also in the result's "method"):

- records_per_s: primary and secondary running, the primary's forwarder gets N new
  UDP sessions with source NAT as fast as it can create them (batches of 512 between
  loop turns, every one through ``on_session_event`` -> pickup filter -> sender);
  N / (time from the first creation to the secondary holding N records).
- bulk_100k_s: the primary holds N sessions; a fresh secondary process is started;
  time from its spawn (interpreter start included, like conntrackd's daemon start)
  to its bulk sync being complete with N records; ``bulk_from_ready_s`` from its
  first HELLO (the previous secondary stopped 1 s before: the protocol's restart
  guard ignores a HELLO for a stream younger than 1 s).
- commit_s: the secondary then takes over: every synced record installed into its
  forwarder (NAT ports reserved, expiry refreshed), what a takeover adds.
- lag p50/p99: fresh processes, sessions created at a fixed rate; the lag of one
  session = the time the secondary applied its record minus its creation time
  (both CLOCK_REALTIME on the same host; exact per record, no polling).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab import conntrackd_bench
from lab.benchkit import BenchError, nearest_rank, run
from topologies.util import make_run_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "topologies" / "configs"


class Proc:
    """A worker process in a namespace, with a line-JSON conversation."""

    def __init__(self, ns: str, role: str, config: Path, log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", ""))
                                            if p)
        self.spawned = time.time()
        self.logf = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lab.syncbench_worker", role,
             str(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.logf, text=True,
            cwd=REPO_ROOT, env=env, bufsize=1)
        self.ready = self.read(30.0)["ready"]

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.p.stdout is not None
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise BenchError(f"worker: no answer within {timeout:.0f} s")
        line = self.p.stdout.readline()
        if not line:
            raise BenchError(f"worker exited ({self.p.poll()}); see {self.logf.name}")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise BenchError(f"worker answered {line.strip()!r}, not a JSON object")
        return reply

    def ask(self, line: str, timeout: float = 30.0) -> dict[str, Any]:
        self.send(line)
        return self.read(timeout)

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                self.ask("quit", 5.0)
                self.p.wait(5.0)
            except (BenchError, OSError, subprocess.TimeoutExpired, ValueError):
                self.p.kill()
                self.p.wait()
        self.logf.close()


class NetnsPair:
    """Two namespaces joined by a veth named port5 on both sides."""

    def __init__(self, workdir: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = (f"fsbench-{tag}-a", f"fsbench-{tag}-b")
        self.tmp = (f"fsb{tag}a", f"fsb{tag}b")
        self.workdir = workdir
        self._made: list[str] = []

    def setup(self) -> None:
        for ns in self.ns:
            run(["ip", "netns", "add", ns])
            self._made.append(ns)
        run(["ip", "link", "add", self.tmp[0], "netns", self.ns[0], "type", "veth",
              "peer", "name", self.tmp[1], "netns", self.ns[1]])
        for ns, tmp in zip(self.ns, self.tmp, strict=True):
            run(["ip", "-n", ns, "link", "set", tmp, "name", "port5"])
            run(["ip", "-n", ns, "link", "set", "port5", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def teardown(self) -> None:
        for ns in self._made:
            run(["ip", "netns", "del", ns], check=False)
        self._made.clear()


@contextmanager
def netns_pair() -> Iterator[tuple[NetnsPair, Path]]:
    workdir = make_run_dir("fsbench-")
    pair = NetnsPair(workdir)
    try:
        pair.setup()
        yield pair, workdir
    finally:
        pair.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


def measure_fgcpd(entries: int = 100000, lag_rate: float = 1000.0, lag_seconds: float = 10.0,
                  timeout: float = 120.0,
                  progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The fgcpd half (see the module docstring); the result dict."""
    if os.geteuid() != 0:
        raise BenchError("the sync benchmark needs root (network namespaces)")
    c1, c2 = CONFIG_DIR / "sync-fgt1.conf", CONFIG_DIR / "sync-fgt2.conf"
    procs: list[Proc] = []

    def start(ns: str, role: str, conf: Path, log: Path) -> Proc:
        p = Proc(ns, role, conf, log)
        procs.append(p)
        return p

    with netns_pair() as (pair, wd):
        try:
            # (a) replication rate
            pri = start(pair.ns[0], "primary", c1, wd / "primary.log")
            sec = start(pair.ns[1], "secondary", c2, wd / "secondary.log")
            sec.send("wait_bulk")
            sec.read(10.0)  # stream established (empty bulk)
            progress(f"fgcpd: creating {entries} sessions, both members running")
            sec.send(f"wait_count {entries}")
            t0 = pri.ask(f"create {entries} 0")["t0"]
            done = sec.read(timeout)
            st = pri.ask("status")
            records_per_s = done["count"] / (done["t"] - t0)
            create_s = st["create_end"] - t0
            progress(f"fgcpd rate: {done['count']} records on the secondary in "
                     f"{done['t'] - t0:.2f} s (creation alone {create_s:.2f} s)")
            # (b) bulk sync to a fresh secondary, then its takeover (install)
            sec.stop()
            procs.remove(sec)
            # the primary ignores a HELLO while the stream it answers is younger than 1 s
            # (restart guard, docs/protocol.md "Session sync"); a real member restart takes longer
            time.sleep(1.0)
            t_spawn = time.time()
            sec = start(pair.ns[1], "secondary", c2, wd / "secondary2.log")
            sec.send("wait_bulk")
            bulk = sec.read(timeout)
            bulk_s = bulk["t"] - t_spawn
            progress(f"fgcpd bulk: {bulk['count']}/{entries} records in {bulk_s:.2f} s "
                     f"({bulk['t'] - bulk['ready_t']:.2f} s after the process was ready)")
            take = sec.ask("takeover", timeout)
            progress(f"fgcpd takeover: {take['installed']} sessions installed in "
                     f"{take['s']:.2f} s ({take['failed']} failed)")
            # (c) lag at a fixed rate, fresh members
            for p in (pri, sec):
                p.stop()
            procs.clear()
            pri = start(pair.ns[0], "primary", c1, wd / "primary3.log")
            sec = start(pair.ns[1], "secondary", c2, wd / "secondary3.log")
            sec.send("wait_bulk")
            sec.read(10.0)
            n_lag = int(lag_rate * lag_seconds)
            progress(f"fgcpd lag: {n_lag} sessions at {lag_rate:g}/s")
            sec.send(f"wait_count {n_lag}")
            pri.ask(f"create {n_lag} {lag_rate}")
            sec.read(lag_seconds + timeout)
            created = pri.ask(f"times 0 {n_lag}")["times"]
            arrived = sec.ask(f"arrivals 0 {n_lag}")["arrivals"]
            lags = [a - c for a, c in zip(arrived, created, strict=True) if a is not None]
        finally:
            for p in procs:
                p.stop()
    return {
        "system": "fgcpd",
        "entries": entries,
        "records_per_s": round(records_per_s, 1),
        "synced": done["count"],
        "create_per_s": round(entries / create_s, 1) if create_s > 0 else None,
        "bulk_100k_s": round(bulk_s, 3) if bulk["count"] >= entries else None,
        "bulk_entries": entries,
        "bulk_synced": bulk["count"],
        "bulk_from_ready_s": round(bulk["t"] - bulk["ready_t"], 3),
        "commit_s": round(take["s"], 3),
        "committed": take["installed"],
        "lag_rate_per_s": lag_rate,
        "lag_flows": n_lag,
        "lag_seen": len(lags),
        "lag_p50_ms": round(nearest_rank(lags, 50) * 1000, 2) if lags else None,
        "lag_p99_ms": round(nearest_rank(lags, 99) * 1000, 2) if lags else None,
        "method": (
            "two netns + veth port5, fgcp.syncmember.SyncMember (AF_PACKET 0x8892, HMAC) "
            "primary/secondary processes; entries = UDP sessions with SNAT added to a real "
            "Forwarder table and offered through on_session_event; counts and per-record "
            "apply times from the secondary's receiver (exact, no polling)"
        ),
    }


COMPARE = (
    ("records_per_s", "records/s primary -> secondary", True),
    ("bulk_100k_s", "bulk sync of N sessions (s)", False),
    ("commit_s", "takeover install / conntrackd -c (s)", False),
    ("lag_p50_ms", "sync lag p50 (ms)", False),
    ("lag_p99_ms", "sync lag p99 (ms)", False),
)


def ratio(key: str, higher_better: bool, fg: dict[str, Any], ct: dict[str, Any]) -> str:
    a, b = fg.get(key), ct.get(key)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not a or not b:
        return "-"
    r = a / b if higher_better else b / a
    return f"{r:.2f}x"


def render(fg: dict[str, Any], ct: dict[str, Any] | None) -> str:
    """Side-by-side text table (ratio > 1: fgcpd better)."""
    rows = [f"{'figure':<40}{'fgcpd':>14}{'conntrackd':>14}{'ratio':>10}"]
    for key, label, hib in COMPARE:
        b = ct.get(key) if ct else None
        rows.append(f"{label:<40}{fg.get(key)!s:>14}{b!s:>14}"
                    f"{ratio(key, hib, fg, ct) if ct else '-':>10}")
    rows.append(f"entries {fg['entries']}, lag at {fg['lag_rate_per_s']:g} new sessions/s; "
                "ratio = how many times better fgcpd is")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--lag-rate", type=float, default=1000.0)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--skip-conntrackd", action="store_true")
    ap.add_argument("--json", type=Path, help="also write both results here")
    args = ap.parse_args(argv)
    try:
        fg = measure_fgcpd(args.entries, args.lag_rate, args.lag_seconds, args.timeout)
        ct = None
        if not args.skip_conntrackd:
            ct = conntrackd_bench.measure(args.entries, args.lag_rate, args.lag_seconds,
                                          args.timeout)
    except (BenchError, subprocess.TimeoutExpired) as e:
        print(f"sync_bench: {e}", file=sys.stderr)
        return 1
    result = {"fgcpd": fg, "conntrackd": ct,
              "ratio": {k: ratio(k, hib, fg, ct) for k, _, hib in COMPARE} if ct else None}
    print(json.dumps(result, indent=2))
    print(render(fg, ct))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
