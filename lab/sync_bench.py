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
import dataclasses
import json
import math
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Any

from topologies.util import make_run_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "topologies" / "configs"
SRC_BASE = int(IPv4Address("198.51.100.100"))  # session sources: .100, .101, ...
DST = int(IPv4Address("203.0.113.10"))
NAT_BASE = int(IPv4Address("203.0.113.1"))
PORTS = 60000  # sessions per source address / NAT address
BATCH = 512


class BenchError(RuntimeError):
    """A step of the benchmark failed (setup, worker, timeout)."""


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100)."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]


def session_index(key: tuple[int, int, int, int, int]) -> int:
    """Index of a benchmark session from its key (inverse of the creation layout)."""
    return (key[1] - SRC_BASE) * PORTS + (key[2] - 1024)


# ------------------------------------------------------------------ worker (in a netns)


class _StubDaemon:
    """What SyncMember needs of fgcp.daemon.Daemon: cfg, fwd, table, role, component()."""

    def __init__(self, cfg: Any) -> None:
        from fgcp import diag
        from fgcp.forward import Forwarder, PortSpec

        self.cfg = cfg
        self.fwd = Forwarder(cfg, [PortSpec(0, "port1", b"\x02\0\0\0\0\x01"),
                                   PortSpec(1, "port2", b"\x02\0\0\0\0\x02")])
        self.table = diag.default_table()
        self.role = "hello"

    def component(self, name: str) -> None:
        return None


class Worker:
    """One member's sync in a namespace, driven by line commands on stdin (JSON replies)."""

    def __init__(self, role: str, config: Path, out: IO[str]) -> None:
        from fgcp.config import load_config
        from fgcp.syncmember import SyncMember

        cfg = load_config(config)
        cfg = dataclasses.replace(cfg, session_table_max=1_000_000)
        self.role = role
        self.out = out
        self.daemon = _StubDaemon(cfg)
        self.member = SyncMember()
        self.member.open(self.daemon)
        if role == "primary":
            self.member.before_takeover(time.time())
            self.daemon.role = "primary"
        else:
            assert self.member.receiver is not None
            self.member.receiver.track_changes = True
        self.created_t: list[float] = []
        self.to_create = 0
        self.rate = 0.0
        self.create_t0 = 0.0
        self.create_first = 0
        self.create_end = 0.0
        self.arrivals: dict[int, float] = {}
        self.wait_count: int | None = None
        self.wait_bulk = False
        self.ready_t = time.time()
        self.running = True

    def reply(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def _create(self, now: float) -> None:
        from fgcp.session import CONNECTIONLESS, Session

        fwd = self.daemon.fwd
        table = fwd.sessions
        done = len(self.created_t) - self.create_first
        due = self.to_create if self.rate <= 0 else min(
            self.to_create, int((now - self.create_t0) * self.rate) + 1)
        n = min(due - done, BATCH)
        event = fwd.on_session_event
        for _ in range(n):
            i = len(self.created_t)
            hi, lo = divmod(i, PORTS)
            t = time.time()
            s = Session(sid=table.next_sid(), proto=17, orig=(SRC_BASE + hi, 1024 + lo, DST, 53),
                        reply=(DST, 53, NAT_BASE + hi, 1024 + lo), in_intf="port1",
                        out_intf="port2", policy_id=2, nat=True, nat_ip=NAT_BASE + hi,
                        nat_port=1024 + lo, created=t, last_seen=t, flags=CONNECTIONLESS)
            table.add(s, t)
            if event is not None:
                event("add", s)
            self.created_t.append(t)
        if len(self.created_t) - self.create_first >= self.to_create:
            self.to_create = 0
            self.create_end = time.time()

    def _command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        cmd, args = words[0], [float(w) for w in words[1:]]
        m = self.member
        if cmd == "create":
            self.create_first = len(self.created_t)
            self.to_create, self.rate = int(args[0]), args[1]
            self.create_t0 = time.time()
            self.reply({"t0": self.create_t0, "first": self.create_first})
        elif cmd == "status":
            tx = m.sender
            self.reply({"created": len(self.created_t), "create_end": self.create_end,
                        "records": len(tx.records) if tx else 0,
                        "stats": dataclasses.asdict(tx.stats) if tx else {}})
        elif cmd == "stats":
            self.reply({"text": m.stats_text(time.time())})
        elif cmd == "times":
            a, n = int(args[0]), int(args[1])
            self.reply({"times": self.created_t[a:a + n]})
        elif cmd == "wait_count":
            self.wait_count = int(args[0])
        elif cmd == "wait_bulk":
            self.wait_bulk = True
        elif cmd == "arrivals":
            a, n = int(args[0]), int(args[1])
            self.reply({"arrivals": [self.arrivals.get(i) for i in range(a, a + n)]})
        elif cmd == "takeover":
            n = len(m.receiver.table) if m.receiver else 0
            t0 = time.perf_counter()
            m.before_takeover(time.time())
            self.reply({"records": n, "installed": m.counters["installed"],
                        "failed": m.counters["install_failed"],
                        "s": time.perf_counter() - t0})
        elif cmd == "quit":
            self.running = False
            self.reply({"bye": True})
        else:
            self.reply({"error": f"unknown command {cmd}"})

    def _secondary_checks(self, now: float) -> None:
        rx = self.member.receiver
        if rx is None:
            return
        for op in rx.drain_changes():
            if op.record is not None:
                i = session_index(op.key)
                if i not in self.arrivals:
                    self.arrivals[i] = now
        if self.wait_count is not None and len(rx.table) >= self.wait_count:
            self.reply({"t": now, "count": len(rx.table)})
            self.wait_count = None
        if self.wait_bulk and rx.bulk_complete:
            self.reply({"t": now, "count": len(rx.table), "ready_t": self.ready_t,
                        "total": rx.bulk_total})
            self.wait_bulk = False

    def run(self, stdin: IO[str]) -> None:
        poller = select.poll()
        fd_in = stdin.fileno()
        os.set_blocking(fd_in, False)
        poller.register(fd_in, select.POLLIN)
        for fd in self.member.fds():
            poller.register(fd, select.POLLIN)
        buf = ""
        self.reply({"ready": self.ready_t, "role": self.role})
        while self.running:
            d = self.member.next_deadline()
            if d is None:
                d = time.time() + 0.1
            if self.to_create:  # next creation due (at once when as fast as possible)
                due = self.create_t0
                if self.rate > 0:
                    due += (len(self.created_t) - self.create_first) / self.rate
                d = min(d, due)
            wait = d - time.time()
            events = poller.poll(max(0, int(wait * 1000)) if wait > 0 else 0)
            now = time.time()
            for fd, _ in events:
                if fd == fd_in:
                    chunk = os.read(fd_in, 65536).decode()
                    if not chunk:
                        self.running = False
                        break
                    buf += chunk
                    while "\n" in buf:
                        line, buf = buf.split("\n", 1)
                        self._command(line)
                else:
                    self.member.on_readable(fd, now)
            d = self.member.next_deadline()
            if d is not None and now >= d:
                self.member.on_tick(now)
            if self.to_create:
                self._create(time.time())
            if self.role == "secondary":
                self._secondary_checks(time.time())
        self.member.close()


def worker_main(role: str, config: Path) -> int:
    w = Worker(role, config, sys.stdout)
    w.run(sys.stdin)
    return 0


# ------------------------------------------------------------------ driver (root ns)


class Proc:
    """A worker process in a namespace, with a line-JSON conversation."""

    def __init__(self, ns: str, role: str, config: Path, log: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", ""))
                                            if p)
        self.spawned = time.time()
        self.logf = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lab.sync_bench", "--worker", role,
             "--config", str(config)],
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
        return json.loads(line)

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
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
        _run(["ip", "link", "add", self.tmp[0], "netns", self.ns[0], "type", "veth",
              "peer", "name", self.tmp[1], "netns", self.ns[1]])
        for ns, tmp in zip(self.ns, self.tmp, strict=True):
            _run(["ip", "-n", ns, "link", "set", tmp, "name", "port5"])
            _run(["ip", "-n", ns, "link", "set", "port5", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def teardown(self) -> None:
        for ns in self._made:
            _run(["ip", "netns", "del", ns], check=False)
        self._made.clear()


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed: {p.stderr.strip() or p.stdout.strip()}")
    return p


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
        "lag_p50_ms": round(percentile(lags, 50) * 1000, 2) if lags else None,
        "lag_p99_ms": round(percentile(lags, 99) * 1000, 2) if lags else None,
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
    ap.add_argument("--worker", choices=("primary", "secondary"), help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.config)
    try:
        fg = measure_fgcpd(args.entries, args.lag_rate, args.lag_seconds, args.timeout)
        ct = None
        if not args.skip_conntrackd:
            from lab import conntrackd_bench

            ct = conntrackd_bench.measure(args.entries, args.lag_rate, args.lag_seconds,
                                          args.timeout)
    except (BenchError, subprocess.TimeoutExpired) as e:
        print(f"sync_bench: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # conntrackd_bench.BenchError
        print(f"sync_bench (conntrackd half): {e}", file=sys.stderr)
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
