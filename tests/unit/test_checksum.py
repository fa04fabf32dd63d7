"""RFC 1071 checksum and RFC 1624 incremental updates vs full recomputation and scapy."""

from __future__ import annotations

import random
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw

from fgcp.checksum import (
    TTL_DEC_DELTA,
    apply_delta,
    checksum,
    delta16,
    delta32,
    fold,
    pseudo_header_sum,
)


def test_rfc1071_example() -> None:
    # RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement)
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert checksum(data) == ~0xDDF2 & 0xFFFF


def test_checksum_odd_length_pads_with_zero() -> None:
    assert checksum(b"\x01\x02\x03") == checksum(b"\x01\x02\x03\x00")


def test_checksum_of_valid_header_is_zero() -> None:
    hdr = bytes(IP(src="198.51.100.10", dst="203.0.113.10", ttl=64))
    assert checksum(hdr) == 0


def test_fold() -> None:
    assert fold(0x1FFFF) == 0x1
    assert fold(0x2FFFD) == 0xFFFF


def _random_header(rng: random.Random) -> bytearray:
    hdr = bytearray(rng.randbytes(20))
    hdr[0] = 0x45
    hdr[8] = rng.randint(2, 255)  # TTL
    hdr[10:12] = b"\x00\x00"
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return hdr


def test_incremental_ttl_and_address_update_matches_recomputation() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        hdr = _random_header(rng)
        old_src = struct.unpack_from("!I", hdr, 12)[0]
        new_src = rng.getrandbits(32)
        delta = fold(delta32(old_src, new_src) + TTL_DEC_DELTA)
        new = apply_delta(struct.unpack_from("!H", hdr, 10)[0], delta)
        hdr[8] -= 1
        struct.pack_into("!I", hdr, 12, new_src)
        struct.pack_into("!H", hdr, 10, 0)
        full = checksum(hdr)
        assert new == full or {new, full} == {0, 0xFFFF}
        struct.pack_into("!H", hdr, 10, new)
        assert checksum(hdr) in (0, 0xFFFF)


def test_delta16_unchanged_word_is_zero() -> None:
    assert delta16(0x1234, 0x1234) == 0
    assert apply_delta(0xABCD, 0) == 0xABCD


def test_incremental_l4_update_against_scapy_random_packets() -> None:
    """NAT of source address + port: the updated checksum equals scapy's."""
    rng = random.Random(7)
    for i in range(300):
        src = f"198.51.100.{rng.randint(2, 254)}"
        new_src = f"203.0.113.{rng.randint(1, 254)}"
        sport, new_sport = rng.randint(1, 65535), rng.randint(1024, 65535)
        payload = Raw(rng.randbytes(rng.randint(0, 60)))
        l4 = (TCP(sport=sport, dport=80, seq=rng.getrandbits(32), flags="PA") if i % 2
              else UDP(sport=sport, dport=53))
        pkt = IP(bytes(IP(src=src, dst="203.0.113.10") / l4 / payload))
        old_sum = pkt[1].chksum
        a = int.from_bytes(bytes(map(int, src.split("."))), "big")
        b = int.from_bytes(bytes(map(int, new_src.split("."))), "big")
        delta = fold(delta32(a, b) + delta16(sport, new_sport))
        got = apply_delta(old_sum, delta)
        ref = pkt.copy()
        ref.src = new_src
        ref[1].sport = new_sport
        del ref[1].chksum
        want = IP(bytes(ref))[1].chksum
        assert got == want or {got, want} == {0, 0xFFFF}


def test_pseudo_header_sum_gives_valid_udp_checksum() -> None:
    pkt = IP(bytes(IP(src="198.51.100.10", dst="203.0.113.10") / UDP(sport=1, dport=2) / b"abc"))
    udp = bytearray(bytes(pkt[UDP]))
    udp[6:8] = b"\x00\x00"
    s = pseudo_header_sum(0xC633640A, 0xCB00710A, 17, len(udp))
    assert checksum(udp, s) == pkt[UDP].chksum


def _reference_checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 word by word, the way section 4.1 writes it."""
    if len(data) & 1:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data)) + initial
    return ~fold(total) & 0xFFFF


def test_checksum_matches_word_by_word_sum() -> None:
    rng = random.Random(7)
    cases = [b"", b"\x00", b"\x00\x00", b"\xff\xff", b"\xff\xff" * 3, b"\x80", b"\x00\x01"]
    cases += [rng.randbytes(rng.randint(0, 1500)) for _ in range(400)]
    for data in cases:
        for initial in (0, 1, 0xFFFF, 0x1FFFE, rng.randint(0, 0x3FFFF)):
            assert checksum(data, initial) == _reference_checksum(data, initial), (data, initial)
