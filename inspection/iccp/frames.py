"""Builds ICCP frames for tests and the lab's attack client: MMS requests encoded with the
same asn1tools subset, wrapped in presentation/session/COTP DT/TPKT (what libiec61850 sends).
"""

from __future__ import annotations

from typing import Any

from inspection.iccp.mms import spec

MMS_CONTEXT_ID = 3      # the presentation context libiec61850 proposes for MMS


def tlv(ident: int, value: bytes) -> bytes:
    """One definite-length BER TLV with a single-octet identifier."""
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([ident]) + length + value


def tpkt(payload: bytes) -> bytes:
    """RFC 1006 TPKT around a COTP TPDU."""
    return bytes([3, 0]) + (len(payload) + 4).to_bytes(2, "big") + payload


def cotp_dt(data: bytes, eot: bool = True) -> bytes:
    """A class-0 COTP DT TPDU in a TPKT."""
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + data)


def cotp_cr(src_ref: int = 1, calling: bytes = b"\x00\x01", called: bytes = b"\x00\x01",
            tpdu_size: int = 0x0A) -> bytes:
    """A class-0 COTP CR TPDU (TSAPs and TPDU size parameters) in a TPKT."""
    params = tlv(0xC1, calling) + tlv(0xC2, called) + tlv(0xC0, bytes([tpdu_size]))
    hdr = bytes([0xE0, 0, 0]) + src_ref.to_bytes(2, "big") + b"\x00" + params
    return tpkt(bytes([len(hdr)]) + hdr)


def session_dt(ppdu: bytes) -> bytes:
    """Give Tokens + Data Transfer SPDUs (ISO 8327) in front of a PPDU."""
    return b"\x01\x00\x01\x00" + ppdu


def presentation_data(mms: bytes, context_id: int = MMS_CONTEXT_ID) -> bytes:
    """fully-encoded-data with one PDV-list carrying ``mms`` as single-ASN1-type."""
    pdv = tlv(0x02, bytes([context_id])) + tlv(0xA0, mms)
    return tlv(0x61, tlv(0x30, pdv))


def mms_confirmed_request(invoke_id: int, service: tuple[str, Any]) -> bytes:
    """confirmed-RequestPDU {invokeID, service} (the service body via asn1tools)."""
    body = spec().encode("ConfirmedServiceRequest", service)
    inv = invoke_id.to_bytes(max(1, (invoke_id.bit_length() + 8) // 8), "big", signed=True)
    return tlv(0xA0, tlv(0x02, inv) + body)


def _var(domain: str, item: str) -> dict[str, Any]:
    name = ("domain-specific", {"domainId": domain, "itemId": item})
    return {"variableSpecification": ("name", name)}


def mms_read(invoke_id: int, domain: str, item: str) -> bytes:
    spec = ("listOfVariable", [_var(domain, item)])
    return mms_confirmed_request(invoke_id, ("read", {"variableAccessSpecification": spec}))


def mms_write(invoke_id: int, domain: str, item: str, data: tuple[str, Any]) -> bytes:
    req = {"variableAccessSpecification": ("listOfVariable", [_var(domain, item)]),
           "listOfData": [data]}
    return mms_confirmed_request(invoke_id, ("write", req))


def iccp_dt(mms: bytes) -> bytes:
    """An MMS PDU as the bytes on the wire: TPKT / COTP DT / session / presentation."""
    return cotp_dt(session_dt(presentation_data(mms)))


def spc_oper(ctl_val: bool, or_ident: bytes = b"lab", ctl_num: int = 1) -> tuple[str, Any]:
    """The MMS Data of an IEC 61850 SPC Oper structure (ctlVal, origin, ctlNum, T, Test,
    Check), what a breaker command writes to ``...$CO$...$Oper``."""
    return ("structure", [
        ("boolean", ctl_val),
        ("structure", [("integer", 3), ("octet-string", or_ident)]),
        ("unsigned", ctl_num),
        ("utc-time", bytes(8)),
        ("boolean", False),
        ("bit-string", (b"\x00", 2)),
    ])
