"""Raw-byte parsers and builders of fgcp.packet, checked against scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from fgcp.packet import (
    ARP_REPLY,
    ARP_REQUEST,
    FAST,
    MalformedFrame,
    build_arp,
    build_icmp_echo_reply,
    int_to_ip,
    ip_to_int,
    mac_to_bytes,
    mac_to_str,
    parse_arp,
    tcp_wscale,
)

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def test_ip_and_mac_conversions() -> None:
    assert ip_to_int("198.51.100.10") == 0xC633640A
    assert int_to_ip(0xCB00710A) == "203.0.113.10"
    assert mac_to_str(mac_to_bytes("00:09:0F:09:0A:01")) == "00:09:0f:09:0a:01"
    with pytest.raises(ValueError):
        ip_to_int("198.51.100")
    with pytest.raises(ValueError):
        mac_to_bytes("00:11")


def test_parse_arp_request_from_scapy() -> None:
    frame = bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") /
                  ARP(op=1, hwsrc=MAC_A, psrc="198.51.100.10", pdst="198.51.100.1"))
    a = parse_arp(frame)
    assert a.oper == ARP_REQUEST
    assert a.sha == mac_to_bytes(MAC_A)
    assert a.spa == ip_to_int("198.51.100.10") and a.tpa == ip_to_int("198.51.100.1")


def test_build_arp_reply_decodes_in_scapy() -> None:
    frame = build_arp(ARP_REPLY, mac_to_bytes(MAC_B), ip_to_int("198.51.100.1"),
                      mac_to_bytes(MAC_A), mac_to_bytes(MAC_A), ip_to_int("198.51.100.10"))
    pkt = Ether(bytes(frame))
    assert len(frame) == 60
    assert pkt.dst == MAC_A and pkt.src == MAC_B
    assert pkt[ARP].op == 2 and pkt[ARP].psrc == "198.51.100.1" and pkt[ARP].pdst == "198.51.100.10"
    assert pkt[ARP].hwsrc == MAC_B


@pytest.mark.parametrize("frame, reason", [
    (b"\x00" * 20, "arp_truncated"),
    (bytes(Ether() / ARP(hwtype=6, hwlen=6, plen=4)), "arp_unsupported"),
    (bytes(Ether() / ARP(op=5)), "arp_unsupported"),
])
def test_parse_arp_malformed(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrame) as exc:
        parse_arp(frame)
    assert exc.value.reason == reason


def test_tcp_wscale_option() -> None:
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
    frame = bytes(Ether() / IP() / TCP(flags="S", options=opts))
    doff = (frame[46] >> 4) * 4
    assert tcp_wscale(frame, 34, doff) == 0x87
    frame = bytes(Ether() / IP() / TCP(flags="S", options=[("WScale", 20)]))
    assert tcp_wscale(frame, 34, (frame[46] >> 4) * 4) == 0x80 | 14
    frame = bytes(Ether() / IP() / TCP(flags="S", options=[("MSS", 1460)]))
    assert tcp_wscale(frame, 34, (frame[46] >> 4) * 4) == 0


def test_tcp_wscale_garbage_options_terminate() -> None:
    frame = bytearray(bytes(Ether() / IP() / TCP(flags="S", options=[("MSS", 1460)])))
    frame[54:58] = b"\x02\x00\xff\xff"  # option length 0
    assert tcp_wscale(frame, 34, 24) == 0
    assert tcp_wscale(frame, 34, 60) == 0  # header claims more than the frame


def test_icmp_echo_reply_valid_in_scapy() -> None:
    req = Ether(src=MAC_A, dst=MAC_B) / IP(src="198.51.100.10", dst="198.51.100.1", ttl=3) / \
        ICMP(type=8, id=77, seq=5) / b"payload"
    rep = Ether(bytes(build_icmp_echo_reply(bytes(req), mac_to_bytes(MAC_B))))
    assert rep.dst == MAC_A and rep.src == MAC_B
    assert rep[IP].src == "198.51.100.1" and rep[IP].dst == "198.51.100.10"
    assert rep[ICMP].type == 0 and rep[ICMP].id == 77 and rep[ICMP].seq == 5
    assert bytes(rep[ICMP].payload) == b"payload"
    ref = rep.copy()
    del ref[IP].chksum, ref[ICMP].chksum
    ref = Ether(bytes(ref))
    assert rep[IP].chksum == ref[IP].chksum and rep[ICMP].chksum == ref[ICMP].chksum


def test_fast_struct_covers_l4_ports() -> None:
    assert FAST.size == 42
    frame = bytes(Ether(dst=MAC_B) / IP(src="198.51.100.10", dst="203.0.113.10", ttl=9) /
                  UDP(sport=1234, dport=80, chksum=0xABCD) / b"hello")
    dmac, et, vihl, totlen, frag, ttl, proto, src, dst, sport, dport, ulen, usum = \
        FAST.unpack_from(frame)
    assert (dmac, et, vihl, totlen, frag, ttl, proto) == (mac_to_bytes(MAC_B), 0x800, 0x45, 33, 0,
                                                           9, 17)
    assert (src, dst, sport, dport, ulen, usum) == (0xC633640A, 0xCB00710A, 1234, 80, 13, 0xABCD)
