"""Scapy layer of the FGCP heartbeat (ethertype 0x8890): build, dissect, print.

For tools, tests and dissection only (the daemon uses the codec in fgcp/hbframe.py, which
also documents the wire layout); importing this module binds the layer to Ether.
"""

from __future__ import annotations

import struct
from typing import ClassVar

from scapy.base_classes import BasePacket
from scapy.fields import (
    AnyField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FlagsField,
    LELongField,
    LEShortEnumField,
    LEShortField,
    PacketListField,
    StrFixedLenField,
    StrLenField,
    XLELongField,
    XLEShortField,
    XStrFixedLenField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw, bind_layers

from fgcp.hbframe import (
    AUTH_LEN,
    ETH_P_FGCP_HB,
    FLAG_AUTH,
    HB_MAGIC,
    HEADER_LEN,
    MODE_AA,
    MODE_AP,
    STATE_HELLO,
    STATE_NAMES,
    TLV_CHALLENGE,
    TLV_CHECKSUMS,
    TLV_END,
    TLV_EPOCH,
    TLV_FAILOVER,
    TLV_HDR,
    TLV_HOSTNAME,
    TLV_INTERFACES,
    TLV_LENGTHS,
    TLV_MEMBERS,
    TLV_MONITOR,
    TLV_NAMES,
    TLV_OVERRIDE,
    TLV_PRIMARY,
    TLV_PRIORITY,
    TLV_RESETS,
    TLV_RESPONSE,
    TLV_ROLE,
    TLV_SEQUENCE,
    TLV_STATE,
    TLV_SYNC,
    TLV_TIMERS,
    TLV_UPTIME,
    TLV_VCLUSTER,
    IfaceRecord,
    pack_interfaces,
    unpack_interfaces,
)

__all__ = [
    "FGCPTLV",
    "FGCPChallengeEntry",
    "FGCPHeartbeat",
    "FGCPResponseEntry",
    "FGCPTLVChallenge",
    "FGCPTLVChecksums",
    "FGCPTLVEnd",
    "FGCPTLVEpoch",
    "FGCPTLVFailover",
    "FGCPTLVHostname",
    "FGCPTLVInterfaces",
    "FGCPTLVMembers",
    "FGCPTLVMonitor",
    "FGCPTLVOverride",
    "FGCPTLVPrimary",
    "FGCPTLVPriority",
    "FGCPTLVResets",
    "FGCPTLVResponse",
    "FGCPTLVRole",
    "FGCPTLVSequence",
    "FGCPTLVState",
    "FGCPTLVSync",
    "FGCPTLVTimers",
    "FGCPTLVUptime",
    "FGCPTLVVcluster",
]



class FGCPTLV(Packet):
    """A heartbeat TLV of any type (the value kept as bytes); base of the typed TLVs."""

    name = "FGCP TLV"
    fields_desc: ClassVar[list[AnyField]] = [
        LEShortEnumField("type", 0, TLV_NAMES),
        LEShortField("len", None),
        StrLenField("value", b"", length_from=lambda p: p.len if p.len is not None else 0),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.len is None:
            pkt = pkt[:2] + struct.pack("<H", len(pkt) - 4) + pkt[4:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return self.sprintf("TLV %type%")


def _head(tlv_type: int) -> list[AnyField]:
    """Type and length fields of a typed TLV (length filled in by post_build when None)."""
    return [LEShortEnumField("type", tlv_type, TLV_NAMES), LEShortField("len", None)]


class FGCPTLVEnd(FGCPTLV):
    name = "FGCP TLV end"
    fields_desc: ClassVar[list[AnyField]] = _head(TLV_END)


def _byte_tlv(cls_name: str, tlv_type: int, field_name: str) -> type[FGCPTLV]:
    return type(
        cls_name,
        (FGCPTLV,),
        {
            "name": f"FGCP TLV {TLV_NAMES[tlv_type]}",
            "fields_desc": [*_head(tlv_type), ByteField(field_name, 0)],
        },
    )


FGCPTLVVcluster = _byte_tlv("FGCPTLVVcluster", TLV_VCLUSTER, "vcluster_id")
FGCPTLVPriority = _byte_tlv("FGCPTLVPriority", TLV_PRIORITY, "priority")
FGCPTLVOverride = _byte_tlv("FGCPTLVOverride", TLV_OVERRIDE, "override")
FGCPTLVRole = _byte_tlv("FGCPTLVRole", TLV_ROLE, "role")
FGCPTLVSync = _byte_tlv("FGCPTLVSync", TLV_SYNC, "sync_complete")
FGCPTLVFailover = _byte_tlv("FGCPTLVFailover", TLV_FAILOVER, "failover_set")


class FGCPTLVState(FGCPTLV):
    name = "FGCP TLV ha-state"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_STATE),
        ByteEnumField("state", STATE_HELLO, STATE_NAMES),
    ]


class FGCPTLVInterfaces(FGCPTLV):
    """Interface inventory: u16 count, then a zlib stream of 23-byte records."""

    name = "FGCP TLV interfaces"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_INTERFACES),
        LEShortField("count", 0),
        StrLenField("zdata", b"", length_from=lambda p: max(0, (p.len or 0) - 2)),
    ]

    @classmethod
    def from_records(cls, records: tuple[IfaceRecord, ...]) -> FGCPTLVInterfaces:
        packed = pack_interfaces(tuple(records))
        return cls(count=len(records), zdata=packed[2:])

    def records(self) -> tuple[IfaceRecord, ...]:
        """The decoded records; raises MalformedHeartbeat on a bad stream."""
        return unpack_interfaces(struct.pack("<H", self.count) + bytes(self.zdata))


class FGCPTLVChecksums(FGCPTLV):
    name = "FGCP TLV checksums"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_CHECKSUMS),
        XStrFixedLenField("global_sum", b"\0" * 16, 16),
        XStrFixedLenField("root_sum", b"\0" * 16, 16),
        XStrFixedLenField("all_sum", b"\0" * 16, 16),
    ]


class FGCPTLVUptime(FGCPTLV):
    name = "FGCP TLV ha-uptime-ms"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_UPTIME),
        LELongField("uptime_ms", 0),
    ]


class FGCPTLVSequence(FGCPTLV):
    name = "FGCP TLV sequence"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_SEQUENCE),
        LELongField("seq", 0),
    ]


class FGCPTLVMonitor(FGCPTLV):
    name = "FGCP TLV monitor"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_MONITOR),
        LEShortField("failed", 0),
        LEShortField("monitored", 0),
    ]


class FGCPTLVTimers(FGCPTLV):
    name = "FGCP TLV timers"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_TIMERS),
        BitField("hb_unit_10ms", 0, 1),  # hb-interval-in-milliseconds 10ms
        BitField("hb_interval", 2, 7),
        ByteField("hb_lost_threshold", 6),
        LEShortField("hello_holddown", 20),
    ]


class FGCPTLVResets(FGCPTLV):
    name = "FGCP TLV uptime-resets"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_RESETS),
        LEShortField("resets", 0),
    ]


class FGCPTLVHostname(FGCPTLV):
    name = "FGCP TLV hostname"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_HOSTNAME),
        StrLenField("hostname", b"", length_from=lambda p: p.len if p.len is not None else 0),
    ]


class FGCPTLVPrimary(FGCPTLV):
    name = "FGCP TLV primary"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_PRIMARY),
        StrFixedLenField("primary", b"", 16),
    ]


class FGCPTLVMembers(FGCPTLV):
    name = "FGCP TLV members"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_MEMBERS),
        StrLenField("serials", b"", length_from=lambda p: p.len if p.len is not None else 0),
    ]


class FGCPTLVEpoch(FGCPTLV):
    name = "FGCP TLV epoch"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_EPOCH),
        XLELongField("epoch", 0),
    ]


class FGCPChallengeEntry(Packet):
    """One challenge: prove (serial, epoch) is live by echoing ``nonce``."""

    name = "FGCP challenge"
    fields_desc: ClassVar[list[AnyField]] = [
        StrFixedLenField("serial", b"", 16),
        XLELongField("epoch", 0),
        XLELongField("nonce", 0),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FGCPResponseEntry(Packet):
    """One answer: the ``nonce`` a challenger (``serial``) sent to this member's epoch."""

    name = "FGCP response"
    fields_desc: ClassVar[list[AnyField]] = [
        StrFixedLenField("serial", b"", 16),
        XLELongField("nonce", 0),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _entries_len(p: Packet) -> int:
    return p.len if p.len is not None else 0


class FGCPTLVChallenge(FGCPTLV):
    name = "FGCP TLV challenge"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_CHALLENGE),
        PacketListField("entries", [], FGCPChallengeEntry, length_from=_entries_len),
    ]


class FGCPTLVResponse(FGCPTLV):
    name = "FGCP TLV response"
    fields_desc: ClassVar[list[AnyField]] = [
        *_head(TLV_RESPONSE),
        PacketListField("entries", [], FGCPResponseEntry, length_from=_entries_len),
    ]


# type -> class of the typed TLVs (their fixed lengths: fgcp.hbframe.TLV_LENGTHS)
_TLV_CLASSES: dict[int, type[FGCPTLV]] = {
    TLV_END: FGCPTLVEnd,
    TLV_VCLUSTER: FGCPTLVVcluster,
    TLV_PRIORITY: FGCPTLVPriority,
    TLV_OVERRIDE: FGCPTLVOverride,
    TLV_INTERFACES: FGCPTLVInterfaces,
    TLV_CHECKSUMS: FGCPTLVChecksums,
    TLV_UPTIME: FGCPTLVUptime,
    TLV_STATE: FGCPTLVState,
    TLV_ROLE: FGCPTLVRole,
    TLV_MONITOR: FGCPTLVMonitor,
    TLV_SEQUENCE: FGCPTLVSequence,
    TLV_TIMERS: FGCPTLVTimers,
    TLV_SYNC: FGCPTLVSync,
    TLV_FAILOVER: FGCPTLVFailover,
    TLV_MEMBERS: FGCPTLVMembers,
    TLV_RESETS: FGCPTLVResets,
    TLV_HOSTNAME: FGCPTLVHostname,
    TLV_PRIMARY: FGCPTLVPrimary,
    TLV_EPOCH: FGCPTLVEpoch,
    TLV_CHALLENGE: FGCPTLVChallenge,
    TLV_RESPONSE: FGCPTLVResponse,
}


def _next_tlv(pkt: Packet, lst: list[BasePacket], cur: Packet | None, remain: bytes) -> type[Packet] | None:
    """Choose the class of the next TLV from its type and declared length."""
    if not remain:
        return None
    if (cur is not None and isinstance(cur, FGCPTLVEnd)) or len(remain) < 4:
        return Raw  # bytes after the end TLV (or a truncated TLV header)
    ttype, tlen = TLV_HDR.unpack_from(remain)
    cls = _TLV_CLASSES.get(ttype, FGCPTLV)
    want = TLV_LENGTHS.get(ttype)
    if want is not None and tlen != want:
        return FGCPTLV  # honour the length whatever the type says
    if cls is FGCPTLVInterfaces and tlen < 2:
        return FGCPTLV
    if (cls is FGCPTLVChallenge and tlen % 32) or (cls is FGCPTLVResponse and tlen % 24):
        return FGCPTLV
    if tlen + 4 > len(remain):
        return FGCPTLV
    return cls


def _tlv_area(pkt: Packet) -> int:
    total = len(pkt.original or b"")
    return max(0, total - HEADER_LEN - (AUTH_LEN if (pkt.flags or 0) & FLAG_AUTH else 0))


class FGCPHeartbeat(Packet):
    """FGCP heartbeat (hello) frame, ethertype 0x8890; see the module docstring."""

    name = "FGCP heartbeat"
    fields_desc: ClassVar[list[AnyField]] = [
        XLEShortField("magic", HB_MAGIC),
        ByteEnumField("mode", MODE_AP, {MODE_AA: "a-a", MODE_AP: "a-p"}),
        FlagsField("flags", 0, 8, ["encrypted", "authenticated"]),
        StrFixedLenField("group_name", b"", 32),
        XLEShortField("unknown1", 0),
        LEShortField("group_id", 0),
        XStrFixedLenField("unknown2", b"\0" * 12, 12),
        StrFixedLenField("port", b"", 16),
        LEShortField("revision", 0),
        XLEShortField("config_hash", 0),
        StrFixedLenField("serial", b"", 16),
        PacketListField("tlvs", [], next_cls_cb=_next_tlv, length_from=_tlv_area),
        ConditionalField(
            XStrFixedLenField("auth", b"\0" * AUTH_LEN, AUTH_LEN),
            lambda p: bool((p.flags or 0) & FLAG_AUTH),
        ),
    ]

    def tlv(self, tlv_type: int) -> FGCPTLV | None:
        """The first TLV of ``tlv_type`` or None."""
        for t in self.tlvs:
            if isinstance(t, FGCPTLV) and t.type == tlv_type:
                return t
        return None

    def mysummary(self) -> str:
        prio = self.tlv(TLV_PRIORITY)
        state = self.tlv(TLV_STATE)

        def txt(v: bytes | str) -> str:
            return v.rstrip(b"\0").decode("ascii", "replace") if isinstance(v, bytes) else str(v)

        text = f"FGCP HB {txt(self.group_name)}/{self.group_id} SN {txt(self.serial)} on {txt(self.port)}"
        if prio is not None and hasattr(prio, "priority"):
            text += f" prio {prio.priority}"
        if state is not None and hasattr(state, "state"):
            text += f" {STATE_NAMES.get(state.state, state.state)}"
        return text


bind_layers(Ether, FGCPHeartbeat, type=ETH_P_FGCP_HB)
