"""Small traffic checks run between lab hosts: ping and iperf3 (TCP, UDP).

Used by the `fgcp-lab topo --demo` command and the Mininet tests; each check
is bounded in time and returns a typed result instead of raising.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass

from mininet.node import Host


@dataclass(frozen=True)
class PingResult:
    sent: int
    received: int
    avg_ms: float | None
    output: str

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.received == self.sent


@dataclass(frozen=True)
class IperfResult:
    protocol: str  # "TCP" | "UDP"
    ok: bool
    mbps: float = 0.0  # received bit rate, Mbit/s
    retransmits: int | None = None  # TCP
    lost_percent: float | None = None  # UDP
    error: str = ""


def parse_ping(output: str) -> PingResult:
    """Parse iputils ``ping`` output."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", output)
    return PingResult(sent, received, float(rtt.group(1)) if rtt else None, output)


def ping(src: Host, dst_ip: str, count: int = 3, interval: float = 0.2) -> PingResult:
    """``count`` pings from ``src`` to ``dst_ip`` (each waits at most 2 s)."""
    out = src.cmd(f"ping -n -c {count} -i {interval} -W 2 {dst_ip}")
    return parse_ping(out)


def parse_iperf3(text: str, udp: bool) -> IperfResult:
    """Parse ``iperf3 --json`` client output."""
    proto = "UDP" if udp else "TCP"
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return IperfResult(proto, False, error=text.strip()[-300:] or "no output")
    if data.get("error"):
        return IperfResult(proto, False, error=str(data["error"]))
    end = data.get("end", {})
    if udp:
        s = end.get("sum", {})
        lost = float(s.get("lost_percent", 100.0))
        return IperfResult(proto, lost < 100.0, s.get("bits_per_second", 0) / 1e6,
                           lost_percent=lost)
    recv = end.get("sum_received", {})
    sent = end.get("sum_sent", {})
    mbps = recv.get("bits_per_second", 0) / 1e6
    return IperfResult(proto, mbps > 0, mbps, retransmits=sent.get("retransmits"))


def iperf3(
    client: Host,
    server: Host,
    server_ip: str,
    seconds: float = 2,
    udp: bool = False,
    bitrate: str = "10M",
    port: int = 5201,
) -> IperfResult:
    """One iperf3 run client -> server (one-off server, killed afterwards)."""
    srv = server.popen(["iperf3", "-s", "-1", "-B", server_ip, "-p", str(port)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while f":{port}" not in server.cmd(f"ss -Hltn 'sport = :{port}'"):
            if time.monotonic() > deadline or srv.poll() is not None:
                return IperfResult("UDP" if udp else "TCP", False,
                                   error="iperf3 server did not start")
            time.sleep(0.05)
        cmd = ["iperf3", "-c", server_ip, "-p", str(port), "-t", str(seconds),
               "--json", "--connect-timeout", "3000"]
        if udp:
            cmd += ["-u", "-b", bitrate, "-l", "1200"]
        cli = client.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = cli.communicate(timeout=seconds + 15)
        except subprocess.TimeoutExpired:
            cli.kill()
            out, _ = cli.communicate()
        return parse_iperf3(out.decode(errors="replace"), udp)
    finally:
        if srv.poll() is None:
            srv.terminate()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
