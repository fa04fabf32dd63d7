"""Issue-2 acceptance: real clients and servers through one fgcpd member.

iperf3 TCP, a UDP stream and ping from c1 to sv1 through fgt1 with source
NAT; the session list shows each; the deny policy blocks; a mid-stream TCP
segment is dropped and counted; tshark validates the checksums after NAT.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from topologies.lab import LabNetwork, wait_until
from topologies.traffic import iperf3, ping

C1 = "198.51.100.11"
SV1 = "203.0.113.11"
NAT_IP = "203.0.113.1"
BLOCKED = "203.0.113.66"  # topologies/configs/fgt1.conf: policy 1 denies it


@pytest.fixture
def lab(make_lab: Callable[..., LabNetwork]) -> Iterator[LabNetwork]:
    with make_lab(member_mode="fgcpd") as running:
        wait_until(lambda: ping(running.host("c1"), SV1, count=1).ok, 20, "fgt1 forwarding")
        yield running


def counter(lab: LabNetwork, name: str) -> int:
    """A forwarder counter from ``diagnose lab stats`` (0 when never counted)."""
    text = lab.diag("fgt1", "diagnose lab stats")
    m = re.search(rf"^fwd\.{re.escape(name)}=(\d+)$", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def session_blocks(text: str) -> list[str]:
    """``diagnose sys session list`` output split into one block per session."""
    return [b for b in re.split(r"\n(?=session info:)", text) if b.startswith("session info:")]


def test_tcp_udp_ping_through_member_with_nat(lab: LabNetwork) -> None:
    c1, sv1 = lab.host("c1"), lab.host("sv1")
    p = ping(c1, SV1, count=5, interval=0.1)
    assert p.ok, p.output
    udp = iperf3(c1, sv1, SV1, seconds=2, udp=True, bitrate="5M", port=5202)
    assert udp.ok and udp.lost_percent is not None and udp.lost_percent < 5, udp
    tcp = iperf3(c1, sv1, SV1, seconds=2, port=5201)
    assert tcp.ok and tcp.mbps > 20, tcp

    # a TCP connection that stays open while we look at the session table
    srv = sv1.popen([sys.executable, "-c", (
        "import socket,time\n"
        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        f"s.bind(('{SV1}',8080));s.listen();c,_=s.accept();time.sleep(30)\n")])
    cli = None
    try:
        time.sleep(0.5)
        cli = c1.popen([sys.executable, "-c", (
            "import socket,time\n"
            f"s=socket.create_connection(('{SV1}',8080));s.sendall(b'x'*1000);time.sleep(30)\n")])
        wait_until(lambda: "->203.0.113.11:8080" in lab.diag("fgt1", "diagnose sys session list"),
                   10, "TCP session in the session list")
        blocks = session_blocks(lab.diag("fgt1", "diagnose sys session list"))
    finally:
        for proc in (cli, srv):
            if proc is not None:
                proc.kill()
                proc.wait()

    def find(proto: int, dport: str) -> str:
        for b in blocks:
            if f"proto={proto} " in b and f"->{SV1}:{dport}(" in b:
                return b
        raise AssertionError(f"no proto={proto} session to {SV1}:{dport} in:\n" + "\n".join(blocks))

    tcp_open = find(6, "8080")
    assert "proto_state=01" in tcp_open  # established
    snat = re.search(rf"act=snat {C1}:(\d+)->{SV1}:8080\({NAT_IP}:(\d+)\)", tcp_open)
    assert snat, tcp_open
    assert re.search(rf"act=dnat {SV1}:8080->{NAT_IP}:{snat.group(2)}\({C1}:{snat.group(1)}\)",
                     tcp_open), tcp_open
    assert "policy_id=2" in tcp_open
    udp_s = find(17, "5202")  # iperf3's UDP data flow, kept for the UDP timeout
    assert f"act=snat {C1}:" in udp_s and f"({NAT_IP}:" in udp_s
    icmp = [b for b in blocks if "proto=1 " in b and f"act=snat {C1}:" in b]
    assert icmp, "no ICMP session with source NAT"
    stat = lab.diag("fgt1", "diagnose sys session stat")
    m = re.search(r"session_count=(\d+)", stat)
    assert m and int(m.group(1)) >= 3, stat


def test_deny_policy_blocks_and_is_counted(lab: LabNetwork) -> None:
    c1, sv1 = lab.host("c1"), lab.host("sv1")
    # a real host answers at the blocked address: only the policy can stop it
    sv1.cmd(f"ip addr add {BLOCKED}/24 dev {sv1.defaultIntf().name}")
    assert ping(sv1, BLOCKED, count=1).ok
    before = counter(lab, "policy_deny.1")
    assert not ping(c1, BLOCKED, count=3, interval=0.2).ok
    assert counter(lab, "policy_deny.1") >= before + 3
    assert ping(c1, SV1, count=2).ok  # policy 2 still lets the rest through
    listing = lab.diag("fgt1", "diagnose sys session list")
    assert f"->{BLOCKED}:" not in listing


def test_midstream_segment_without_session_dropped_and_counted(lab: LabNetwork) -> None:
    c1, sv1 = lab.host("c1"), lab.host("sv1")
    before = counter(lab, "no_session")
    pcap = Path(lab.rundir) / "sv1-midstream.pcap"
    dump = sv1.popen(["tcpdump", "-n", "-U", "--immediate-mode", "-i", sv1.defaultIntf().name, "-w", str(pcap),
                      "tcp port 8081"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        out = c1.cmd(
            f"{sys.executable} -c \"from scapy.all import IP, TCP, send; "
            f"send(IP(dst='{SV1}')/TCP(sport=40000, dport=8081, flags='A', seq=12345, ack=1)"
            f"/(b'x'*20), count=3, verbose=0)\"")
        assert "Traceback" not in out, out
        wait_until(lambda: counter(lab, "no_session") >= before + 3, 5, "no_session counter")
    finally:
        dump.terminate()
        dump.wait()
    assert counter(lab, "tcp_not_syn") >= 3
    seen = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], check=False,
                          capture_output=True, text=True)
    assert "8081" not in seen.stdout, "the mid-stream segment reached the server"
    assert ":8081" not in lab.diag("fgt1", "diagnose sys session list")


def test_checksums_after_nat_pass_tshark_validation(lab: LabNetwork) -> None:
    c1, sv1 = lab.host("c1"), lab.host("sv1")
    pcap = Path(lab.rundir) / "sv1-nat.pcap"
    dump = sv1.popen(["tcpdump", "-n", "-U", "--immediate-mode", "-i", sv1.defaultIntf().name, "-w", str(pcap),
                      f"src host {NAT_IP}"], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        assert iperf3(c1, sv1, SV1, seconds=1, port=5203).ok
        assert iperf3(c1, sv1, SV1, seconds=1, udp=True, bitrate="2M", port=5204).ok
        assert ping(c1, SV1, count=3, interval=0.1).ok
        time.sleep(0.5)
    finally:
        dump.terminate()
        dump.wait()
    res = subprocess.run(
        ["tshark", "-n", "-r", str(pcap),
         "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE",
         "-T", "fields", "-E", "separator=,", "-e", "ip.proto", "-e", "ip.checksum.status",
         "-e", "tcp.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.checksum.status"],
        capture_output=True, text=True, check=True)
    rows = [r.split(",") for r in res.stdout.splitlines() if r.strip()]
    by_proto: dict[str, int] = {}
    for proto, ip_ok, tcp_ok, udp_ok, icmp_ok in rows:
        by_proto[proto] = by_proto.get(proto, 0) + 1
        assert ip_ok == "1", f"bad IP checksum: {proto} {ip_ok}"
        if proto == "6":
            assert tcp_ok == "1", f"bad TCP checksum after NAT: {tcp_ok}"
        elif proto == "17":
            assert udp_ok == "1", f"bad UDP checksum after NAT: {udp_ok}"
        elif proto == "1":
            assert icmp_ok == "1", f"bad ICMP checksum after NAT: {icmp_ok}"
    assert by_proto.get("6", 0) > 100 and by_proto.get("17", 0) > 10 and by_proto.get("1", 0) >= 3, \
        by_proto
