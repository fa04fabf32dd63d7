"""Traffic probes that measure a failover: TCP counter streams, UDP sequence
streams, ping and short TCP connections, run in lab hosts, reporting JSON.

CLI (one process per tool, single selector loop, no busy loop)::

    python -m lab.probes tcp-sink   --port 5001 --out sink.json [--duration S]
    python -m lab.probes tcp-source --dst IP --port 5001 --conns 200 --rate 100 --out src.json
    python -m lab.probes udp-sink   --port 5002 --out usink.json
    python -m lab.probes udp-source --dst IP --port 5002 --flows 1 --interval 0.01 --out usrc.json
    python -m lab.probes ping       --dst IP --interval 0.01 --out ping.json
    python -m lab.probes short-tcp  --dst IP --port 5001 --rate 20 --out short.json

Each tool stops on SIGTERM/SIGINT or after --duration and then writes its
report (atomically) to --out. The sinks write --ready-file once bound.
Python API: ``start_tcp_streams``, ``start_udp_streams``, ``start_ping``,
``start_short_tcp`` -> a handle whose ``stop()`` returns the merged reports.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, Self

from lab.gaps import Gap, GapTracker, gaps_above, max_gap, seq_stats

MSG = struct.Struct("!IQd")  # conn/flow id u32, counter u64, sender time f64 (CLOCK_REALTIME)
SHORT_FLAG = 0x8000_0000     # conn id bit: a short request the tcp-sink echoes back
REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_ERRORS = 10

StopCheck = Callable[[], bool]


class ProbeError(RuntimeError):
    """A probe could not start or its report could not be collected."""


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, str(e.errno)) if e.errno else type(e).__name__


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` atomically (tmp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def _touch(path: str | None) -> None:
    if path:
        Path(path).write_text(str(os.getpid()))


def _deadline(duration: float | None) -> float:
    return time.monotonic() + duration if duration else float("inf")


# --------------------------------------------------------------------------
# TCP sink
# --------------------------------------------------------------------------
@dataclass
class _SinkConn:
    sock: socket.socket
    peer: str
    accepted: float
    gaps: GapTracker
    buf: bytearray = field(default_factory=bytearray)
    conn_id: int | None = None
    short: bool = False
    expected: int = 0
    messages: int = 0
    nbytes: int = 0
    continuity_ok: bool = True
    lost: int = 0
    duplicated: int = 0
    errors: list[str] = field(default_factory=list)
    ended: str = "open"
    ended_at: float | None = None
    max_latency_ms: float = 0.0

    def error(self, text: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(text)

    def report(self, end: float) -> dict[str, Any]:
        g = self.gaps.report(end if self.ended == "open" else None)
        return {
            "id": self.conn_id, "peer": self.peer, "accepted": self.accepted,
            "bytes": self.nbytes, "messages": self.messages,
            "next_counter": self.expected,
            "first_arrival": g["first"], "last_arrival": g["last"],
            "max_gap_ms": g["max_gap_ms"], "max_gap": g["max_gap"], "gaps": g["gaps"],
            "trailing_gap": g["trailing_gap"],
            "continuity_ok": self.continuity_ok and not self.buf,
            "lost_messages": self.lost, "duplicated_messages": self.duplicated,
            "partial_bytes": len(self.buf),
            "ended": self.ended, "ended_at": self.ended_at,
            "max_latency_ms": round(self.max_latency_ms, 3),
            "errors": self.errors,
        }


def _sink_feed(c: _SinkConn, data: bytes, now: float) -> bytes:
    """Account ``data`` received on ``c`` at ``now``; returns bytes to echo."""
    c.buf += data
    c.nbytes += len(data)
    n = len(c.buf) // MSG.size
    if n == 0:
        return b""
    chunk = bytes(c.buf[: n * MSG.size])
    del c.buf[: n * MSG.size]
    if c.conn_id is None:
        c.conn_id = MSG.unpack_from(chunk)[0]
        c.short = bool(c.conn_id & SHORT_FLAG)
    if c.short:
        return chunk
    c.gaps.add(now)
    last_ts = 0.0
    for cid, ctr, ts in MSG.iter_unpack(chunk):
        c.messages += 1
        last_ts = ts
        if cid != c.conn_id:
            c.continuity_ok = False
            c.error(f"message {c.messages}: conn id {cid} != {c.conn_id}")
        if ctr != c.expected:
            c.continuity_ok = False
            if ctr > c.expected:
                c.lost += ctr - c.expected
                c.error(f"counter {ctr} after {c.expected - 1}: {ctr - c.expected} missing")
            else:
                c.duplicated += 1
                c.error(f"counter {ctr} after {c.expected - 1}: duplicate/backwards")
        c.expected = ctr + 1
    c.max_latency_ms = max(c.max_latency_ms, (now - last_ts) * 1000.0)
    return b""


def run_tcp_sink(
    port: int,
    bind: str = "0.0.0.0",
    duration: float | None = None,
    gap_threshold_ms: float = 100.0,
    bin_s: float = 0.1,
    ready_file: str | None = None,
    should_stop: StopCheck = lambda: False,
    drain_s: float = 5.0,
) -> dict[str, Any]:
    """Accept TCP streams, check each connection's counters; returns the report.
    Once ``should_stop()`` (or at ``duration``) it keeps reading up to
    ``drain_s`` until every stream has ended, so data still in flight when the
    sources closed is counted."""
    started = time.time()
    deadline = _deadline(duration)
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((bind, port))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    conns: list[_SinkConn] = []
    short_served = 0
    short_failed = 0
    bins: dict[int, int] = {}
    _touch(ready_file)

    def finish(c: _SinkConn, how: str, now: float, err: str = "") -> None:
        nonlocal short_served, short_failed
        c.ended, c.ended_at = how, now
        if err:
            c.error(err)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c.sock)
        c.sock.close()
        if c.short:
            conns.remove(c)
            if c.nbytes >= MSG.size:
                short_served += 1
            else:
                short_failed += 1

    drain_until: float | None = None
    try:
        while True:
            mono = time.monotonic()
            if drain_until is None and (should_stop() or mono >= deadline):
                drain_until = mono + drain_s
            if drain_until is not None and (
                mono >= drain_until or all(c.ended != "open" for c in conns if not c.short)
            ):
                break
            for key, _ in sel.select(timeout=0.1 if drain_until is None else 0.02):
                now = time.time()
                if key.data is None:
                    for _ in range(64):
                        try:
                            s, addr = lsock.accept()
                        except BlockingIOError:
                            break
                        s.setblocking(False)
                        c = _SinkConn(s, f"{addr[0]}:{addr[1]}", now,
                                      GapTracker(gap_threshold_ms))
                        conns.append(c)
                        sel.register(s, selectors.EVENT_READ, c)
                    continue
                c = key.data
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    finish(c, "reset", now)
                    continue
                except OSError as e:
                    finish(c, "error", now, f"recv: {_errname(e)}")
                    continue
                if not data:
                    finish(c, "eof", now)
                    continue
                before = c.messages
                echo = _sink_feed(c, data, now)
                if echo:
                    with contextlib.suppress(OSError):
                        c.sock.send(echo)
                elif c.messages > before:
                    b = int((now - started) // bin_s)
                    bins[b] = bins.get(b, 0) + c.messages - before
    finally:
        end = time.time()
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    long_conns = [c for c in conns if not c.short]
    return {
        "tool": "tcp-sink", "port": port, "started": started, "ended": end,
        "gap_threshold_ms": gap_threshold_ms,
        "connections": [c.report(end) for c in sorted(
            long_conns, key=lambda c: (c.conn_id is None, c.conn_id or 0))],
        "short_served": short_served, "short_failed": short_failed,
        "timeline": {"start": started, "bin_s": bin_s,
                     "bins": sorted([k, v] for k, v in bins.items())},
    }


# --------------------------------------------------------------------------
# TCP source
# --------------------------------------------------------------------------
@dataclass
class _SrcConn:
    cid: int
    sock: socket.socket
    started: float
    connect_deadline: float  # monotonic
    state: str = "connecting"  # connecting|open|connect_failed|reset|timeout|eof|error
    connected_at: float | None = None
    local: str = ""
    error: str = ""
    failed_at: float | None = None
    t0: float = 0.0             # monotonic time of counter 0
    counter: int = 0            # next counter to generate
    outbuf: bytearray = field(default_factory=bytearray)
    sent_bytes: int = 0
    acked: int = 0
    last_progress: float = 0.0  # monotonic
    max_stall_s: float = 0.0
    stalled_at: float | None = None

    def report(self) -> dict[str, Any]:
        return {
            "id": self.cid, "local": self.local, "connected": self.connected_at is not None,
            "connect_started": self.started, "connected_at": self.connected_at,
            "state": self.state, "error": self.error, "failed_at": self.failed_at,
            "messages_generated": self.counter,
            "messages_sent": self.sent_bytes // MSG.size,
            "bytes_sent": self.sent_bytes, "unsent_bytes": len(self.outbuf),
            "max_stall_s": round(self.max_stall_s, 3), "stalled_at": self.stalled_at,
        }


def _outq(sock: socket.socket) -> int:
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def run_tcp_source(
    dst: str,
    port: int,
    conns: int = 200,
    rate: float = 100.0,
    duration: float | None = None,
    id_base: int = 0,
    connect_timeout: float = 3.0,
    stall_timeout: float = 2.0,
    user_timeout_ms: int = 0,
    ready_file: str | None = None,
    should_stop: StopCheck = lambda: False,
    connect_rate: float = 1000.0,
) -> dict[str, Any]:
    """Open ``conns`` connections (paced at ``connect_rate``/s: no SYN burst)
    and stream counters at ``rate`` messages/s each; a failed connection
    stays dead. ``ready_file`` is written once
    every connection attempt has resolved (open or failed). Returns the report."""
    if rate <= 0 or conns <= 0:
        raise ProbeError("rate and conns must be positive")
    started = time.time()
    deadline = _deadline(duration)
    tick = max(1.0 / rate, 0.01)  # one wake-up per message interval, at most 100/s
    sel = selectors.DefaultSelector()
    cs: list[_SrcConn] = []
    per_tick = max(1, int(connect_rate * tick))

    def open_one(i: int) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if user_timeout_ms:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
        c = _SrcConn(id_base + i, s, time.time(), connect_deadline=time.monotonic() + connect_timeout)
        err = s.connect_ex((dst, port))
        if err not in (0, errno.EINPROGRESS):
            c.state, c.error, c.failed_at = "connect_failed", errno.errorcode.get(err, str(err)), time.time()
            s.close()
        else:
            sel.register(s, selectors.EVENT_WRITE, c)
        cs.append(c)

    def fail(c: _SrcConn, state: str, err: str) -> None:
        c.state, c.error, c.failed_at = state, err, time.time()
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c.sock)
        c.sock.close()

    def classify(e: OSError) -> str:
        if isinstance(e, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        if e.errno == errno.ETIMEDOUT:
            return "timeout"
        return "error"

    def flush(c: _SrcConn) -> None:
        while c.outbuf and c.state == "open":
            try:
                n = c.sock.send(c.outbuf)
            except BlockingIOError:
                return
            except OSError as e:
                fail(c, classify(e), f"send: {_errname(e)}")
                return
            del c.outbuf[:n]
            c.sent_bytes += n

    next_tick = time.monotonic()
    all_resolved = False
    try:
        while not should_stop() and time.monotonic() < deadline:
            timeout = max(0.0, next_tick - time.monotonic())
            for key, mask in sel.select(timeout=timeout):
                c = key.data
                if c.state == "connecting" and mask & selectors.EVENT_WRITE:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(c, "connect_failed", errno.errorcode.get(err, str(err)))
                        continue
                    c.state, c.connected_at = "open", time.time()
                    c.local = "{}:{}".format(*c.sock.getsockname())
                    c.t0 = c.last_progress = time.monotonic()
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                elif c.state == "open" and mask & selectors.EVENT_READ:
                    try:
                        data = c.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail(c, classify(e), f"recv: {_errname(e)}")
                        continue
                    if not data:
                        fail(c, "eof", "peer closed")
            now = time.monotonic()
            if now < next_tick:
                continue
            next_tick += tick
            if next_tick < now:  # fell behind (CPU starved): do not spin catching up
                next_tick = now + tick
            for i in range(len(cs), min(conns, len(cs) + per_tick)):
                open_one(i)
            for c in cs:
                if c.state == "connecting" and now > c.connect_deadline:
                    fail(c, "connect_failed", "timeout")
            if ready_file and not all_resolved:
                all_resolved = len(cs) == conns and all(c.state != "connecting" for c in cs)
                if all_resolved:
                    _touch(ready_file)
            for c in cs:
                if c.state != "open":
                    continue
                due = int((now - c.t0) * rate) + 1 - c.counter
                if due > 0:
                    wall = time.time()
                    c.outbuf += b"".join(MSG.pack(c.cid, c.counter + k, wall) for k in range(due))
                    c.counter += due
                flush(c)
                if c.state != "open":
                    continue
                try:
                    q = _outq(c.sock)
                except OSError:
                    q = 0
                acked = c.sent_bytes - q
                if q == 0 or acked > c.acked:
                    c.last_progress = now
                c.acked = acked
                stall = now - c.last_progress
                c.max_stall_s = max(c.max_stall_s, stall)
                if stall > stall_timeout and c.stalled_at is None:
                    c.stalled_at = time.time()
    finally:
        end = time.time()
        # graceful end: push what is queued (briefly), then FIN
        flush_deadline = time.monotonic() + 1.0
        for c in cs:
            if c.state == "open":
                while c.outbuf and c.state == "open" and time.monotonic() < flush_deadline:
                    flush(c)
                    if c.outbuf:
                        time.sleep(0.01)
        for c in cs:
            if c.state in ("open", "connecting"):
                with contextlib.suppress(OSError):
                    c.sock.shutdown(socket.SHUT_WR)
                c.sock.close()
        sel.close()
    reports = [c.report() for c in cs]
    return {
        "tool": "tcp-source", "dst": dst, "port": port, "rate": rate,
        "started": started, "ended": end,
        "connections": reports,
        "connected": sum(1 for r in reports if r["connected"]),
        "open_at_end": sum(1 for r in reports if r["state"] == "open"),
    }


# --------------------------------------------------------------------------
# UDP
# --------------------------------------------------------------------------
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
    deadline = _deadline(duration)
    skipset = set(skip)
    pad = b"\0" * max(0, size - MSG.size)
    socks = []
    stats = []
    for i in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect((dst, port))
        socks.append(s)
        stats.append({"id": id_base + i, "local": "{}:{}".format(*s.getsockname()), "sent": 0,
                      "skipped": 0, "next_seq": 0, "errors": {}, "first_error_at": None})
    t0 = time.monotonic()
    try:
        while not should_stop() and time.monotonic() < deadline:
            now = time.monotonic()
            target = int((now - t0) / interval) + 1
            for s, st in zip(socks, stats, strict=True):
                while st["next_seq"] < target:
                    seq = st["next_seq"]
                    st["next_seq"] += 1
                    if seq in skipset:
                        st["skipped"] += 1
                        continue
                    try:
                        s.send(MSG.pack(st["id"], seq, time.time()) + pad)
                        st["sent"] += 1
                    except OSError as e:
                        name = _errname(e)
                        st["errors"][name] = st["errors"].get(name, 0) + 1
                        if st["first_error_at"] is None:
                            st["first_error_at"] = time.time()
            time.sleep(max(0.0, t0 + target * interval - time.monotonic()))
    finally:
        for s in socks:
            s.close()
    return {"tool": "udp-source", "dst": dst, "port": port, "interval": interval,
            "started": started, "ended": time.time(), "flows": stats}


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
    deadline = _deadline(duration)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((bind, port))
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    flows: dict[int, dict[str, Any]] = {}
    malformed = 0
    _touch(ready_file)
    drain_until: float | None = None
    try:
        while True:
            mono = time.monotonic()
            if drain_until is None and (should_stop() or mono >= deadline):
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
                    f = flows[fid] = {"peers": set(), "seqs": [],
                                      "gaps": GapTracker(gap_threshold_ms), "max_latency_ms": 0.0}
                f["peers"].add(f"{addr[0]}:{addr[1]}")
                f["seqs"].append(seq)
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
            "max_latency_ms": round(f["max_latency_ms"], 3),
        })
    return {"tool": "udp-sink", "port": port, "started": started, "ended": end,
            "gap_threshold_ms": gap_threshold_ms, "malformed": malformed, "flows": out}


# --------------------------------------------------------------------------
# ping (iputils)
# --------------------------------------------------------------------------
_PING_REPLY = re.compile(
    r"^\[(?P<ts>\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(?P<seq>\d+)"
    r"(?: ttl=\d+)?(?: time=(?P<rtt>[\d.]+) ms)?(?P<dup> \(DUP!\))?"
)
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping_output(
    text: str, gap_threshold_ms: float = 100.0, end: float | None = None
) -> dict[str, Any]:
    """Parse ``ping -D`` output: replies (receiver timestamps, seq, rtt),
    loss, duplicates, gaps between replies."""
    times: list[float] = []
    seqs: list[int] = []
    rtts: list[float] = []
    offset = 0
    prev = -1
    for line in text.splitlines():
        m = _PING_REPLY.match(line.strip())
        if not m:
            continue
        seq = int(m["seq"]) + offset
        if seq < prev - 32768:  # icmp_seq wrapped at 65536
            offset += 65536
            seq += 65536
        prev = seq
        seqs.append(seq)
        if not m["dup"]:
            times.append(float(m["ts"]))
        if m["rtt"]:
            rtts.append(float(m["rtt"]))
    sm = _PING_SUMMARY.search(text)
    transmitted = int(sm.group(1)) if sm else None
    first = min(seqs) if seqs else 1
    st = seq_stats(seqs, first=1 if first >= 1 else 0, sent=transmitted)
    times.sort()
    mg = max_gap(times)
    gaps = gaps_above(times, gap_threshold_ms)
    tail = None
    if end is not None and times and (end - times[-1]) * 1000 > gap_threshold_ms:
        tail = Gap(times[-1], end, resumed=False)
    return {
        "transmitted": transmitted, "received": st.unique, "duplicates": st.duplicates,
        "reordered": st.reordered, "lost": st.lost, "missing": [list(r) for r in st.missing],
        "first_reply": times[0] if times else None, "last_reply": times[-1] if times else None,
        "max_gap_ms": round(mg.duration_ms, 3) if mg else 0.0,
        "max_gap": mg.to_dict() if mg else None,
        "gaps": [g.to_dict() for g in gaps],
        "trailing_gap": tail.to_dict() if tail else None,
        "max_rtt_ms": max(rtts) if rtts else None,
    }


def run_ping(
    dst: str,
    interval: float = 0.01,
    duration: float | None = None,
    gap_threshold_ms: float = 100.0,
    ping: str = "ping",
    should_stop: StopCheck = lambda: False,
) -> dict[str, Any]:
    """Run iputils ``ping -D -n -i INTERVAL -W 1 DST`` until stopped; parse it."""
    if shutil.which(ping) is None:
        raise ProbeError(f"{ping} not found")
    started = time.time()
    deadline = _deadline(duration)
    cmd = [ping, "-D", "-n", "-i", str(interval), "-W", "1", dst]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    chunks: list[bytes] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)

    def drain() -> None:
        with contextlib.suppress(BlockingIOError, TypeError):
            while data := proc.stdout.read(65536):  # type: ignore[union-attr]
                chunks.append(data)

    try:
        while not should_stop() and time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=0.1):
                drain()
    finally:
        end = time.time()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # ping prints its summary on SIGINT
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.set_blocking(proc.stdout.fileno(), True)
        chunks.append(proc.stdout.read())
        sel.close()
        proc.stdout.close()
    text = b"".join(chunks).decode(errors="replace")
    rep = parse_ping_output(text, gap_threshold_ms, end)
    tail = text.strip().splitlines()[-3:]
    return {"tool": "ping", "dst": dst, "interval": interval, "started": started,
            "ended": end, "exit_code": proc.returncode, **rep, "output_tail": tail}


# --------------------------------------------------------------------------
# short TCP connections
# --------------------------------------------------------------------------
@dataclass
class _Attempt:
    n: int
    sock: socket.socket
    start: float
    mono: float
    stage: str = "connect"  # connect|reply
    got: bytes = b""


def failure_windows(results: Sequence[dict[str, Any]], end: float) -> list[Gap]:
    """Runs of consecutive failed attempts (ordered by start) as windows from
    the first failed attempt's start to the next successful attempt's start
    (``resumed`` False when no attempt succeeded afterwards: ends at ``end``)."""
    out: list[Gap] = []
    first_fail: float | None = None
    for r in results:
        if r["error"] == "unfinished":
            continue
        if not r["ok"] and first_fail is None:
            first_fail = r["start"]
        elif r["ok"] and first_fail is not None:
            out.append(Gap(first_fail, r["start"]))
            first_fail = None
    if first_fail is not None:
        out.append(Gap(first_fail, end, resumed=False))
    return out


def run_short_tcp(
    dst: str,
    port: int,
    rate: float = 20.0,
    duration: float | None = None,
    timeout: float = 1.0,
    should_stop: StopCheck = lambda: False,
) -> dict[str, Any]:
    """Every 1/``rate`` s: connect, send one request, await the echo, close.
    Records each attempt's outcome (ok / error) with timestamps."""
    if rate <= 0:
        raise ProbeError("rate must be positive")
    started = time.time()
    deadline = _deadline(duration)
    sel = selectors.DefaultSelector()
    live: dict[int, _Attempt] = {}
    results: list[dict[str, Any]] = []
    n = 0
    t0 = time.monotonic()

    def done(a: _Attempt, ok: bool, err: str = "") -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(a.sock)
        a.sock.close()
        live.pop(a.n, None)
        results.append({"n": a.n, "start": a.start, "end": time.time(), "ok": ok,
                        "error": err,
                        "latency_ms": round((time.monotonic() - a.mono) * 1000, 3)})

    try:
        while not should_stop() and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= t0 + n / rate:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                a = _Attempt(n, s, time.time(), now)
                n += 1
                err = s.connect_ex((dst, port))
                live[a.n] = a
                if err not in (0, errno.EINPROGRESS):
                    done(a, False, "connect " + errno.errorcode.get(err, str(err)))
                else:
                    sel.register(s, selectors.EVENT_WRITE, a)
            for a in list(live.values()):
                if now - a.mono > timeout:
                    done(a, False, f"{a.stage} timeout")
            wait = max(0.0, min(t0 + n / rate - time.monotonic(), 0.05))
            for key, _ in sel.select(timeout=wait):
                a = key.data
                if a.n not in live:
                    continue
                try:
                    if a.stage == "connect":
                        err = a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            done(a, False, "connect " + errno.errorcode.get(err, str(err)))
                            continue
                        a.sock.send(MSG.pack(SHORT_FLAG | (a.n & 0x7FFF_FFFF), a.n, time.time()))
                        a.stage = "reply"
                        sel.modify(a.sock, selectors.EVENT_READ, a)
                    else:
                        data = a.sock.recv(256)
                        if not data:
                            done(a, False, "reply eof")
                            continue
                        a.got += data
                        if len(a.got) >= MSG.size:
                            done(a, True)
                except BlockingIOError:
                    continue
                except OSError as e:
                    done(a, False, f"{a.stage} {_errname(e)}")
    finally:
        for a in list(live.values()):
            done(a, False, "unfinished")
        sel.close()
    results.sort(key=lambda r: r["n"])
    ok_starts = [r["start"] for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"] and r["error"] != "unfinished"]
    end = time.time()
    outage = failure_windows(results, end)
    return {
        "tool": "short-tcp", "dst": dst, "port": port, "rate": rate, "timeout": timeout,
        "started": started, "ended": end,
        "attempts": len(results), "ok": len(ok_starts), "failed": len(failed),
        "first_failure": min((r["start"] for r in failed), default=None),
        "last_failure": max((r["start"] for r in failed), default=None),
        "failure_windows": [g.to_dict() for g in outage],
        "max_failure_window_ms": round(max((g.duration_ms for g in outage), default=0.0), 3),
        "results": results,
    }


# --------------------------------------------------------------------------
# Python API: start probes in lab hosts, stop them, collect the reports
# --------------------------------------------------------------------------
class HostLike(Protocol):
    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]: ...
    def IP(self) -> str: ...


class LabLike(Protocol):
    def host(self, name: str) -> Any: ...


class LoopbackHost:
    """A stand-in for a Mininet host: runs commands locally, IP 127.0.0.1."""

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, **kwargs)

    def IP(self) -> str:
        return "127.0.0.1"


class LoopbackLab:
    """A stand-in for LabNetwork whose every host is this machine (tests)."""

    def host(self, name: str) -> LoopbackHost:
        return LoopbackHost()


@dataclass
class _Proc:
    role: str
    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    logf: IO[bytes]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class ProbeHandle:
    """Probe processes started in lab hosts. ``stop()`` stops them (clients
    first, so sinks see the clean end), reads their JSON reports and returns
    ``merge(reports)``. Also a context manager; always kills what it started."""

    def __init__(self, kind: str, workdir: str | Path | None = None,
                 python: str = sys.executable) -> None:
        self.kind = kind
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"probe-{kind}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.python = python
        self.procs: list[_Proc] = []
        self.result: dict[str, Any] | None = None
        self.merge: Callable[[dict[str, dict[str, Any]]], dict[str, Any]] = lambda r: r

    def start(self, host: HostLike, role: str, tool: str, args: list[str],
              ready_timeout: float = 10.0, wait_ready: bool = False) -> None:
        out = self.dir / f"{role}.json"
        log = self.dir / f"{role}.log"
        cmd = [self.python, "-m", "lab.probes", tool, "--out", str(out),
               "--die-with-parent", *args]
        ready = self.dir / f"{role}.ready"
        if wait_ready:
            cmd += ["--ready-file", str(ready)]
        logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        proc = host.popen(cmd, cwd=str(REPO_ROOT), env=_env(), stdout=logf,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(_Proc(role, proc, out, log, logf))
        if wait_ready:
            limit = time.monotonic() + ready_timeout
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > limit:
                    self.stop(collect=False)
                    raise ProbeError(f"{role} ({tool}) did not start: {self._log_tail(log)}")
                time.sleep(0.02)

    @staticmethod
    def _log_tail(log: Path) -> str:
        try:
            return log.read_text(errors="replace").strip()[-500:] or "(no output)"
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return any(p.proc.poll() is None for p in self.procs)

    def wait(self, timeout: float) -> bool:
        """Wait for every process to end on its own (``--duration``)."""
        limit = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > limit:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 10.0, collect: bool = True) -> dict[str, Any]:
        """Stop (SIGTERM, then SIGKILL after ``timeout``) the clients first,
        then the sinks (which drain what is in flight before reporting).
        Returns the merged result (also kept in ``self.result``)."""
        try:
            clients = [p for p in self.procs if not p.role.endswith("sink")]
            sinks = [p for p in self.procs if p.role.endswith("sink")]
            for group in (clients, sinks):
                for p in group:
                    if p.proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            p.proc.send_signal(signal.SIGTERM)
                for p in group:
                    try:
                        p.proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        p.proc.kill()
                        p.proc.wait()
        finally:
            for p in self.procs:
                if p.proc.poll() is None:
                    p.proc.kill()
                    p.proc.wait()
                p.logf.close()
        if not collect:
            return {}
        if self.result is not None:
            return self.result
        reports: dict[str, dict[str, Any]] = {}
        missing = []
        for p in self.procs:
            try:
                reports[p.role] = json.loads(p.out.read_text())
            except (OSError, json.JSONDecodeError):
                missing.append(f"{p.role} (exit {p.proc.returncode}): {self._log_tail(p.log)}")
        if missing:
            raise ProbeError("no report from " + "; ".join(missing))
        self.result = self.merge(reports)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.result is None:
            self.stop(collect=exc[0] is None)


def merge_tcp(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Join tcp-source and tcp-sink reports per connection id."""
    src, sink = reports["source"], reports["sink"]
    by_id = {c["id"]: c for c in sink["connections"] if c["id"] is not None}
    rows = []
    for s in src["connections"]:
        k = by_id.get(s["id"])
        delivered = k["messages"] if k else 0
        survived = (s["connected"] and s["state"] == "open" and k is not None
                    and k["continuity_ok"] and k["ended"] in ("eof", "open")
                    and delivered == s["messages_sent"])
        rows.append({
            "id": s["id"], "connected": s["connected"], "survived": survived,
            "connect_ms": (round((s["connected_at"] - s["connect_started"]) * 1000, 3)
                           if s["connected"] else None),
            "source_state": s["state"], "source_error": s["error"], "failed_at": s["failed_at"],
            "sink_end": k["ended"] if k else None,
            "continuity_ok": k["continuity_ok"] if k else False,
            "messages_sent": s["messages_sent"], "messages_received": delivered,
            "undelivered_messages": s["messages_sent"] - delivered,
            "lost_messages": k["lost_messages"] if k else 0,
            "duplicated_messages": k["duplicated_messages"] if k else 0,
            "bytes_sent": s["bytes_sent"], "bytes_received": k["bytes"] if k else 0,
            "max_gap_ms": k["max_gap_ms"] if k else None,
            "max_gap": k["max_gap"] if k else None,
            "gaps": k["gaps"] if k else [],
            "max_stall_s": s["max_stall_s"],
        })
    gaps = [r["max_gap_ms"] for r in rows if r["max_gap_ms"] is not None]
    summary = {
        "conns": len(rows),
        "connected": sum(r["connected"] for r in rows),
        "survived": sum(r["survived"] for r in rows),
        "reset": sum(1 for r in rows if r["source_state"] == "reset" or r["sink_end"] == "reset"),
        "continuity_failures": sum(1 for r in rows if r["connected"] and not r["continuity_ok"]),
        "max_gap_ms": max(gaps, default=None),
    }
    return {"kind": "tcp", "summary": summary, "connections": rows,
            "source": src, "sink": sink}


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
            "send_errors": s["errors"],
        })
    return {"kind": "udp", "flows": rows, "source": src, "sink": sink,
            "summary": {"flows": len(rows), "lost": sum(r["lost"] for r in rows),
                        "max_gap_ms": max((r["max_gap_ms"] or 0 for r in rows), default=None)}}


def stop_all(handles: dict[str, ProbeHandle], timeout: float = 10.0) -> dict[str, Any]:
    """Stop every handle (even when one fails); returns {name: result}.
    Raises ProbeError naming the probes whose reports are missing."""
    results: dict[str, Any] = {}
    errors = []
    for name, h in handles.items():
        try:
            results[name] = h.stop(timeout)
        except ProbeError as e:
            errors.append(f"{name}: {e}")
    if errors:
        raise ProbeError("; ".join(errors))
    return results


def _server_ip(lab: LabLike, server: str, server_ip: str | None) -> str:
    return server_ip or lab.host(server).IP()


def start_tcp_streams(
    lab: LabLike, client: str = "c1", server: str = "sv1", conns: int = 200,
    rate: float = 100.0, duration: float | None = None, port: int = 5001,
    server_ip: str | None = None, gap_threshold_ms: float = 100.0,
    stall_timeout: float = 2.0, connect_timeout: float = 3.0,
    wait_connected: bool = True, workdir: str | Path | None = None,
) -> ProbeHandle:
    """tcp-sink on ``server`` + tcp-source on ``client``; ``stop()`` -> merge_tcp.
    With ``wait_connected`` it returns once every connection is open (or has
    failed after ``connect_timeout``), so a fault injected next hits them all."""
    h = ProbeHandle("tcp", workdir)
    h.merge = merge_tcp
    try:
        h.start(lab.host(server), "sink", "tcp-sink",
                ["--port", str(port), "--gap-threshold-ms", str(gap_threshold_ms)],
                wait_ready=True)
        args = ["--dst", _server_ip(lab, server, server_ip), "--port", str(port),
                "--conns", str(conns), "--rate", str(rate),
                "--stall-timeout", str(stall_timeout),
                "--connect-timeout", str(connect_timeout)]
        if duration:
            args += ["--duration", str(duration)]
        h.start(lab.host(client), "source", "tcp-source", args,
                ready_timeout=connect_timeout + 10, wait_ready=wait_connected)
    except BaseException:
        h.stop(collect=False)
        raise
    return h


def start_udp_streams(
    lab: LabLike, client: str = "c1", server: str = "sv1", flows: int = 1,
    interval: float = 0.01, duration: float | None = None, port: int = 5002,
    server_ip: str | None = None, gap_threshold_ms: float = 100.0,
    skip: Sequence[int] = (), workdir: str | Path | None = None,
) -> ProbeHandle:
    """udp-sink on ``server`` + udp-source on ``client``; ``stop()`` -> merge_udp."""
    h = ProbeHandle("udp", workdir)
    h.merge = merge_udp
    try:
        h.start(lab.host(server), "sink", "udp-sink",
                ["--port", str(port), "--gap-threshold-ms", str(gap_threshold_ms)],
                wait_ready=True)
        args = ["--dst", _server_ip(lab, server, server_ip), "--port", str(port),
                "--flows", str(flows), "--interval", str(interval)]
        if duration:
            args += ["--duration", str(duration)]
        if skip:
            args += ["--skip", ",".join(map(str, skip))]
        h.start(lab.host(client), "source", "udp-source", args)
    except BaseException:
        h.stop(collect=False)
        raise
    return h


def start_ping(
    lab: LabLike, client: str = "c1", server: str = "sv1", interval: float = 0.01,
    duration: float | None = None, server_ip: str | None = None,
    gap_threshold_ms: float = 100.0, workdir: str | Path | None = None,
) -> ProbeHandle:
    """iputils ping from ``client`` to ``server``; ``stop()`` -> ping report."""
    h = ProbeHandle("ping", workdir)
    h.merge = lambda r: {"kind": "ping", **r["ping"]}
    args = ["--dst", _server_ip(lab, server, server_ip), "--interval", str(interval),
            "--gap-threshold-ms", str(gap_threshold_ms)]
    if duration:
        args += ["--duration", str(duration)]
    h.start(lab.host(client), "ping", "ping", args)
    return h


def start_short_tcp(
    lab: LabLike, client: str = "c1", server: str = "sv1", rate: float = 20.0,
    duration: float | None = None, port: int = 5003, timeout: float = 1.0,
    server_ip: str | None = None, workdir: str | Path | None = None,
) -> ProbeHandle:
    """A tcp-sink (echo for short requests) on ``server`` + short-tcp on
    ``client``; ``stop()`` -> {"kind": "short-tcp", ...client report, "served"}."""
    h = ProbeHandle("short", workdir)
    h.merge = lambda r: {"kind": "short-tcp", **r["client"],
                         "served": r["sink"]["short_served"]}
    try:
        h.start(lab.host(server), "sink", "tcp-sink", ["--port", str(port)], wait_ready=True)
        args = ["--dst", _server_ip(lab, server, server_ip), "--port", str(port),
                "--rate", str(rate), "--timeout", str(timeout)]
        if duration:
            args += ["--duration", str(duration)]
        h.start(lab.host(client), "client", "short-tcp", args)
    except BaseException:
        h.stop(collect=False)
        raise
    return h


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGTERM this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.probes", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="tool", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, help="JSON report path")
        sp.add_argument("--die-with-parent", action="store_true",
                        help="stop (and report) when the starting process dies")
        sp.add_argument("--duration", type=float, default=None,
                        help="stop after S seconds (default: until SIGTERM/SIGINT)")

    sp = sub.add_parser("tcp-sink", help="accept TCP counter streams, check continuity")
    common(sp)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--bind", default="0.0.0.0")
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)
    sp.add_argument("--bin", type=float, default=0.1, help="timeline bin (s)")
    sp.add_argument("--drain", type=float, default=5.0,
                    help="after the stop, read on up to S s until every stream ended")
    sp.add_argument("--ready-file")

    sp = sub.add_parser("tcp-source", help="N long-lived TCP counter streams")
    common(sp)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--conns", type=int, default=200)
    sp.add_argument("--rate", type=float, default=100.0, help="messages/s per connection")
    sp.add_argument("--id-base", type=int, default=0)
    sp.add_argument("--connect-timeout", type=float, default=3.0)
    sp.add_argument("--stall-timeout", type=float, default=2.0,
                    help="unacked data without progress for longer is reported as a stall")
    sp.add_argument("--user-timeout-ms", type=int, default=0,
                    help="TCP_USER_TIMEOUT: the kernel kills a stalled connection (ETIMEDOUT)")
    sp.add_argument("--ready-file", help="written once every connect has resolved")
    sp.add_argument("--connect-rate", type=float, default=1000.0,
                    help="new connections per second (paced, no SYN burst)")

    sp = sub.add_parser("udp-sink", help="receive datagram streams, count loss and gaps")
    common(sp)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--bind", default="0.0.0.0")
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)
    sp.add_argument("--ready-file")

    sp = sub.add_parser("udp-source", help="datagram streams with sequence numbers")
    common(sp)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--flows", type=int, default=1)
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--size", type=int, default=MSG.size)
    sp.add_argument("--id-base", type=int, default=0)
    sp.add_argument("--skip", default="", help="test knob: seqs not sent, e.g. 5,6,7")

    sp = sub.add_parser("ping", help="iputils ping -D, parsed")
    common(sp)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)

    sp = sub.add_parser("short-tcp", help="short connections: connect, request, reply, close")
    common(sp)
    sp.add_argument("--dst", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--rate", type=float, default=20.0, help="attempts/s")
    sp.add_argument("--timeout", type=float, default=1.0, help="per attempt (s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if a.die_with_parent:
        _die_with_parent()
    should_stop = lambda: stop["flag"]
    try:
        if a.tool == "tcp-sink":
            rep = run_tcp_sink(a.port, a.bind, a.duration, a.gap_threshold_ms, a.bin,
                               a.ready_file, should_stop, a.drain)
        elif a.tool == "tcp-source":
            rep = run_tcp_source(a.dst, a.port, a.conns, a.rate, a.duration, a.id_base,
                                 a.connect_timeout, a.stall_timeout, a.user_timeout_ms,
                                 a.ready_file, should_stop, a.connect_rate)
        elif a.tool == "udp-sink":
            rep = run_udp_sink(a.port, a.bind, a.duration, a.gap_threshold_ms,
                               a.ready_file, should_stop)
        elif a.tool == "udp-source":
            skip = [int(x) for x in a.skip.split(",") if x.strip()]
            rep = run_udp_source(a.dst, a.port, a.flows, a.interval, a.duration, a.size,
                                 a.id_base, skip, should_stop)
        elif a.tool == "ping":
            rep = run_ping(a.dst, a.interval, a.duration, a.gap_threshold_ms,
                           should_stop=should_stop)
        else:
            rep = run_short_tcp(a.dst, a.port, a.rate, a.duration, a.timeout, should_stop)
    except (ProbeError, OSError) as e:
        print(f"{a.tool}: {e}", file=sys.stderr)
        return 1
    write_report(a.out, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
