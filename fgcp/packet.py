"""Raw-byte layouts of Ethernet/ARP/IPv4/TCP/UDP/ICMP used by the forwarding plane.

Offsets, struct formats, small parsers (raising MalformedFrame) and frame
builders (ARP, ICMP echo reply); no scapy here: this is on the per-packet path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fgcp.checksum import checksum, pseudo_header_sum

__all__ = [
    "ArpPacket",
    "MalformedFrame",
    "build_arp",
    "build_icmp_echo_reply",
    "build_icmp_error",
    "build_tcp",
    "int_to_ip",
    "ip_to_int",
    "mac_to_bytes",
    "mac_to_str",
    "parse_arp",
    "tcp_wscale",
]

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ETH_MIN_FRAME = 60  # without FCS

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# Offsets in a frame without IP options (IHL 5): the forwarding fast path.
OFF_IP = 14
OFF_TTL = 22
OFF_IPSUM = 24
OFF_SRC = 26
OFF_DST = 30
OFF_L4 = 34
OFF_UDPSUM = 40
OFF_TCPSUM = 50
OFF_ICMPSUM = 36
OFF_ICMPID = 38

TH_FIN = 0x01
TH_SYN = 0x02
TH_RST = 0x04
TH_PSH = 0x08
TH_ACK = 0x10

ICMP_ECHOREPLY = 0
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11  # code 0: TTL exceeded in transit
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})

ARP_REQUEST = 1
ARP_REPLY = 2

# dst MAC, ethertype, ver/IHL, total length, frag word, TTL, protocol, src, dst,
# then the first four 16-bit words of the L4 header (UDP: ports, length, checksum;
# ICMP: type/code, checksum, identifier, sequence; TCP: ports, then the sequence
# number): everything the fast path needs in one unpack (42 bytes).
FAST = struct.Struct("!6s6xHBxHxxHBBxxIIHHHH")
FAST_LEN = FAST.size
TCP_HDR = struct.Struct("!IIBBH")  # seq, ack, data offset, flags, window (at L4+4)
ARP = struct.Struct("!HHBBH6sI6sI")
H = struct.Struct("!H")
IPV4_HDR = struct.Struct("!BBHHHBBHII")  # ver/IHL, TOS, length, id, frag, TTL, proto, sum, src, dst
TCP_FULL = struct.Struct("!HHIIBBHHH")  # ports, seq, ack, data offset, flags, window, sum, urg
IPTOS_PREC_INTERNETCONTROL = 0xC0  # TOS of ICMP errors (as Linux sends them)
DEFAULT_TTL = 64


class MalformedFrame(ValueError):
    """A frame that cannot be parsed; ``reason`` is the counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def ip_to_int(ip: str) -> int:
    """Dotted quad -> int (host byte order)."""
    parts = ip.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {ip!r}")
    value = 0
    for p in parts:
        b = int(p)
        if not 0 <= b <= 255:
            raise ValueError(f"not an IPv4 address: {ip!r}")
        value = value << 8 | b
    return value


def int_to_ip(value: int) -> str:
    """int -> dotted quad."""
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def mac_to_bytes(mac: str) -> bytes:
    """"00:09:0f:09:0a:01" -> 6 bytes."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_to_str(mac: bytes) -> str:
    """6 bytes -> "aa:bb:cc:dd:ee:ff"."""
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """Decoded Ethernet/IPv4 ARP packet."""

    oper: int
    sha: bytes
    spa: int
    tha: bytes
    tpa: int


def parse_arp(frame: bytes | bytearray) -> ArpPacket:
    """Parse an ARP frame (Ethernet header included)."""
    if len(frame) < ETH_HLEN + ARP.size:
        raise MalformedFrame("arp_truncated", f"{len(frame)} bytes")
    htype, ptype, hlen, plen, oper, sha, spa, tha, tpa = ARP.unpack_from(frame, ETH_HLEN)
    if htype != 1 or ptype != ETH_P_IP or hlen != 6 or plen != 4:
        raise MalformedFrame("arp_unsupported", f"htype {htype} ptype {ptype:#x}")
    if oper not in (ARP_REQUEST, ARP_REPLY):
        raise MalformedFrame("arp_unsupported", f"oper {oper}")
    return ArpPacket(oper, sha, spa, tha, tpa)


def build_arp(oper: int, src_mac: bytes, spa: int, dst_mac: bytes, tha: bytes, tpa: int) -> bytearray:
    """Ethernet + ARP frame padded to the 60-byte Ethernet minimum."""
    frame = bytearray(ETH_MIN_FRAME)
    frame[0:6] = dst_mac
    frame[6:12] = src_mac
    frame[12:14] = b"\x08\x06"
    ARP.pack_into(frame, ETH_HLEN, 1, ETH_P_IP, 6, 4, oper, src_mac, spa, tha, tpa)
    return frame


def tcp_wscale(frame: bytes | bytearray, l4: int, doff: int) -> int:
    """Window scale option of a TCP header (0x80 | shift, shift capped at 14), or 0."""
    i = l4 + 20
    end = l4 + doff
    if end > len(frame):
        return 0
    while i < end:
        kind = frame[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            break
        olen = frame[i + 1]
        if olen < 2:
            break
        if kind == 3 and olen == 3 and i + 2 < end:
            return 0x80 | min(frame[i + 2], 14)
        i += olen
    return 0


def build_icmp_echo_reply(frame: bytes | bytearray, my_mac: bytes) -> bytearray:
    """Turn an ICMP echo request frame (IHL 5) into the echo reply from us."""
    totlen = H.unpack_from(frame, OFF_IP + 2)[0]
    out = bytearray(frame[: ETH_HLEN + totlen])
    out[0:6] = frame[6:12]
    out[6:12] = my_mac
    src = out[OFF_SRC:OFF_SRC + 4]
    out[OFF_SRC:OFF_SRC + 4] = out[OFF_DST:OFF_DST + 4]
    out[OFF_DST:OFF_DST + 4] = src
    out[OFF_TTL] = 64
    out[OFF_IPSUM:OFF_IPSUM + 2] = b"\x00\x00"
    H.pack_into(out, OFF_IPSUM, checksum(out[OFF_IP:OFF_L4]))
    out[OFF_L4] = ICMP_ECHOREPLY
    out[OFF_ICMPSUM:OFF_ICMPSUM + 2] = b"\x00\x00"
    H.pack_into(out, OFF_ICMPSUM, checksum(out[OFF_L4:]))
    return out


def _ipv4(frame: bytearray, tos: int, proto: int, src: int, dst: int) -> None:
    """Fill the IPv4 header (IHL 5, TTL 64, DF clear) of ``frame`` from its length."""
    IPV4_HDR.pack_into(frame, OFF_IP, 0x45, tos, len(frame) - ETH_HLEN, 0, 0, DEFAULT_TTL, proto,
                       0, src, dst)
    H.pack_into(frame, OFF_IPSUM, checksum(frame[OFF_IP:OFF_L4]))


def build_icmp_error(frame: bytes | bytearray, itype: int, code: int, src: int) -> bytearray:
    """ICMP error (RFC 792) from ``src`` about the IPv4 datagram in ``frame``.

    It quotes the datagram's IP header and first 8 bytes of payload as received;
    it goes to the datagram's source.  The Ethernet addresses are left zero for
    the caller (ARP) to fill in.
    """
    ihl = (frame[OFF_IP] & 15) << 2
    totlen = H.unpack_from(frame, OFF_IP + 2)[0]
    quote = frame[OFF_IP:OFF_IP + min(ihl + 8, totlen)]
    out = bytearray(OFF_L4 + 8 + len(quote))
    out[12:14] = b"\x08\x00"
    out[OFF_L4] = itype
    out[OFF_L4 + 1] = code
    out[OFF_L4 + 8:] = quote
    H.pack_into(out, OFF_ICMPSUM, checksum(out[OFF_L4:]))
    _ipv4(out, IPTOS_PREC_INTERNETCONTROL, IPPROTO_ICMP, src,
          int.from_bytes(frame[OFF_SRC:OFF_SRC + 4], "big"))
    return out


def build_tcp(src: int, dst: int, sport: int, dport: int, seq: int, ack: int,
              flags: int, win: int = 0) -> bytearray:
    """A TCP segment without payload or options (e.g. a reset), Ethernet addresses zero."""
    out = bytearray(OFF_L4 + TCP_FULL.size)
    out[12:14] = b"\x08\x00"
    TCP_FULL.pack_into(out, OFF_L4, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                       flags, win, 0, 0)
    H.pack_into(out, OFF_TCPSUM,
                checksum(out[OFF_L4:], pseudo_header_sum(src, dst, IPPROTO_TCP, TCP_FULL.size)))
    _ipv4(out, 0, IPPROTO_TCP, src, dst)
    return out
