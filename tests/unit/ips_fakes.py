"""Fakes for the IPS tests: a stand-in ICCP decoder module (the inspection/iccp contract)
and helpers that build an engine from F-SBID texts and feed it TCP streams.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import SimpleNamespace

from inspection.ips import TCP_SYN, FlowState, IpsEngine, Rule, RuleSet, Verdict, parse_signature

ISN = 1000


@dataclass(frozen=True, slots=True)
class FakeIccpEvent:
    """The fields of inspection.iccp.IccpEvent the engine reads."""

    kind: str
    start: int
    end: int
    service: str | None = None
    domain: str | None = None
    items: tuple[str, ...] = ()
    reason: str | None = None


def tpkt(body: bytes) -> bytes:
    """A toy "ICCP" PDU: TPKT header + COTP DT + ``service:domain:item`` text."""
    payload = b"\x02\xf0\x80" + body
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def fake_looks_like_iccp(data: bytes) -> bool | None:
    if len(data) < 5:
        return None if data == b"\x03\x00"[:len(data)] or (len(data) >= 2 and data[:2] ==
                                                             b"\x03\x00") else False
    return data[0] == 3 and data[1] == 0 and struct.unpack("!H", data[2:4])[0] >= 7


class FakeIccpDecoder:
    """Incremental TPKT splitter that names service/domain/item from the toy body."""

    def __init__(self, max_pdu: int = 65535) -> None:
        self.max_pdu = max_pdu
        self.buf = b""
        self.offset = 0
        self.anomalies = 0

    def feed(self, data: bytes) -> list[FakeIccpEvent]:
        self.buf += data
        events = []
        while len(self.buf) >= 4:
            length = struct.unpack("!H", self.buf[2:4])[0]
            start = self.offset
            if self.buf[0] != 3 or length < 7:
                self.anomalies += 1
                events.append(FakeIccpEvent("anomaly", start, start + len(self.buf),
                                            reason="bad TPKT"))
                self.offset += len(self.buf)
                self.buf = b""
                break
            if len(self.buf) < length:
                break
            body, self.buf = self.buf[7:length], self.buf[length:]
            self.offset += length
            parts = body.decode("latin-1").split(":")
            events.append(FakeIccpEvent("pdu", start, start + length, parts[0] or None,
                                        parts[1] if len(parts) > 1 else None,
                                        tuple(parts[2:])))
        return events

    def to_state(self) -> bytes:
        return struct.pack("!QI", self.offset, self.anomalies) + self.buf

    @classmethod
    def from_state(cls, state: bytes) -> FakeIccpDecoder:
        if len(state) < 12:
            raise ValueError("short fake ICCP state")
        dec = cls()
        dec.offset, dec.anomalies = struct.unpack("!QI", state[:12])
        dec.buf = state[12:]
        return dec


FAKE_ICCP = SimpleNamespace(looks_like_iccp=fake_looks_like_iccp, IccpDecoder=FakeIccpDecoder,
                            ICCP_PORT=102)


def sig(body: str, name: str = "t", service: str = "HTTP", flow: str = "from_client") -> str:
    return f'F-SBID( --name "{name}"; --service {service}; --flow {flow}; {body} )'


def engine(*texts: str, action: str = "block", iccp: object = FAKE_ICCP,
           **kw: int) -> IpsEngine:
    rules = [Rule(parse_signature(t), action=action, entry_id=i + 1)
             for i, t in enumerate(texts)]
    return IpsEngine(RuleSet.compile(rules), iccp=iccp, **kw)


class Tcp:
    """One TCP session fed to an engine: tracks both directions' next sequence numbers."""

    def __init__(self, eng: IpsEngine, sport: int = 40000, dport: int = 80,
                 st: FlowState | None = None, isn: int = ISN) -> None:
        self.eng = eng
        self.st = st if st is not None else eng.new_flow("tcp", sport, dport)
        self.seq = {"client": isn + 1, "server": 7001}
        if st is None:
            eng.inspect(self.st, "client", isn, b"", 0.0, TCP_SYN)
            eng.inspect(self.st, "server", 7000, b"", 0.0, TCP_SYN)

    def send(self, data: bytes, direction: str = "client") -> Verdict:
        v = self.eng.inspect(self.st, direction, self.seq[direction] % 2**32, data, 0.0)
        self.seq[direction] += len(data)
        return v

    def chunks(self, parts: list[bytes], direction: str = "client") -> list[Verdict]:
        return [self.send(p, direction) for p in parts]
