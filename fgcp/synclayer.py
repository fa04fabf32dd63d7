"""Scapy layers of the FGCP session-sync frames (ethertype 0x8892): build, dissect, print.

For tools, tests and dissection (the engine uses fgcp/syncframe.py); the record layer is
built from the record field tables of fgcp/syncrecord.py, so both agree byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from typing import Any, ClassVar

from scapy.fields import (
    AnyField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    Field,
    FieldLenField,
    FlagsField,
    IntField,
    IPField,
    LongField,
    PacketListField,
    ShortField,
    StrFixedLenField,
    StrLenField,
    XIntField,
    XLongField,
    XShortField,
    XStrFixedLenField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from fgcp.hakeys import mac
from fgcp.syncframe import (
    AUTH_LEN,
    ETH_P_FGCP_SYNC,
    FLAG_AUTH,
    HEADER_LEN,
    SYNC_MAGIC,
    SYNC_VERSION,
    T_BULK_BEGIN,
    T_BULK_END,
    T_BULK_REQ,
    T_DATA,
    T_HELLO,
    T_NACK,
    TYPE_NAMES,
)
from fgcp.syncrecord import (
    OP_ADD,
    OP_DELETE,
    OP_NAMES,
    REC_DEL_FIELDS,
    REC_FIXED_FIELDS,
    REC_FIXED_LEN,
    REC_TCP_FIELDS,
    REC_TCP_LEN,
    RF_TCP,
    TcpWindow,
)

__all__ = ["FGCPSync", "FGCPSyncExt", "FGCPSyncRange", "FGCPSyncRecord", "FGCPSyncTcp"]

_FLAG_NAMES = ["r0", "authenticated", "resend", "bulk", "r4", "r5", "r6", "r7"]
_RFLAG_NAMES = ["nat", "tcp", "insp0", "insp1"]  # RF_NAT, RF_TCP, 2-bit inspection code
_IP_FIELDS = frozenset(("src", "dst", "r_src", "r_dst", "nat_ip"))
_RECORD_DEFAULTS = {"proto": 6}
_TCP_DEFAULTS: dict[str, int] = {f.name: f.default for f in fields(TcpWindow)}  # type: ignore[misc]
_INT_FIELDS: dict[str, type[Field[Any, Any]]] = {
    "B": ByteField, "H": ShortField, "I": IntField, "Q": LongField,
}


def _int_field(name: str, code: str, default: int) -> Field[Any, Any]:
    return _INT_FIELDS[code](name, default)



class FGCPSyncExt(Packet):
    """Typed extension TLV at the end of a record (IPS, ZTNA proxy state...)."""

    name = "FGCP sync ext"
    fields_desc: ClassVar[list[AnyField]] = [
        XShortField("type", 0),
        FieldLenField("len", None, length_of="value", fmt="!H"),
        StrLenField("value", b"", length_from=lambda p: p.len),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FGCPSyncTcp(Packet):
    """TCP window edges of one direction (fields and defaults of syncrecord.TcpWindow)."""

    name = "FGCP sync TCP window"
    fields_desc: ClassVar[list[AnyField]] = [
        _int_field(n, code, _TCP_DEFAULTS[n]) for n, code in REC_TCP_FIELDS
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _is_upd(p: Packet) -> bool:
    return bool(p.op != OP_DELETE)


def _ext_len(p: Packet) -> int:
    used = (REC_FIXED_LEN + (REC_TCP_LEN if p.rflags & RF_TCP else 0) + 2
            + len(p.in_intf or b"") + len(p.out_intf or b""))
    return max(0, (p.len or 0) - used)


def _record_field(name: str, code: str) -> AnyField:
    """Scapy field of one fixed-part field of the record table (syncrecord.REC_FIXED_FIELDS)."""
    if name in _IP_FIELDS:
        f: Field[Any, Any] = IPField(name, "0.0.0.0")
    elif name == "rflags":
        f = FlagsField(name, 0, 8, _RFLAG_NAMES)
    elif name == "sflags":
        f = XShortField(name, 0)
    else:
        f = _int_field(name, code, _RECORD_DEFAULTS.get(name, 0))
    return f if name in REC_DEL_FIELDS else ConditionalField(f, _is_upd)


class FGCPSyncRecord(Packet):
    """One record of a DATA frame: ADD/UPDATE carry the whole state, DELETE the key."""

    name = "FGCP sync record"
    fields_desc: ClassVar[list[AnyField]] = [
        ByteEnumField("op", OP_ADD, OP_NAMES),
        ShortField("len", None),
        *(_record_field(n, code) for n, code in REC_FIXED_FIELDS),
        ConditionalField(PacketListField("tcp", [], FGCPSyncTcp, count_from=lambda p: 2),
                         lambda p: _is_upd(p) and bool(p.rflags & RF_TCP)),
        ConditionalField(FieldLenField("in_len", None, length_of="in_intf", fmt="B"), _is_upd),
        ConditionalField(StrLenField("in_intf", b"", length_from=lambda p: p.in_len), _is_upd),
        ConditionalField(FieldLenField("out_len", None, length_of="out_intf", fmt="B"), _is_upd),
        ConditionalField(StrLenField("out_intf", b"", length_from=lambda p: p.out_len), _is_upd),
        ConditionalField(PacketListField("ext", [], FGCPSyncExt, length_from=_ext_len), _is_upd),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.len is None:
            pkt = pkt[:1] + struct.pack("!H", len(pkt) - 3) + pkt[3:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return self.sprintf("%op% v%version% proto=%proto% %src%:%sport% > %dst%:%dport%")


class FGCPSyncRange(Packet):
    """One NACK gap: sequence numbers from..to (inclusive) are missing."""

    name = "FGCP sync gap"
    fields_desc: ClassVar[list[AnyField]] = [IntField("from_seq", 0), IntField("to_seq", 0)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FGCPSync(Packet):
    """FGCP session-sync frame header + records/gaps + HMAC trailer."""

    name = "FGCP session sync"
    fields_desc: ClassVar[list[AnyField]] = [
        XShortField("magic", SYNC_MAGIC),
        ByteField("version", SYNC_VERSION),
        ByteEnumField("type", T_DATA, TYPE_NAMES),
        FlagsField("flags", 0, 8, _FLAG_NAMES),
        ByteField("reserved", 0),
        ShortField("group_id", 0),
        StrFixedLenField("serial", b"", 16),
        XLongField("epoch", 1),
        LongField("counter", 1),
        XIntField("stream", 0),
        IntField("seq", 0),
        IntField("ack", 0),
        IntField("time_ms", 0),
        ShortField("count", None),
        ShortField("length", None),
        ConditionalField(PacketListField("records", [], FGCPSyncRecord,
                                         count_from=lambda p: p.count),
                         lambda p: p.type == T_DATA),
        ConditionalField(PacketListField("gaps", [], FGCPSyncRange,
                                         count_from=lambda p: p.count),
                         lambda p: p.type == T_NACK),
        ConditionalField(IntField("total", 0), lambda p: p.type in (T_BULK_BEGIN, T_BULK_END)),
        ConditionalField(XLongField("nonce", 0), lambda p: p.type in (T_HELLO, T_BULK_REQ)),
        ConditionalField(XLongField("echo", 0),
                         lambda p: p.type in (T_HELLO, T_BULK_REQ, T_BULK_BEGIN)),
        ConditionalField(XStrFixedLenField("auth", b"\0" * AUTH_LEN, AUTH_LEN),
                         lambda p: p.flags & FLAG_AUTH),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        tail = AUTH_LEN if self.flags & FLAG_AUTH else 0
        if self.count is None:
            n = len(self.records) if self.type == T_DATA else (
                len(self.gaps) if self.type == T_NACK else 0)
            pkt = pkt[:HEADER_LEN - 4] + struct.pack("!H", n) + pkt[HEADER_LEN - 2:]
        if self.length is None:
            pkt = (pkt[:HEADER_LEN - 2] + struct.pack("!H", len(pkt) - HEADER_LEN - tail)
                   + pkt[HEADER_LEN:])
        return pkt + pay

    def sign(self, key: bytes) -> bytes:
        """Bytes of this frame with the HMAC trailer computed for ``key``."""
        raw = bytes(self)
        body = raw[:len(raw) - AUTH_LEN] if self.flags & FLAG_AUTH else raw
        return body + mac(key, body)

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return self.sprintf("FGCP-sync %type% epoch=%epoch% ctr=%counter% stream=%stream% "
                            "seq=%seq% ack=%ack% count=%count%")


bind_layers(Ether, FGCPSync, type=ETH_P_FGCP_SYNC)
