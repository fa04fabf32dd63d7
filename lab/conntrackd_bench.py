"""Reference half of the session sync benchmark (lab.sync_bench): conntrackd FT-FW between two namespaces.

Creates kernel conntrack entries in a primary namespace and measures how fast
conntrackd replicates them to a backup's external cache over a veth link.
Usage (root): python -m lab.conntrackd_bench --entries 100000 [--json FILE]

Method (also in the result's "method"): entries are real UDP flows, one
``sendto`` per flow from one unconnected socket in the primary namespace to
distinct destination (address, port) pairs routed over the veth (the backup
namespace drops them), so
the kernel creates and confirms one conntrack entry per datagram (unreplied
UDP timeout raised to 600 s).  Counts are read from the backup daemon's
``conntrackd -s`` ("cache external" active objects), polled in a loop.

- records_per_s: both daemons running, N flows created as fast as possible;
  N / (time from the first flow to the backup's external count reaching N);
  ``creation_bound`` says the sync kept up with creation (a lower bound).
- bulk_100k_s: the primary daemon holds N entries; a fresh backup daemon is
  started and asks for a resync (``conntrackd -n``); time from its start to
  its external count reaching N (a 100k figure only when N = 100000).
- commit_s: then ``conntrackd -c`` on the backup (external cache -> its
  kernel table), what a takeover adds before the state is usable.
- lag p50/p99: fresh daemons, flows created at a fixed rate; flow i's lag is
  the first poll time at which the external count is >= i+1 minus its
  creation time (FT-FW delivers in order); resolution = the poll period,
  reported as ``poll_ms``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from lab.benchkit import BenchError, nearest_rank, run
from topologies.reference import ConntrackdSpec, render_conntrackd_conf
from topologies.util import make_run_dir

FLOW_NET = "203.0.113"  # flow destinations: 203.0.113.100..., routed over the veth
FIRST_DST_HOST = 100
PORTS_PER_DST = 60000
FLOW_SRC = "198.51.100.10"  # the flows' source address in the primary namespace
SYNC_A = IPv4Address("169.254.0.1")
SYNC_B = IPv4Address("169.254.0.2")


def parse_cache_counts(stats: str) -> dict[str, int]:
    """Active objects per cache from ``conntrackd -s`` output: {'internal': n, 'external': m}."""
    out = {}
    for m in re.finditer(
        r"cache (internal|external):\s*\n\s*current active connections:\s*(\d+)", stats
    ):
        out[m.group(1)] = int(m.group(2))
    return out


def flow_destination(i: int) -> tuple[str, int]:
    """Destination (address, port) of flow ``i``: distinct for i < 155 * 60000."""
    host, port = divmod(i, PORTS_PER_DST)
    return f"{FLOW_NET}.{FIRST_DST_HOST + host}", 1 + port


def lags_from_samples(created: list[float], samples: list[tuple[float, int]]) -> list[float]:
    """Per-flow lag: first sample (time, count) with count > i, minus created[i].

    Pure: ``created`` are creation times in order, ``samples`` (time, count)
    in time order; flows never seen are left out.
    """
    lags = []
    j = 0
    for i, t in enumerate(created):
        while j < len(samples) and samples[j][1] <= i:
            j += 1
        if j == len(samples):
            break
        lags.append(max(0.0, samples[j][0] - t))
    return lags


@dataclass
class Daemon:
    spec: ConntrackdSpec
    conf: Path
    ns: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.spec.lock_file.unlink(missing_ok=True)
        self.spec.socket_path.unlink(missing_ok=True)
        out = open(self.conf.with_suffix(".out"), "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "conntrackd", "-C", str(self.conf)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while not self.spec.socket_path.exists():
            if self.proc.poll() is not None:
                raise BenchError(f"conntrackd {self.spec.name} exited; see {self.spec.log_file}")
            if time.monotonic() > deadline:
                raise BenchError(f"conntrackd {self.spec.name}: no socket after {timeout} s")
            time.sleep(0.01)

    def client(self, *args: str) -> str:
        return run(["conntrackd", "-C", str(self.conf), *args], check=False).stdout

    def counts(self) -> dict[str, int]:
        return parse_cache_counts(self.client("-s"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ip netns exec` execs: this is conntrackd
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Bench:
    """Two namespaces joined by a veth pair; a conntrackd in each."""

    def __init__(self, workdir: Path, hash_limit: int) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns_a, self.ns_b = f"ctbench-{tag}-a", f"ctbench-{tag}-b"
        self.veth_a, self.veth_b = f"ctb{tag}a", f"ctb{tag}b"
        self.workdir = workdir
        self.daemons: dict[str, Daemon] = {}
        self._made: list[str] = []
        for role, ns, veth, mine, peer in (("primary", self.ns_a, self.veth_a, SYNC_A, SYNC_B),
                                           ("backup", self.ns_b, self.veth_b, SYNC_B, SYNC_A)):
            spec = ConntrackdSpec(
                name=role, sync_addr=mine, peer_sync_addr=peer, interface=veth,
                lock_file=workdir / f"{role}.lock", socket_path=workdir / f"{role}.ctl",
                log_file=workdir / f"{role}.log", protocols=("TCP", "UDP"),
                hash_limit=hash_limit,
            )
            conf = workdir / f"{role}.conf"
            conf.write_text(render_conntrackd_conf(spec))
            self.daemons[role] = Daemon(spec, conf, ns)

    def ns(self, ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", ns, *cmd])

    def setup(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            run(["ip", "netns", "add", ns])
            self._made.append(ns)
        run(["ip", "link", "add", self.veth_a, "netns", self.ns_a, "type", "veth",
              "peer", "name", self.veth_b, "netns", self.ns_b])
        for ns, veth, addr in ((self.ns_a, self.veth_a, SYNC_A), (self.ns_b, self.veth_b, SYNC_B)):
            self.ns(ns, "ip", "link", "set", "lo", "up")
            self.ns(ns, "ip", "addr", "add", f"{addr}/30", "dev", veth)
            self.ns(ns, "ip", "link", "set", veth, "up")
        # flows leave over the veth and are dropped by the backup namespace
        # (no forwarding, no conntrack hooks there); no dummy module needed
        # flows come from their own address: conntrackd ignores its sync address
        self.ns(self.ns_a, "ip", "addr", "add", f"{FLOW_SRC}/32", "dev", "lo")
        self.ns(self.ns_a, "ip", "route", "add", f"{FLOW_NET}.0/24", "via", str(SYNC_B),
                "src", FLOW_SRC)
        # conntrack hooks are registered per namespace on demand: a ct rule does it
        # (the sync traffic on the veth is left untracked)
        ruleset = (
            "table ip ctbench {\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            "    ct state new counter\n"
            "  }\n"
            "  chain rawout {\n"
            "    type filter hook output priority raw; policy accept;\n"
            f"    ip daddr {SYNC_B} notrack\n"
            "  }\n"
            "  chain rawin {\n"
            "    type filter hook prerouting priority raw; policy accept;\n"
            f"    ip saddr {SYNC_B} notrack\n"
            "  }\n"
            "}\n"
        )
        rules = self.workdir / "primary.nft"
        rules.write_text(ruleset)
        self.ns(self.ns_a, "nft", "-f", str(rules))
        self.ns(self.ns_a, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600")

    def teardown(self) -> None:
        for d in self.daemons.values():
            d.stop()
        for ns in self._made:
            run(["ip", "netns", "del", ns], check=False)
        self._made.clear()

    def flush_kernel(self) -> None:
        run(["ip", "netns", "exec", self.ns_a, "conntrack", "-F"], check=False)


FLOW_SENDER = """
import socket, sys, time
first, n, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
NET, BASE, PER = {net!r}, {base}, {per}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
s.bind(({src!r}, 0))
out = sys.stdout
times = []
t0 = time.monotonic()
print("start", time.monotonic(), flush=True)
for i in range(first, first + n):
    if rate > 0:
        due = t0 + (i - first) / rate
        while True:
            d = due - time.monotonic()
            if d <= 0:
                break
            time.sleep(d if d > 0.002 else 0)
    h, p = divmod(i, PER)
    try:
        s.sendto(b"x", (NET + "." + str(BASE + h), 1 + p))
    except OSError:
        pass
    if rate > 0:
        times.append(time.monotonic())
print("end", time.monotonic(), flush=True)
out.write("".join(f"{{t}}\\n" for t in times))  # after the run: a full pipe would block
"""


def run_sender(ns: str, first: int, n: int, rate: float) -> subprocess.Popen[str]:
    """Start the flow sender in ``ns`` (``rate`` 0 = as fast as possible)."""
    code = FLOW_SENDER.format(net=FLOW_NET, base=FIRST_DST_HOST, per=PORTS_PER_DST,
                              src=FLOW_SRC)
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code, str(first), str(n), str(rate)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def sample_until(read: Callable[[], int], target: int, timeout: float,
                 stall: float = 10.0) -> list[tuple[float, int]]:
    """Poll ``read()`` until it reaches ``target`` (or timeout / no progress for ``stall`` s)."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    last_change, last = time.monotonic(), -1
    while True:
        v = read()
        now = time.monotonic()
        samples.append((now, v))
        if v != last:
            last, last_change = v, now
        if v >= target or now > deadline or now - last_change > stall:
            return samples
        time.sleep(0.002)


@contextmanager
def bench_env(entries: int) -> Iterator[Bench]:
    """Namespaces, veth, daemons' configs in a private run directory; all removed after."""
    workdir = make_run_dir("ctbench-")
    bench = Bench(workdir, hash_limit=max(262144, 2 * entries))
    try:
        bench.setup()
        yield bench
    finally:
        bench.teardown()
        shutil.rmtree(workdir, ignore_errors=True)


def _sender_times(proc: subprocess.Popen[str], timeout: float) -> tuple[float, float, list[float]]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"flow sender failed: {err.strip()[-300:]}")
    start = end = 0.0
    times = []
    for line in out.splitlines():
        if line.startswith("start "):
            start = float(line.split()[1])
        elif line.startswith("end "):
            end = float(line.split()[1])
        elif line:
            times.append(float(line))
    return start, end, times


def measure(entries: int = 100000, lag_rate: float = 1000.0, lag_seconds: float = 10.0,
            timeout: float = 120.0, senders: int = 2,
            progress: Callable[[str], None] = print) -> dict[str, object]:
    """Run the three measurements; the result dict (the shape lab.sync_bench prints beside its own)."""
    if os.geteuid() != 0:
        raise BenchError("the conntrackd benchmark needs root (network namespaces)")
    for tool in ("conntrackd", "conntrack", "ip", "nft"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: run scripts/setup-host.sh")
    with bench_env(entries) as b:
        pri, bak = b.daemons["primary"], b.daemons["backup"]
        # (a) replication rate with both daemons up
        pri.start()
        bak.start()
        time.sleep(0.5)  # FT-FW hello / initial resync of the empty tables
        progress(f"creating {entries} flows, both daemons running")
        share = -(-entries // senders)
        procs = [run_sender(b.ns_a, k * share, min(share, entries - k * share), 0)
                 for k in range(senders) if k * share < entries]
        samples = sample_until(lambda: bak.counts().get("external", 0), entries, timeout)
        times = [_sender_times(p, timeout) for p in procs]
        c_start, c_end = min(t[0] for t in times), max(t[1] for t in times)
        done_t, got = samples[-1]
        records_per_s = got / (done_t - c_start) if got else 0.0
        create_per_s = entries / (c_end - c_start) if c_end > c_start else 0.0
        kernel_n = pri.counts().get("internal", 0)
        progress(f"rate: {got} records on the backup in {done_t - c_start:.2f} s "
                 f"(creation alone {c_end - c_start:.2f} s; primary internal {kernel_n})")

        # (b) bulk sync to a fresh backup
        bak.stop()
        t0 = time.monotonic()
        bak.start()
        bak.client("-n")
        bsamples = sample_until(lambda: bak.counts().get("external", 0), kernel_n, timeout)
        bulk_t, bulk_got = bsamples[-1]
        bulk_s = bulk_t - t0
        progress(f"bulk: {bulk_got}/{kernel_n} records in {bulk_s:.2f} s")
        # what a takeover costs on top: commit the external cache into the kernel
        c0 = time.monotonic()
        bak.client("-c")
        commit_s = time.monotonic() - c0
        committed = int(b.ns(b.ns_b, "conntrack", "-C").stdout.strip() or 0)
        progress(f"commit: {committed} entries into the backup's kernel in {commit_s:.2f} s")

        # (c) lag at a fixed rate, fresh daemons and an empty kernel table
        pri.stop()
        bak.stop()
        b.flush_kernel()
        pri.start()
        bak.start()
        time.sleep(0.5)
        n_lag = int(lag_rate * lag_seconds)
        base = bak.counts().get("external", 0)
        progress(f"lag: {n_lag} flows at {lag_rate:g}/s")
        sender = run_sender(b.ns_a, entries, n_lag, lag_rate)
        lsamples = sample_until(lambda: bak.counts().get("external", 0) - base, n_lag,
                                lag_seconds + timeout)
        _, _, created = _sender_times(sender, lag_seconds + timeout)
        lags = lags_from_samples(created, lsamples)
        periods = [b2[0] - a2[0] for a2, b2 in itertools.pairwise(lsamples)]
        poll_ms = statistics.median(periods) * 1000 if periods else 0.0
    return {
        "system": "conntrackd",
        "entries": entries,
        "records_per_s": round(records_per_s, 1),
        "synced": got,
        "create_per_s": round(create_per_s, 1),
        "senders": senders,
        "bulk_100k_s": round(bulk_s, 3) if bulk_got >= kernel_n else None,
        "bulk_entries": kernel_n,
        "bulk_synced": bulk_got,
        # the sync path's own ceiling (records/s rate above is creation-bound)
        "bulk_records_per_s": round(bulk_got / bulk_s, 1) if bulk_s > 0 else None,
        "commit_s": round(commit_s, 3),
        "committed": committed,
        # the sync finished with the flow creation: the rate is a lower bound
        "creation_bound": bool(got and done_t - c_end < 0.1 * (c_end - c_start)),
        "lag_rate_per_s": lag_rate,
        "lag_flows": n_lag,
        "lag_seen": len(lags),
        "lag_p50_ms": round(nearest_rank(lags, 50) * 1000, 2) if lags else None,
        "lag_p99_ms": round(nearest_rank(lags, 99) * 1000, 2) if lags else None,
        "poll_ms": round(poll_ms, 2),
        "method": (
            "two netns + veth, conntrackd FT-FW over UDP; entries = UDP flows "
            "(one sendto each, routed out and dropped by the peer); counts from the backup's "
            "`conntrackd -s` external cache, polled; lag = first poll with "
            "count > i minus creation time of flow i (resolution poll_ms)"
        ),
    }


def render_table(result: dict[str, object]) -> None:
    """Print the result as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"conntrackd FT-FW sync ({result['entries']} entries)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, label in (
        ("records_per_s", "records/s primary -> backup"),
        ("create_per_s", "flows/s created (kernel)"),
        ("bulk_100k_s", f"bulk sync of {result['bulk_entries']} (s)"),
        ("bulk_records_per_s", "bulk sync records/s"),
        ("commit_s", f"commit of {result['committed']} into the kernel (s)"),
        ("creation_bound", "sync rate bound by flow creation"),
        ("lag_p50_ms", f"lag p50 at {result['lag_rate_per_s']}/s (ms)"),
        ("lag_p99_ms", "lag p99 (ms)"),
        ("poll_ms", "poll period = lag resolution (ms)"),
    ):
        table.add_row(label, str(result.get(key)))
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--lag-rate", type=float, default=1000.0, help="new flows/s for the lag")
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--senders", type=int, default=2,
                    help="parallel flow-creating processes for the rate figure")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    try:
        result = measure(args.entries, args.lag_rate, args.lag_seconds, args.timeout,
                         args.senders)
    except (BenchError, subprocess.TimeoutExpired) as e:
        print(f"conntrackd_bench: {e}")
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    render_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
