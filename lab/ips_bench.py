"""IPS benchmark through one member: ``python -m lab.ips_bench [--runs 3] [--mb 4]``.

One in-process Forwarder (lab.microbench's member: port1 inside, port2 outside, an accept
+ NAT policy) forwards one TCP session's frames from c1 to sv1:80 (1,448-byte segments,
the server's ACK every second segment, checksums verified, NAT applied), plain and with
the IPS engine (inspection.ips.IpsEngine) behind the Forwarder's inspection hook
(fgcp.inspecthook.Inspector) with 10, 100 and 1,000 signatures, all in the same run.
Also: the per-session IPS state (``FlowState.to_bytes()``, idle and with a partial match
pending) and what syncing it costs (``fgcp.syncrecord`` bytes per record and records/s
encoded and decoded, without and with an ``EXT_IPS`` value).  Figures: median of
``--runs`` and the range over them (the machine is shared).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from fgcp.forward import Forwarder, Out
from fgcp.inspecthook import Verdict
from fgcp.session import ORIG, Session
from fgcp.syncrecord import (
    EXT_IPS,
    OP_UPDATE,
    SessionRecord,
    TcpWindow,
    decode_records,
    encode_record,
)
from inspection.ips import FlowState, IpsEngine, RuleSet
from inspection.ips.bench import signatures
from lab.microbench import (
    CLIENT,
    SERVER,
    make_forwarder,
    tcp_frame,
)

SIZES = (10, 100, 1000)
SEG = 1448
SPORT, DPORT = 40001, 80
ISN_C, ISN_S = 1000, 500000
REQUEST = b"GET / HTTP/1.1\r\nHost: sv1\r\n\r\n"


class BenchError(RuntimeError):
    """A benchmark run did not forward what it was given."""


class EngineInspector:
    """The thinnest Inspector around one IpsEngine: claims every TCP session, one
    FlowState per session, the engine's verdict mapped to the hook's."""

    def __init__(self, engine: IpsEngine) -> None:
        self.engine = engine
        self.flows: dict[int, FlowState] = {}

    def on_new(self, session: Session) -> bool:
        if session.proto != 6:
            return False
        self.flows[session.sid] = self.engine.new_flow("tcp", session.orig[1],
                                                       session.orig[3])
        return True

    def on_payload(self, session: Session, direction: int, seq: int, payload: bytes,
                   tcp_flags: int, now: float) -> int:
        st = self.flows.get(session.sid)
        if st is None:
            return Verdict.PASS
        v = self.engine.inspect(st, "client" if direction == ORIG else "server", seq,
                                payload, now, tcp_flags)
        if v.forward:
            return Verdict.PASS
        return Verdict.RESET if v.action == "reset" else Verdict.DROP

    def on_close(self, session: Session) -> None:
        self.flows.pop(session.sid, None)


def ips_forwarder(n: int) -> tuple[Forwarder, EngineInspector]:
    """The bench member with an IPS of ``n`` HTTP signatures (inspection.ips.bench's)."""
    rules = signatures(n, random.Random(n))
    insp = EngineInspector(IpsEngine(RuleSet.compile(rules), iccp=None))
    fwd = make_forwarder()
    fwd.inspector = insp
    return fwd, insp


@dataclass
class Stream:
    """The frames of one TCP session: handshake, request, ``megabytes`` of data."""

    handshake: list[tuple[int, bytearray]]
    data: list[tuple[int, bytearray]]
    payload_bytes: int


def build_stream(fwd: Forwarder, megabytes: float, rng: random.Random) -> Stream:
    """Frames for ``fwd`` (the server side addressed to the NAT address it picks: the
    handshake is run through ``fwd`` first)."""
    out: Out = []
    syn = tcp_frame(True, SERVER, SPORT, DPORT, ISN_C, 0, 0x02)
    fwd.handle(0, bytearray(syn), 0.0, out)
    s = next(iter(fwd.sessions))
    nat_ip, nat_port = s.reply[2], s.reply[3]
    synack = tcp_frame(False, nat_ip, DPORT, nat_port, ISN_S, ISN_C + 1, 0x12)
    ack = tcp_frame(True, SERVER, SPORT, DPORT, ISN_C + 1, ISN_S + 1, 0x10)
    filler = bytes(rng.randrange(32, 127) for _ in range(SEG * 32))
    data: list[tuple[int, bytearray]] = []
    seq = ISN_C + 1
    chunks = [REQUEST]
    total = len(REQUEST)
    while total < megabytes * 1e6:
        off = (len(chunks) * 977) % (len(filler) - SEG)
        chunks.append(filler[off:off + SEG])
        total += SEG
    for i, c in enumerate(chunks):
        data.append((0, tcp_frame(True, SERVER, SPORT, DPORT, seq & 0xFFFFFFFF,
                                  ISN_S + 1, 0x18, c)))
        seq += len(c)
        if i % 2 == 1:
            data.append((1, tcp_frame(False, nat_ip, DPORT, nat_port, ISN_S + 1,
                                      seq & 0xFFFFFFFF, 0x10)))
    return Stream([(1, synack), (0, ack)], data, total)


def run_forwarding(fwd: Forwarder, megabytes: float, seed: int) -> tuple[float, float]:
    """(MB/s of payload, kpps of all frames) of one session through ``fwd``."""
    stream = build_stream(fwd, megabytes, random.Random(seed))
    out: Out = []
    for port, f in stream.handshake:
        fwd.handle(port, bytearray(f), 0.0, out)
    frames = [(p, bytearray(f)) for p, f in stream.data]
    out.clear()
    h = fwd.handle
    t0 = time.perf_counter()
    for p, f in frames:
        h(p, f, 1.0, out)
    dt = time.perf_counter() - t0
    if len(out) != len(frames):
        raise BenchError(f"forwarded {len(out)} of {len(frames)} frames: "
                         f"{dict(fwd.counters)}")
    return stream.payload_bytes / dt / 1e6, len(frames) / dt / 1e3


# -- per-session state and its sync cost ---------------------------------------------
def state_sizes(n: int) -> tuple[int, int]:
    """FlowState.to_bytes() length after a benign request (idle) and with a partial
    match pending (the first content of signature 0's two-content chain seen)."""
    rng = random.Random(n)
    rules = signatures(n, rng)
    eng = IpsEngine(RuleSet.compile(rules), iccp=None)
    st = eng.new_flow("tcp", SPORT, DPORT)
    eng.inspect(st, "client", ISN_C, b"", 0.0, 0x02)
    eng.inspect(st, "client", ISN_C + 1, REQUEST, 0.0)
    idle = len(st.to_bytes())
    first = rules[0].signature.contents[0].data
    eng.inspect(st, "client", ISN_C + 1 + len(REQUEST), b"xx" + first, 0.0)
    if not st.partial:
        raise BenchError("no partial match pending after the chain's first content")
    return idle, len(st.to_bytes())


def sample_record(ips_state: bytes | None) -> SessionRecord:
    """A NAT'd TCP session record as session sync sends it, with or without EXT_IPS."""
    return SessionRecord(
        6, (CLIENT, SPORT, SERVER, DPORT), (SERVER, DPORT, 0xCB007101, 61001), state=4,
        policy_id=2, nat=True, nat_ip=0xCB007101, nat_port=61001,
        tcp=(TcpWindow(ISN_C, ISN_C + 65535, 65535, 7, 4),
             TcpWindow(ISN_S, ISN_S + 65535, 65535, 7, 4)),
        in_intf="port1", out_intf="port2",
        ext=[(EXT_IPS, ips_state)] if ips_state is not None else [], version=7)


@dataclass
class SyncCost:
    record_bytes: int
    encode_rps: float
    decode_rps: float


def sync_cost(ips_state: bytes | None, count: int = 20000) -> SyncCost:
    rec = sample_record(ips_state)
    t0 = time.perf_counter()
    for _ in range(count):
        blob = encode_record(OP_UPDATE, rec)
    enc = count / (time.perf_counter() - t0)
    per = 50
    buf = blob * per
    rounds = max(1, count // per)
    t0 = time.perf_counter()
    for _ in range(rounds):
        decode_records(buf, 0, len(buf), per, 0, 0.0)
    dec = rounds * per / (time.perf_counter() - t0)
    return SyncCost(len(blob), enc, dec)


# -- the run --------------------------------------------------------------------------
@dataclass
class Series:
    """One figure measured once per run."""

    values: list[float] = field(default_factory=list)

    def cell(self, fmt: str = "{:.1f}") -> str:
        if not self.values:
            return "-"
        med = statistics.median(self.values)
        if len(self.values) == 1:
            return fmt.format(med)
        return f"{fmt.format(med)} ({fmt.format(min(self.values))}-" \
               f"{fmt.format(max(self.values))})"


def run_bench(runs: int, megabytes: float, sizes: Sequence[int] = SIZES,
              progress: Callable[[str], None] = lambda s: None) -> BenchResult:
    """Every figure ``runs`` times, the modes interleaved within each run."""
    modes = ["plain", *(f"ips-{n}" for n in sizes)]
    mbs = {m: Series() for m in modes}
    kpps = {m: Series() for m in modes}
    for r in range(runs):
        for m in modes:
            progress(f"run {r + 1}/{runs}: {m}")
            if m == "plain":
                a, b = run_forwarding(make_forwarder(), megabytes, seed=r)
            else:
                fwd, insp = ips_forwarder(int(m[4:]))
                a, b = run_forwarding(fwd, megabytes, seed=r)
                scanned = insp.engine.stats().get("inspected_bytes", 0)
                if scanned < megabytes * 1e6:  # the hook really ran the engine
                    raise BenchError(f"{m}: the engine scanned {scanned} bytes only")
            mbs[m].values.append(a)
            kpps[m].values.append(b)
    states = {n: state_sizes(n) for n in sizes}
    pending = states[max(sizes)][1]
    cost: dict[str, list[SyncCost]] = {"without": [], "with": []}
    for r in range(runs):
        progress(f"run {r + 1}/{runs}: sync records")
        cost["without"].append(sync_cost(None))
        cost["with"].append(sync_cost(bytes(pending)))
    return BenchResult(modes, mbs, kpps, states, cost, runs, megabytes, pending)


@dataclass
class BenchResult:
    modes: list[str]
    mbs: dict[str, Series]        # mode -> MB/s of payload
    kpps: dict[str, Series]       # mode -> thousand frames/s
    states: dict[int, tuple[int, int]]  # signatures -> state bytes (idle, pending)
    cost: dict[str, list[SyncCost]]     # "without" / "with" EXT_IPS, one per run
    runs: int
    megabytes: float
    pending_state: int


def render(res: BenchResult, console: Console) -> None:
    modes, mbs, kpps, states, cost = res.modes, res.mbs, res.kpps, res.states, res.cost
    plain = statistics.median(mbs["plain"].values)
    t = Table(title=f"IPS through one member (in-process Forwarder, one TCP session, "
                    f"{SEG}-byte segments, {res.megabytes:g} MB per mode, {res.runs} runs: "
                    "median (min-max))")
    for col in ("mode", "signatures", "MB/s", "kpps", "of plain", "state idle B",
                "state pending B"):
        t.add_column(col, justify="left" if col == "mode" else "right")
    for m in modes:
        n = 0 if m == "plain" else int(m[4:])
        idle, pend = states.get(n, (None, None))
        t.add_row("forwarding only" if m == "plain" else "forwarding + IPS", str(n) if n
                  else "-", mbs[m].cell(), kpps[m].cell(),
                  f"{statistics.median(mbs[m].values) / plain:.0%}",
                  str(idle) if idle is not None else "-",
                  str(pend) if pend is not None else "-")
    console.print(t)
    s = Table(title=f"Sync cost of IPS state (fgcp.syncrecord UPDATE of a NAT'd TCP session; "
                    f"EXT_IPS = the {res.pending_state}-byte pending state)")
    for col in ("record", "bytes/record", "encode records/s", "decode records/s"):
        s.add_column(col, justify="left" if col == "record" else "right")
    for k, label in (("without", "without EXT_IPS"), ("with", "with EXT_IPS")):
        cs = cost[k]
        s.add_row(label, str(cs[0].record_bytes),
                  Series([c.encode_rps for c in cs]).cell("{:,.0f}"),
                  Series([c.decode_rps for c in cs]).cell("{:,.0f}"))
    console.print(s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.ips_bench",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mb", type=float, default=8.0, help="payload MB per mode and run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 130)
    try:
        res = run_bench(a.runs, a.mb, progress=lambda s: console.log(s))
    except BenchError as e:
        console.print(f"[bold red]ips_bench: {e}[/bold red]")
        return 1
    render(res, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
