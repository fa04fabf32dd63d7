"""FGCP session-sync frames (ethertype 0x8892): the raw-bytes codec and the scapy layers.

``encode_frame``/``FrameBuilder``/``decode_frame`` are the hot-path codec the sync
engine uses (precompiled ``struct``, many records per frame); the scapy layers
``FGCPSync``/``FGCPSyncRecord`` are for dissection, tests and display.

Wire layout (big-endian, offsets after the Ethernet header; docs/protocol.md "Session sync")::

    0  magic u16 0x4653 ("FS")  2 version u8 (1)  3 type u8  4 flags u8  5 reserved u8
    6  group-id u16   8 sender serial 16s   24 stream id u32   28 seq u32   32 ack u32
    36 frame time u32 (sender clock, ms)   40 count u16   42 payload length u16
    44 payload: DATA records | NACK ranges (from u32, to u32) | BULK_* u32 total
    end: 32-byte HMAC-SHA256 trailer when flag 0x02 is set

Authentication: key = HKDF-SHA256(password, salt=b"fgcp-lab session-sync v1",
info=group-id u16 big-endian) (the heartbeat scheme of fgcp/hbframe.py with its own
salt, so a heartbeat MAC never validates a sync frame); trailer = HMAC-SHA256(key,
bytes from offset 0 up to the trailer).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from scapy.fields import (
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
    XShortField,
    XStrFixedLenField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from fgcp.syncrecord import (
    OP_DELETE,
    OP_NAMES,
    RecordOp,
    SyncRecordError,
    decode_records,
)

__all__ = [
    "AUTH_LEN",
    "ETH_P_FGCP_SYNC",
    "FLAG_AUTH",
    "FLAG_BULK",
    "FLAG_RESEND",
    "HEADER_LEN",
    "MAX_FRAME",
    "SYNC_MAGIC",
    "TYPE_NAMES",
    "T_ACK",
    "T_ALIVE",
    "T_BULK_BEGIN",
    "T_BULK_END",
    "T_BULK_REQ",
    "T_DATA",
    "T_HELLO",
    "T_NACK",
    "FGCPSync",
    "FGCPSyncExt",
    "FGCPSyncRange",
    "FGCPSyncRecord",
    "FrameBuilder",
    "MalformedSyncFrame",
    "SyncAuthError",
    "SyncFrame",
    "decode_frame",
    "derive_sync_key",
    "encode_frame",
    "encode_nack_ranges",
    "encode_total",
]

ETH_P_FGCP_SYNC = 0x8892
SYNC_MAGIC = 0x4653  # "FS"
SYNC_VERSION = 1
MAX_FRAME = 1500  # Ethernet payload (MTU): header + records + trailer fit in it
AUTH_LEN = 32

# frame types
T_DATA = 1
T_ACK = 2
T_NACK = 3
T_HELLO = 4
T_ALIVE = 5
T_BULK_REQ = 6
T_BULK_BEGIN = 7
T_BULK_END = 8
TYPE_NAMES = {T_DATA: "DATA", T_ACK: "ACK", T_NACK: "NACK", T_HELLO: "HELLO",
              T_ALIVE: "ALIVE", T_BULK_REQ: "BULK_REQ", T_BULK_BEGIN: "BULK_BEGIN",
              T_BULK_END: "BULK_END"}

# header flags
FLAG_AUTH = 0x02
FLAG_RESEND = 0x04  # retransmission of an earlier sequence number
FLAG_BULK = 0x08  # the frame belongs to a bulk sync in progress
_FLAG_NAMES = ["r0", "authenticated", "resend", "bulk", "r4", "r5", "r6", "r7"]

_HDR = struct.Struct("!HBBBBH16sIIIIHH")
HEADER_LEN = _HDR.size  # 44
_RANGE = struct.Struct("!II")
_U32 = struct.Struct("!I")
MAX_RECORDS_BYTES = MAX_FRAME - HEADER_LEN - AUTH_LEN  # room for records, auth or not
MAX_RANGES = MAX_RECORDS_BYTES // _RANGE.size
_HKDF_SALT = b"fgcp-lab session-sync v1"


class MalformedSyncFrame(ValueError):
    """The bytes are not a well-formed session-sync frame (the reason says why)."""

    reason = "malformed"


class SyncAuthError(MalformedSyncFrame):
    """Missing or wrong HMAC trailer (wrong password, altered or spoofed frame)."""

    reason = "auth"


def derive_sync_key(password: str, group_id: int) -> bytes | None:
    """32-byte HMAC key of the HA ``password`` for ``group_id``; None without password."""
    if not password:
        return None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT,
                info=struct.pack("!H", group_id & 0xFFFF))
    return hkdf.derive(password.encode("utf-8"))


@dataclass(slots=True)
class SyncFrame:
    """A decoded frame. ``records`` for DATA, ``ranges`` for NACK, ``total`` for BULK_*."""

    type: int
    flags: int
    group_id: int
    serial: str
    stream: int
    seq: int
    ack: int
    time_ms: int
    count: int
    records: list[RecordOp] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    total: int = 0


def _serial(serial: str) -> bytes:
    raw = serial.encode("ascii")
    if len(raw) > 16:
        raise ValueError(f"serial {serial!r} is longer than 16 bytes")
    return raw


def encode_frame(ftype: int, group_id: int, serial: str, stream: int, seq: int, ack: int,
                 time_ms: int, key: bytes | None, *, flags: int = 0, count: int = 0,
                 payload: bytes = b"") -> bytes:
    """Bytes after the Ethernet header of one frame (HMAC trailer added when ``key``)."""
    if key is not None:
        flags |= FLAG_AUTH
    else:
        flags &= ~FLAG_AUTH
    hdr = _HDR.pack(SYNC_MAGIC, SYNC_VERSION, ftype, flags, 0, group_id & 0xFFFF,
                    _serial(serial), stream & 0xFFFFFFFF, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                    time_ms & 0xFFFFFFFF, count, len(payload))
    data = hdr + payload
    if key is not None:
        data += hmac.digest(key, data, "sha256")
    return data


def encode_nack_ranges(ranges: list[tuple[int, int]]) -> bytes:
    """NACK payload: (from, to) inclusive sequence ranges (at most MAX_RANGES)."""
    return b"".join(_RANGE.pack(a, b) for a, b in ranges[:MAX_RANGES])


def encode_total(total: int) -> bytes:
    """BULK_BEGIN / BULK_END payload: u32 (sessions in the bulk / records sent)."""
    return _U32.pack(total & 0xFFFFFFFF)


class FrameBuilder:
    """Accumulates encoded records for one DATA frame up to ``capacity`` bytes."""

    __slots__ = ("capacity", "count", "parts", "size")

    def __init__(self, capacity: int = MAX_RECORDS_BYTES) -> None:
        self.capacity = capacity
        self.parts: list[bytes] = []
        self.size = 0
        self.count = 0

    def fits(self, rec: bytes) -> bool:
        return self.size + len(rec) <= self.capacity

    def add(self, rec: bytes) -> bool:
        """Append one encoded record; False (nothing added) when it does not fit."""
        n = len(rec)
        if self.size + n > self.capacity:
            return False
        self.parts.append(rec)
        self.size += n
        self.count += 1
        return True

    def payload(self) -> bytes:
        return b"".join(self.parts)


def decode_frame(data: bytes | bytearray | memoryview, key: bytes | None, now: float = 0.0,
                 *, verify: bool = True) -> SyncFrame:
    """Parse the bytes after the Ethernet header. Raises MalformedSyncFrame / SyncAuthError.

    With a ``key`` the frame must carry a valid trailer; without one an
    authenticated frame is refused (the two members disagree on the password).
    ``now`` is the local clock used to rebuild the records' creation times.
    """
    n = len(data)
    if n < HEADER_LEN:
        raise MalformedSyncFrame(f"frame of {n} bytes is shorter than the {HEADER_LEN}-byte header")
    (magic, version, ftype, flags, _res, group_id, serial, stream, seq, ack, time_ms,
     count, plen) = _HDR.unpack_from(data, 0)
    if magic != SYNC_MAGIC:
        raise MalformedSyncFrame(f"bad magic {magic:#06x}")
    if version != SYNC_VERSION:
        raise MalformedSyncFrame(f"unsupported version {version}")
    if ftype not in TYPE_NAMES:
        raise MalformedSyncFrame(f"unknown frame type {ftype}")
    end = HEADER_LEN + plen
    auth = flags & FLAG_AUTH
    expect = end + (AUTH_LEN if auth else 0)
    if n < expect:
        raise MalformedSyncFrame(f"frame truncated: {n} bytes, header says {expect}")
    if n > expect and any(bytes(data[expect:])):
        # Ethernet minimum-size padding is zeros; anything else is garbage
        raise MalformedSyncFrame(f"{n - expect} unexpected trailing bytes")
    if verify:
        if key is not None:
            if not auth:
                raise SyncAuthError("frame is not authenticated")
            mac = hmac.digest(key, bytes(data[:end]), "sha256")
            if not hmac.compare_digest(mac, bytes(data[end:end + AUTH_LEN])):
                raise SyncAuthError("bad HMAC trailer")
        elif auth:
            raise SyncAuthError("authenticated frame but no HA password configured")
    try:
        sn = bytes(serial).rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise MalformedSyncFrame("sender serial is not ASCII") from None
    fr = SyncFrame(ftype, flags, group_id, sn, stream, seq, ack, time_ms, count)
    if ftype == T_DATA:
        try:
            fr.records = decode_records(data, HEADER_LEN, end, count, time_ms, now)
        except SyncRecordError as e:
            raise MalformedSyncFrame(str(e)) from None
    elif ftype == T_NACK:
        if plen != count * _RANGE.size:
            raise MalformedSyncFrame(f"NACK: {count} ranges but {plen} payload bytes")
        ranges = []
        for i in range(count):
            a, b = _RANGE.unpack_from(data, HEADER_LEN + i * _RANGE.size)
            if b < a:
                raise MalformedSyncFrame(f"NACK range {a}-{b} is reversed")
            ranges.append((a, b))
        fr.ranges = ranges
    elif ftype in (T_BULK_BEGIN, T_BULK_END):
        if plen != 4 or count != 0:
            raise MalformedSyncFrame(f"{TYPE_NAMES[ftype]}: payload must be one u32")
        fr.total = _U32.unpack_from(data, HEADER_LEN)[0]
    elif plen or count:
        raise MalformedSyncFrame(f"{TYPE_NAMES[ftype]} carries no payload")
    return fr


# --------------------------------------------------------------------------- scapy layers


class FGCPSyncExt(Packet):
    """Typed extension TLV at the end of a record (IPS, ZTNA proxy state...)."""

    name = "FGCP sync ext"
    fields_desc: ClassVar[list[Field]] = [
        XShortField("type", 0),
        FieldLenField("len", None, length_of="value", fmt="!H"),
        StrLenField("value", b"", length_from=lambda p: p.len),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FGCPSyncTcp(Packet):
    """TCP window edges of one direction."""

    name = "FGCP sync TCP window"
    fields_desc: ClassVar[list[Field]] = [
        IntField("seqlo", 0),
        IntField("seqhi", 1),
        ShortField("max_win", 1),
        ByteField("wscale", 0),
        ByteField("state", 0),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _is_del(p: Packet) -> bool:
    return p.op == OP_DELETE


def _is_upd(p: Packet) -> bool:
    return p.op != OP_DELETE


def _ext_len(p: Packet) -> int:
    used = 51 + (24 if p.rflags & 0x02 else 0) + 2 + len(p.in_intf or b"") + len(p.out_intf or b"")
    return max(0, (p.len or 0) - used)


class FGCPSyncRecord(Packet):
    """One record of a DATA frame: ADD/UPDATE carry the whole state, DELETE the key."""

    name = "FGCP sync record"
    fields_desc: ClassVar[list[Field]] = [
        ByteEnumField("op", 1, OP_NAMES),
        ShortField("len", None),
        LongField("version", 0),
        ByteField("proto", 6),
        ConditionalField(ByteField("state", 0), _is_upd),
        ConditionalField(FlagsField("rflags", 0, 8, ["nat", "tcp", "insp0", "insp1"]), _is_upd),
        ConditionalField(XShortField("sflags", 0), _is_upd),
        ConditionalField(IntField("policy_id", 0), _is_upd),
        IPField("src", "0.0.0.0"),
        ShortField("sport", 0),
        IPField("dst", "0.0.0.0"),
        ShortField("dport", 0),
        ConditionalField(IPField("r_src", "0.0.0.0"), _is_upd),
        ConditionalField(ShortField("r_sport", 0), _is_upd),
        ConditionalField(IPField("r_dst", "0.0.0.0"), _is_upd),
        ConditionalField(ShortField("r_dport", 0), _is_upd),
        ConditionalField(IPField("nat_ip", "0.0.0.0"), _is_upd),
        ConditionalField(ShortField("nat_port", 0), _is_upd),
        ConditionalField(IntField("created_ms", 0), _is_upd),
        ConditionalField(PacketListField("tcp", [], FGCPSyncTcp, count_from=lambda p: 2),
                         lambda p: _is_upd(p) and p.rflags & 0x02),
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
    fields_desc: ClassVar[list[Field]] = [IntField("from_seq", 0), IntField("to_seq", 0)]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FGCPSync(Packet):
    """FGCP session-sync frame header + records/gaps + HMAC trailer."""

    name = "FGCP session sync"
    fields_desc: ClassVar[list[Field]] = [
        XShortField("magic", SYNC_MAGIC),
        ByteField("version", SYNC_VERSION),
        ByteEnumField("type", T_DATA, TYPE_NAMES),
        FlagsField("flags", 0, 8, _FLAG_NAMES),
        ByteField("reserved", 0),
        ShortField("group_id", 0),
        StrFixedLenField("serial", b"", 16),
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
        ConditionalField(XStrFixedLenField("auth", b"\0" * AUTH_LEN, AUTH_LEN),
                         lambda p: p.flags & FLAG_AUTH),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        tail = AUTH_LEN if self.flags & FLAG_AUTH else 0
        if self.count is None:
            n = len(self.records) if self.type == T_DATA else (
                len(self.gaps) if self.type == T_NACK else 0)
            pkt = pkt[:40] + struct.pack("!H", n) + pkt[42:]
        if self.length is None:
            pkt = pkt[:42] + struct.pack("!H", len(pkt) - HEADER_LEN - tail) + pkt[44:]
        return pkt + pay

    def sign(self, key: bytes) -> bytes:
        """Bytes of this frame with the HMAC trailer computed for ``key``."""
        raw = bytes(self)
        body = raw[:len(raw) - AUTH_LEN] if self.flags & FLAG_AUTH else raw
        return body + hmac.digest(key, body, "sha256")

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def mysummary(self) -> str:
        return self.sprintf("FGCP-sync %type% stream=%stream% seq=%seq% ack=%ack% count=%count%")


bind_layers(Ether, FGCPSync, type=ETH_P_FGCP_SYNC)
