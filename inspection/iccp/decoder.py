"""Incremental ICCP decoder for one direction of one TCP stream: TPKT framing (RFC 1006),
COTP reassembly, then layers.py and mms.py; bounded buffers, serializable state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from inspection.iccp.ber import BerError
from inspection.iccp.layers import (
    COTP_CODES,
    LayerError,
    parse_cotp,
    parse_presentation,
    parse_session,
)
from inspection.iccp.mms import MmsInfo, decode_mms

ICCP_PORT = 102
TPKT_VERSION = 3
TPKT_MIN = 7            # 4-byte TPKT header + the shortest COTP TPDU (DT: LI, code, EOT)
DEFAULT_MAX_PDU = 65535
_STATE = struct.Struct("!2sBBIQIIIQII")
_MAGIC, _STATE_VERSION = b"IC", 1
_RESYNC = 1


@dataclass(frozen=True, slots=True)
class IccpEvent:
    kind: str                   # "pdu" | "anomaly"
    start: int                  # stream offset of the first byte of the TPKT
    end: int                    # stream offset just after it
    cotp: str | None = None
    spdu: str | None = None
    mms_pdu: str | None = None
    service: str | None = None
    invoke_id: int | None = None
    domain: str | None = None
    items: tuple[str, ...] = ()
    tase2: tuple[str, ...] = ()
    reason: str | None = None


def _plausible(hdr: bytes, max_pdu: int) -> bool | None:
    """Is ``hdr`` (up to 6 bytes) the start of a TPKT + COTP header? None: undecided."""
    if len(hdr) >= 1 and hdr[0] != TPKT_VERSION:
        return False
    if len(hdr) >= 2 and hdr[1] != 0:
        return False
    if len(hdr) >= 4:
        n = int.from_bytes(hdr[2:4], "big")
        if not TPKT_MIN <= n <= max_pdu:
            return False
        if len(hdr) >= 5 and not 2 <= hdr[4] < n - 4:
            return False
    if len(hdr) >= 6 and hdr[5] & 0xF0 not in COTP_CODES:
        return False
    return True if len(hdr) >= 6 else None


def looks_like_iccp(data: bytes) -> bool | None:
    """True: a TPKT (v3, sane length) carrying a COTP TPDU; False: not; None: too short."""
    return _plausible(bytes(data[:6]), DEFAULT_MAX_PDU)


class IccpDecoder:
    """One direction of one TCP stream; ``feed`` in-order bytes, get IccpEvents."""

    __slots__ = (
        "_buf",
        "_resync",
        "_skip",
        "_tsdu",
        "_tsdu_start",
        "anomalies",
        "max_pdu",
        "offset",
        "pdus",
    )

    def __init__(self, max_pdu: int = DEFAULT_MAX_PDU) -> None:
        self.max_pdu = max(TPKT_MIN, min(int(max_pdu), 0xFFFF))
        self.offset = 0             # stream bytes consumed (including the buffered ones)
        self.anomalies = 0
        self.pdus = 0
        self._buf = bytearray()     # the current TPKT (or resync candidate), < max_pdu
        self._skip = 0              # bytes of an oversized TPKT still to discard
        self._resync = False
        self._tsdu = bytearray()    # COTP DT user data of a TSDU not finished (no EOT)
        self._tsdu_start = -1

    # ------------------------------------------------------------------ stream
    def feed(self, data: bytes) -> list[IccpEvent]:
        """Consume in-order stream bytes; never raises on any input."""
        events: list[IccpEvent] = []
        end = self.offset + len(data)
        try:
            self._feed(memoryview(data), events)
        except Exception as e:  # noqa: BLE001 - a decoder bug must not kill the data path
            self._buf.clear()
            self._tsdu.clear()
            self._skip = 0
            self._resync = True
            self.offset = end
            events.append(self._anomaly(self.offset, self.offset,
                                        f"decoder error {type(e).__name__}: {e}"[:120]))
        return events

    def _feed(self, data: memoryview, events: list[IccpEvent]) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                self.offset += k
                continue
            if self._resync:
                i = self._scan(data, i)
                continue
            if len(self._buf) < 4:
                k = min(4 - len(self._buf), n - i)
                self._buf += data[i:i + k]
                i += k
                self.offset += k
                if len(self._buf) == 4:
                    self._check_header(events)
                continue
            need = int.from_bytes(self._buf[2:4], "big") - len(self._buf)
            k = min(need, n - i)
            self._buf += data[i:i + k]
            i += k
            self.offset += k
            if k == need:
                start = self.offset - len(self._buf)
                pdu = bytes(self._buf)
                self._buf.clear()
                events.append(self._tpkt(pdu, start))

    def _check_header(self, events: list[IccpEvent]) -> None:
        start = self.offset - 4
        b = self._buf
        length = int.from_bytes(b[2:4], "big")
        if b[0] != TPKT_VERSION or b[1] != 0:
            reason = f"bad TPKT header (version {b[0]}, reserved {b[1]})"
        elif length < TPKT_MIN:
            reason = f"bad TPKT length {length} < {TPKT_MIN}"
        elif length > self.max_pdu:
            events.append(self._anomaly(start, start + length,
                                        f"oversized TPKT ({length} > {self.max_pdu})"))
            self._skip = length - 4
            self._buf.clear()
            return
        else:
            return
        events.append(self._anomaly(start, start + 4, reason))
        self._resync = True
        self._rescan_buffer()

    def _rescan_buffer(self) -> None:
        """Resync: drop leading buffered bytes until they could start a TPKT."""
        while self._buf and _plausible(bytes(self._buf[:6]), self.max_pdu) is False:
            del self._buf[0]
        if len(self._buf) >= 6:
            self._resync = False

    def _scan(self, data: memoryview, i: int) -> int:
        """Resync mode: move bytes into the buffer until a plausible header is there."""
        while i < len(data) and self._resync:
            self._buf.append(data[i])
            i += 1
            self.offset += 1
            self._rescan_buffer()
        # resync over: the buffer holds the first 6 bytes of a plausible TPKT (whose
        # length is >= 7), and the framing path goes on accumulating it
        return i

    # ------------------------------------------------------------------ layers
    def _anomaly(self, start: int, end: int, reason: str, **fields: object) -> IccpEvent:
        self.anomalies += 1
        return IccpEvent("anomaly", start, end, reason=reason, **fields)  # type: ignore[arg-type]

    def _tpkt(self, pdu: bytes, start: int) -> IccpEvent:
        end = start + len(pdu)
        try:
            cotp = parse_cotp(pdu[4:])
        except LayerError as e:
            return self._anomaly(start, end, str(e))
        if cotp.name != "DT":
            self.pdus += 1
            return IccpEvent("pdu", start, end, cotp=cotp.name)
        if len(self._tsdu) + len(cotp.data) > self.max_pdu:
            self._tsdu.clear()
            self._tsdu_start = -1
            return self._anomaly(start, end, f"oversized TSDU (> {self.max_pdu})", cotp="DT")
        if not self._tsdu:
            self._tsdu_start = start
        self._tsdu += cotp.data
        if not cotp.eot:
            self.pdus += 1
            return IccpEvent("pdu", start, end, cotp="DT")
        tsdu, first = bytes(self._tsdu), self._tsdu_start
        self._tsdu.clear()
        self._tsdu_start = -1
        return self._upper(tsdu, first, end)

    def _upper(self, tsdu: bytes, start: int, end: int) -> IccpEvent:
        spdu: str | None = None
        try:
            spdu, ppdu = parse_session(tsdu)
            _acse, mms_bytes = parse_presentation(ppdu)
            info: MmsInfo | None = decode_mms(mms_bytes) if mms_bytes else None
        except (LayerError, BerError) as e:
            return self._anomaly(start, end, str(e), cotp="DT", spdu=spdu)
        self.pdus += 1
        if info is None:
            return IccpEvent("pdu", start, end, cotp="DT", spdu=spdu)
        return IccpEvent("pdu", start, end, cotp="DT", spdu=spdu, mms_pdu=info.pdu,
                         service=info.service, invoke_id=info.invoke_id, domain=info.domain,
                         items=info.items, tase2=info.tase2)

    # ------------------------------------------------------------------ state
    def to_state(self) -> bytes:
        """Compact state: counters, the partial TPKT and the unfinished TSDU."""
        head = _STATE.pack(_MAGIC, _STATE_VERSION, _RESYNC if self._resync else 0,
                           self.max_pdu, self.offset, self.anomalies, self.pdus, self._skip,
                           self._tsdu_start + 1, len(self._buf), len(self._tsdu))
        return head + bytes(self._buf) + bytes(self._tsdu)

    @classmethod
    def from_state(cls, state: bytes) -> IccpDecoder:
        """Rebuild a decoder from ``to_state()``; ValueError on a bad blob."""
        try:
            (magic, version, flags, max_pdu, offset, anomalies, pdus, skip, tsdu_start,
             nbuf, ntsdu) = _STATE.unpack_from(state)
        except struct.error as e:
            raise ValueError(f"bad ICCP decoder state: {e}") from e
        if magic != _MAGIC or version != _STATE_VERSION:
            raise ValueError("bad ICCP decoder state: magic/version")
        if len(state) != _STATE.size + nbuf + ntsdu or nbuf > max_pdu or ntsdu > max_pdu \
                or skip > 0xFFFF or flags & ~_RESYNC:
            raise ValueError("bad ICCP decoder state: lengths")
        d = cls(max_pdu)
        if d.max_pdu != max_pdu:
            raise ValueError("bad ICCP decoder state: max_pdu")
        d.offset, d.anomalies, d.pdus, d._skip = offset, anomalies, pdus, skip
        d._resync = bool(flags & _RESYNC)
        d._tsdu_start = tsdu_start - 1
        p = _STATE.size
        d._buf = bytearray(state[p:p + nbuf])
        d._tsdu = bytearray(state[p + nbuf:p + nbuf + ntsdu])
        return d
