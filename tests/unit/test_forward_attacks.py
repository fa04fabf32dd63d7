"""Forwarder against hostile frames (issue 13, items 9 and 10): TTL and L4 checksums.

Each test is the attack: a NAT reply with TTL 1 or 0, a TTL 1 packet to route,
frames with a bad TCP/UDP/ICMP checksum; none of them may change a session.
"""

from __future__ import annotations

from dataclasses import astuple
from ipaddress import IPv4Address

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from fgcp.forward import ICMP_ERROR_BURST
from fgcp.session import Session
from tests.unit.test_forward import (
    C1,
    CLI,
    FGT1,
    FGT2,
    IN_GW,
    OUT_IP,
    P1,
    P2,
    SRV,
    SV,
    assert_checksums_valid,
    from_client,
    make_fwd,
    one,
    send,
    tcp_handshake,
)


def from_server(l4: Packet, ttl: int = 64) -> Packet:
    return Ether(src=SRV, dst=FGT2) / IP(src=SV, dst=OUT_IP, ttl=ttl) / l4


def tcp_state(s: Session) -> tuple[object, ...]:
    assert s.tcp is not None
    return (s.state, astuple(s.tcp[0]), astuple(s.tcp[1]), s.reply_packets, s.expires)


def bad_checksum(pkt: Packet) -> bytes:
    """``pkt`` with its L4 checksum off by one bit pattern (never the right value)."""
    raw = bytearray(bytes(pkt))
    l4 = Ether(bytes(raw))[IP].payload
    off = 14 + 20 + {"TCP": 16, "UDP": 6, "ICMP": 2}[type(l4).__name__]
    raw[off] ^= 0x01
    raw[off + 1] ^= 0x10
    return bytes(raw)


def assert_time_exceeded(frames: list[tuple[int, Ether]], port: int, src: str, dst: str,
                         dmac: str, quoted: bytes) -> None:
    p, err = one(frames)
    assert p == port and err.dst == dmac
    assert err[IP].src == src and err[IP].dst == dst and err[IP].proto == 1
    assert err[ICMP].type == 11 and err[ICMP].code == 0
    assert bytes(err[IPerror])[:28] == quoted[14:42]  # IP header + 8 bytes, as received
    assert_checksums_valid(err)


# -- TTL (item 9) -------------------------------------------------------------------------

def test_nat_reply_with_ttl_1_is_not_forwarded_and_answered_time_exceeded() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    before = tcp_state(s)
    reply = bytes(from_server(TCP(sport=80, dport=nport, seq=5001, ack=1001, flags="PA") / b"hi",
                              ttl=1))
    frames = send(fwd, P2, reply)
    assert_time_exceeded(frames, P2, OUT_IP, SV, SRV, reply)
    assert tcp_state(s) == before  # the tracker saw nothing
    assert fwd.counters["ttl_expired"] == 1 and fwd.counters["icmp_time_exceeded_tx"] == 1


def test_nat_reply_with_ttl_0_is_not_malformed_and_changes_no_state() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    before = tcp_state(s)
    reply = bytes(from_server(TCP(sport=80, dport=nport, seq=5001, ack=1001, flags="R"), ttl=0))
    frames = send(fwd, P2, reply)
    assert_time_exceeded(frames, P2, OUT_IP, SV, SRV, reply)
    assert tcp_state(s) == before  # the RST did not close the session
    assert fwd.counters["malformed"] == 0 and fwd.counters["ttl_expired"] == 1


def test_udp_nat_reply_with_ttl_1_does_not_mark_the_reply_seen() -> None:
    fwd = make_fwd()
    one(send(fwd, P1, from_client(UDP(sport=40000, dport=5001))))
    s = next(iter(fwd.sessions))
    reply = bytes(from_server(UDP(sport=5001, dport=40000) / b"x", ttl=1))
    assert_time_exceeded(send(fwd, P2, reply), P2, OUT_IP, SV, SRV, reply)
    assert s.state == 0 and s.reply_packets == 0


def test_ttl_1_packet_to_route_answered_from_ingress_address_and_no_session() -> None:
    fwd = make_fwd()
    probe = bytes(from_client(UDP(sport=33434, dport=33435) / b"trace", ttl=1))
    assert_time_exceeded(send(fwd, P1, probe), P1, IN_GW, C1, CLI, probe)
    assert len(fwd.sessions) == 0
    _, out = one(send(fwd, P1, from_client(UDP(sport=33434, dport=33435), ttl=2)))
    assert out[IP].ttl == 1  # TTL 2 still goes through


def test_ttl_1_ping_of_the_member_itself_is_answered() -> None:
    fwd = make_fwd()
    req = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=IN_GW, ttl=1) / ICMP(id=3)
    _, rep = one(send(fwd, P1, req))
    assert rep[ICMP].type == 0  # delivered locally: no TTL to expire


def test_time_exceeded_rate_limited() -> None:
    fwd = make_fwd()
    probe = from_client(UDP(sport=1, dport=2), ttl=1)
    sent = sum(len(send(fwd, P1, probe, now=5.0)) for _ in range(ICMP_ERROR_BURST + 30))
    assert sent == ICMP_ERROR_BURST
    assert fwd.counters["icmp_error_ratelimited"] == 30
    assert fwd.counters["ttl_expired"] == ICMP_ERROR_BURST + 30
    assert len(send(fwd, P1, probe, now=5.01)) == 1  # refilled at 1000/s


def test_no_time_exceeded_for_bad_header_or_broadcast_source() -> None:
    fwd = make_fwd()
    bad = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=SV, ttl=1, chksum=0x1234) / UDP()
    assert send(fwd, P1, bad) == []
    assert fwd.counters["ip_bad_checksum"] == 1
    bcast = Ether(src=CLI, dst=FGT1) / IP(src="255.255.255.255", dst=SV, ttl=1) / UDP()
    assert send(fwd, P1, bcast) == []
    assert fwd.counters["icmp_time_exceeded_tx"] == 0 and fwd.counters["ttl_expired"] == 2


# -- L4 checksums (item 10) ---------------------------------------------------------------

def test_syn_with_bad_tcp_checksum_creates_no_session() -> None:
    fwd = make_fwd()
    syn = from_client(TCP(sport=40001, dport=80, seq=1000, flags="S"))
    assert send(fwd, P1, bad_checksum(syn)) == []
    assert len(fwd.sessions) == 0 and fwd.counters["tcp_bad_checksum"] == 1
    assert fwd.nat.in_use(int(IPv4Address(OUT_IP)), 6) == 0
    assert len(send(fwd, P1, syn)) == 1  # the same SYN, intact, goes through


def test_segments_with_bad_tcp_checksum_move_no_window() -> None:
    fwd = make_fwd()
    s, nport = tcp_handshake(fwd)
    before = tcp_state(s)
    data = from_client(TCP(sport=40001, dport=80, seq=1001, ack=5001, flags="PA") / (b"z" * 500))
    rst = from_server(TCP(sport=80, dport=nport, seq=5001, flags="R"))
    fin = from_server(TCP(sport=80, dport=nport, seq=5001, ack=1001, flags="FA"))
    assert send(fwd, P1, bad_checksum(data)) == []
    assert send(fwd, P2, bad_checksum(rst)) == []
    assert send(fwd, P2, bad_checksum(fin)) == []
    assert tcp_state(s) == before
    assert fwd.counters["tcp_bad_checksum"] == 3


def test_payload_corruption_detected() -> None:
    fwd = make_fwd()
    _s, _nport = tcp_handshake(fwd)
    raw = bytearray(bytes(from_client(TCP(sport=40001, dport=80, seq=1001, ack=5001, flags="PA")
                                      / b"0123456789")))
    raw[-3] ^= 0x40  # one bit of the payload flipped on the wire
    assert send(fwd, P1, bytes(raw)) == []
    assert fwd.counters["tcp_bad_checksum"] == 1


def test_udp_with_bad_checksum_creates_no_session_but_checksum_0_is_legal() -> None:
    fwd = make_fwd()
    assert send(fwd, P1, bad_checksum(from_client(UDP(sport=40000, dport=53) / b"q"))) == []
    assert len(fwd.sessions) == 0 and fwd.counters["udp_bad_checksum"] == 1
    assert len(send(fwd, P1, from_client(UDP(sport=40000, dport=53, chksum=0) / b"q"))) == 1


def test_udp_length_beyond_the_datagram_dropped() -> None:
    fwd = make_fwd()
    pkt = Ether(bytes(from_client(UDP(sport=40000, dport=53, chksum=0) / b"q")))
    raw = bytearray(bytes(pkt))
    raw[38:40] = (200).to_bytes(2, "big")
    assert send(fwd, P1, bytes(raw)) == []
    assert len(fwd.sessions) == 0 and fwd.counters["udp_bad_length"] == 1


def test_udp_reply_with_bad_checksum_does_not_mark_the_reply_seen() -> None:
    fwd = make_fwd()
    one(send(fwd, P1, from_client(UDP(sport=40000, dport=5001))))
    s = next(iter(fwd.sessions))
    assert send(fwd, P2, bad_checksum(from_server(UDP(sport=5001, dport=40000) / b"x"))) == []
    assert s.state == 0 and s.reply_packets == 0


def test_icmp_echo_with_bad_checksum_creates_no_session_and_gets_no_reply() -> None:
    fwd = make_fwd()
    assert send(fwd, P1, bad_checksum(from_client(ICMP(id=7) / b"ping"))) == []
    ping_me = Ether(src=CLI, dst=FGT1) / IP(src=C1, dst=IN_GW) / ICMP(id=7)
    assert send(fwd, P1, bad_checksum(ping_me)) == []
    assert len(fwd.sessions) == 0 and fwd.counters["icmp_bad_checksum"] == 2
