"""UDP sequence streams: the udp-source and udp-sink probe processes (loss,
duplicates, reordering, gaps per flow), the join of their reports, and the starter.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.gaps import GapTracker, loss_windows, seq_stats
from lab.probes.common import (
    MSG,
    ProbeError,
    StopCheck,
    Tool,
    deadline,
    errname,
    listen_args,
    target_args,
    touch,
)
from lab.probes.hosts import LabLike, Launch, ProbeHandle, duration_args, start_probes, target_ip


@dataclass
class _SourceFlow:
    """One udp-source stream's counters (a ``flows`` row of the report)."""

    id: int
    local: str
    sent: int = 0
    skipped: int = 0
    next_seq: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_error_at: float | None = None


def run_udp_source(
    dst: str,
    port: int,
    flows: int = 1,
    interval: float = 0.01,
    duration: float | None = None,
    size: int = MSG.size,
    id_base: int = 0,
    skip: Sequence[int] = (),
    should_stop: StopCheck = lambda: False,
) -> dict[str, Any]:
    """Send ``flows`` datagram streams (own source port each), one datagram
    per ``interval``; sequence numbers in ``skip`` are not sent (test knob)."""
    if interval <= 0 or flows <= 0:
        raise ProbeError("interval and flows must be positive")
    started = time.time()
    until = deadline(duration)
    skipset = set(skip)
    pad = b"\0" * max(0, size - MSG.size)
    socks = []
    stats: list[_SourceFlow] = []
    for i in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect((dst, port))
        socks.append(s)
        stats.append(_SourceFlow(id_base + i, "{}:{}".format(*s.getsockname())))
    t0 = time.monotonic()
    try:
        while not should_stop() and time.monotonic() < until:
            now = time.monotonic()
            target = int((now - t0) / interval) + 1
            for s, st in zip(socks, stats, strict=True):
                while st.next_seq < target:
                    seq = st.next_seq
                    st.next_seq += 1
                    if seq in skipset:
                        st.skipped += 1
                        continue
                    try:
                        s.send(MSG.pack(st.id, seq, time.time()) + pad)
                        st.sent += 1
                    except OSError as e:
                        name = errname(e)
                        st.errors[name] = st.errors.get(name, 0) + 1
                        if st.first_error_at is None:
                            st.first_error_at = time.time()
            time.sleep(max(0.0, t0 + target * interval - time.monotonic()))
    finally:
        for s in socks:
            s.close()
    return {"tool": "udp-source", "dst": dst, "port": port, "interval": interval,
            "started": started, "ended": time.time(), "flows": [asdict(st) for st in stats]}


def run_udp_sink(
    port: int,
    bind: str = "0.0.0.0",
    duration: float | None = None,
    gap_threshold_ms: float = 100.0,
    ready_file: str | None = None,
    should_stop: StopCheck = lambda: False,
    drain_s: float = 0.3,
) -> dict[str, Any]:
    """Receive datagram streams; per flow: loss, duplicates, reordering, gaps
    (reads on for ``drain_s`` after the stop request)."""
    started = time.time()
    until = deadline(duration)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((bind, port))
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    flows: dict[int, dict[str, Any]] = {}
    malformed = 0
    touch(ready_file)
    drain_until: float | None = None
    try:
        while True:
            mono = time.monotonic()
            if drain_until is None and (should_stop() or mono >= until):
                drain_until = mono + drain_s  # datagrams still in flight
            if drain_until is not None and mono >= drain_until:
                break
            if not sel.select(timeout=0.1 if drain_until is None else 0.02):
                continue
            for _ in range(256):
                try:
                    data, addr = s.recvfrom(65536)
                except BlockingIOError:
                    break
                now = time.time()
                if len(data) < MSG.size:
                    malformed += 1
                    continue
                fid, seq, ts = MSG.unpack_from(data)
                f = flows.get(fid)
                if f is None:
                    f = flows[fid] = {"peers": set(), "seqs": [], "sent_at": {},
                                      "gaps": GapTracker(gap_threshold_ms), "max_latency_ms": 0.0}
                f["peers"].add(f"{addr[0]}:{addr[1]}")
                f["seqs"].append(seq)
                f["sent_at"].setdefault(seq, ts)
                f["gaps"].add(now)
                f["max_latency_ms"] = max(f["max_latency_ms"], (now - ts) * 1000.0)
    finally:
        end = time.time()
        sel.close()
        s.close()
    out = []
    for fid in sorted(flows):
        f = flows[fid]
        st = seq_stats(f["seqs"])
        g = f["gaps"].report(end)
        out.append({
            "id": fid, "peers": sorted(f["peers"]), **st.to_dict(),
            "first_arrival": g["first"], "last_arrival": g["last"],
            "max_gap_ms": g["max_gap_ms"], "max_gap": g["max_gap"], "gaps": g["gaps"],
            "trailing_gap": g["trailing_gap"],
            "loss_windows": [w.to_dict() for w in loss_windows(f["sent_at"])][:1000],
            "max_latency_ms": round(f["max_latency_ms"], 3),
        })
    return {"tool": "udp-sink", "port": port, "started": started, "ended": end,
            "gap_threshold_ms": gap_threshold_ms, "malformed": malformed, "flows": out}


def merge_udp(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Join udp-source and udp-sink reports per flow (loss counts trailing loss)."""
    src, sink = reports["source"], reports["sink"]
    by_id = {f["id"]: f for f in sink["flows"]}
    rows = []
    for s in src["flows"]:
        k = by_id.get(s["id"])
        unique = k["unique"] if k else 0
        rows.append({
            "id": s["id"], "sent": s["sent"], "skipped": s["skipped"],
            "received": unique, "lost": max(0, s["sent"] - unique),
            "duplicates": k["duplicates"] if k else 0,
            "reordered": k["reordered"] if k else 0,
            "missing": k["missing"] if k else [],
            "max_gap_ms": k["max_gap_ms"] if k else None,
            "max_gap": k["max_gap"] if k else None,
            "gaps": k["gaps"] if k else [],
            "loss_windows": k.get("loss_windows", []) if k else [],
            "send_errors": s["errors"],
        })
    return {"kind": "udp", "flows": rows, "source": src, "sink": sink,
            "summary": {"flows": len(rows), "lost": sum(r["lost"] for r in rows),
                        "max_gap_ms": max((r["max_gap_ms"] or 0 for r in rows), default=None)}}


def start_udp_streams(
    lab: LabLike, client: str = "c1", server: str = "sv1", flows: int = 1,
    interval: float = 0.01, duration: float | None = None, port: int = 5002,
    server_ip: str | None = None, gap_threshold_ms: float = 100.0,
    skip: Sequence[int] = (), workdir: str | Path | None = None,
) -> ProbeHandle:
    """udp-sink on ``server`` + udp-source on ``client``; ``stop()`` -> merge_udp."""
    args = ["--dst", target_ip(lab, server, server_ip), "--port", str(port),
            "--flows", str(flows), "--interval", str(interval), *duration_args(duration)]
    if skip:
        args += ["--skip", ",".join(map(str, skip))]
    return start_probes("udp", merge_udp, [
        Launch(lab.host(server), "sink", "udp-sink",
               ["--port", str(port), "--gap-threshold-ms", str(gap_threshold_ms)],
               wait_ready=True),
        Launch(lab.host(client), "source", "udp-source", args),
    ], workdir)


def _sink_args(sp: argparse.ArgumentParser) -> None:
    listen_args(sp)
    sp.add_argument("--ready-file")


def _run_sink(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    return run_udp_sink(a.port, a.bind, a.duration, a.gap_threshold_ms,
                        a.ready_file, should_stop)


def _source_args(sp: argparse.ArgumentParser) -> None:
    target_args(sp)
    sp.add_argument("--flows", type=int, default=1)
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--size", type=int, default=MSG.size)
    sp.add_argument("--id-base", type=int, default=0)
    sp.add_argument("--skip", default="", help="test knob: seqs not sent, e.g. 5,6,7")


def _run_source(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    skip = [int(x) for x in a.skip.split(",") if x.strip()]
    return run_udp_source(a.dst, a.port, a.flows, a.interval, a.duration, a.size,
                          a.id_base, skip, should_stop)


TOOLS = (
    Tool("udp-sink", "receive datagram streams, count loss and gaps", _sink_args, _run_sink),
    Tool("udp-source", "datagram streams with sequence numbers", _source_args, _run_source),
)
