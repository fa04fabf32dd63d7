"""The ISO layers under MMS: COTP class 0 TPDUs (ISO 8073), session SPDUs (ISO 8327),
presentation PPDUs (ISO 8823) and ACSE APDUs (ISO 8650) down to the MMS PDU bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspection.iccp.ber import (
    APPLICATION,
    CONTEXT,
    UNIVERSAL,
    BerError,
    Tlv,
    children,
    find,
    read_tlv,
)

COTP_CODES = {0xE0: "CR", 0xD0: "CC", 0x80: "DR", 0xC0: "DC", 0xF0: "DT", 0x10: "ED",
              0x60: "AK", 0x20: "EA", 0x50: "RJ", 0x70: "ER"}
SPDU_NAMES = {1: "DT", 2: "PT", 5: "EX", 7: "GTC", 8: "NF", 9: "FN", 10: "DN", 12: "RF",
              13: "CN", 14: "AC", 15: "CDO", 16: "OA", 21: "GTA", 25: "AB", 26: "AA",
              33: "TD", 34: "RA", 41: "MAP", 42: "MIP", 45: "AS", 49: "MIA", 53: "RS"}
ACSE_NAMES = {0: "AARQ", 1: "AARE", 2: "RLRQ", 3: "RLRE", 4: "ABRT"}
PGI_USER_DATA, PGI_EXT_USER_DATA = 193, 194


class LayerError(ValueError):
    """A malformed ISO-layer header (turned into an anomaly event by the decoder)."""


@dataclass(frozen=True, slots=True)
class Cotp:
    name: str
    eot: bool           # DT: last TPDU of the TSDU
    data: bytes         # DT user data


def parse_cotp(payload: bytes) -> Cotp:
    """The COTP TPDU in a TPKT payload; class 0 only (what RFC 1006 carries)."""
    if len(payload) < 2:
        raise LayerError("truncated COTP header")
    li = payload[0]
    if li < 1 or li + 1 > len(payload):
        raise LayerError(f"bad COTP length indicator {li} ({len(payload)} bytes)")
    code = payload[1] & 0xF0
    name = COTP_CODES.get(code)
    if name is None:
        raise LayerError(f"unknown COTP TPDU code 0x{payload[1]:02x}")
    if name == "DT":
        if li != 2:
            raise LayerError(f"COTP DT header length {li} (class 0 uses 2)")
        return Cotp(name, bool(payload[2] & 0x80), bytes(payload[3:]))
    if name in ("CR", "CC"):
        if li < 6:
            raise LayerError(f"COTP {name} header length {li} < 6")
        cls = payload[6] >> 4
        if cls != 0:
            raise LayerError(f"COTP {name} class {cls} (RFC 1006 uses class 0)")
    return Cotp(name, True, bytes(payload[li + 1:]))


def _length(buf: bytes, p: int) -> tuple[int, int]:
    """An ISO 8327 length indicator at ``p``: (value, position after it)."""
    if p >= len(buf):
        raise LayerError("truncated SPDU length")
    if buf[p] != 0xFF:
        return buf[p], p + 1
    if p + 3 > len(buf):
        raise LayerError("truncated SPDU length")
    return int.from_bytes(buf[p + 1:p + 3], "big"), p + 3


def parse_session(tsdu: bytes) -> tuple[str, bytes]:
    """The SPDU name and the user data it carries (the presentation PPDU, maybe empty)."""
    if not tsdu:
        raise LayerError("empty TSDU (no SPDU)")
    si = tsdu[0]
    li, p = _length(tsdu, 1)
    if p + li > len(tsdu):
        raise LayerError(f"SPDU length {li} beyond the TSDU")
    if si == 1 and li == 0 and p < len(tsdu):
        # Give Tokens (category 0) concatenated with Data Transfer (category 2)
        if tsdu[p] != 1:
            raise LayerError(f"SPDU SI {tsdu[p]} after Give Tokens (DT expected)")
        li, q = _length(tsdu, p + 1)
        if q + li > len(tsdu):
            raise LayerError(f"DT SPDU length {li} beyond the TSDU")
        return "DT", tsdu[q + li:]
    name = SPDU_NAMES.get(si)
    if name is None:
        raise LayerError(f"unknown SPDU SI {si}")
    if name == "DT":
        return name, tsdu[p + li:]
    end = p + li
    user = b""
    while p < end:
        code = tsdu[p]
        n, q = _length(tsdu, p + 1)
        if q + n > end:
            raise LayerError(f"SPDU parameter {code} length {n} beyond the SPDU")
        if code in (PGI_USER_DATA, PGI_EXT_USER_DATA):
            user = tsdu[q:q + n]
        p = q + n
    return name, user


def _user_data(buf: bytes, t: Tlv) -> Tlv | None:
    """The fully-encoded-data [APPLICATION 1] inside a PPDU (searched two levels deep)."""
    if t.cls == APPLICATION and t.number == 1 and t.constructed:
        return t
    if not t.constructed:
        return None
    for k in children(buf, t):
        if k.cls == APPLICATION and k.number == 1 and k.constructed:
            return k
        if k.constructed and k.cls == CONTEXT:  # normal-mode-parameters [2]
            found = find(children(buf, k), APPLICATION, 1)
            if found is not None:
                return found
    return None


def _pdv_value(buf: bytes, pdv: Tlv) -> bytes | None:
    """The encoded value of a PDV-list (single-ASN1-type [0] or octet-aligned [1])."""
    for k in children(buf, pdv):
        if k.cls == CONTEXT and k.number == 0 and k.constructed:
            inner = read_tlv(buf, k.value_start, k.end)
            if inner.end != k.end:
                raise BerError("trailing bytes in single-ASN1-type")
            return buf[inner.start:inner.end]
        if k.cls == CONTEXT and k.number == 1:
            return buf[k.value_start:k.end]
    return None


def _acse_user(buf: bytes, apdu: Tlv) -> bytes | None:
    """The MMS PDU in an ACSE APDU's user-information [30] EXTERNAL, if any."""
    info = find(children(buf, apdu), CONTEXT, 30)
    if info is None:
        return None
    for ext in children(buf, info):
        if ext.cls == UNIVERSAL and ext.number == 8:
            return _pdv_value(buf, ext)
    return None


def parse_presentation(ppdu: bytes) -> tuple[str | None, bytes | None]:
    """(ACSE APDU name or None, MMS PDU bytes or None) carried by a presentation PPDU."""
    if not ppdu:
        return None, None
    top = read_tlv(ppdu, 0)
    if top.end != len(ppdu):
        raise BerError(f"{len(ppdu) - top.end} trailing bytes after the PPDU")
    ud = _user_data(ppdu, top)
    if ud is None:
        return None, None
    for pdv in children(ppdu, ud):
        if not (pdv.cls == UNIVERSAL and pdv.number == 16):
            raise BerError("PDV-list is not a SEQUENCE")
        value = _pdv_value(ppdu, pdv)
        if not value:
            continue
        if value[0] & 0xC0 == 0x40:  # application class: an ACSE APDU
            apdu = read_tlv(value, 0)
            acse = ACSE_NAMES.get(apdu.number, f"ACSE[{apdu.number}]")
            return acse, _acse_user(value, apdu) if apdu.constructed else None
        return None, value
    return None, None
