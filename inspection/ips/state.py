"""Per-session IPS state (``FlowState``) and its compact binary form for session sync.

``to_bytes``/``from_bytes`` carry everything needed to resume scanning at the exact
byte on another member: reassembly position, carry-over tail, held segments,
per-signature partial-match progress and the ICCP decoder states.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

STATE_VERSION = 1
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
PROTO_NAMES = {v: k for k, v in PROTOS.items()}
SERVICE_CODES = {None: 0, "HTTP": 1, "ICCP": 2, "other": 3}
SERVICE_NAMES = {v: k for k, v in SERVICE_CODES.items()}
BLOCK_CODES = {None: 0, "block": 1, "reset": 2}
BLOCK_NAMES = {v: k for k, v in BLOCK_CODES.items()}
DIRECTIONS = ("client", "server")


class StateError(ValueError):
    """A state blob that cannot be decoded."""


@dataclass(slots=True)
class Progress:
    """Partial match of one signature in one direction."""

    mask: int = 0  # bit i: content i satisfied; bit len(contents): the ICCP condition
    cands: dict[int, list[int]] = field(default_factory=dict)  # content i -> its match ends


@dataclass(slots=True)
class DirState:
    """One direction of a session: TCP reassembly and matching position."""

    init: bool = False
    next_seq: int = 0  # next expected TCP sequence number (mod 2**32)
    offset: int = 0  # stream bytes delivered in order (and scanned)
    tail: bytes = b""  # last ``RuleSet.retain`` delivered bytes
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # held (offset, data)
    progress: dict[int, Progress] = field(default_factory=dict)  # rule index -> progress
    head: bytes = b""  # first bytes kept until the service is decided (client side)
    iccp_blob: bytes | None = None  # IccpDecoder.to_state(), when not live
    skipped: tuple[int, int] | None = None  # last stream gap skipped (offsets)
    decoder: object | None = None  # live IccpDecoder (not serialized as such)
    gap_since: float | None = None  # when the held gap opened (local clock, not synced)
    restored: bool = False  # resumed by from_bytes: strict gaps for the session's life
    # (reassembly.accept: data beyond a gap is withheld, an unfilled gap fails closed)

    @property
    def pending_bytes(self) -> int:
        return sum(len(d) for _, d in self.pending)


@dataclass(slots=True)
class FlowState:
    """All IPS state of one session; small, and ``to_bytes`` round trips it."""

    proto: str
    sport: int
    dport: int
    fingerprint: int = 0  # RuleSet.fingerprint the progress refers to
    service: str | None = None  # None undecided, "HTTP", "ICCP", "other"
    blocked: str | None = None  # None, "block" or "reset": the verdict of every later packet
    fired: set[int] = field(default_factory=set)  # rule indexes already reported
    waiting: set[int] = field(default_factory=set)  # complete, waiting for the service
    dirs: tuple[DirState, DirState] = field(default_factory=lambda: (DirState(), DirState()))
    applicable: dict[str, frozenset[int]] = field(default_factory=dict)  # cache, not synced

    @property
    def partial(self) -> bool:
        """A partial match or held segments: what a sync update must not lose."""
        return any(d.progress or d.pending for d in self.dirs) or bool(self.waiting)

    def dir(self, direction: str) -> DirState:
        return self.dirs[0 if direction == "client" else 1]

    def to_bytes(self) -> bytes:
        """The compact state blob (EXT_IPS payload)."""
        w = _Writer()
        w.u8(STATE_VERSION)
        w.u8(PROTOS.get(self.proto, 0))
        w.raw(struct.pack("!HHI", self.sport, self.dport, self.fingerprint))
        w.u8(SERVICE_CODES[self.service] | BLOCK_CODES[self.blocked] << 4)
        w.ints(sorted(self.fired))
        w.ints(sorted(self.waiting))
        for d in self.dirs:
            w.u8(int(d.init))
            w.raw(struct.pack("!I", d.next_seq))
            w.var(d.offset)
            w.blob(d.tail)
            w.blob(d.head)
            w.var(len(d.pending))
            for off, data in d.pending:
                w.var(off)
                w.blob(data)
            w.var(len(d.progress))
            for ri, p in sorted(d.progress.items()):
                w.var(ri)
                w.var(p.mask)
                w.var(len(p.cands))
                for ci, ends in sorted(p.cands.items()):
                    w.var(ci)
                    w.ints(ends)
            blob = d.decoder.to_state() if d.decoder is not None else d.iccp_blob  # type: ignore[attr-defined]
            w.u8(blob is not None)
            if blob is not None:
                w.blob(blob)
            w.u8(d.skipped is not None)
            if d.skipped is not None:
                w.var(d.skipped[0])
                w.var(d.skipped[1])
        return w.done()

    @classmethod
    def from_bytes(cls, blob: bytes) -> FlowState:
        """Decode ``to_bytes`` output; raises ``StateError`` on a bad blob."""
        r = _Reader(blob)
        try:
            if r.u8() != STATE_VERSION:
                raise StateError("unknown IPS state version")
            proto = PROTO_NAMES.get(r.u8(), "tcp")
            sport, dport, fingerprint = struct.unpack("!HHI", r.raw(8))
            codes = r.u8()
            st = cls(proto, sport, dport, fingerprint, SERVICE_NAMES[codes & 0xF],
                     BLOCK_NAMES[codes >> 4], set(r.ints()), set(r.ints()))
            for d in st.dirs:
                d.init = bool(r.u8())
                (d.next_seq,) = struct.unpack("!I", r.raw(4))
                d.offset = r.var()
                d.tail = r.blob()
                d.head = r.blob()
                d.pending = [(r.var(), r.blob()) for _ in range(r.var())]
                for _ in range(r.var()):
                    ri, p = r.var(), Progress(r.var())
                    for _ in range(r.var()):
                        ci = r.var()
                        p.cands[ci] = r.ints()
                    d.progress[ri] = p
                d.iccp_blob = r.blob() if r.u8() else None
                d.skipped = (r.var(), r.var()) if r.u8() else None
                d.restored = True
            if r.pos != len(blob):
                raise StateError("trailing bytes in IPS state")
        except (IndexError, KeyError, struct.error) as exc:
            raise StateError(f"truncated or corrupt IPS state: {exc}") from None
        return st


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def u8(self, v: int) -> None:
        self.out.append(v)

    def raw(self, b: bytes) -> None:
        self.out += b

    def var(self, v: int) -> None:  # unsigned LEB128
        while v >= 0x80:
            self.out.append(v & 0x7F | 0x80)
            v >>= 7
        self.out.append(v)

    def blob(self, b: bytes) -> None:
        self.var(len(b))
        self.out += b

    def ints(self, values: list[int]) -> None:
        self.var(len(values))
        for v in values:
            self.var(v)

    def done(self) -> bytes:
        return bytes(self.out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        v = self.data[self.pos]
        self.pos += 1
        return v

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError("short read")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def var(self) -> int:
        v = shift = 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise IndexError("varint too long")

    def blob(self) -> bytes:
        return self.raw(self.var())

    def ints(self) -> list[int]:
        return [self.var() for _ in range(self.var())]
