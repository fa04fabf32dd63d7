"""Forwarder end to end on frames: ARP, ping, policy, NAT, TCP tracking, robustness."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from fgcp.forward import Forwarder, PortSpec
from fgcp.model import Address, Interface, MemberConfig, Policy, Service, StaticRoute
from fgcp.routing import RouteTable
from fgcp.session import PICKUP, Session
from fgcp.tcptrack import PS_ESTABLISHED, PS_TIME_WAIT, TcpPeer

FGT1 = "02:00:00:00:01:01"  # port1 (inside)
FGT2 = "02:00:00:00:01:02"  # port2 (outside)
CLI = "02:00:00:0a:00:01"
CLI2 = "02:00:00:0a:00:02"
SRV = "02:00:00:0b:00:01"
VMAC = "00:09:0f:09:0a:01"
IN_GW, OUT_IP = "198.51.100.1", "203.0.113.1"
C1, C2, SV = "198.51.100.10", "198.51.100.11", "203.0.113.10"
P1, P2 = 0, 1

ACCEPT_NAT = Policy(1, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",),
                    dstaddr=("all",), service=("ALL",), action="accept", nat=True)


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def make_fwd(policies: tuple[Policy, ...] = (ACCEPT_NAT,), learn: bool = True,
             **cfg_kw: object) -> Forwarder:
    cfg = MemberConfig(
        source="test",
        interfaces={
            "port1": Interface("port1", IPv4Interface(IN_GW + "/24"), ("ping", "https")),
            "port2": Interface("port2", IPv4Interface(OUT_IP + "/24"), ()),
        },
        addresses={"all": Address("all"),
                   "srv": Address("srv", subnet=IPv4Network(SV + "/32"))},
        services={"ALL": Service("ALL", protocol="IP"),
                  "DNS": Service("DNS", tcp_portrange=((53, 53),), udp_portrange=((53, 53),))},
        policies=policies,
        **cfg_kw,  # type: ignore[arg-type]
    )
    fwd = Forwarder(cfg, [PortSpec(P1, "port1", mac(FGT1)), PortSpec(P2, "port2", mac(FGT2))])
    if learn:
        send(fwd, P1, Ether(src=CLI, dst=FGT1) / ARP(op=2, hwsrc=CLI, psrc=C1, hwdst=FGT1, pdst=IN_GW))
        send(fwd, P1, Ether(src=CLI2, dst=FGT1) / ARP(op=2, hwsrc=CLI2, psrc=C2, hwdst=FGT1,
                                                      pdst=IN_GW))
        send(fwd, P2, Ether(src=SRV, dst=FGT2) / ARP(op=2, hwsrc=SRV, psrc=SV, hwdst=FGT2,
                                                     pdst=OUT_IP))
    return fwd


def send(fwd: Forwarder, port: int, pkt: Packet | bytes, now: float = 1.0) -> list[tuple[int, Ether]]:
    out: list = []
    fwd.handle(port, bytearray(bytes(pkt)), now, out)
    return [(p, Ether(bytes(f))) for p, f in out]


def from_client(l4: Packet, src: str = C1, smac: str = CLI, ttl: int = 64) -> Packet:
    return Ether(src=smac, dst=FGT1) / IP(src=src, dst=SV, ttl=ttl) / l4


def from_server(l4: Packet, dst: str = OUT_IP) -> Packet:
    return Ether(src=SRV, dst=FGT2) / IP(src=SV, dst=dst) / l4


def assert_checksums_valid(pkt: Ether) -> None:
    ref = pkt.copy()
    del ref[IP].chksum
    l4 = ref[IP].payload
    if not (isinstance(l4, UDP) and pkt[UDP].chksum == 0):
        del l4.chksum
    rebuilt = Ether(bytes(ref))
    assert pkt[IP].chksum == rebuilt[IP].chksum, "IPv4 header checksum"
    assert pkt[IP].payload.chksum == rebuilt[IP].payload.chksum, "L4 checksum"


def one(frames: list[tuple[int, Ether]]) -> tuple[int, Ether]:
    assert len(frames) == 1, frames
    return frames[0]


# -- ARP and local traffic -------------------------------------------------------------------

def test_arp_request_for_own_address_answered_and_sender_learned() -> None:
    fwd = make_fwd(learn=False)
    req = Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst=IN_GW)
    port, rep = one(send(fwd, P1, req))
    assert port == P1 and rep.dst == CLI and rep.src == FGT1
    assert rep[ARP].op == 2 and rep[ARP].hwsrc == FGT1 and rep[ARP].psrc == IN_GW
    assert rep[ARP].pdst == C1 and rep[ARP].hwdst == CLI
    assert fwd.arp.known(P1, int(IPv4Address(C1)))


def test_arp_for_other_addresses_or_wrong_port_ignored() -> None:
    fwd = make_fwd(learn=False)
    req = Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst=C2)
    assert send(fwd, P1, req) == []
    req = Ether(src=SRV, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=SRV, psrc=SV, pdst=IN_GW)
    assert send(fwd, P2, req) == []
    assert not fwd.arp.known(P1, int(IPv4Address(C1)))


def test_ping_member_answered_when_allowaccess_ping() -> None:
    fwd = make_fwd()
    req = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=IN_GW) / ICMP(id=9, seq=1) / b"hello"
    port, rep = one(send(fwd, P1, req))
    assert port == P1 and rep.dst == CLI and rep.src == FGT1
    assert rep[IP].src == IN_GW and rep[IP].dst == C1
    assert rep[ICMP].type == 0 and rep[ICMP].id == 9 and bytes(rep[ICMP].payload) == b"hello"
    assert_checksums_valid(rep)
    assert fwd.counters["ping_reply"] == 1 and len(fwd.sessions) == 0


def test_ping_member_refused_without_allowaccess() -> None:
    fwd = make_fwd()
    req = Ether(src=SRV, dst=FGT2) / IP(src=SV, dst=OUT_IP) / ICMP(id=9, seq=1)
    assert send(fwd, P2, req) == []
    assert fwd.counters["ping_denied"] == 1


def test_other_traffic_to_member_dropped() -> None:
    fwd = make_fwd()
    pkt = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=IN_GW) / TCP(dport=22, flags="S")
    assert send(fwd, P1, pkt) == []
    assert fwd.counters["local_in_drop"] == 1


# -- forwarding with NAT ---------------------------------------------------------------------

def test_udp_through_with_snat_and_reverse() -> None:
    fwd = make_fwd()
    port, out = one(send(fwd, P1, from_client(UDP(sport=40000, dport=5001) / b"data", ttl=10)))
    assert port == P2 and out.src == FGT2 and out.dst == SRV
    assert out[IP].src == OUT_IP and out[IP].dst == SV and out[IP].ttl == 9
    assert out[UDP].sport == 40000 and out[UDP].dport == 5001  # source port preserved
    assert_checksums_valid(out)
    s = next(iter(fwd.sessions))
    assert s.nat and s.policy_id == 1 and s.in_intf == "port1" and s.out_intf == "port2"
    port, back = one(send(fwd, P2, from_server(UDP(sport=5001, dport=40000) / b"answer")))
    assert port == P1 and back.dst == CLI and back.src == FGT1
    assert back[IP].src == SV and back[IP].dst == C1 and back[UDP].dport == 40000
    assert_checksums_valid(back)
    assert (s.org_packets, s.reply_packets) == (1, 1)
    assert s.org_bytes == 32 and s.reply_bytes == 34
    assert s.state == 1  # UDP: reply seen


def test_udp_zero_checksum_stays_zero() -> None:
    fwd = make_fwd()
    pkt = from_client(UDP(sport=40000, dport=5001, chksum=0) / b"data")
    _, out = one(send(fwd, P1, pkt))
    assert out[UDP].chksum == 0 and out[IP].src == OUT_IP


def test_nat_port_clash_gets_new_port_and_replies_find_their_client() -> None:
    fwd = make_fwd()
    _, a = one(send(fwd, P1, from_client(UDP(sport=40000, dport=53))))
    _, b = one(send(fwd, P1, from_client(UDP(sport=40000, dport=53), src=C2, smac=CLI2)))
    assert a[UDP].sport == 40000 and b[UDP].sport != 40000
    assert_checksums_valid(b)
    _, back = one(send(fwd, P2, from_server(UDP(sport=53, dport=b[UDP].sport))))
    assert back[IP].dst == C2 and back.dst == CLI2 and back[UDP].dport == 40000
    assert_checksums_valid(back)


def test_icmp_echo_through_with_identifier_translation() -> None:
    fwd = make_fwd()
    _, a = one(send(fwd, P1, from_client(ICMP(id=100, seq=1) / (b"x" * 8))))
    _, b = one(send(fwd, P1, from_client(ICMP(id=100, seq=1), src=C2, smac=CLI2)))
    assert a[IP].src == OUT_IP and a[ICMP].id == 100
    assert b[ICMP].id != 100
    for f in (a, b):
        assert_checksums_valid(f)
    _, back = one(send(fwd, P2, from_server(ICMP(type=0, id=b[ICMP].id, seq=1))))
    assert back[IP].dst == C2 and back[ICMP].id == 100 and back.dst == CLI2
    assert_checksums_valid(back)


def tcp_handshake(fwd: Forwarder) -> tuple[Session, int]:
    _, syn = one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=1000, flags="S",
                                                 options=[("WScale", 7)]))))
    assert syn[IP].src == OUT_IP and syn[TCP].flags == "S"
    assert_checksums_valid(syn)
    nport = syn[TCP].sport
    _, sa = one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5000, ack=1001,
                                               flags="SA", options=[("WScale", 7)]))))
    assert sa[IP].dst == C1 and sa[TCP].dport == 40001
    assert_checksums_valid(sa)
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=1001, ack=5001, flags="A",
                                      window=1024))))
    s = next(iter(fwd.sessions))
    assert s.state == PS_ESTABLISHED
    return s, nport


def test_tcp_through_with_nat_data_and_fin_close() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    _, d = one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=1001, ack=5001,
                                               flags="PA") / (b"G" * 100))))
    assert d[IP].src == OUT_IP and d[TCP].seq == 1001 and bytes(d[TCP].payload) == b"G" * 100
    assert_checksums_valid(d)
    _, r = one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5001, ack=1101,
                                               flags="PA") / (b"H" * 200))))
    assert r[IP].dst == C1 and r[TCP].dport == 40001
    assert_checksums_valid(r)
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=1101, ack=5201, flags="FA"))))
    one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5201, ack=1102, flags="FA"))))
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=1102, ack=5202, flags="A"))))
    assert s.state == PS_TIME_WAIT
    assert s.expires == pytest.approx(1.0 + 1)  # tcp-timewait-timer
    assert fwd.expire(3.0) == 1 and len(fwd.sessions) == 0
    assert fwd.nat.in_use(int(IPv4Address(OUT_IP)), 6) == 0


def test_tcp_out_of_window_dropped_and_counted() -> None:
    fwd = make_fwd()
    _, nport = tcp_handshake(fwd)
    bad = from_client(TCP(sport=40001, dport=80, seq=1001 + 50_000_000, ack=5001, flags="PA") / b"x")
    assert send(fwd, P1, bad) == []
    assert fwd.counters["tcp_out_of_window"] == 1
    rst = from_server(TCP(sport=80, dport=nport, seq=5001 + 90_000_000, flags="R"))
    assert send(fwd, P2, rst) == []
    assert next(iter(fwd.sessions)).state == PS_ESTABLISHED


def test_tcp_rst_in_window_closes_session() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5001, flags="R"))))
    assert s.state == PS_TIME_WAIT


def test_syn_reusing_closed_session_starts_new_one() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5001, flags="R"))))
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=80, seq=777, flags="S"))))
    assert len(fwd.sessions) == 1 and next(iter(fwd.sessions)) is not s


def test_mid_stream_segment_without_session_dropped() -> None:
    fwd = make_fwd()
    pkt = from_client(TCP(sport=40001, dport=80, seq=1, ack=1, flags="PA") / b"x")
    assert send(fwd, P1, pkt) == []
    assert fwd.counters["no_session"] == 1 and fwd.counters["tcp_not_syn"] == 1
    assert len(fwd.sessions) == 0


def test_deny_policy_counts_per_policy_id() -> None:
    deny = Policy(7, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",), dstaddr=("srv",),
                  service=("DNS",), action="deny")
    fwd = make_fwd(policies=(deny, ACCEPT_NAT))
    assert send(fwd, P1, from_client(UDP(sport=1, dport=53))) == []
    assert fwd.counters["policy_deny"] == 1 and fwd.counters["policy_deny.7"] == 1
    assert len(one(send(fwd, P1, from_client(UDP(sport=1, dport=54))))) == 2  # policy 1


def test_no_matching_policy_dropped() -> None:
    fwd = make_fwd()
    pkt = Ether(src=SRV, dst=FGT2) / IP(src=SV, dst=C1) / UDP(sport=1, dport=2)
    assert send(fwd, P2, pkt) == []
    assert fwd.counters["no_policy"] == 1


def test_service_restricts_protocol_and_port() -> None:
    dns = Policy(2, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",), dstaddr=("all",),
                 service=("DNS",), action="accept")
    fwd = make_fwd(policies=(dns,))
    _, out = one(send(fwd, P1, from_client(UDP(sport=5353, dport=53))))
    assert out[IP].src == C1  # no NAT on this policy
    assert_checksums_valid(out)
    assert send(fwd, P1, from_client(UDP(sport=5353, dport=5001))) == []
    assert send(fwd, P1, from_client(ICMP())) == []
    assert fwd.counters["no_policy"] == 2


def test_bad_ip_checksum_on_new_flow_dropped() -> None:
    fwd = make_fwd()
    pkt = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, chksum=0x1234) / UDP(sport=1, dport=2)
    assert send(fwd, P1, pkt) == []
    assert fwd.counters["ip_bad_checksum"] == 1


# -- ARP resolution, HA hooks, session limits ------------------------------------------------

def test_unresolved_next_hop_arp_request_queue_and_flush() -> None:
    fwd = make_fwd(learn=False)
    fwd.arp.QUEUE_LEN = 3  # a short queue, to see it overflow
    frames = send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"0"), now=1.0)
    port, req = one(frames)
    assert port == P2 and req.dst == "ff:ff:ff:ff:ff:ff" and req[ARP].op == 1
    assert req[ARP].pdst == SV and req[ARP].psrc == OUT_IP and req[ARP].hwsrc == FGT2
    assert send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"1"), now=1.05) == []
    assert send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"2"), now=1.08) == []
    # the queue is full; 0.1 s after the first request comes a first retry
    port, req = one(send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"3"), now=1.11))
    assert req[ARP].op == 1 and req[ARP].pdst == SV
    assert fwd.counters["arp_queue_full"] == 1
    assert send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"x"), now=1.25) == []  # < 0.2 s
    port, req = one(send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"4"), now=1.32))  # backoff
    assert req[ARP].op == 1
    flushed = send(fwd, P2, Ether(src=SRV, dst=FGT2) / ARP(op=2, hwsrc=SRV, psrc=SV, hwdst=FGT2,
                                                            pdst=OUT_IP), now=2.2)
    assert [bytes(f[UDP].payload) for _, f in flushed] == [b"0", b"1", b"2"]
    for p, f in flushed:
        assert p == P2 and f.dst == SRV and f.src == FGT2 and f[IP].src == OUT_IP
        assert_checksums_valid(f)
    _, nxt = one(send(fwd, P1, from_client(UDP(sport=1, dport=2) / b"5"), now=2.3))
    assert nxt.dst == SRV


def test_arp_queue_given_up_after_timeout() -> None:
    fwd = make_fwd(learn=False)
    send(fwd, P1, from_client(UDP(sport=1, dport=2)), now=1.0)
    fwd.expire(10.0)
    assert fwd.counters["arp_unresolved"] == 1 and not fwd.arp.pending


def test_standby_forwards_nothing_and_answers_no_arp() -> None:
    fwd = make_fwd()
    fwd.set_active(False)
    assert send(fwd, P1, from_client(UDP(sport=1, dport=2))) == []
    req = Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst=IN_GW)
    assert send(fwd, P1, req) == []
    assert fwd.counters["standby_drop"] == 1 and fwd.counters["standby_arp_ignored"] == 1
    fwd.set_active(True)
    assert len(send(fwd, P1, from_client(UDP(sport=1, dport=2)))) == 1


def test_virtual_mac_used_for_arp_and_forwarding() -> None:
    fwd = make_fwd()
    fwd.set_port_mac(P1, mac(VMAC))
    fwd.set_port_mac(P2, mac(VMAC[:-1] + "2"))
    req = Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst=IN_GW)
    _, rep = one(send(fwd, P1, req))
    assert rep.src == VMAC and rep[ARP].hwsrc == VMAC
    pkt = Ether(src=CLI, dst=VMAC) / IP(src=C1, dst=SV) / UDP(sport=1, dport=2)
    _, out = one(send(fwd, P1, pkt))
    assert out.src == VMAC[:-1] + "2"
    garp = fwd.gratuitous_arps(P1)
    g = Ether(bytes(garp[0][1]))
    assert g.dst == "ff:ff:ff:ff:ff:ff" and g[ARP].psrc == IN_GW == g[ARP].pdst
    assert g[ARP].hwsrc == VMAC


def test_frames_for_other_macs_ignored() -> None:
    fwd = make_fwd()
    pkt = Ether(src=CLI, dst="02:00:00:00:99:99") / IP(src=C1, dst=SV) / UDP(sport=1, dport=2)
    assert send(fwd, P1, pkt) == []
    assert fwd.counters["not_for_us"] == 1


def test_injected_address_answers_arp_and_ping() -> None:
    fwd = make_fwd()
    fwd.add_address(P1, "198.51.100.2/24")
    req = Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst="198.51.100.2")
    _, rep = one(send(fwd, P1, req))
    assert rep[ARP].psrc == "198.51.100.2"
    assert fwd.remove_address(P1, "198.51.100.2/24")
    assert send(fwd, P1, req) == []


def test_session_table_limit() -> None:
    fwd = make_fwd(session_table_max=2)
    for sport in (1, 2):
        assert len(send(fwd, P1, from_client(UDP(sport=sport, dport=9)))) == 1
    assert send(fwd, P1, from_client(UDP(sport=3, dport=9))) == []
    assert fwd.counters["session_table_full"] == 1
    assert fwd.nat.in_use(int(IPv4Address(OUT_IP)), 17) == 2  # refused session's port released


def test_nat_exhaustion_dropped() -> None:
    cfg_fwd = make_fwd()
    fwd = Forwarder(cfg_fwd.cfg, list(cfg_fwd.ports.values()), nat_range=(5000, 5001))
    for p, ip, m in ((P1, C1, CLI), (P2, SV, SRV)):
        fwd.arp.learn(p, int(IPv4Address(ip)), mac(m), fwd.port_macs[p], 0.0)
    for sport in (1, 2):
        assert len(send(fwd, P1, from_client(UDP(sport=sport, dport=9)))) == 1
    assert send(fwd, P1, from_client(UDP(sport=3, dport=9))) == []
    assert fwd.counters["nat_exhausted"] == 1


def test_udp_session_expires_and_releases_nat_port() -> None:
    fwd = make_fwd()
    send(fwd, P1, from_client(UDP(sport=40000, dport=9)), now=0.0)
    send(fwd, P1, from_client(UDP(sport=40000, dport=9)), now=100.0)  # refresh
    assert fwd.expire(279.0) == 0
    assert fwd.expire(281.0) == 1
    assert fwd.nat.in_use(int(IPv4Address(OUT_IP)), 17) == 0


def test_installed_session_picks_up_mid_stream_tcp() -> None:
    fwd = make_fwd()
    nat_ip = int(IPv4Address(OUT_IP))
    s = Session(sid=42, proto=6, orig=(int(IPv4Address(C1)), 40001, int(IPv4Address(SV)), 80),
                reply=(int(IPv4Address(SV)), 80, nat_ip, 40001), in_intf="port1",
                out_intf="port2", policy_id=1, nat=True, nat_ip=nat_ip, nat_port=40001,
                state=PS_ESTABLISHED,
                tcp=(TcpPeer(1000, 70000, 512, 0x87, 4), TcpPeer(5000, 70000, 512, 0x87, 4)))
    assert fwd.install_session(s, 0.0)
    assert s.flags & PICKUP
    pkt = from_client(TCP(sport=40001, dport=80, seq=90_000_000, ack=80_000_000, flags="PA") / b"x")
    _, out = one(send(fwd, P1, pkt))
    assert out[IP].src == OUT_IP and out[TCP].sport == 40001
    _, back = one(send(fwd, P2, from_server(TCP(sport=80, dport=40001, seq=80_000_000,
                                                  ack=90_000_001, flags="A"))))
    assert back[IP].dst == C1
    assert not s.flags & PICKUP
    assert not fwd.install_session(s, 0.0)  # NAT port already held


# -- robustness ------------------------------------------------------------------------------

@pytest.mark.parametrize("pkt, counter", [
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, flags="MF") / UDP(sport=1, dport=2), "ip_fragment"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, frag=10) / Raw(b"x" * 20), "ip_fragment"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, options=b"\x01\x01\x01\x00") /
     UDP(sport=1, dport=2), "ip_options"),
    (Ether(src=CLI, dst=FGT1) / IPv6(), "non_ip"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, proto=47) / Raw(b"x" * 20), "unsupported_proto"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV) / ICMP(type=3, code=3) / IP() / UDP(),
     "icmp_error_drop"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, len=200) / UDP(sport=1, dport=2), "ip_bad_length"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, version=6) / UDP(sport=1, dport=2),
     "ip_bad_version"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, ihl=4) / UDP(sport=1, dport=2), "ip_bad_header"),
    (Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV) / TCP(dataofs=15, flags="S"), "tcp_bad_header"),
])
def test_malformed_frames_counted(pkt: Packet, counter: str) -> None:
    fwd = make_fwd()
    assert send(fwd, P1, pkt) == []
    assert fwd.counters[counter] == 1


def test_random_and_truncated_frames_never_raise() -> None:
    fwd = make_fwd()
    rng = random.Random(1234)
    valid = [bytes(p) for p in (
        from_client(UDP(sport=40000, dport=53) / (b"q" * 10)),
        from_client(TCP(sport=40001, dport=80, flags="S", options=[("WScale", 7), ("MSS", 1460)])),
        from_client(ICMP(id=5) / b"ping"),
        Ether(src=CLI, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=CLI, psrc=C1, pdst=IN_GW),
        Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=IN_GW) / ICMP(),
    )]
    before = sum(fwd.counters.values())
    out: list = []
    for _ in range(5000):
        n = rng.randint(0, 200)
        frame = bytearray(rng.randbytes(n))
        if n >= 14 and rng.random() < 0.5:  # make the random bytes look like IPv4 to us
            frame[0:6] = mac(FGT1)
            frame[12:14] = b"\x08\x00"
            if n > 14:
                frame[14] = 0x45
        fwd.handle(rng.choice((P1, P2, 7)), frame, 1.0, out)
    for v in valid:
        for cut in range(len(v)):
            fwd.handle(P1, bytearray(v[:cut]), 1.0, out)
        for _ in range(50):  # single-byte corruptions
            f = bytearray(v)
            f[rng.randrange(len(f))] = rng.randrange(256)
            fwd.handle(P1, f, 1.0, out)
    assert sum(fwd.counters.values()) - before > 5000
    assert fwd.counters["eth_truncated"] > 0 and fwd.counters["bad_port"] > 0


# -- routing -------------------------------------------------------------------------------

def test_routes_longest_prefix_then_distance() -> None:
    cfg = MemberConfig(
        source="t",
        interfaces={"port1": Interface("port1", IPv4Interface("198.51.100.1/24")),
                    "port2": Interface("port2", IPv4Interface("203.0.113.1/25"))},
        routes=(StaticRoute(1, IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.126"), "port2"),
                StaticRoute(2, IPv4Network("203.0.113.128/25"), IPv4Address("198.51.100.254"),
                            "port1", distance=20),
                StaticRoute(3, IPv4Network("203.0.113.128/25"), IPv4Address("203.0.113.125"),
                            "", distance=5),
                # through a port the forwarder does not own (an HA link): inactive
                StaticRoute(4, IPv4Network("203.0.113.0/28"), IPv4Address("169.254.0.2"),
                            "port3")),
    )
    rt = RouteTable(cfg, {"port1": 0, "port2": 1})

    def ip(s: str) -> int:
        return int(IPv4Address(s))

    assert rt.lookup(ip("198.51.100.77")) == (0, ip("198.51.100.77"))  # connected
    assert rt.lookup(ip("203.0.113.200")) == (1, ip("203.0.113.125"))  # /25, lower distance
    assert rt.lookup(ip("203.0.113.5")) == (1, ip("203.0.113.5"))  # connected /25
    assert rt.lookup(ip("198.18.0.1")) == (1, ip("203.0.113.126"))  # default route
