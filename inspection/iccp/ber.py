"""Bounded BER tag-length-value reader for the ISO presentation/ACSE wrappers and the
MMS PDU header; asn1tools (mms.py) decodes the MMS service bodies themselves.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_DEPTH = 16


class BerError(ValueError):
    """Malformed or truncated BER (raised inside the decoder, turned into an anomaly)."""


class Tlv(NamedTuple):
    cls: int            # 0 universal, 1 application, 2 context, 3 private
    constructed: bool
    number: int
    start: int          # offset of the identifier octet in the buffer
    value_start: int
    end: int            # offset just after the value

    @property
    def ident(self) -> int:
        """The first identifier octet's class+constructed bits with the tag (< 31)."""
        return (self.cls << 6) | (0x20 if self.constructed else 0) | min(self.number, 31)


def read_tlv(buf: bytes, pos: int, limit: int | None = None) -> Tlv:
    """The TLV at ``pos`` (definite lengths only, as BER in MMS uses), within ``limit``."""
    end_lim = len(buf) if limit is None else limit
    if pos >= end_lim:
        raise BerError("truncated BER (no tag)")
    b = buf[pos]
    p = pos + 1
    if b & 0x1F != 0x1F and p + 1 < end_lim and buf[p] < 0x80:  # fast path: short forms
        n = buf[p]
        if p + 1 + n > end_lim:
            raise BerError(f"bad BER length ({n} > {end_lim - p - 1} left)")
        return Tlv(b >> 6, bool(b & 0x20), b & 0x1F, pos, p + 1, p + 1 + n)
    cls, constructed, number = b >> 6, bool(b & 0x20), b & 0x1F
    if number == 0x1F:
        number = 0
        for _ in range(4):
            if p >= end_lim:
                raise BerError("truncated BER (tag)")
            number = (number << 7) | (buf[p] & 0x7F)
            p += 1
            if not buf[p - 1] & 0x80:
                break
        else:
            raise BerError("bad BER tag (too long)")
    if p >= end_lim:
        raise BerError("truncated BER (no length)")
    n = buf[p]
    p += 1
    if n & 0x80:
        k = n & 0x7F
        if k == 0:
            raise BerError("bad BER length (indefinite)")
        if k > 4:
            raise BerError(f"bad BER length ({k} length octets)")
        if p + k > end_lim:
            raise BerError("truncated BER (length)")
        n = int.from_bytes(buf[p:p + k], "big")
        p += k
    if p + n > end_lim:
        raise BerError(f"bad BER length ({n} > {end_lim - p} left)")
    return Tlv(cls, constructed, number, pos, p, p + n)


def children(buf: bytes, tlv: Tlv) -> list[Tlv]:
    """The TLVs inside a constructed ``tlv`` (must fill it exactly)."""
    if not tlv.constructed:
        raise BerError("BER primitive where constructed expected")
    out: list[Tlv] = []
    p = tlv.value_start
    while p < tlv.end:
        t = read_tlv(buf, p, tlv.end)
        out.append(t)
        p = t.end
    return out


def find(kids: list[Tlv], cls: int, number: int) -> Tlv | None:
    """The first child with the given class and tag number."""
    return next((k for k in kids if k.cls == cls and k.number == number), None)


def integer(buf: bytes, tlv: Tlv) -> int:
    """A BER INTEGER value (signed), at most 8 octets."""
    n = tlv.end - tlv.value_start
    if n == 0 or n > 8:
        raise BerError(f"bad BER INTEGER length {n}")
    return int.from_bytes(buf[tlv.value_start:tlv.end], "big", signed=True)


CONTEXT, APPLICATION, UNIVERSAL = 2, 1, 0
