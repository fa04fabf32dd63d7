"""The forwarding benchmark's topology: client ns -- member ns -- server ns on veth links.

``VethLab`` builds the three namespaces (offloads off, iperf3 server started), makes the
member forward in one mode at a time (the Linux kernel, the kernel with nftables NAT,
fgcpd on rings or plain sockets, the bare L2 bridge of lab.bridge) and proves the path
with a ping; ``Measure`` runs iperf3 across it (64-byte UDP pps counted at the server's
interface, TCP bit/s).  lab.bench drives the rounds and prints the table.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from fgcp.ctl import query
from fgcp.daemon import OFFLOADS
from lab.benchkit import BenchError
from lab.benchkit import run as _checked_run
from topologies.util import terminate, wait_until

REPO = Path(__file__).resolve().parent.parent
CLIENT_IP, MEMBER_IN, MEMBER_OUT, SERVER_IP = (
    "198.51.100.10", "198.51.100.1", "203.0.113.1", "203.0.113.10")
UDP_PAYLOAD = 22  # 14 eth + 20 ip + 8 udp + 22 = 64-byte frames

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

# every set-up command of the topology: checked, at most a minute
run = functools.partial(_checked_run, timeout=60)


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
        return run(["ip", "netns", "exec", ns, *cmd], check=check)

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
            run(["ip", "netns", "add", ns])
            self.made.append(ns)
        links = ((self.client, "eth0", self.member, "port1"),
                 (self.member, "port2", self.server, "eth0"))
        for i, (ns_a, if_a, ns_b, if_b) in enumerate(links):
            a, b = f"fb{i}a{self.tag}", f"fb{i}b{self.tag}"
            run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            run(["ip", "link", "set", a, "netns", ns_a])
            run(["ip", "link", "set", b, "netns", ns_b])
            run(["ip", "-n", ns_a, "link", "set", a, "name", if_a])
            run(["ip", "-n", ns_b, "link", "set", b, "name", if_b])
        for ns, ifs in ((self.client, ["eth0"]), (self.member, ["port1", "port2"]),
                        (self.server, ["eth0"])):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            for ifname in ifs:
                self.ns(ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
                self.ns(ns, "ethtool", "-K", ifname, *OFFLOADS)
                run(["ip", "-n", ns, "link", "set", ifname, "up"])
        run(["ip", "-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0"])
        run(["ip", "-n", self.server, "addr", "add", f"{SERVER_IP}/24", "dev", "eth0"])
        iperf = subprocess.Popen(
            ["ip", "netns", "exec", self.server, "iperf3", "-s", "-B", SERVER_IP],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.procs.append(iperf)

    # ----------------------------------------------------------- modes

    def _routes(self, via_member: bool) -> None:
        for ns, dst, gw in ((self.client, "203.0.113.0/24", MEMBER_IN),
                            (self.server, "198.51.100.0/24", MEMBER_OUT)):
            run(["ip", "-n", ns, "route", "del", dst], check=False)
            run(["ip", "-n", ns, "route", "del", "default"], check=False)
            if via_member:
                run(["ip", "-n", ns, "route", "add", "default", "via", gw])
            else:  # bare L2 forwarder: the far subnet is on-link
                run(["ip", "-n", ns, "route", "add", dst, "dev", "eth0"])
            run(["ip", "-n", ns, "neigh", "flush", "all"], check=False)

    def _reset_member(self) -> None:
        self.stop_daemon()
        m = self.member
        self.ns(m, "nft", "flush", "ruleset", check=False)
        self.ns(m, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        for ifname in ("port1", "port2"):
            run(["ip", "-n", m, "addr", "flush", "dev", ifname])
            run(["ip", "-n", m, "link", "set", ifname, "arp", "on"])
        run(["ip", "-n", m, "neigh", "flush", "all"], check=False)

    def set_mode(self, mode: str) -> None:
        """Make the member forward with ``mode`` (one of lab.bench.MODES but the mininet ones)."""
        self._reset_member()
        m = self.member
        if mode in ("kernel", "kernel-nat"):
            run(["ip", "-n", m, "addr", "add", f"{MEMBER_IN}/24", "dev", "port1"])
            run(["ip", "-n", m, "addr", "add", f"{MEMBER_OUT}/24", "dev", "port2"])
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
            run(["ip", "netns", "del", ns], check=False)
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
        if not isinstance(data, dict):
            raise BenchError(f"iperf3 {' '.join(args)}: not a JSON object: {res.stdout[:200]}")
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
