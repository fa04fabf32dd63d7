"""FGCP heartbeat frames (ethertype 0x8890): the strict raw-bytes codec (hot path).

``encode_heartbeat``/``decode_heartbeat`` build and check the frames the HA state machine
exchanges; the scapy layer is fgcp/hblayer.py, anti-replay fgcp/hbreplay.py, keys fgcp/hakeys.py.

Wire layout (little-endian, offsets after the Ethernet header, see docs/protocol.md)::

    0  magic u16 (0x4746, the bytes "FG")   2 mode u8   3 flags u8 (0x01 enc, 0x02 auth)
    4  group name 32s   36 unknown u16   38 group-id u16   40 12 unknown bytes
    52 heartbeat port 16s   68 config revision u16   70 config hash u16   72 serial 16s
    88 TLVs: type u16, length u16, value; type 0 ends the list
    end: 32-byte HMAC-SHA256 trailer when flag 0x02 is set

Authentication: key = HKDF-SHA256(password, salt=b"fgcp-lab heartbeat v1", info=group-id
u16 LE) (``fgcp.hakeys.derive_hb_key``); trailer = HMAC-SHA256(key, frame bytes from offset
0 up to the trailer).  Freshness (docs/protocol.md): every frame carries the sender's
random per-run epoch (TLV 0x8C) and a counter (TLV 0x84), and the challenges (0x8D) and
answers (0x8E) of fgcp.freshness; fgcp.hbreplay checks them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

from fgcp.freshness import Challenge
from fgcp.hakeys import MAC_LEN, derive_hb_key, mac, mac_ok

__all__ = [
    "AUTH_LEN",
    "ETH_P_FGCP_HB",
    "HB_MAGIC",
    "HB_UNIT_10MS",
    "HEADER_LEN",
    "TLV_CHALLENGE",
    "TLV_EPOCH",
    "TLV_HDR",
    "TLV_LENGTHS",
    "TLV_NAMES",
    "TLV_RESPONSE",
    "AuthFailure",
    "HeartbeatError",
    "HeartbeatInfo",
    "IfaceRecord",
    "MalformedHeartbeat",
    "WrongGroup",
    "decode_heartbeat",
    "decode_payload",
    "encode_heartbeat",
    "encode_payload",
    "pack_interfaces",
    "unpack_interfaces",
]

ETH_P_FGCP_HB = 0x8890
HB_MAGIC = 0x4746  # on the wire: 46 47 = "FG"
HEADER_LEN = 88
AUTH_LEN = MAC_LEN
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
TLV_SEQUENCE = 0x84  # u64 counter: 1, 2, ... within the sender's epoch
TLV_TIMERS = 0x85  # u8 hb-interval (bit 7 set: 10 ms units, else 100 ms), u8 hb-lost-threshold,
#                    u16 hello-holddown (s)
HB_UNIT_10MS = 0x80  # bit 7 of TLV_TIMERS' hb-interval byte: hb-interval-in-milliseconds 10ms
TLV_SYNC = 0x86  # u8 1 = bulk session sync complete (may take over), 0 = pending
TLV_FAILOVER = 0x87  # u8 1 = "execute ha failover set 1" active
TLV_MEMBERS = 0x88  # n x 16-byte serials of the live peers this member sees
TLV_RESETS = 0x89  # u16 HA uptime reset count
TLV_HOSTNAME = 0x8A  # ASCII hostname (no NUL), at most 35 bytes
TLV_PRIMARY = 0x8B  # 16-byte serial of the member this one considers primary
TLV_EPOCH = 0x8C  # u64 the sender's epoch: random, drawn at each fgcpd start
TLV_CHALLENGE = 0x8D  # n x (serial 16s, epoch u64, nonce u64): prove (serial, epoch) is live
TLV_RESPONSE = 0x8E  # n x (challenger serial 16s, nonce u64): answers to challenges

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
    TLV_EPOCH: "epoch",
    TLV_CHALLENGE: "challenge",
    TLV_RESPONSE: "response",
}

_HDR = struct.Struct("<HBB32sHH12s16sHH16s")
TLV_HDR = struct.Struct("<HH")  # TLV type u16, length u16
_IFREC = struct.Struct("<16s6sB")
MAX_INTERFACES = 512
MAX_MEMBERS = 16
_CHAL = struct.Struct("<16sQQ")
_RESP = struct.Struct("<16sQ")
MAX_CHALLENGES = 16  # entries of TLV 0x8D / 0x8E (the cluster needs at most 3 x 4)


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
    hb_unit_ms: int = 100  # 100 or 10 (hb-interval-in-milliseconds)
    hb_lost_threshold: int = 6
    hello_holddown: int = 20
    sync_complete: bool = True
    failover_set: bool = False
    members: tuple[str, ...] = ()
    uptime_resets: int = 0
    hostname: str = ""
    primary: str = ""
    epoch: int = 0
    challenges: tuple[Challenge, ...] = ()
    responses: tuple[tuple[str, int], ...] = ()  # (challenger serial, nonce)
    authenticated: bool = False  # set by decode_heartbeat; ignored by the encoder


# --------------------------------------------------------------------------- codec helpers


def _fixed_ascii(text: str, size: int, what: str) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{what} {text!r} is longer than {size} bytes")
    return raw.ljust(size, b"\0")


def _hb_byte(info: HeartbeatInfo) -> int:
    """TLV_TIMERS' first byte: hb-interval, bit 7 set for 10 ms units."""
    if info.hb_unit_ms not in (10, 100) or not 0 <= info.hb_interval < HB_UNIT_10MS:
        raise ValueError(f"hb-interval {info.hb_interval} x {info.hb_unit_ms} ms cannot be sent")
    return info.hb_interval | (HB_UNIT_10MS if info.hb_unit_ms == 10 else 0)


def _tlv(tlv_type: int, value: bytes) -> bytes:
    return TLV_HDR.pack(tlv_type, len(value)) + value


def pack_interfaces(records: tuple[IfaceRecord, ...]) -> bytes:
    """Value of the interface inventory TLV: u16 count + zlib stream of 23-byte records."""
    raw = b"".join(
        _IFREC.pack(
            _fixed_ascii(r.name, 16, "interface name"),
            bytes(r.mac).ljust(6, b"\0")[:6],
            r.flags & 0xFF,
        )
        for r in records
    )
    return struct.pack("<H", len(records)) + zlib.compress(raw, 6)


def unpack_interfaces(value: bytes) -> tuple[IfaceRecord, ...]:
    """Records of an interface inventory TLV value; raises MalformedHeartbeat."""
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
        tlvs.append(_tlv(TLV_INTERFACES, pack_interfaces(info.interfaces)))
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
            struct.pack("<BBH", _hb_byte(info), info.hb_lost_threshold, info.hello_holddown),
        ),
        _tlv(TLV_SYNC, bytes([1 if info.sync_complete else 0])),
        _tlv(TLV_FAILOVER, bytes([1 if info.failover_set else 0])),
        _tlv(TLV_MEMBERS, b"".join(_fixed_ascii(s, 16, "serial") for s in info.members)),
        _tlv(TLV_RESETS, struct.pack("<H", info.uptime_resets & 0xFFFF)),
        _tlv(TLV_HOSTNAME, info.hostname.encode("ascii")[:35]),
        _tlv(TLV_PRIMARY, _fixed_ascii(info.primary, 16, "primary serial")),
        _tlv(TLV_EPOCH, struct.pack("<Q", info.epoch)),
    ]
    if len(info.challenges) > MAX_CHALLENGES or len(info.responses) > MAX_CHALLENGES:
        raise ValueError(f"at most {MAX_CHALLENGES} challenges and responses fit in a heartbeat")
    if info.challenges:
        tlvs.append(_tlv(TLV_CHALLENGE, b"".join(
            _CHAL.pack(_fixed_ascii(c.serial, 16, "serial"), c.epoch, c.nonce)
            for c in info.challenges)))
    if info.responses:
        tlvs.append(_tlv(TLV_RESPONSE, b"".join(
            _RESP.pack(_fixed_ascii(s, 16, "serial"), n) for s, n in info.responses)))
    tlvs.append(_tlv(TLV_END, b""))
    body = hdr + b"".join(tlvs)
    if password:
        body += mac(derive_hb_key(password, info.group_id), body)
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

# value length of the fixed-size TLVs (the others are variable)
TLV_LENGTHS = {
    TLV_END: 0,
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
    TLV_EPOCH: 8,
}
_REQUIRED_TLVS = (TLV_PRIORITY, TLV_UPTIME, TLV_STATE, TLV_SEQUENCE, TLV_EPOCH)


def _entries(value: bytes, rec: struct.Struct, what: str) -> list[tuple[Any, ...]]:
    if len(value) % rec.size or len(value) // rec.size > MAX_CHALLENGES:
        raise MalformedHeartbeat(f"{what} TLV has bad length {len(value)}")
    return [rec.unpack_from(value, i) for i in range(0, len(value), rec.size)]


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
    if len(payload) < HEADER_LEN + TLV_HDR.size:
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
        if end < HEADER_LEN + TLV_HDR.size:
            raise MalformedHeartbeat("authenticated heartbeat too short for its trailer")
    vals: dict[int, bytes] = {}
    off = HEADER_LEN
    terminated = False
    while off < end:
        if off + TLV_HDR.size > end:
            raise MalformedHeartbeat(f"truncated TLV header at offset {off}")
        ttype, tlen = TLV_HDR.unpack_from(payload, off)
        off += TLV_HDR.size
        if off + tlen > end:
            raise MalformedHeartbeat(
                f"TLV 0x{ttype:02x} length {tlen} runs past the end at offset {off}"
            )
        value = payload[off : off + tlen]
        off += tlen
        if ttype == TLV_END:
            terminated = True
            break
        want = TLV_LENGTHS.get(ttype)
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
    kw: dict[str, Any] = {}
    if TLV_INTERFACES in vals:
        kw["interfaces"] = unpack_interfaces(vals[TLV_INTERFACES])
    if TLV_CHECKSUMS in vals:
        c = vals[TLV_CHECKSUMS]
        kw["checksums"] = (c[0:16], c[16:32], c[32:48])
    if TLV_MONITOR in vals:
        kw["failed_monitors"], kw["monitored"] = struct.unpack("<HH", vals[TLV_MONITOR])
    if TLV_TIMERS in vals:
        hb, kw["hb_lost_threshold"], kw["hello_holddown"] = struct.unpack(
            "<BBH", vals[TLV_TIMERS]
        )
        kw["hb_interval"] = hb & ~HB_UNIT_10MS
        kw["hb_unit_ms"] = 10 if hb & HB_UNIT_10MS else 100
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
    if TLV_CHALLENGE in vals:
        kw["challenges"] = tuple(Challenge(_ascii(s, "challenge serial"), e, n)
                                 for s, e, n in _entries(vals[TLV_CHALLENGE], _CHAL, "challenge"))
    if TLV_RESPONSE in vals:
        kw["responses"] = tuple((_ascii(s, "response serial"), n)
                                for s, n in _entries(vals[TLV_RESPONSE], _RESP, "response"))
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
        if not mac_ok(derive_hb_key(password, gid), payload[:end], payload[end:]):
            raise AuthFailure("HMAC-SHA256 trailer does not match")
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
        epoch=struct.unpack("<Q", vals[TLV_EPOCH])[0],
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
