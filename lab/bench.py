"""Forwarding benchmark: 64-byte UDP pps and TCP throughput through one member.

Direct veth links client-ns -- member-ns -- server-ns; the Linux kernel and
fgcpd forward the same topology in the same run, side by side (rich table).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from rich.console import Console
from rich.table import Table

from fgcp.daemon import OFFLOADS
from topologies.util import terminate, wait_until

REPO = Path(__file__).resolve().parent.parent
CLIENT_IP, MEMBER_IN, MEMBER_OUT, SERVER_IP = (
    "198.51.100.10", "198.51.100.1", "203.0.113.1", "203.0.113.10")
UDP_PAYLOAD = 22  # 14 eth + 20 ip + 8 udp + 22 = 64-byte frames
TARGET_PPS, TARGET_TCP = 0.30, 0.15
MODES = {
    "kernel": "Linux kernel forwarding (ip_forward=1)",
    "kernel-nat": "Linux kernel forwarding + nftables masquerade",
    "fgcpd": "fgcpd: Forwarder (policy, sessions, NAT) on PACKET_MMAP rings",
    "fgcpd-plain": "fgcpd: Forwarder on plain AF_PACKET sockets",
    "bridge-ring": "bare L2 forwarder, PACKET_MMAP rings, batched send",
    "bridge-plain": "bare L2 forwarder, select + recv_into/send",
    "mininet-kernel": "end to end through Mininet (userspace OVS), kernel member",
    "mininet-fgcpd": "end to end through Mininet (userspace OVS), fgcpd member",
}

MEMBER_CONFIG = """\
config system global
    set hostname "{hostname}"
    set lab-serial "FGVM01TM00000099"
end
config system interface
    edit "port1"
        set ip 198.51.100.1 255.255.255.0
        set allowaccess ping
    next
    edit "port2"
        set ip 203.0.113.1 255.255.255.0
    next
end
config firewall address
    edit "inside-net"
        set subnet 198.51.100.0 255.255.255.0
    next
end
config firewall policy
    edit 1
        set name "bench"
        set srcintf "port1"
        set dstintf "port2"
        set srcaddr "inside-net"
        set dstaddr "all"
        set action accept
        set schedule "always"
        set service "ALL"
        set nat enable
    next
end
"""


class BenchError(RuntimeError):
    """The benchmark topology or a tool failed."""


def _run(cmd: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise BenchError(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}")
    return res


@dataclass
class VethLab:
    """client ns (eth0) -- member ns (port1, port2) -- server ns (eth0), offloads off.

    Namespaces get unique names; ``close`` deletes them and stops the
    processes this object started (by PID).
    """

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    made: list[str] = field(default_factory=list)
    rundir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fgcp-bench-")))
    python: str = sys.executable
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def client(self) -> str:
        return f"fgcpb-c-{self.tag}"

    @property
    def member(self) -> str:
        return f"fgcpb-m-{self.tag}"

    @property
    def server(self) -> str:
        return f"fgcpb-s-{self.tag}"

    def ns(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", ns, *cmd], check=check)

    def __enter__(self) -> Self:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        for ns in (self.client, self.member, self.server):
            _run(["ip", "netns", "add", ns])
            self.made.append(ns)
        links = ((self.client, "eth0", self.member, "port1"),
                 (self.member, "port2", self.server, "eth0"))
        for i, (ns_a, if_a, ns_b, if_b) in enumerate(links):
            a, b = f"fb{i}a{self.tag}", f"fb{i}b{self.tag}"
            _run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            _run(["ip", "link", "set", a, "netns", ns_a])
            _run(["ip", "link", "set", b, "netns", ns_b])
            _run(["ip", "-n", ns_a, "link", "set", a, "name", if_a])
            _run(["ip", "-n", ns_b, "link", "set", b, "name", if_b])
        for ns, ifs in ((self.client, ["eth0"]), (self.member, ["port1", "port2"]),
                        (self.server, ["eth0"])):
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            for ifname in ifs:
                self.ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
                self.ns(ns, "ethtool", "-K", ifname, *OFFLOADS)
                _run(["ip", "-n", ns, "link", "set", ifname, "up"])
        _run(["ip", "-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0"])
        _run(["ip", "-n", self.server, "addr", "add", f"{SERVER_IP}/24", "dev", "eth0"])
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", self.server, "iperf3", "-s", "-B", SERVER_IP],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(iperf)

    # ----------------------------------------------------------- modes

    def _routes(self, via_member: bool) -> None:
        for ns, dst, gw in ((self.client, "203.0.113.0/24", MEMBER_IN),
                            (self.server, "198.51.100.0/24", MEMBER_OUT)):
            _run(["ip", "-n", ns, "route", "del", dst], check=False)
            _run(["ip", "-n", ns, "route", "del", "default"], check=False)
            if via_member:
                _run(["ip", "-n", ns, "route", "add", "default", "via", gw])
            else:  # bare L2 forwarder: the far subnet is on-link
                _run(["ip", "-n", ns, "route", "add", dst, "dev", "eth0"])
            _run(["ip", "-n", ns, "neigh", "flush", "all"], check=False)

    def _reset_member(self) -> None:
        self.stop_daemon()
        m = self.member
        self.ns(m, "nft", "flush", "ruleset", check=False)
        self.ns(m, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        for ifname in ("port1", "port2"):
            _run(["ip", "-n", m, "addr", "flush", "dev", ifname])
            _run(["ip", "-n", m, "link", "set", ifname, "arp", "on"])
        _run(["ip", "-n", m, "neigh", "flush", "all"], check=False)

    def set_mode(self, mode: str) -> None:
        """Make the member forward with ``mode`` (see MODES)."""
        self._reset_member()
        m = self.member
        if mode in ("kernel", "kernel-nat"):
            _run(["ip", "-n", m, "addr", "add", f"{MEMBER_IN}/24", "dev", "port1"])
            _run(["ip", "-n", m, "addr", "add", f"{MEMBER_OUT}/24", "dev", "port2"])
            self.ns(m, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            if mode == "kernel-nat":
                rules = ("table ip benchnat { chain post { type nat hook postrouting "
                         "priority 100; oifname \"port2\" masquerade; }; }")
                self.ns(m, "nft", rules)
            self._routes(via_member=True)
        elif mode in ("fgcpd", "fgcpd-plain"):
            self.start_daemon("fgcp", "ring" if mode == "fgcpd" else "plain")
            self._routes(via_member=True)
        elif mode in ("bridge-ring", "bridge-plain"):
            self.start_daemon("bridge", mode.split("-")[1])
            self._routes(via_member=False)
        else:
            raise BenchError(f"unknown mode {mode!r}")
        # warm up ARP / sessions and prove the path works
        res = self.ns(self.client, "ping", "-c", "3", "-i", "0.2", "-W", "1", SERVER_IP,
                      check=False)
        got = re.search(r"(\d+) received", res.stdout)
        if got is None or int(got.group(1)) == 0:
            raise BenchError(f"{mode}: no ping through the member:\n{res.stdout}{self.daemon_log()}")

    def start_daemon(self, forwarder: str, port_kind: str) -> None:
        conf = self.rundir / "member.conf"
        conf.write_text(MEMBER_CONFIG.format(hostname=f"bench{self.tag}"))
        out = open(self.rundir / "fgcpd.out", "ab")  # noqa: SIM115 - closed with the process
        try:
            self.daemon = subprocess.Popen(
                ["ip", "netns", "exec", self.member, self.python, "-m",
                 "fgcp.daemon" if forwarder == "fgcp" else "lab.bridge",
                 "--config", str(conf), "--rundir", str(self.rundir), "--port-kind", port_kind],
                cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        finally:
            out.close()
        sock = self.rundir / f"bench{self.tag}.sock"
        daemon = self.daemon

        def up() -> bool:
            if daemon.poll() is not None:
                raise BenchError(f"fgcpd exited with {daemon.returncode}:\n{self.daemon_log()}")
            return sock.exists()

        wait_until(up, 15, "fgcpd's control socket", interval=0.05, error=BenchError)

    def daemon_log(self) -> str:
        text = ""
        for p in sorted(self.rundir.glob("*.out")) + sorted(self.rundir.glob("*.log")):
            text += f"--- {p}\n{p.read_text(errors='replace')[-4000:]}"
        return text

    def daemon_query(self, command: str) -> str:
        from fgcp.ctl import query

        return query(self.rundir, f"bench{self.tag}", command)

    def stop_daemon(self) -> None:
        if self.daemon is not None:
            terminate(self.daemon)
            self.daemon = None

    def close(self) -> None:
        self.stop_daemon()
        for p in self.procs:
            terminate(p)
        self.procs.clear()
        for ns in self.made:
            _run(["ip", "netns", "del", ns], check=False)
        self.made.clear()
        shutil.rmtree(self.rundir, ignore_errors=True)

    def measure(self) -> Measure:
        return Measure(lambda *cmd: self.ns(self.client, *cmd, check=False),
                       lambda *cmd: self.ns(self.server, *cmd, check=False),
                       SERVER_IP, "eth0")


Runner = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class Measure:
    """iperf3 from a client to a server (commands run through ``on_client``/
    ``on_server``); UDP packets counted at the server's interface."""

    on_client: Runner
    on_server: Runner
    server_ip: str
    server_if: str

    def rx_packets(self) -> int:
        res = self.on_server("ip", "-s", "-j", "link", "show", "dev", self.server_if)
        try:
            return int(json.loads(res.stdout)[0]["stats64"]["rx"]["packets"])
        except (json.JSONDecodeError, KeyError, IndexError) as exc:
            raise BenchError(f"cannot read {self.server_if} counters: {res.stderr}") from exc

    def iperf(self, *args: str, seconds: float) -> dict[str, Any]:
        res = self.on_client("iperf3", "-c", self.server_ip, "-J", "-t", str(seconds), *args)
        try:
            data = json.loads(res.stdout)
        except json.JSONDecodeError as exc:
            raise BenchError(f"iperf3 {' '.join(args)}: {res.stderr or res.stdout}") from exc
        if "error" in data:
            raise BenchError(f"iperf3 {' '.join(args)}: {data['error']}")
        return data

    def tcp_bps(self, seconds: float) -> float:
        data = self.iperf(seconds=seconds)
        return float(data["end"]["sum_received"]["bits_per_second"])

    def udp_pps(self, seconds: float) -> tuple[float, float]:
        """(received pps at the server's interface, sent pps) of 64-byte frames."""
        before = self.rx_packets()
        data = self.iperf("-u", "-l", str(UDP_PAYLOAD), "-b", "0", seconds=seconds)
        received = self.rx_packets() - before
        end = data["end"]["sum"]
        secs = float(end["seconds"]) or seconds
        # stragglers in the last instant and ARP/iperf control packets are noise here
        return received / secs, float(end["packets"]) / secs


@dataclass
class ModeResult:
    mode: str
    tcp: list[float] = field(default_factory=list)
    pps: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    error: str = ""

    def measure_round(self, m: Measure, seconds: float) -> tuple[float, float, float]:
        """One round: UDP pps (received, sent) then TCP bit/s, recorded; returned."""
        pps, sent = m.udp_pps(seconds)
        tcp = m.tcp_bps(seconds)
        self.pps.append(pps)
        self.sent.append(sent)
        self.tcp.append(tcp)
        return pps, sent, tcp

    @property
    def tcp_median(self) -> float:
        return statistics.median(self.tcp) if self.tcp else 0.0

    @property
    def pps_median(self) -> float:
        return statistics.median(self.pps) if self.pps else 0.0


def run_bench(modes: Sequence[str], runs: int, seconds: float, console: Console,
              verbose: bool = False) -> list[ModeResult]:
    """Rounds of every mode in turn (kernel, fgcpd, kernel, fgcpd, ...), so that
    load from other processes hits all modes alike; a failed mode is skipped."""
    results = {m: ModeResult(m) for m in modes}
    with VethLab() as lab:
        for i in range(runs):
            for mode in modes:
                r = results[mode]
                if r.error:
                    continue
                try:
                    lab.set_mode(mode)
                    pps, sent, tcp = r.measure_round(lab.measure(), seconds)
                    console.log(f"round {i + 1}/{runs} {mode}: {pps / 1e3:.1f} kpps received "
                                f"({sent / 1e3:.1f} kpps sent), TCP {tcp / 1e9:.3f} Gbit/s")
                    if lab.daemon is not None and verbose:
                        stats = lab.daemon_query("diagnose lab stats")
                        console.log(f"{mode} daemon counters: " + " ".join(stats.split()))
                except BenchError as exc:
                    r.error = str(exc)
                    console.log(f"[red]{mode} failed:[/red] {exc}")
                finally:
                    had_daemon = lab.daemon is not None
                    lab.stop_daemon()
                    if had_daemon and "Traceback" in lab.daemon_log():
                        r.error = r.error or "fgcpd logged a traceback"
                        console.log(f"[red]{mode}: fgcpd logged a traceback[/red]\n"
                                    f"{lab.daemon_log()}")
    return list(results.values())


def _reference(results: Sequence[ModeResult], mode: str) -> ModeResult | None:
    name = "mininet-kernel" if mode.startswith("mininet-") else "kernel"
    return next((r for r in results if r.mode == name and not r.error), None)


def render(results: Sequence[ModeResult], runs: int, seconds: float, console: Console) -> bool:
    """Print the table and the target check; True when every fgcpd target is met."""
    table = Table(title=f"fgcp-lab bench: client -- member -- server "
                        f"(median of {runs} x {seconds:g} s, offloads off)")
    table.add_column("member", no_wrap=True)
    table.add_column("UDP 64 B kpps rx", justify="right")
    table.add_column("vs kernel", justify="right")
    table.add_column("UDP kpps tx", justify="right")
    table.add_column("TCP Gbit/s", justify="right")
    table.add_column("vs kernel", justify="right")
    ok = True
    bound = False
    for r in results:
        ref = _reference(results, r.mode)
        if r.error:
            table.add_row(r.mode, "failed", "", "", "failed", "")
            if r.mode.startswith("fgcpd"):
                ok = False
            continue
        pr = r.pps_median / ref.pps_median if ref and ref.pps_median else 0.0
        tr = r.tcp_median / ref.tcp_median if ref and ref.tcp_median else 0.0
        sent = statistics.median(r.sent) if r.sent else 0.0
        mark = ""
        if sent and r.pps_median >= 0.97 * sent:
            mark, bound = " *", True
        table.add_row(r.mode, f"{r.pps_median / 1e3:.1f}{mark}", f"{pr:.0%}" if ref else "-",
                      f"{sent / 1e3:.1f}", f"{r.tcp_median / 1e9:.3f}",
                      f"{tr:.0%}" if ref else "-")
    console.print(table)
    for r in results:
        console.print(f"  {r.mode}: {MODES.get(r.mode, r.mode)}")
    console.print("  rx = packets/s counted at the server's interface; tx = iperf3 sender rate")
    if bound:
        console.print("  * received ~ sent: bound by the single iperf3 sender, not by the "
                      "forwarder (its capacity is higher than shown)")
    ref = _reference(results, "fgcpd")
    if not any(r.mode == "fgcpd" for r in results):
        return ok
    if ref is None:
        console.print("no kernel reference in this run: target ratios not checked")
        return False
    for r in results:
        if r.mode != "fgcpd" or r.error:
            continue
        pr, tr = r.pps_median / ref.pps_median, r.tcp_median / ref.tcp_median
        for what, val, target in (("64-byte UDP pps", pr, TARGET_PPS), ("TCP throughput", tr, TARGET_TCP)):
            met = val >= target
            ok &= met
            console.print(f"target {what} >= {target:.0%} of kernel: {val:.0%} "
                          + ("[green]met[/green]" if met else "[red]NOT met[/red]"))
    console.print(f"note: {os.cpu_count()} CPUs shared by iperf3 client, server and the "
                  "forwarder (and anything else running): expect run-to-run noise")
    return ok


def run_mininet(runs: int, seconds: float, console: Console) -> list[ModeResult]:
    """End-to-end figure through the Mininet lab (userspace OVS, one member)."""
    results = []
    for mode in ("kernel", "fgcpd"):
        r = ModeResult(f"mininet-{mode}")
        results.append(r)
        try:
            from topologies.lab import LabError, LabNetwork
        except ImportError as exc:
            r.error = f"topologies unavailable: {exc}"
            continue
        try:
            with LabNetwork(clients=1, servers=1, members=1, member_mode=mode) as lab:
                client, server = lab.host("c1"), lab.host("sv1")
                ip = server.IP()
                m = Measure(lambda *cmd, h=client: _host_run(h, cmd),
                            lambda *cmd, h=server: _host_run(h, cmd),
                            ip, server.defaultIntf().name)
                srv = server.popen(["iperf3", "-s", "-B", ip], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                try:
                    wait_until(lambda h=server: ":5201" in h.cmd("ss -Hltn 'sport = :5201'"), 10,
                               "iperf3 server", interval=0.05, error=BenchError)
                    for i in range(runs):
                        pps, _, tcp = r.measure_round(m, seconds)
                        console.log(f"{r.mode} run {i + 1}/{runs}: {pps / 1e3:.1f} kpps "
                                    f"received, TCP {tcp / 1e9:.3f} Gbit/s")
                finally:
                    terminate(srv)
        except (LabError, BenchError) as exc:
            r.error = str(exc)
            console.log(f"[red]{r.mode} failed:[/red] {exc}")
    return results


def _host_run(host: object, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    proc = host.popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # type: ignore[attr-defined]
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fgcp-lab bench", description=__doc__)
    p.add_argument("--modes", default="kernel,fgcpd",
                   help="comma-separated, in order: "
                   + ", ".join(m for m in MODES if not m.startswith("mininet-")))
    p.add_argument("--runs", type=int, default=3, help="runs per mode (median reported)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of each iperf3 run")
    p.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    p.add_argument("--mininet", action="store_true",
                   help="also measure end to end through the Mininet lab (userspace OVS)")
    p.add_argument("-v", "--verbose", action="store_true", help="print daemon counters per run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    if os.geteuid() != 0:
        console.print("fgcp-lab bench needs root (network namespaces): sudo .venv/bin/fgcp-lab bench")
        return 2
    missing = [t for t in ("ip", "iperf3", "ethtool", "nft") if shutil.which(t) is None]
    if missing:
        console.print(f"missing tools: {' '.join(missing)} (run scripts/setup-host.sh)")
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES or m.startswith("mininet-")]
    if unknown:
        console.print(f"unknown mode(s): {', '.join(unknown)}; known: {', '.join(MODES)}")
        return 2
    try:
        results = run_bench(modes, args.runs, args.seconds, console, args.verbose) if modes else []
        if args.mininet:
            results += run_mininet(args.runs, args.seconds, console)
    except BenchError as exc:
        console.print(f"[red]bench failed:[/red] {exc}")
        return 1
    ok = render(results, args.runs, args.seconds, console)
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"mode": r.mode, "tcp_bps": r.tcp, "udp_pps": r.pps, "udp_sent_pps": r.sent,
              "error": r.error} for r in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
