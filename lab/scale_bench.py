"""Session-table scale benchmark: forwarding, expiry and memory with 1k to 1M sessions.

Run: .venv/bin/python -m lab.scale_bench [--sizes 1000,10000,100000,1000000]
In process, one core, no root: for each N a member's Forwarder (the lab.microbench
harness) gets N UDP sessions through ``handle`` (memory per session by tracemalloc), then
forwards raw frames with them in the table (kpps: the microbench's NAT flow, and frames
spread over the N sessions), then all N expire in bounded steps (the longest step is the
longest pause the poll loop would see).  The kernel's reference beside it: conntrack's
memory per entry (/proc/slabinfo, root).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import statistics
import struct
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fgcp.forward import Forwarder, Out
from fgcp.model import Address, MemberConfig, Policy
from lab.microbench import MAC_CLIENT, MAC_FGT1, SERVER, _ip, bench_udp, eth, make_forwarder, rate

__all__ = ["ScaleResult", "conntrack_slab", "main", "measure"]

SIZES = (1_000, 10_000, 100_000, 1_000_000)
BULK_NET = IPv4Network("198.51.100.128/25")  # the filled sessions' clients (policy without NAT)
BULK_BASE = int(BULK_NET.network_address) + 1
PORTS = 60_000  # source ports per bulk client (1024..61023)
BATCH = 10_000
BULK_POLICY = 2


@dataclass
class ScaleResult:
    n: int
    bytes_per_session: float
    kpps_hot: list[float]  # the microbench's UDP+NAT flow with N others in the table
    kpps_spread: list[float]  # frames spread at random over the N sessions
    step_max_ms: float  # longest single expiry step while the N sessions expire (wall)
    step_max_cpu_ms: float  # the same by this thread's CPU time (without preemption)
    step_p99_cpu_ms: float
    steps: int
    expiry_s: float  # all steps together (what one unbounded sweep would pause)
    budget: int
    gc_full_ms: float  # one full collection of CPython's cyclic GC with the N sessions
    gc_frozen_ms: float  # the same after gc.freeze() (what fgcpd does every second)


def _edit(max_sessions: int) -> Callable[[MemberConfig], MemberConfig]:
    """The microbench member plus an accept policy without NAT for the bulk clients (one
    NAT address has 64k ports) and a table of ``max_sessions``."""
    def edit(cfg: MemberConfig) -> MemberConfig:
        pol = Policy(BULK_POLICY, srcintf=("port1",), dstintf=("port2",), srcaddr=("bulk",),
                     dstaddr=("all",), service=("ALL",), action="accept", nat=False)
        return dataclasses.replace(
            cfg, addresses={**cfg.addresses, "bulk": Address("bulk", BULK_NET)},
            policies=(pol, *cfg.policies), session_table_max=max_sessions)
    return edit


def bulk_frame(i: int) -> bytearray:
    """The first (and every) frame of bulk session ``i``: UDP to SERVER:53, 64 bytes."""
    hi, lo = divmod(i, PORTS)
    sport = 1024 + lo
    l4 = struct.pack("!HHHH", sport, 53, 26, 0) + b"q" * 18
    return eth(MAC_FGT1, MAC_CLIENT, _ip(BULK_BASE + hi, SERVER, 17, l4))


def fill(fwd: Forwarder, n: int, now: float) -> None:
    """Create ``n`` bulk sessions through ``handle`` (each first frame forwarded)."""
    out: Out = []
    h = fwd.handle
    for a in range(0, n, BATCH):
        frames = [bulk_frame(i) for i in range(a, min(n, a + BATCH))]
        for f in frames:
            h(0, f, now, out)
        if len(out) != len(frames):
            raise RuntimeError(f"fill: forwarded {len(out)} of {len(frames)}: "
                               f"{dict(fwd.counters)}")
        out.clear()


def measure(n: int, packets: int, repeat: int, seed: int = 12) -> ScaleResult:
    """One N: memory per session, kpps with N sessions in the table, expiry steps."""
    if n + 1 > PORTS * (BULK_NET.num_addresses - 2):
        raise ValueError(f"{n} sessions: more than the bulk clients' tuples")
    fwd = make_forwarder(_edit(n + 1))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fill(fwd, n, 0.0)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    if len(fwd.sessions) != n:
        raise RuntimeError(f"{len(fwd.sessions)} sessions in the table, wanted {n}")
    t0 = time.perf_counter()
    gc.collect()
    gc_full = time.perf_counter() - t0
    gc.freeze()
    t0 = time.perf_counter()
    gc.collect()
    gc_frozen = time.perf_counter() - t0
    rng = random.Random(seed)
    hot: list[float] = []
    spread: list[float] = []
    for _ in range(repeat):
        hot.append(bench_udp(packets, fwd) / 1e3)
        frames = [(0, bulk_frame(rng.randrange(n))) for _ in range(packets)]
        spread.append(rate(fwd, frames, 1.0, "spread") / 1e3)
    # every session expires: bulk at 180 s (udp timeout) or 181 s (refreshed at 1.0)
    table = fwd.sessions
    now = 181.0
    steps, total, longest = 0, 0.0, 0.0
    cpu: list[float] = []
    pc, tt = time.perf_counter, time.thread_time
    while True:
        t0, c0 = pc(), tt()
        fwd.expire(now)
        dt, dc = pc() - t0, tt() - c0
        steps += 1
        total += dt
        longest = max(longest, dt)
        cpu.append(dc)
        if not table.expiry_behind:
            break
    gc.unfreeze()
    if len(table):
        raise RuntimeError(f"{len(table)} sessions left after expiry")
    cpu.sort()
    return ScaleResult(n, held / n, hot, spread, longest * 1e3, cpu[-1] * 1e3,
                       cpu[min(len(cpu) - 1, int(len(cpu) * 0.99))] * 1e3, steps, total, table.expiry_budget, gc_full * 1e3, gc_frozen * 1e3)


def conntrack_slab(path: Path = Path("/proc/slabinfo")) -> int | None:
    """nf_conntrack's slab object size in bytes (the kernel's memory per entry); None
    when it cannot be read (not root, or no conntrack module)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "nf_conntrack":
            return int(f[3])
    return None


FILL_CONNTRACK = """\
import socket, sys
n, dst = int(sys.argv[1]), sys.argv[2]
sent = 0
for k in range(n // 60000 + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", 20000 + k))
    for port in range(1024, 61024):
        if sent >= n:
            break
        try:
            s.sendto(b"x", (dst, port))
            sent += 1
        except OSError:
            pass
    s.close()
print(sent)
"""


@dataclass
class KernelResult:
    n: int  # entries asked for
    entries: int  # nf_conntrack_count in the member's namespace after the fill
    kpps: list[float]  # iperf3 64-byte UDP received at the server


def kernel_reference(sizes: Sequence[int], seconds: float, repeat: int) -> list[KernelResult]:
    """The kernel forwarding (ip_forward + nftables masquerade, lab.vethlab's topology)
    with N conntrack entries made by N unreplied UDP flows from the client (root; run it
    in the Mininet queue lock).  nf_conntrack_max is host-wide and not raised here: the
    entries reached are reported."""
    import sys

    from lab.vethlab import SERVER_IP, VethLab

    out = []
    with VethLab() as vl:
        vl.set_mode("kernel-nat")
        m = vl.measure()
        for n in (0, *sizes):
            vl.ns(vl.member, "conntrack", "-F", check=False)
            if n:
                vl.ns(vl.client, sys.executable, "-c", FILL_CONNTRACK, str(n), SERVER_IP)
            got = vl.ns(vl.member, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
            rates = [m.udp_pps(seconds)[0] / 1e3 for _ in range(repeat)]
            out.append(KernelResult(n, int(got.stdout.strip() or 0), rates))
    return out


def _range(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def render(results: Sequence[ScaleResult], slab: int | None, packets: int, repeat: int,
           console: Console, kernel: Sequence[KernelResult] = (), seconds: float = 0.0) -> None:
    t = Table(title=f"Session table at scale: one Forwarder, one core ({packets:,} frames "
                    f"x {repeat} per kpps figure, median (min-max))")
    t.add_column("sessions", justify="right")
    t.add_column("kpps NAT flow", justify="right")
    t.add_column("kpps spread over N", justify="right")
    t.add_column("expiry step ms: max wall / max CPU / p99 CPU", justify="right")
    t.add_column("steps / all steps s", justify="right")
    t.add_column("full GC ms / after freeze", justify="right")
    t.add_column("bytes/session fgcpd", justify="right")
    t.add_column("bytes/entry conntrack", justify="right")
    ref = f"{slab} (slab)" if slab is not None else "not read (root)"
    for r in results:
        t.add_row(f"{r.n:,}", _range(r.kpps_hot), _range(r.kpps_spread),
                  f"{r.step_max_ms:.1f} / {r.step_max_cpu_ms:.1f} / {r.step_p99_cpu_ms:.1f}",
                  f"{r.steps:,} / {r.expiry_s:.2f}",
                  f"{r.gc_full_ms:.0f} / {r.gc_frozen_ms:.1f}", f"{r.bytes_per_session:.0f}", ref)
    console.print(t)
    if kernel:
        k = Table(title=f"Kernel reference, same run: forwarding with N conntrack entries "
                        f"(veth, nftables masquerade, iperf3 64-byte UDP, {seconds:g} s x {repeat})")
        k.add_column("N asked", justify="right")
        k.add_column("conntrack entries reached", justify="right")
        k.add_column("kpps received", justify="right")
        for kr in kernel:
            k.add_row(f"{kr.n:,}", f"{kr.entries:,}", _range(kr.kpps))
        console.print(k)
    budget = results[0].budget if results else 0
    console.print(
        f"Expiry: at most {budget:,} sessions a step (fgcp/expiry.py); fgcpd steps again "
        "1 ms later while due sessions are left, forwarding in between.  Memory: Python "
        "allocations held by the table, its keys, expiry buckets and sessions (tracemalloc), "
        "bulk sessions without NAT (one NAT address has 64k ports).  Kernel reference: "
        "conntrack's slab object per entry; the kernel's forwarding with N entries with "
        "--kernel (root; a different path: veth + iperf3, not comparable in absolute kpps, "
        "only in how it changes with N); none for the expiry pause (conntrack's gc worker "
        "has no per-step figure).  "
        "Full GC: one gc.collect() with the N sessions in memory, a pause CPython adds "
        "when its long-lived objects grew by a quarter, and the same after gc.freeze() "
        "(fgcpd freezes its long-lived objects every second).  Wall time includes "
        "preemption by other processes; CPU time is the step's own work.")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.scale_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(str(n) for n in SIZES),
                    help="session counts, comma separated (default %(default)s)")
    ap.add_argument("--packets", type=int, default=200_000, help="frames per kpps figure")
    ap.add_argument("--repeat", type=int, default=3, help="kpps figures per size")
    ap.add_argument("--kernel", action="store_true",
                    help="also the kernel's forwarding with N conntrack entries (root, veth "
                         "namespaces: run it inside the Mininet queue lock)")
    ap.add_argument("--seconds", type=float, default=3.0, help="iperf3 run for --kernel")
    args = ap.parse_args(argv)
    console = Console(width=max(Console().width, 130))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kernel = []
    if args.kernel:  # first: it needs the namespaces (and fails early without root)
        console.print("[dim]kernel reference ...[/dim]")
        kernel = kernel_reference(sizes, args.seconds, args.repeat)
    results = []
    for n in sizes:
        console.print(f"[dim]{n:,} sessions ...[/dim]")
        results.append(measure(n, args.packets, args.repeat))
    render(results, conntrack_slab(), args.packets, args.repeat, console, kernel, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
