"""In-process benchmark of Forwarder.handle (no sockets): packets/s on one core.

Run: .venv/bin/python -m lab.microbench [--packets N] [--repeat R]
Scenarios: established UDP with source NAT, TCP data + ACK segments with NAT.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface

from fgcp.checksum import checksum, pseudo_header_sum
from fgcp.forward import Forwarder, Out, PortSpec
from fgcp.model import Address, Interface, MemberConfig, Policy
from fgcp.packet import ARP_REPLY, build_arp

MAC_FGT1 = bytes.fromhex("020000000101")
MAC_FGT2 = bytes.fromhex("020000000102")
MAC_CLIENT = bytes.fromhex("0200000a0001")
MAC_SERVER = bytes.fromhex("0200000b0001")
CLIENT = int(IPv4Address("198.51.100.10"))
SERVER = int(IPv4Address("203.0.113.10"))
INSIDE_GW = int(IPv4Address("198.51.100.1"))
OUTSIDE_IP = int(IPv4Address("203.0.113.1"))
OFF_L4SUM = {6: 16, 17: 6}  # checksum offset in the TCP / UDP header


def make_forwarder(edit: Callable[[MemberConfig], MemberConfig] | None = None) -> Forwarder:
    """A member with port1 inside, port2 outside, one accept+NAT policy, ARP learned;
    ``edit`` changes the configuration first (lab.scale_bench: table size, policies)."""
    cfg = MemberConfig(
        source="microbench",
        interfaces={
            "port1": Interface("port1", IPv4Interface("198.51.100.1/24"), ("ping",)),
            "port2": Interface("port2", IPv4Interface("203.0.113.1/24"), ("ping",)),
        },
        addresses={"all": Address("all")},
        policies=(Policy(1, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",),
                         dstaddr=("all",), service=("ALL",), action="accept", nat=True),),
    )
    if edit is not None:
        cfg = edit(cfg)
    fwd = Forwarder(cfg, [PortSpec(0, "port1", MAC_FGT1), PortSpec(1, "port2", MAC_FGT2)])
    out: Out = []
    fwd.handle(0, build_arp(ARP_REPLY, MAC_CLIENT, CLIENT, MAC_FGT1, MAC_FGT1, INSIDE_GW), 0.0, out)
    fwd.handle(1, build_arp(ARP_REPLY, MAC_SERVER, SERVER, MAC_FGT2, MAC_FGT2, OUTSIDE_IP), 0.0, out)
    return fwd


def _ip(src: int, dst: int, proto: int, l4: bytes) -> bytes:
    """IPv4 header + ``l4`` with both checksums right (the forwarder verifies them)."""
    seg = bytearray(l4)
    seg[OFF_L4SUM[proto]:OFF_L4SUM[proto] + 2] = b"\0\0"
    struct.pack_into("!H", seg, OFF_L4SUM[proto],
                     checksum(seg, pseudo_header_sum(src, dst, proto, len(seg))))
    hdr = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(seg), 1, 0x4000, 64, proto, 0,
                                src, dst))
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr) + bytes(seg)


def eth(dst: bytes, src: bytes, ip: bytes) -> bytearray:
    return bytearray(dst + src + b"\x08\x00" + ip)


def udp_frame(sport: int, dport: int, payload: bytes) -> bytearray:
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0x1234) + payload
    return eth(MAC_FGT1, MAC_CLIENT, _ip(CLIENT, SERVER, 17, l4))


def tcp_frame(from_client: bool, dst_ip: int, sport: int, dport: int, seq: int, ack: int,
              flags: int, payload: bytes = b"", win: int = 65535) -> bytearray:
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0x1234, 0) + payload
    if from_client:
        return eth(MAC_FGT1, MAC_CLIENT, _ip(CLIENT, dst_ip, 6, l4))
    return eth(MAC_FGT2, MAC_SERVER, _ip(SERVER, dst_ip, 6, l4))


def rate(fwd: Forwarder, frames: list[tuple[int, bytearray]], now: float, what: str) -> float:
    """Frames/s of ``fwd.handle`` over ``frames`` (ingress port, frame), each forwarded once."""
    out: Out = []
    h = fwd.handle
    t0 = time.perf_counter()
    for p, f in frames:
        h(p, f, now, out)
    dt = time.perf_counter() - t0
    if len(out) != len(frames):
        raise RuntimeError(f"{what}: forwarded {len(out)} of {len(frames)}: {dict(fwd.counters)}")
    return len(frames) / dt


def bench_udp(n: int, fwd: Forwarder | None = None) -> float:
    """One established UDP session with source NAT (64-byte frames); ``fwd`` may hold others."""
    fwd = fwd or make_forwarder()
    tpl = udp_frame(40000, 5001, b"x" * 18)  # 64-byte frame
    out: Out = []
    fwd.handle(0, bytearray(tpl), 0.0, out)  # creates the session
    return rate(fwd, [(0, bytearray(tpl)) for _ in range(n)], 1.0, "udp")


def bench_tcp(n: int) -> float:
    """Client data segments (64 B payload) interleaved with server ACKs."""
    fwd = make_forwarder()
    out: Out = []
    cs, ss = 1000, 500000
    h = fwd.handle
    h(0, tcp_frame(True, SERVER, 40001, 5201, cs, 0, 0x02), 0.0, out)
    s = next(iter(fwd.sessions))
    nat_ip, nat_port = s.reply[2], s.reply[3]
    h(1, tcp_frame(False, nat_ip, 5201, nat_port, ss, cs + 1, 0x12), 0.0, out)
    h(0, tcp_frame(True, SERVER, 40001, 5201, cs + 1, ss + 1, 0x10), 0.0, out)
    if len(out) != 3:
        raise RuntimeError(f"tcp handshake failed: {dict(fwd.counters)}")
    payload = b"y" * 64
    frames = []
    seq = cs + 1
    for i in range(n):
        if i % 2 == 0:
            frames.append((0, tcp_frame(True, SERVER, 40001, 5201, seq, ss + 1, 0x18, payload)))
            seq += len(payload)
        else:
            frames.append((1, tcp_frame(False, nat_ip, 5201, nat_port, ss + 1, seq, 0x10)))
    return rate(fwd, frames, 1.0, "tcp")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    for name, fn in (("udp-nat established", bench_udp), ("tcp-nat data+ack", bench_tcp)):
        rates = sorted(fn(args.packets) for _ in range(args.repeat))
        print(f"{name:22s} best {rates[-1] / 1e3:8.1f} kpps   median {rates[len(rates) // 2] / 1e3:8.1f}"
              f" kpps  ({args.packets} packets x {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
