"""IPS benchmark through one member: ``python -m lab.ips_bench [--runs 3] [--mb 8]``.

One in-process Forwarder (lab.microbench's member: port1 inside, port2 outside, an accept
+ NAT policy) forwards one TCP session from c1 to sv1 (the server's ACK after every second
segment, checksums verified, NAT applied), plain and with fgcpd's IPS adapter
(fgcp.ipsinspector.IpsInspector running inspection.ips.IpsEngine behind the Forwarder's
inspection hook, as fgcp.ipsmember wires it), all in the same run: HTTP in 1,448-byte
segments with 10, 100 and 1,000 signatures (and 100 with ``ips-session-sync all``, the
state serialized for sync on every segment), and an ICCP association (the real client's
association bytes, then benign MMS reads and writes, one PDU per segment) through the
ICCP decoder with 10, 100 and 1,000 ICCP signatures, whose state rides with every segment
as on an ICCP policy.  Also: the
per-session IPS state (``FlowState.to_bytes()``, idle and with a partial match pending)
and what syncing it costs (``fgcp.syncrecord`` bytes per record and records/s encoded
and decoded, without and with an ``EXT_IPS`` value).  Figures: median of ``--runs`` and
the range over them (the machine is shared).
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
from fgcp.ipsinspector import IpsInspector
from fgcp.model import HAConfig, IpsCustom, IpsSensor, IpsSensorEntry, MemberConfig, Policy
from fgcp.syncrecord import (
    EXT_IPS,
    OP_UPDATE,
    SessionRecord,
    TcpWindow,
    decode_records,
    encode_record,
)
from inspection.iccp import ICCP_PORT
from inspection.ips import IpsEngine, Rule, RuleSet, parse_signature
from inspection.ips.bench import signatures
from lab.benchkit import BenchError
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


def bench_config(rules: Sequence[Rule], sync_all: bool = False) -> MemberConfig:
    """What fgcp.ipsinspector.IpsInspector reads of a member's configuration: the bench
    member's policy 1 with IPS sensor "bench" holding ``rules`` as custom signatures
    (as ``config ips custom`` / ``config ips sensor`` would load them)."""
    customs = {f"s{i}": IpsCustom(tag=f"s{i}", signature=r.signature.text,
                                  name=r.signature.name, attack_id=r.signature.attack_id,
                                  action=r.action) for i, r in enumerate(rules)}
    sensor = IpsSensor("bench", (IpsSensorEntry(1, rules=tuple(customs)),))
    policy = Policy(1, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",),
                    dstaddr=("all",), service=("ALL",), action="accept", nat=True,
                    ips_sensor="bench")
    return MemberConfig(source="ips_bench", policies=(policy,), ips_custom=customs,
                        ips_sensors={"bench": sensor},
                        ha=HAConfig(ips_session_sync="all" if sync_all else "iccp"))


def inspected_forwarder(rules: Sequence[Rule], sync_all: bool = False,
                        iccp: str | None = "auto") -> tuple[Forwarder, IpsInspector]:
    """The bench member (lab.microbench) with fgcpd's IPS adapter behind its inspection
    hook, as fgcp.ipsmember wires it."""
    insp = IpsInspector(bench_config(rules, sync_all), iccp=iccp)
    fwd = make_forwarder()
    fwd.inspector = insp
    insp.attach(fwd)
    return fwd, insp


def iccp_signatures(n: int) -> list[Rule]:
    """``n`` ICCP signatures on control-point writes (none matches the benign stream)."""
    return [Rule(parse_signature(
        f'F-SBID( --name "iccp{i}"; --service ICCP; --flow from_client; '
        f'--iccp_service write; --iccp_item "$CO$Point{i}$Oper"; )'), action="block",
        entry_id=i + 1) for i in range(n)]


def bench_rules(n: int, service: str) -> list[Rule]:
    """``n`` signatures: HTTP ones (inspection.ips.bench's) or ICCP ones."""
    return iccp_signatures(n) if service == "iccp" else signatures(n, random.Random(n))


def ips_forwarder(n: int, service: str = "http",
                  sync_all: bool = False) -> tuple[Forwarder, IpsInspector]:
    """The bench member with an IPS of ``n`` signatures behind the inspection hook."""
    return inspected_forwarder(bench_rules(n, service), sync_all,
                               "auto" if service == "iccp" else None)


@dataclass
class Stream:
    """The frames of one TCP session: handshake, then the client's data (the server's
    ACK after every second segment)."""

    handshake: list[tuple[int, bytearray]]
    data: list[tuple[int, bytearray]]
    payload_bytes: int


def http_chunks(megabytes: float, rng: random.Random) -> list[bytes]:
    """An HTTP request, then ``megabytes`` of printable filler in SEG-byte segments."""
    filler = bytes(rng.randrange(32, 127) for _ in range(SEG * 32))
    chunks = [REQUEST]
    total = len(REQUEST)
    while total < megabytes * 1e6:
        off = (len(chunks) * 977) % (len(filler) - SEG)
        chunks.append(filler[off:off + SEG])
        total += SEG
    return chunks


def iccp_chunks(megabytes: float) -> list[bytes]:
    """The real client's COTP CR and association, then benign MMS reads of the
    measurements and writes of the setpoint (one PDU per segment), ``megabytes`` in all."""
    from inspection.iccp.frames import iccp_dt, mms_read, mms_write
    from lab.iccp.attack import ASSOCIATE, COTP_CR
    from lab.iccp.server import DOMAIN, POWER, SETPOINT

    cycle = []
    for i in range(1, 61):
        cycle.append(iccp_dt(mms_read(i, DOMAIN, POWER)) if i % 3 else
                     iccp_dt(mms_write(i, DOMAIN, SETPOINT, ("floating-point",
                                                              bytes(5)))))
    chunks = [COTP_CR, ASSOCIATE]
    total = len(COTP_CR) + len(ASSOCIATE)
    while total < megabytes * 1e6:
        c = cycle[len(chunks) % len(cycle)]
        chunks.append(c)
        total += len(c)
    return chunks


def build_stream(fwd: Forwarder, chunks: Sequence[bytes], dport: int) -> Stream:
    """Frames carrying ``chunks`` from c1 to sv1:``dport`` through ``fwd`` (the server
    side addressed to the NAT address it picks: the SYN is run through ``fwd`` first)."""
    out: Out = []
    syn = tcp_frame(True, SERVER, SPORT, dport, ISN_C, 0, 0x02)
    fwd.handle(0, bytearray(syn), 0.0, out)
    s = next(iter(fwd.sessions))
    nat_ip, nat_port = s.reply[2], s.reply[3]
    synack = tcp_frame(False, nat_ip, dport, nat_port, ISN_S, ISN_C + 1, 0x12)
    ack = tcp_frame(True, SERVER, SPORT, dport, ISN_C + 1, ISN_S + 1, 0x10)
    data: list[tuple[int, bytearray]] = []
    seq = ISN_C + 1
    for i, c in enumerate(chunks):
        data.append((0, tcp_frame(True, SERVER, SPORT, dport, seq & 0xFFFFFFFF,
                                  ISN_S + 1, 0x18, c)))
        seq += len(c)
        if i % 2 == 1:
            data.append((1, tcp_frame(False, nat_ip, dport, nat_port, ISN_S + 1,
                                      seq & 0xFFFFFFFF, 0x10)))
    return Stream([(1, synack), (0, ack)], data, sum(len(c) for c in chunks))


def run_forwarding(fwd: Forwarder, chunks: Sequence[bytes],
                   dport: int = DPORT) -> tuple[float, float]:
    """(MB/s of payload, kpps of all frames) of one session carrying ``chunks``."""
    stream = build_stream(fwd, chunks, dport)
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
def state_sizes(n: int, service: str = "http") -> tuple[int, int]:
    """FlowState.to_bytes() length idle (after the session's first data: an HTTP request,
    or the ICCP association and a read) and with a partial match pending (HTTP: the first
    content of signature 0's two-content chain seen; ICCP: the first half of the breaker
    write, split in the middle of its item name, as lab.iccp.attack sends it)."""
    eng = IpsEngine(RuleSet.compile(bench_rules(n, service)),
                    iccp="auto" if service == "iccp" else None)
    st = eng.new_flow("tcp", SPORT, ICCP_PORT if service == "iccp" else DPORT)
    eng.inspect(st, "client", ISN_C, b"", 0.0, 0x02)
    seq = ISN_C + 1
    if service == "iccp":
        from inspection.iccp.frames import iccp_dt, mms_read
        from lab.iccp.attack import ASSOCIATE, COTP_CR, breaker_write, item_split
        from lab.iccp.server import DOMAIN, POWER

        first = [COTP_CR, ASSOCIATE, iccp_dt(mms_read(1, DOMAIN, POWER))]
        pdu = breaker_write()
        pending = pdu[:item_split(pdu)]
    else:
        first = [REQUEST]
        pending = b"xx" + signatures(n, random.Random(n))[0].signature.contents[0].data
    for c in first:
        eng.inspect(st, "client", seq, c, 0.0)
        seq += len(c)
    idle = len(st.to_bytes())
    eng.inspect(st, "client", seq, pending, 0.0)
    if service == "http" and not st.partial:
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


@dataclass(frozen=True)
class Mode:
    name: str
    traffic: str         # "http" | "iccp"
    signatures: int      # 0: plain forwarding, no inspector
    sync_all: bool = False  # ips-session-sync all: the state serialized on every segment

    @property
    def label(self) -> str:
        if not self.signatures:
            return "forwarding only"
        if self.sync_all or self.traffic == "iccp":
            return "forwarding + IPS, state for sync"
        return "forwarding + IPS"


def modes_for(sizes: Sequence[int], iccp: bool = True) -> list[Mode]:
    out = [Mode("plain", "http", 0), *(Mode(f"ips-{n}", "http", n) for n in sizes),
           Mode("ips-100-sync-all", "http", 100, sync_all=True)]
    if iccp:
        out += [Mode("iccp-plain", "iccp", 0), *(Mode(f"iccp-ips-{n}", "iccp", n) for n in sizes)]
    return out


@dataclass
class BenchResult:
    modes: list[Mode]
    mbs: dict[str, Series]        # mode -> MB/s of payload
    kpps: dict[str, Series]       # mode -> thousand frames/s
    states: dict[str, tuple[int, int]]  # mode -> state bytes (idle, pending)
    cost: dict[str, list[SyncCost]]     # "without" / "with" EXT_IPS, one per run
    runs: int
    megabytes: dict[str, float]   # traffic -> MB per mode and run
    pending_state: int            # the EXT_IPS value of the "with" sync cost


def run_bench(runs: int, megabytes: float, sizes: Sequence[int] = SIZES,
              iccp_megabytes: float = 0.5,
              progress: Callable[[str], None] = lambda s: None) -> BenchResult:
    """Every figure ``runs`` times, the modes interleaved within each run."""
    modes = modes_for(sizes, iccp_megabytes > 0)
    mb = {"http": megabytes, "iccp": iccp_megabytes}
    mbs = {m.name: Series() for m in modes}
    kpps = {m.name: Series() for m in modes}
    for r in range(runs):
        chunks = {"http": http_chunks(megabytes, random.Random(r)),
                  "iccp": iccp_chunks(iccp_megabytes) if iccp_megabytes > 0 else []}
        for m in modes:
            progress(f"run {r + 1}/{runs}: {m.name}")
            dport = ICCP_PORT if m.traffic == "iccp" else DPORT
            if not m.signatures:
                a, b = run_forwarding(make_forwarder(), chunks[m.traffic], dport)
            else:
                fwd, insp = ips_forwarder(m.signatures, m.traffic, m.sync_all)
                a, b = run_forwarding(fwd, chunks[m.traffic], dport)
                scanned = insp.counters["ips_bytes"]
                if scanned < mb[m.traffic] * 1e6:  # the hook really ran the engine
                    raise BenchError(f"{m.name}: the engine scanned {scanned} bytes only")
            mbs[m.name].values.append(a)
            kpps[m.name].values.append(b)
    states = {m.name: state_sizes(m.signatures, m.traffic) for m in modes if m.signatures}
    pending = max(p for _, p in states.values())
    cost: dict[str, list[SyncCost]] = {"without": [], "with": []}
    for r in range(runs):
        progress(f"run {r + 1}/{runs}: sync records")
        cost["without"].append(sync_cost(None))
        cost["with"].append(sync_cost(bytes(pending)))
    return BenchResult(modes, mbs, kpps, states, cost, runs, mb, pending)


def render(res: BenchResult, console: Console) -> None:
    t = Table(title=f"IPS through one member (in-process Forwarder, one TCP session from c1 "
                    f"through NAT; HTTP: {SEG}-byte segments, {res.megabytes['http']:g} MB; "
                    f"ICCP: one MMS PDU per segment, {res.megabytes['iccp']:g} MB; "
                    f"{res.runs} runs: median (min-max))")
    for col in ("traffic", "mode", "signatures", "MB/s", "kpps", "of plain",
                "state idle B", "state pending B"):
        t.add_column(col, justify="left" if col in ("traffic", "mode") else "right")
    plain = {m.traffic: statistics.median(res.mbs[m.name].values) for m in res.modes
             if not m.signatures}
    for m in res.modes:
        idle, pend = res.states.get(m.name, (None, None))
        t.add_row(m.traffic.upper(), m.label, str(m.signatures or "-"),
                  res.mbs[m.name].cell(), res.kpps[m.name].cell(),
                  f"{statistics.median(res.mbs[m.name].values) / plain[m.traffic]:.0%}",
                  "-" if idle is None else str(idle), "-" if pend is None else str(pend))
    console.print(t)
    s = Table(title=f"Sync cost of IPS state (fgcp.syncrecord UPDATE of a NAT'd TCP session; "
                    f"EXT_IPS = the largest pending state, {res.pending_state} bytes)")
    for col in ("record", "bytes/record", "encode records/s", "decode records/s"):
        s.add_column(col, justify="left" if col == "record" else "right")
    for k, label in (("without", "without EXT_IPS"), ("with", "with EXT_IPS")):
        cs = res.cost[k]
        s.add_row(label, str(cs[0].record_bytes),
                  Series([c.encode_rps for c in cs]).cell("{:,.0f}"),
                  Series([c.decode_rps for c in cs]).cell("{:,.0f}"))
    console.print(s)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.ips_bench",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mb", type=float, default=8.0, help="HTTP payload MB per mode and run")
    p.add_argument("--iccp-mb", type=float, default=0.5,
                   help="ICCP payload MB per mode and run (0: no ICCP modes)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 130)
    try:
        res = run_bench(a.runs, a.mb, iccp_megabytes=a.iccp_mb,
                        progress=lambda s: console.log(s))
    except BenchError as e:
        console.print(f"[bold red]ips_bench: {e}[/bold red]")
        return 1
    render(res, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
