"""Session-sync record: exactly the state a new primary needs to continue one session.

Pure data, the raw-bytes record codec of the 0x8892 frames (hot path, precompiled
``struct``), and the converters from/to ``fgcp.session.Session``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from fgcp.session import Session
from fgcp.tcptrack import M32, TcpPeer

__all__ = [
    "EXT_IPS",
    "EXT_ZTNA",
    "INSPECTION_CODES",
    "INSPECTION_NAMES",
    "OP_ADD",
    "OP_DELETE",
    "OP_NAMES",
    "OP_UPDATE",
    "REC_DEL_FIELDS",
    "REC_DEL_LEN",
    "REC_FIXED_FIELDS",
    "REC_FIXED_LEN",
    "REC_HDR_FIELDS",
    "REC_HDR_LEN",
    "REC_TCP_FIELDS",
    "REC_TCP_LEN",
    "RF_INSPECT_SHIFT",
    "RF_NAT",
    "RF_TCP",
    "RecordOp",
    "SessionRecord",
    "SyncKey",
    "SyncRecordError",
    "TcpWindow",
    "apply_record",
    "decode_records",
    "encode_delete",
    "encode_record",
    "ms32",
    "record_from_session",
]

# record operations (first byte of every record)
OP_ADD = 1
OP_UPDATE = 2
OP_DELETE = 3
OP_NAMES = {OP_ADD: "ADD", OP_UPDATE: "UPDATE", OP_DELETE: "DELETE"}

# extension record types (type u16 of the typed TLVs at the end of a record)
EXT_IPS = 0x0100  # flow-based IPS state (ICCP decoder position, ...), owned by inspection/ips
EXT_ZTNA = 0x0200  # ZTNA access proxy state (verified trust, proxied connection), inspection/ztna

# inspection mode <-> 2-bit code carried in the record flags
INSPECTION_CODES = {"flow": 0, "proxy": 1, "ztna": 2, "none": 3}
INSPECTION_NAMES = {v: k for k, v in INSPECTION_CODES.items()}

# wire flags of a record (u8), not the Session.flags (those travel verbatim as u16)
RF_NAT = 0x01
RF_TCP = 0x02  # the 2 x 12-byte TCP window block follows the fixed part
RF_INSPECT_SHIFT = 2  # bits 2-3: inspection code

SyncKey = tuple[int, int, int, int, int]  # (proto, src_ip, sport, dst_ip, dport) of orig

# The record layout, defined once: the struct codec below and the scapy layer
# (fgcp/synclayer.py) are both built from these tables (field name, struct code).
# op u8, length u16 (bytes of the record body that follow)
REC_HDR_FIELDS = (("op", "B"), ("len", "H"))
# ADD/UPDATE fixed part: orig (src, sport, dst, dport), reply (r_*), session flags u16
# (Session.flags verbatim), created = sender clock in ms modulo 2**32 (age = frame time -
# created); then the TCP block when RF_TCP, the two interface names, the extension TLVs
REC_FIXED_FIELDS = (
    ("version", "Q"), ("proto", "B"), ("state", "B"), ("rflags", "B"), ("sflags", "H"),
    ("policy_id", "I"),
    ("src", "I"), ("sport", "H"), ("dst", "I"), ("dport", "H"),
    ("r_src", "I"), ("r_sport", "H"), ("r_dst", "I"), ("r_dport", "H"),
    ("nat_ip", "I"), ("nat_port", "H"), ("created_ms", "I"),
)  # fmt: skip
# DELETE body: these fields of the fixed part, in the same order (version, proto, orig tuple)
REC_DEL_FIELDS = ("version", "proto", "src", "sport", "dst", "dport")
# TCP block: this per direction (orig side, then reply side), the fields of TcpWindow
REC_TCP_FIELDS = (("seqlo", "I"), ("seqhi", "I"), ("max_win", "H"), ("wscale", "B"),
                  ("state", "B"))
_CODES = dict(REC_FIXED_FIELDS)


def _struct(codes: str) -> struct.Struct:
    return struct.Struct("!" + codes)


_REC_HDR = _struct("".join(c for _, c in REC_HDR_FIELDS))
_REC_FIXED = _struct("".join(c for _, c in REC_FIXED_FIELDS))
_REC_TCP = _struct("".join(c for _, c in REC_TCP_FIELDS) * 2)
_REC_DEL = _struct("".join(_CODES[n] for n in REC_DEL_FIELDS))
_EXT_HDR = struct.Struct("!HH")

REC_HDR_LEN = _REC_HDR.size  # 3
REC_FIXED_LEN = _REC_FIXED.size  # 51
REC_TCP_LEN = _REC_TCP.size  # 24
REC_DEL_LEN = _REC_DEL.size  # 21


def ms32(t: float) -> int:
    """Clock ``t`` (seconds) as the wire's u32 milliseconds (modulo 2**32)."""
    return int(t * 1000.0) & M32


class SyncRecordError(ValueError):
    """A record cannot be encoded (value out of range) or decoded (malformed bytes)."""


@dataclass(slots=True)
class TcpWindow:
    """One TCP direction's window edges (pf ``pf_state_peer``): what pickup needs."""

    seqlo: int = 0
    seqhi: int = 1
    max_win: int = 1
    wscale: int = 0
    state: int = 0


@dataclass(slots=True)
class SessionRecord:
    """The synced state of one session.

    ``created`` is in the local clock of whoever holds the record (the wire
    carries the sender's clock and the frame time, so the receiver rebuilds
    the age); ``version`` is the sender's update counter (pfsync-style stale
    rejection).  Neither takes part in equality: two records are equal when
    the session state they describe is.
    """

    proto: int
    orig: tuple[int, int, int, int]
    reply: tuple[int, int, int, int]
    state: int = 0
    policy_id: int = 0
    nat: bool = False
    nat_ip: int = 0
    nat_port: int = 0
    tcp: tuple[TcpWindow, TcpWindow] | None = None
    flags: int = 0  # Session.flags verbatim (SYNCED, CONNECTIONLESS, PROXY, ...)
    inspection: str = "flow"
    in_intf: str = ""
    out_intf: str = ""
    ext: list[tuple[int, bytes]] = field(default_factory=list)
    created: float = field(default=0.0, compare=False)
    version: int = field(default=0, compare=False)

    @property
    def key(self) -> SyncKey:
        o = self.orig
        return (self.proto, o[0], o[1], o[2], o[3])


class RecordOp(NamedTuple):
    """One decoded record: ``record`` is None for DELETE."""

    op: int
    key: SyncKey
    version: int
    record: SessionRecord | None


def _name(s: str) -> bytes:
    b = s.encode("ascii", "replace")
    if len(b) > 255:
        raise SyncRecordError(f"interface name too long: {s!r}")
    return bytes((len(b),)) + b


def encode_record(op: int, rec: SessionRecord) -> bytes:
    """Bytes of one ADD/UPDATE record (header included). Raises SyncRecordError."""
    if op not in (OP_ADD, OP_UPDATE):
        raise SyncRecordError(f"encode_record: op must be ADD or UPDATE, not {op}")
    code = INSPECTION_CODES.get(rec.inspection)
    if code is None:
        raise SyncRecordError(f"unknown inspection mode {rec.inspection!r}")
    rflags = (RF_NAT if rec.nat else 0) | (code << RF_INSPECT_SHIFT)
    o, r = rec.orig, rec.reply
    parts: list[bytes] = []
    try:
        if rec.tcp is not None:
            rflags |= RF_TCP
            a, b = rec.tcp
            tcp = _REC_TCP.pack(a.seqlo & M32, a.seqhi & M32, a.max_win, a.wscale, a.state,
                                b.seqlo & M32, b.seqhi & M32, b.max_win, b.wscale, b.state)
        else:
            tcp = b""
        fixed = _REC_FIXED.pack(rec.version, rec.proto, rec.state, rflags, rec.flags,
                                rec.policy_id, o[0], o[1], o[2], o[3], r[0], r[1], r[2], r[3],
                                rec.nat_ip, rec.nat_port, ms32(rec.created))
        parts.append(fixed)
        parts.append(tcp)
        parts.append(_name(rec.in_intf) + _name(rec.out_intf))
        for etype, value in rec.ext:
            parts.append(_EXT_HDR.pack(etype, len(value)))
            parts.append(value)
    except struct.error as e:
        raise SyncRecordError(f"record field out of range: {e}") from None
    body = b"".join(parts)
    if len(body) > 0xFFFF:
        raise SyncRecordError("record too long")
    return _REC_HDR.pack(op, len(body)) + body


def encode_delete(key: SyncKey, version: int) -> bytes:
    """Bytes of one DELETE record for the session ``key`` at ``version``."""
    try:
        return _REC_HDR.pack(OP_DELETE, REC_DEL_LEN) + _REC_DEL.pack(version, *key)
    except struct.error as e:
        raise SyncRecordError(f"delete key out of range: {e}") from None


def decode_records(buf: bytes | bytearray | memoryview, off: int, end: int, count: int,
                   frame_ms: int, now: float) -> list[RecordOp]:
    """Decode ``count`` records from ``buf[off:end]`` (must be consumed exactly).

    ``frame_ms`` is the sender clock of the frame, ``now`` the local clock:
    ``created = now - (frame_ms - created_ms)``. Raises SyncRecordError.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    out: list[RecordOp] = []
    append = out.append
    rec_hdr = _REC_HDR.unpack_from
    fixed = _REC_FIXED.unpack_from
    tcp_unpack = _REC_TCP.unpack_from
    ext_hdr = _EXT_HDR.unpack_from
    names_of = INSPECTION_NAMES
    for _ in range(count):
        if off + REC_HDR_LEN > end:
            raise SyncRecordError("truncated record header")
        op, blen = rec_hdr(buf, off)
        off += REC_HDR_LEN
        rend = off + blen
        if rend > end:
            raise SyncRecordError(f"record length {blen} runs past the frame")
        if op == OP_DELETE:
            if blen != REC_DEL_LEN:
                raise SyncRecordError(f"DELETE record length {blen} != {REC_DEL_LEN}")
            version, proto, s, sp, d, dp = _REC_DEL.unpack_from(buf, off)
            append(RecordOp(OP_DELETE, (proto, s, sp, d, dp), version, None))
            off = rend
            continue
        if op != OP_ADD and op != OP_UPDATE:
            raise SyncRecordError(f"unknown record op {op}")
        if blen < REC_FIXED_LEN + 2:
            raise SyncRecordError(f"record length {blen} too short")
        (version, proto, state, rflags, sflags, policy_id, os_, osp, od, odp,
         rs, rsp, rd, rdp, nat_ip, nat_port, created_ms) = fixed(buf, off)
        p = off + REC_FIXED_LEN
        tcp = None
        if rflags & RF_TCP:
            if p + REC_TCP_LEN > rend:
                raise SyncRecordError("truncated TCP window block")
            t = tcp_unpack(buf, p)
            tcp = (TcpWindow(t[0], t[1], t[2], t[3], t[4]), TcpWindow(t[5], t[6], t[7], t[8], t[9]))
            p += REC_TCP_LEN
        if p >= rend:
            raise SyncRecordError("truncated interface name")
        q = p + 1 + buf[p]
        if q >= rend:
            raise SyncRecordError("interface name runs past the record")
        in_intf = buf[p + 1:q].decode("ascii", "replace")
        p = q + 1 + buf[q]
        if p > rend:
            raise SyncRecordError("interface name runs past the record")
        out_intf = buf[q + 1:p].decode("ascii", "replace")
        ext: list[tuple[int, bytes]] = []
        while p < rend:
            if p + 4 > rend:
                raise SyncRecordError("truncated extension TLV header")
            etype, elen = ext_hdr(buf, p)
            p += 4
            if p + elen > rend:
                raise SyncRecordError(f"extension TLV {etype:#06x} runs past the record")
            ext.append((etype, buf[p:p + elen]))
            p += elen
        key = (proto, os_, osp, od, odp)
        append(RecordOp(op, key, version, SessionRecord(
            proto, (os_, osp, od, odp), (rs, rsp, rd, rdp), state, policy_id,
            bool(rflags & RF_NAT), nat_ip, nat_port, tcp, sflags,
            names_of[(rflags >> RF_INSPECT_SHIFT) & 3], in_intf, out_intf, ext,
            now - ((frame_ms - created_ms) & M32) / 1000.0, version)))
        off = rend
    if off != end:
        raise SyncRecordError(f"{end - off} trailing bytes after {count} records")
    return out


# --- converters from/to fgcp.session.Session ----------------------------------------

def record_from_session(s: Session) -> SessionRecord:
    """The SessionRecord of ``s`` (what a new primary needs to continue it)."""
    tcp = None
    if s.tcp is not None:
        a, b = s.tcp
        tcp = (TcpWindow(a.seqlo, a.seqhi, a.max_win, a.wscale, a.state),
               TcpWindow(b.seqlo, b.seqhi, b.max_win, b.wscale, b.state))
    ext = sorted(s.ext.items()) if s.ext else []
    o, r = s.orig, s.reply
    return SessionRecord(
        s.proto, (o[0], o[1], o[2], o[3]), (r[0], r[1], r[2], r[3]), s.state, s.policy_id, bool(s.nat),
        s.nat_ip, s.nat_port, tcp, s.flags, s.inspection, s.in_intf, s.out_intf,
        ext, s.created, 0)


def apply_record(rec: SessionRecord, session_factory: Callable[..., Session],
                 peer_factory: Callable[[int, int, int, int, int], TcpPeer],
                 existing: Session | None = None, synced_flag: int = 1) -> Session:
    """Install ``rec`` into a Session: update ``existing`` in place, or build a new one.

    ``session_factory(**fields)`` builds a Session (fields of fgcp.session.Session,
    sid/expiry left to the caller's table); ``peer_factory(seqlo, seqhi, max_win,
    wscale, state)`` builds a TcpPeer.  The result carries ``synced_flag``.
    Expiry timers are not synced: the caller refreshes them (FortiOS behaviour).
    """
    tcp = None
    if rec.tcp is not None:
        tcp = tuple(peer_factory(w.seqlo, w.seqhi, w.max_win, w.wscale, w.state) for w in rec.tcp)
    fields = {
        "proto": rec.proto, "orig": rec.orig, "reply": rec.reply, "in_intf": rec.in_intf,
        "out_intf": rec.out_intf, "policy_id": rec.policy_id, "nat": rec.nat,
        "nat_ip": rec.nat_ip, "nat_port": rec.nat_port, "state": rec.state, "tcp": tcp,
        "flags": rec.flags | synced_flag, "inspection": rec.inspection,
        "ext": dict(rec.ext), "created": rec.created,
    }
    if existing is None:
        return session_factory(**fields)
    for name, value in fields.items():
        setattr(existing, name, value)
    return existing
