"""Internet checksum (RFC 1071) and incremental updates (RFC 1624, eqn. 3).

Used by the forwarding plane to keep IPv4/TCP/UDP/ICMP checksums right after
TTL decrement and NAT without recomputing them over the whole packet.
"""

from __future__ import annotations

__all__ = [
    "TTL_DEC_DELTA",
    "apply_delta",
    "checksum",
    "delta16",
    "delta32",
    "fold",
    "pseudo_header_sum",
]

# Decrementing the TTL subtracts 0x100 from the 16-bit word (TTL, protocol):
# ~m + m' = (0xFFFF - m) + (m - 0x100) = 0xFEFF in one's complement.
TTL_DEC_DELTA = 0xFEFF


def fold(value: int) -> int:
    """Fold a one's complement sum to 16 bits (end-around carry)."""
    while value >> 16:
        value = (value & 0xFFFF) + (value >> 16)
    return value


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """RFC 1071 checksum of ``data`` (plus an optional pre-summed ``initial``).

    The 16-bit words are summed as one big integer: 2**16 = 1 (mod 0xFFFF), so
    the number ``data`` spells is congruent to the sum of its words, and the
    end-around-carry fold of a positive sum is ``(sum - 1) % 0xFFFF + 1``.  A
    received TCP/UDP/ICMP message (checksum field included, with its pseudo
    header in ``initial``) is intact when this returns 0.
    """
    total = int.from_bytes(data, "big")
    if len(data) & 1:
        total <<= 8  # an odd length is padded with a zero byte
    total += initial
    if not total:
        return 0xFFFF
    return ~((total - 1) % 0xFFFF + 1) & 0xFFFF


def pseudo_header_sum(src: int, dst: int, proto: int, length: int) -> int:
    """Unfolded one's complement sum of the IPv4 pseudo header."""
    return (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + length


def delta16(old: int, new: int) -> int:
    """Sum ``~m + m'`` for one changed 16-bit word (0 when unchanged)."""
    if old == new:
        return 0
    return (~old & 0xFFFF) + new


def delta32(old: int, new: int) -> int:
    """Sum ``~m + m'`` for a changed 32-bit field (two 16-bit words)."""
    return delta16(old >> 16, new >> 16) + delta16(old & 0xFFFF, new & 0xFFFF)


def apply_delta(cksum: int, delta: int) -> int:
    """RFC 1624 eqn. 3: ``HC' = ~(~HC + ~m + m')`` with a precomputed delta."""
    if not delta:
        return cksum
    c = (~cksum & 0xFFFF) + delta
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    c = (c & 0xFFFF) + (c >> 16)
    return ~c & 0xFFFF
