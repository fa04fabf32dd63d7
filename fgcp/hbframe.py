"""FGCP heartbeat frames (ethertype 0x8890): the scapy layer and a strict codec.

The scapy layer ``FGCPHeartbeat`` builds/dissects/prints frames; ``encode_heartbeat``
and ``decode_heartbeat`` are the fast, strict, authenticated codec the HA state machine uses.

Wire layout (little-endian, offsets after the Ethernet header, see docs/protocol.md)::

    0  magic u16 (0x4746, the bytes "FG")   2 mode u8   3 flags u8 (0x01 enc, 0x02 auth)
    4  group name 32s   36 unknown u16   38 group-id u16   40 12 unknown bytes
    52 heartbeat port 16s   68 config revision u16   70 config hash u16   72 serial 16s
    88 TLVs: type u16, length u16, value; type 0 ends the list
    end: 32-byte HMAC-SHA256 trailer when flag 0x02 is set

Authentication uses the ``cryptography`` package: key = HKDF-SHA256(password,
salt=b"fgcp-lab heartbeat v1", info=group-id u16 LE); trailer = HMAC-SHA256(key,
frame bytes from offset 0 up to the trailer).  Anti-replay: every frame carries a
u64 sequence counter (TLV 0x84) that starts at the sender's boot time in ns and
grows by one per frame; ``ReplayGuard`` rejects a counter <= the last one accepted
from the same (serial, heartbeat port).  A restarted peer starts at its new boot
time, which is larger than any counter it sent before (unless its clock stepped
back; ``ReplayGuard.forget`` re-admits such a peer).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from scapy.fields import (
    ByteEnumField,
    ByteField,
    ConditionalField,
    Field,
    FlagsField,
    LELongField,
    LEShortEnumField,
    LEShortField,
    PacketListField,
    StrFixedLenField,
    StrLenField,
    XLEShortField,
    XStrFixedLenField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw, bind_layers

__all__ = [
    "ETH_P_FGCP_HB",
    "FGCPTLV",
    "HB_MAGIC",
    "AuthFailure",
    "FGCPHeartbeat",
    "FGCPTLVChecksums",
    "FGCPTLVEnd",
    "FGCPTLVFailover",
    "FGCPTLVHostname",
    "FGCPTLVInterfaces",
    "FGCPTLVMembers",
    "FGCPTLVMonitor",
    "FGCPTLVOverride",
    "FGCPTLVPrimary",
    "FGCPTLVPriority",
    "FGCPTLVResets",
    "FGCPTLVRole",
    "FGCPTLVSequence",
    "FGCPTLVState",
    "FGCPTLVSync",
    "FGCPTLVTimers",
    "FGCPTLVUptime",
    "FGCPTLVVcluster",
    "HeartbeatError",
    "HeartbeatInfo",
    "IfaceRecord",
    "MalformedHeartbeat",
    "ReplayGuard",
    "ReplayedHeartbeat",
    "SequenceCounter",
    "WrongGroup",
    "decode_heartbeat",
    "decode_payload",
    "derive_key",
    "encode_heartbeat",
    "encode_payload",
]

ETH_P_FGCP_HB = 0x8890
HB_MAGIC = 0x4746  # on the wire: 46 47 = "FG"
HEADER_LEN = 88
AUTH_LEN = 32
FLAG_ENCRYPTED = 0x01
FLAG_AUTH = 0x02
MODE_AA = 1
MODE_AP = 2
BROADCAST = b"\xff" * 6

# HA states carried in TLV 0x81 (numbers as in FortiOS "diagnose sys ha dump-by": 2(work))
STATE_HELLO = 1
STATE_WORK = 2
STATE_STANDBY = 3
STATE_NAMES = {STATE_HELLO: "hello", STATE_WORK: "work", STATE_STANDBY: "standby"}

ROLE_NONE = 0
ROLE_PRIMARY = 1
ROLE_SECONDARY = 2
ROLE_NAMES = {ROLE_NONE: "none", ROLE_PRIMARY: "primary", ROLE_SECONDARY: "secondary"}

# interface inventory record flags (TLV 0x2A)
IF_ADMIN_UP = 0x01
IF_OPER_UP = 0x02
IF_MONITORED = 0x04
IF_HA_ELIGIBLE = 0x08

# TLV types: FortiOS ones (as decoded by Wireshark >= 4.2) and emulator ones (>= 0x80)
TLV_END = 0x00
TLV_VCLUSTER = 0x0B
TLV_PRIORITY = 0x0C
TLV_OVERRIDE = 0x0D
TLV_INTERFACES = 0x2A
TLV_CHECKSUMS = 0x3C
TLV_UPTIME = 0x80  # u64 HA uptime in ms (age since the last HA uptime reset)
TLV_STATE = 0x81  # u8 HA state: 1 hello, 2 work, 3 standby
TLV_ROLE = 0x82  # u8 role claimed: 0 none, 1 primary, 2 secondary
TLV_MONITOR = 0x83  # u16 failed monitored ports, u16 monitored ports
TLV_SEQUENCE = 0x84  # u64 anti-replay counter
TLV_TIMERS = 0x85  # u8 hb-interval (100 ms), u8 hb-lost-threshold, u16 hello-holddown (s)
TLV_SYNC = 0x86  # u8 1 = bulk session sync complete (may take over), 0 = pending
TLV_FAILOVER = 0x87  # u8 1 = "execute ha failover set 1" active
TLV_MEMBERS = 0x88  # n x 16-byte serials of the live peers this member sees
TLV_RESETS = 0x89  # u16 HA uptime reset count
TLV_HOSTNAME = 0x8A  # ASCII hostname (no NUL), at most 35 bytes
TLV_PRIMARY = 0x8B  # 16-byte serial of the member this one considers primary

TLV_NAMES = {
    TLV_END: "end",
    TLV_VCLUSTER: "vcluster-id",
    TLV_PRIORITY: "priority",
    TLV_OVERRIDE: "override",
    TLV_INTERFACES: "interfaces",
    TLV_CHECKSUMS: "checksums",
    TLV_UPTIME: "ha-uptime-ms",
    TLV_STATE: "ha-state",
    TLV_ROLE: "role",
    TLV_MONITOR: "monitor",
    TLV_SEQUENCE: "sequence",
    TLV_TIMERS: "timers",
    TLV_SYNC: "sync-complete",
    TLV_FAILOVER: "failover-set",
    TLV_MEMBERS: "members",
    TLV_RESETS: "uptime-resets",
    TLV_HOSTNAME: "hostname",
    TLV_PRIMARY: "primary",
}

_HDR = struct.Struct("<HBB32sHH12s16sHH16s")
_TL = struct.Struct("<HH")
_IFREC = struct.Struct("<16s6sB")
MAX_INTERFACES = 512
MAX_MEMBERS = 16
_HKDF_SALT = b"fgcp-lab heartbeat v1"


# --------------------------------------------------------------------------- errors


class HeartbeatError(ValueError):
    """Base of every reason to drop a received heartbeat."""

    reason = "error"


class MalformedHeartbeat(HeartbeatError):
    """The bytes are not a well-formed heartbeat (truncated, bad magic, bad TLV...)."""

    reason = "malformed"


class AuthFailure(HeartbeatError):
    """Missing or wrong HMAC trailer (wrong password, spoofed or altered frame)."""

    reason = "auth"


class WrongGroup(HeartbeatError):
    """The frame belongs to another HA group (group-id or group name differ)."""

    reason = "wrong-group"


class ReplayedHeartbeat(HeartbeatError):
    """The sequence counter is not newer than the last one accepted from that sender."""

    reason = "replay"


# --------------------------------------------------------------------------- plain data


@dataclass(frozen=True)
class IfaceRecord:
    """One interface inventory record: name, MAC and IF_* flags."""

    name: str
    mac: bytes
    flags: int = 0


@dataclass(frozen=True)
class HeartbeatInfo:
    """Everything one heartbeat says about its sender (what the HA state machine consumes)."""

    serial: str
    group_name: str = ""
    group_id: int = 0
    mode: int = MODE_AP
    port: str = ""  # sender's heartbeat interface
    config_revision: int = 0
    config_hash: int = 0
    vcluster_id: int = 1
    priority: int = 128
    override: bool = False
    interfaces: tuple[IfaceRecord, ...] = ()
    checksums: tuple[bytes, bytes, bytes] | None = None
    uptime_ms: int = 0
    state: int = STATE_HELLO
    role: int = ROLE_NONE
    failed_monitors: int = 0
    monitored: int = 0
    seq: int = 0
    hb_interval: int = 2
    hb_lost_threshold: int = 6
    hello_holddown: int = 20
    sync_complete: bool = True
    failover_set: bool = False
    members: tuple[str, ...] = ()
    uptime_resets: int = 0
    hostname: str = ""
    primary: str = ""
    authenticated: bool = False  # set by decode_heartbeat; ignored by the encoder


# --------------------------------------------------------------------------- codec helpers


def derive_key(password: str, group_id: int) -> bytes:
    """The 32-byte HMAC key for ``password`` in HA group ``group_id`` (HKDF-SHA256)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_HKDF_SALT,
        info=struct.pack("<H", group_id & 0xFFFF),
    )
    return hkdf.derive(password.encode("utf-8"))


def _mac(key: bytes, data: bytes) -> bytes:
    h = crypto_hmac.HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def _fixed_ascii(text: str, size: int, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r} is longer than {size} bytes")
    return raw.ljust(size, b"\0")


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return _TL.pack(tlv_type, len(value)) + value


def _pack_interfaces(records: tuple[IfaceRecord, ...]) -> bytes:
    raw = b"".join(
        _IFREC.pack(
            _fixed_ascii(r.name, 16, "interface name"),
            bytes(r.mac).ljust(6, b"\0")[:6],
            r.flags & 0xFF,
        )
        for r in records
    )
    return struct.pack("<H", len(records)) + zlib.compress(raw, 6)


def _unpack_interfaces(value: bytes) -> tuple[IfaceRecord, ...]:
    if len(value) < 2:
        raise MalformedHeartbeat("interface TLV shorter than its count")
    (count,) = struct.unpack_from("<H", value)
    if count > MAX_INTERFACES:
        raise MalformedHeartbeat(f"interface TLV announces {count} records (max {MAX_INTERFACES})")
    want = count * _IFREC.size
    try:
        dec = zlib.decompressobj()
        raw = dec.decompress(value[2:], want + 1)
        if not dec.eof:
            raise MalformedHeartbeat("interface TLV zlib stream is truncated or too long")
    except zlib.error as exc:
        raise MalformedHeartbeat(f"interface TLV zlib stream: {exc}") from None
    if len(raw) != want:
        raise MalformedHeartbeat(f"interface TLV holds {len(raw)} bytes, expected {want}")
    out = []
    for i in range(count):
        name, mac, flags = _IFREC.unpack_from(raw, i * _IFREC.size)
        out.append(IfaceRecord(_ascii(name, "interface name"), mac, flags))
    return tuple(out)


def _ascii(raw: bytes, what: str) -> str:
    text = raw.split(b"\0", 1)[0]
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedHeartbeat(f"{what} is not ASCII") from None


# --------------------------------------------------------------------------- encoder


def encode_payload(info: HeartbeatInfo, password: str = "") -> bytes:
    """The heartbeat bytes after the Ethernet header (trailer included when ``password``)."""
    flags = FLAG_AUTH if password else 0
    hdr = _HDR.pack(
        HB_MAGIC,
        info.mode,
        flags,
        _fixed_ascii(info.group_name, 32, "group name"),
        0,
        info.group_id & 0xFFFF,
        b"\0" * 12,
        _fixed_ascii(info.port, 16, "heartbeat port"),
        info.config_revision & 0xFFFF,
        info.config_hash & 0xFFFF,
        _fixed_ascii(info.serial, 16, "serial"),
    )
    tlvs = [
        _tlv(TLV_VCLUSTER, bytes([info.vcluster_id & 0xFF])),
        _tlv(TLV_PRIORITY, bytes([info.priority & 0xFF])),
        _tlv(TLV_OVERRIDE, bytes([1 if info.override else 0])),
    ]
    if info.interfaces:
        tlvs.append(_tlv(TLV_INTERFACES, _pack_interfaces(info.interfaces)))
    if info.checksums is not None:
        if len(info.checksums) != 3 or any(len(c) != 16 for c in info.checksums):
            raise ValueError("checksums must be 3 x 16 bytes")
        tlvs.append(_tlv(TLV_CHECKSUMS, b"".join(info.checksums)))
    if len(info.members) > MAX_MEMBERS:
        raise ValueError(f"at most {MAX_MEMBERS} member serials fit in a heartbeat")
    tlvs += [
        _tlv(TLV_UPTIME, struct.pack("<Q", max(0, info.uptime_ms))),
        _tlv(TLV_STATE, bytes([info.state & 0xFF])),
        _tlv(TLV_ROLE, bytes([info.role & 0xFF])),
        _tlv(TLV_MONITOR, struct.pack("<HH", info.failed_monitors, info.monitored)),
        _tlv(TLV_SEQUENCE, struct.pack("<Q", info.seq)),
        _tlv(
            TLV_TIMERS,
            struct.pack("<BBH", info.hb_interval, info.hb_lost_threshold, info.hello_holddown),
        ),
        _tlv(TLV_SYNC, bytes([1 if info.sync_complete else 0])),
        _tlv(TLV_FAILOVER, bytes([1 if info.failover_set else 0])),
        _tlv(TLV_MEMBERS, b"".join(_fixed_ascii(s, 16, "serial") for s in info.members)),
        _tlv(TLV_RESETS, struct.pack("<H", info.uptime_resets & 0xFFFF)),
        _tlv(TLV_HOSTNAME, info.hostname.encode("ascii")[:35]),
        _tlv(TLV_PRIMARY, _fixed_ascii(info.primary, 16, "primary serial")),
        _tlv(TLV_END, b""),
    ]
    body = hdr + b"".join(tlvs)
    if password:
        body += _mac(derive_key(password, info.group_id), body)
    return body


def encode_heartbeat(
    info: HeartbeatInfo,
    password: str = "",
    src: bytes = b"\x00\x09\x0f\x09\x00\x00",
    dst: bytes = BROADCAST,
) -> bytes:
    """A whole Ethernet frame (dst, src, 0x8890, heartbeat) for ``info``."""
    return (
        bytes(dst) + bytes(src) + struct.pack("!H", ETH_P_FGCP_HB) + encode_payload(info, password)
    )


# --------------------------------------------------------------------------- decoder

_FIXED_TLV_LEN = {
    TLV_VCLUSTER: 1,
    TLV_PRIORITY: 1,
    TLV_OVERRIDE: 1,
    TLV_CHECKSUMS: 48,
    TLV_UPTIME: 8,
    TLV_STATE: 1,
    TLV_ROLE: 1,
    TLV_MONITOR: 4,
    TLV_SEQUENCE: 8,
    TLV_TIMERS: 4,
    TLV_SYNC: 1,
    TLV_FAILOVER: 1,
    TLV_RESETS: 2,
    TLV_PRIMARY: 16,
}
_REQUIRED_TLVS = (TLV_PRIORITY, TLV_UPTIME, TLV_STATE, TLV_SEQUENCE)


def decode_payload(
    payload: bytes,
    password: str = "",
    group_id: int | None = None,
    group_name: str | None = None,
) -> HeartbeatInfo:
    """Parse and check the bytes after the Ethernet header; raise a ``HeartbeatError``.

    ``group_id``/``group_name`` None skip that check.  With a ``password`` the frame
    must carry a valid trailer; without one, an authenticated frame is refused too
    (the passwords differ).
    """
    payload = bytes(payload)
    if len(payload) < HEADER_LEN + _TL.size:
        raise MalformedHeartbeat(f"heartbeat of {len(payload)} bytes is shorter than the header")
    (magic, mode, flags, gname, _unk, gid, _unk12, port, rev, chash, serial) = _HDR.unpack_from(
        payload
    )
    if magic != HB_MAGIC:
        raise MalformedHeartbeat(f"bad magic 0x{magic:04x}")
    if mode not in (MODE_AA, MODE_AP):
        raise MalformedHeartbeat(f"bad mode {mode}")
    if flags & FLAG_ENCRYPTED:
        raise MalformedHeartbeat("encrypted heartbeats are not supported")
    end = len(payload)
    if flags & FLAG_AUTH:
        end -= AUTH_LEN
        if end < HEADER_LEN + _TL.size:
            raise MalformedHeartbeat("authenticated heartbeat too short for its trailer")
    vals: dict[int, bytes] = {}
    off = HEADER_LEN
    terminated = False
    while off < end:
        if off + _TL.size > end:
            raise MalformedHeartbeat(f"truncated TLV header at offset {off}")
        ttype, tlen = _TL.unpack_from(payload, off)
        off += _TL.size
        if off + tlen > end:
            raise MalformedHeartbeat(
                f"TLV 0x{ttype:02x} length {tlen} runs past the end at offset {off}"
            )
        value = payload[off : off + tlen]
        off += tlen
        if ttype == TLV_END:
            terminated = True
            break
        want = _FIXED_TLV_LEN.get(ttype)
        if want is not None and tlen != want:
            raise MalformedHeartbeat(f"TLV 0x{ttype:02x} has length {tlen}, expected {want}")
        if ttype in vals:
            raise MalformedHeartbeat(f"TLV 0x{ttype:02x} appears twice")
        vals[ttype] = value  # unknown types are kept and ignored
    if not terminated:
        raise MalformedHeartbeat("TLV list has no end TLV")
    if off != end:
        raise MalformedHeartbeat(f"{end - off} bytes after the end TLV")
    for t in _REQUIRED_TLVS:
        if t not in vals:
            raise MalformedHeartbeat(f"missing TLV 0x{t:02x} ({TLV_NAMES[t]})")

    serial_s = _ascii(serial, "serial")
    if not serial_s:
        raise MalformedHeartbeat("empty serial number")
    kw: dict = {}
    if TLV_INTERFACES in vals:
        kw["interfaces"] = _unpack_interfaces(vals[TLV_INTERFACES])
    if TLV_CHECKSUMS in vals:
        c = vals[TLV_CHECKSUMS]
        kw["checksums"] = (c[0:16], c[16:32], c[32:48])
    if TLV_MONITOR in vals:
        kw["failed_monitors"], kw["monitored"] = struct.unpack("<HH", vals[TLV_MONITOR])
    if TLV_TIMERS in vals:
        kw["hb_interval"], kw["hb_lost_threshold"], kw["hello_holddown"] = struct.unpack(
            "<BBH", vals[TLV_TIMERS]
        )
    if TLV_MEMBERS in vals:
        m = vals[TLV_MEMBERS]
        if len(m) % 16 or len(m) // 16 > MAX_MEMBERS:
            raise MalformedHeartbeat(f"member list TLV has bad length {len(m)}")
        kw["members"] = tuple(_ascii(m[i : i + 16], "member serial") for i in range(0, len(m), 16))
    if TLV_HOSTNAME in vals:
        if len(vals[TLV_HOSTNAME]) > 35:
            raise MalformedHeartbeat("hostname TLV longer than 35 bytes")
        kw["hostname"] = _ascii(vals[TLV_HOSTNAME], "hostname")
    if TLV_PRIMARY in vals:
        kw["primary"] = _ascii(vals[TLV_PRIMARY], "primary serial")
    for t, name in ((TLV_VCLUSTER, "vcluster_id"), (TLV_ROLE, "role")):
        if t in vals:
            kw[name] = vals[t][0]
    for t, name in (
        (TLV_OVERRIDE, "override"),
        (TLV_SYNC, "sync_complete"),
        (TLV_FAILOVER, "failover_set"),
    ):
        if t in vals:
            kw[name] = vals[t][0] != 0
    if TLV_RESETS in vals:
        (kw["uptime_resets"],) = struct.unpack("<H", vals[TLV_RESETS])
    state = vals[TLV_STATE][0]
    if state not in STATE_NAMES:
        raise MalformedHeartbeat(f"unknown HA state {state}")
    # structure first (MalformedHeartbeat), then membership and authenticity
    group = _ascii(gname, "group name")
    if group_id is not None and gid != group_id:
        raise WrongGroup(f"group-id {gid} is not {group_id}")
    if group_name is not None and group != group_name:
        raise WrongGroup(f"group name {group!r} is not {group_name!r}")
    if password:
        if not flags & FLAG_AUTH:
            raise AuthFailure("heartbeat is not authenticated but a password is set")
        h = crypto_hmac.HMAC(derive_key(password, gid), hashes.SHA256())
        h.update(payload[:end])
        try:
            h.verify(payload[end:])
        except InvalidSignature:
            raise AuthFailure("HMAC-SHA256 trailer does not match") from None
    elif flags & FLAG_AUTH:
        raise AuthFailure("heartbeat is authenticated but no password is set")

    return HeartbeatInfo(
        serial=serial_s,
        group_name=group,
        group_id=gid,
        mode=mode,
        port=_ascii(port, "heartbeat port"),
        config_revision=rev,
        config_hash=chash,
        priority=vals[TLV_PRIORITY][0],
        uptime_ms=struct.unpack("<Q", vals[TLV_UPTIME])[0],
        state=state,
        seq=struct.unpack("<Q", vals[TLV_SEQUENCE])[0],
        authenticated=bool(password),
        **kw,
    )


def decode_heartbeat(
    frame: bytes,
    password: str = "",
    group_id: int | None = None,
    group_name: str | None = None,
) -> HeartbeatInfo:
    """Parse a whole Ethernet frame; raise MalformedHeartbeat / AuthFailure / WrongGroup."""
    if len(frame) < 14:
        raise MalformedHeartbeat(f"frame of {len(frame)} bytes has no Ethernet header")
    etype = (frame[12] << 8) | frame[13]
    if etype != ETH_P_FGCP_HB:
        raise MalformedHeartbeat(f"ethertype 0x{etype:04x} is not 0x8890")
    return decode_payload(frame[14:], password, group_id, group_name)


# --------------------------------------------------------------------------- anti-replay


@dataclass
class SequenceCounter:
    """The sender side of anti-replay: starts at ``boot_ns`` (time.time_ns() at start)."""

    boot_ns: int
    sent: int = 0

    def next(self) -> int:
        self.sent += 1
        return (self.boot_ns + self.sent) & 0xFFFFFFFFFFFFFFFF


@dataclass
class ReplayGuard:
    """Receiver side: per (serial, heartbeat port) the last counter accepted.

    ``check`` raises ``ReplayedHeartbeat`` for a counter that is not newer; a
    guard keeps at most ``max_senders`` entries (the oldest are forgotten).
    """

    max_senders: int = 64
    last: dict[tuple[str, str], int] = field(default_factory=dict)

    def check(self, info: HeartbeatInfo) -> None:
        key = (info.serial, info.port)
        prev = self.last.get(key)
        if prev is not None and info.seq <= prev:
            raise ReplayedHeartbeat(
                f"counter {info.seq} from {info.serial}/{info.port} is not newer than {prev}"
            )
        self.last.pop(key, None)
        self.last[key] = info.seq
        while len(self.last) > self.max_senders:
            self.last.pop(next(iter(self.last)))

    def forget(self, serial: str) -> None:
        """Re-admit ``serial`` whatever its counter (e.g. after its clock stepped back)."""
        for key in [k for k in self.last if k[0] == serial]:
            del self.last[key]


# --------------------------------------------------------------------------- scapy layer


class FGCPTLV(Packet):
    """A heartbeat TLV of any type (the value kept as bytes); base of the typed TLVs."""

    name = "FGCP TLV"
    fields_desc: ClassVar[list[Field]] = [
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


class FGCPTLVEnd(FGCPTLV):
    name = "FGCP TLV end"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_END, TLV_NAMES),
        LEShortField("len", None),
    ]


def _byte_tlv(cls_name: str, tlv_type: int, field_name: str) -> type[FGCPTLV]:
    return type(
        cls_name,
        (FGCPTLV,),
        {
            "name": f"FGCP TLV {TLV_NAMES[tlv_type]}",
            "fields_desc": [
                LEShortEnumField("type", tlv_type, TLV_NAMES),
                LEShortField("len", None),
                ByteField(field_name, 0),
            ],
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
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_STATE, TLV_NAMES),
        LEShortField("len", None),
        ByteEnumField("state", STATE_HELLO, STATE_NAMES),
    ]


class FGCPTLVInterfaces(FGCPTLV):
    """Interface inventory: u16 count, then a zlib stream of 23-byte records."""

    name = "FGCP TLV interfaces"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_INTERFACES, TLV_NAMES),
        LEShortField("len", None),
        LEShortField("count", 0),
        StrLenField("zdata", b"", length_from=lambda p: max(0, (p.len or 0) - 2)),
    ]

    @classmethod
    def from_records(cls, records: tuple[IfaceRecord, ...]) -> FGCPTLVInterfaces:
        packed = _pack_interfaces(tuple(records))
        return cls(count=len(records), zdata=packed[2:])

    def records(self) -> tuple[IfaceRecord, ...]:
        """The decoded records; raises MalformedHeartbeat on a bad stream."""
        return _unpack_interfaces(struct.pack("<H", self.count) + bytes(self.zdata))


class FGCPTLVChecksums(FGCPTLV):
    name = "FGCP TLV checksums"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_CHECKSUMS, TLV_NAMES),
        LEShortField("len", None),
        XStrFixedLenField("global_sum", b"\0" * 16, 16),
        XStrFixedLenField("root_sum", b"\0" * 16, 16),
        XStrFixedLenField("all_sum", b"\0" * 16, 16),
    ]


class FGCPTLVUptime(FGCPTLV):
    name = "FGCP TLV ha-uptime-ms"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_UPTIME, TLV_NAMES),
        LEShortField("len", None),
        LELongField("uptime_ms", 0),
    ]


class FGCPTLVSequence(FGCPTLV):
    name = "FGCP TLV sequence"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_SEQUENCE, TLV_NAMES),
        LEShortField("len", None),
        LELongField("seq", 0),
    ]


class FGCPTLVMonitor(FGCPTLV):
    name = "FGCP TLV monitor"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_MONITOR, TLV_NAMES),
        LEShortField("len", None),
        LEShortField("failed", 0),
        LEShortField("monitored", 0),
    ]


class FGCPTLVTimers(FGCPTLV):
    name = "FGCP TLV timers"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_TIMERS, TLV_NAMES),
        LEShortField("len", None),
        ByteField("hb_interval", 2),
        ByteField("hb_lost_threshold", 6),
        LEShortField("hello_holddown", 20),
    ]


class FGCPTLVResets(FGCPTLV):
    name = "FGCP TLV uptime-resets"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_RESETS, TLV_NAMES),
        LEShortField("len", None),
        LEShortField("resets", 0),
    ]


class FGCPTLVHostname(FGCPTLV):
    name = "FGCP TLV hostname"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_HOSTNAME, TLV_NAMES),
        LEShortField("len", None),
        StrLenField("hostname", b"", length_from=lambda p: p.len if p.len is not None else 0),
    ]


class FGCPTLVPrimary(FGCPTLV):
    name = "FGCP TLV primary"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_PRIMARY, TLV_NAMES),
        LEShortField("len", None),
        StrFixedLenField("primary", b"", 16),
    ]


class FGCPTLVMembers(FGCPTLV):
    name = "FGCP TLV members"
    fields_desc: ClassVar[list[Field]] = [
        LEShortEnumField("type", TLV_MEMBERS, TLV_NAMES),
        LEShortField("len", None),
        StrLenField("serials", b"", length_from=lambda p: p.len if p.len is not None else 0),
    ]


# type -> (class, expected length or None when variable)
_TLV_CLASSES: dict[int, tuple[type[FGCPTLV], int | None]] = {
    TLV_END: (FGCPTLVEnd, 0),
    TLV_VCLUSTER: (FGCPTLVVcluster, 1),
    TLV_PRIORITY: (FGCPTLVPriority, 1),
    TLV_OVERRIDE: (FGCPTLVOverride, 1),
    TLV_INTERFACES: (FGCPTLVInterfaces, None),
    TLV_CHECKSUMS: (FGCPTLVChecksums, 48),
    TLV_UPTIME: (FGCPTLVUptime, 8),
    TLV_STATE: (FGCPTLVState, 1),
    TLV_ROLE: (FGCPTLVRole, 1),
    TLV_MONITOR: (FGCPTLVMonitor, 4),
    TLV_SEQUENCE: (FGCPTLVSequence, 8),
    TLV_TIMERS: (FGCPTLVTimers, 4),
    TLV_SYNC: (FGCPTLVSync, 1),
    TLV_FAILOVER: (FGCPTLVFailover, 1),
    TLV_MEMBERS: (FGCPTLVMembers, None),
    TLV_RESETS: (FGCPTLVResets, 2),
    TLV_HOSTNAME: (FGCPTLVHostname, None),
    TLV_PRIMARY: (FGCPTLVPrimary, 16),
}


def _next_tlv(pkt: Packet, lst: list, cur: Packet | None, remain: bytes) -> type[Packet] | None:
    """Choose the class of the next TLV from its type and declared length."""
    if not remain:
        return None
    if (cur is not None and isinstance(cur, FGCPTLVEnd)) or len(remain) < 4:
        return Raw  # bytes after the end TLV (or a truncated TLV header)
    ttype, tlen = _TL.unpack_from(remain)
    cls, want = _TLV_CLASSES.get(ttype, (FGCPTLV, None))
    if want is not None and tlen != want:
        return FGCPTLV  # honour the length whatever the type says
    if cls is FGCPTLVInterfaces and tlen < 2:
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
    fields_desc: ClassVar[list[Field]] = [
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
            lambda p: (p.flags or 0) & FLAG_AUTH,
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
