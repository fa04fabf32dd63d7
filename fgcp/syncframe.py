"""FGCP session-sync frames (ethertype 0x8892): the raw-bytes frame codec (hot path).

``encode_frame``/``FrameBuilder``/``decode_frame`` are what the sync engine uses (precompiled
``struct``, many records per frame); the scapy layers are in fgcp/synclayer.py.

Wire layout (big-endian, offsets after the Ethernet header; docs/protocol.md "Session sync")::

    0  magic u16 0x4653 ("FS")  2 version u8 (2)  3 type u8  4 flags u8  5 reserved u8
    6  group-id u16   8 sender serial 16s   24 epoch u64 (the sender's run)
    32 counter u64 (per sender epoch, +1 every frame)   40 stream id u32   44 seq u32
    48 ack u32   52 frame time u32 (sender clock, ms)   56 count u16   58 payload length u16
    60 payload: DATA records | NACK ranges (from u32, to u32) | HELLO, BULK_REQ nonce u64,
       echo u64 | BULK_BEGIN u32 total, echo u64 | BULK_END u32 total
    end: 32-byte HMAC-SHA256 trailer when flag 0x02 is set

Freshness (fgcp/sync/fresh.py): epoch and counter are in the authenticated part; a HELLO's
nonce is a challenge the peer echoes (HELLO echo, BULK_BEGIN echo).

Authentication: key = HKDF-SHA256(password, salt=b"fgcp-lab session-sync v1",
info=group-id u16 big-endian) (``fgcp.hakeys.derive_sync_key``: the heartbeat scheme with
its own salt, so a heartbeat MAC never validates a sync frame); trailer = HMAC-SHA256(key,
bytes from offset 0 up to the trailer).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from fgcp.freshness import M64
from fgcp.hakeys import MAC_LEN, mac, mac_ok
from fgcp.syncrecord import (
    RecordOp,
    SyncRecordError,
    decode_records,
)
from fgcp.tcptrack import M32

__all__ = [
    "AUTH_LEN",
    "ETH_P_FGCP_SYNC",
    "FLAG_AUTH",
    "FLAG_BULK",
    "FLAG_RESEND",
    "HEADER_LEN",
    "MAX_FRAME",
    "MAX_RANGES",
    "MAX_RECORDS_BYTES",
    "RANGE",
    "SYNC_MAGIC",
    "SYNC_VERSION",
    "TYPE_NAMES",
    "T_ACK",
    "T_ALIVE",
    "T_BULK_BEGIN",
    "T_BULK_END",
    "T_BULK_REQ",
    "T_DATA",
    "T_HELLO",
    "T_NACK",
    "FrameBuilder",
    "MalformedSyncFrame",
    "SyncAuthError",
    "SyncFrame",
    "decode_frame",
    "encode_bulk_begin",
    "encode_challenge",
    "encode_frame",
    "encode_nack_ranges",
    "encode_total",
]

ETH_P_FGCP_SYNC = 0x8892
SYNC_MAGIC = 0x4653  # "FS"
SYNC_VERSION = 2  # 2: epoch, counter, challenge nonces (issue 13); 1 refused
MAX_FRAME = 1500  # Ethernet payload (MTU): header + records + trailer fit in it
AUTH_LEN = MAC_LEN

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

_HDR = struct.Struct("!HBBBBH16sQQIIIIHH")
HEADER_LEN = _HDR.size  # 60
RANGE = struct.Struct("!II")  # NACK gap: from u32, to u32 (inclusive)
_U32 = struct.Struct("!I")
_CHALLENGE = struct.Struct("!QQ")  # HELLO / BULK_REQ: nonce u64, echo u64
_BULK_BEGIN = struct.Struct("!IQ")  # total u32, echo u64
MAX_RECORDS_BYTES = MAX_FRAME - HEADER_LEN - AUTH_LEN  # room for records, auth or not
MAX_RANGES = MAX_RECORDS_BYTES // RANGE.size


class MalformedSyncFrame(ValueError):
    """The bytes are not a well-formed session-sync frame (the reason says why)."""

    reason = "malformed"


class SyncAuthError(MalformedSyncFrame):
    """Missing or wrong HMAC trailer (wrong password, altered or spoofed frame)."""

    reason = "auth"


@dataclass(slots=True)
class SyncFrame:
    """A decoded frame. ``records`` for DATA, ``ranges`` for NACK, ``total`` for BULK_*."""

    type: int
    flags: int
    group_id: int
    serial: str
    epoch: int
    counter: int
    stream: int
    seq: int
    ack: int
    time_ms: int
    count: int
    records: list[RecordOp] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    total: int = 0
    nonce: int = 0  # HELLO / BULK_REQ: the sender's challenge (0 = none)
    echo: int = 0  # HELLO / BULK_REQ / BULK_BEGIN: a nonce of the peer, echoed (0 = none)


def _serial(serial: str) -> bytes:
    raw = serial.encode("ascii")
    if len(raw) > 16:
        raise ValueError(f"serial {serial!r} is longer than 16 bytes")
    return raw


def encode_frame(ftype: int, group_id: int, serial: str, stream: int, seq: int, ack: int,
                 time_ms: int, key: bytes | None, *, epoch: int, counter: int,
                 flags: int = 0, count: int = 0, payload: bytes = b"") -> bytes:
    """Bytes after the Ethernet header of one frame (HMAC trailer added when ``key``).

    ``epoch`` is the sender's run, ``counter`` its frame counter in that run (both non-zero).
    """
    if key is not None:
        flags |= FLAG_AUTH
    else:
        flags &= ~FLAG_AUTH
    hdr = _HDR.pack(SYNC_MAGIC, SYNC_VERSION, ftype, flags, 0, group_id & 0xFFFF,
                    _serial(serial), epoch & M64, counter & M64, stream & M32, seq & M32,
                    ack & M32, time_ms & M32, count, len(payload))
    data = hdr + payload
    if key is not None:
        data += mac(key, data)
    return data


def encode_nack_ranges(ranges: list[tuple[int, int]]) -> bytes:
    """NACK payload: (from, to) inclusive sequence ranges (at most MAX_RANGES)."""
    return b"".join(RANGE.pack(a, b) for a, b in ranges[:MAX_RANGES])


def encode_total(total: int) -> bytes:
    """BULK_END payload: u32 (records the bulk sent)."""
    return _U32.pack(total & M32)


def encode_challenge(nonce: int, echo: int = 0) -> bytes:
    """HELLO / BULK_REQ payload: this member's challenge ``nonce``, the peer's nonce ``echo``."""
    return _CHALLENGE.pack(nonce & M64, echo & M64)


def encode_bulk_begin(total: int, echo: int = 0) -> bytes:
    """BULK_BEGIN payload: u32 sessions in the bulk, u64 the secondary's nonce echoed."""
    return _BULK_BEGIN.pack(total & M32, echo & M64)


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
    (magic, version, ftype, flags, _res, group_id, serial, epoch, counter, stream, seq, ack,
     time_ms, count, plen) = _HDR.unpack_from(data, 0)
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
            if not mac_ok(key, bytes(data[:end]), bytes(data[end:end + AUTH_LEN])):
                raise SyncAuthError("bad HMAC trailer")
        elif auth:
            raise SyncAuthError("authenticated frame but no HA password configured")
    try:
        sn = bytes(serial).rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise MalformedSyncFrame("sender serial is not ASCII") from None
    if not epoch or not counter:
        raise MalformedSyncFrame("epoch and counter must be non-zero")
    fr = SyncFrame(ftype, flags, group_id, sn, epoch, counter, stream, seq, ack, time_ms, count)
    if ftype == T_DATA:
        try:
            fr.records = decode_records(data, HEADER_LEN, end, count, time_ms, now)
        except SyncRecordError as e:
            raise MalformedSyncFrame(str(e)) from None
    elif ftype == T_NACK:
        if plen != count * RANGE.size:
            raise MalformedSyncFrame(f"NACK: {count} ranges but {plen} payload bytes")
        ranges = []
        for i in range(count):
            a, b = RANGE.unpack_from(data, HEADER_LEN + i * RANGE.size)
            if b < a:
                raise MalformedSyncFrame(f"NACK range {a}-{b} is reversed")
            ranges.append((a, b))
        fr.ranges = ranges
    elif ftype == T_BULK_BEGIN:
        if plen != _BULK_BEGIN.size or count != 0:
            raise MalformedSyncFrame("BULK_BEGIN: payload must be total u32, echo u64")
        fr.total, fr.echo = _BULK_BEGIN.unpack_from(data, HEADER_LEN)
    elif ftype == T_BULK_END:
        if plen != 4 or count != 0:
            raise MalformedSyncFrame("BULK_END: payload must be one u32")
        fr.total = _U32.unpack_from(data, HEADER_LEN)[0]
    elif ftype in (T_HELLO, T_BULK_REQ):
        if plen != _CHALLENGE.size or count != 0:
            raise MalformedSyncFrame(f"{TYPE_NAMES[ftype]}: payload must be nonce u64, echo u64")
        fr.nonce, fr.echo = _CHALLENGE.unpack_from(data, HEADER_LEN)
    elif plen or count:
        raise MalformedSyncFrame(f"{TYPE_NAMES[ftype]} carries no payload")
    return fr
