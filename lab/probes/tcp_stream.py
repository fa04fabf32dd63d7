"""Long-lived TCP counter streams: the tcp-source probe process (N paced
connections, stalls), the join of its report with the tcp-sink's, and the starter.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import selectors
import socket
import struct
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.probes.common import (
    MSG,
    ProbeError,
    StopCheck,
    Tool,
    deadline,
    errname,
    target_args,
    touch,
)
from lab.probes.hosts import LabLike, Launch, ProbeHandle, duration_args, start_probes, target_ip


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
    queued: int = struct.unpack("i", buf)[0]
    return queued


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
    until = deadline(duration)
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
                fail(c, classify(e), f"send: {errname(e)}")
                return
            del c.outbuf[:n]
            c.sent_bytes += n

    next_tick = time.monotonic()
    all_resolved = False
    try:
        while not should_stop() and time.monotonic() < until:
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
                        fail(c, classify(e), f"recv: {errname(e)}")
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
                    touch(ready_file)
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
    args = ["--dst", target_ip(lab, server, server_ip), "--port", str(port),
            "--conns", str(conns), "--rate", str(rate),
            "--stall-timeout", str(stall_timeout),
            "--connect-timeout", str(connect_timeout), *duration_args(duration)]
    return start_probes("tcp", merge_tcp, [
        Launch(lab.host(server), "sink", "tcp-sink",
               ["--port", str(port), "--gap-threshold-ms", str(gap_threshold_ms)],
               wait_ready=True),
        Launch(lab.host(client), "source", "tcp-source", args,
               wait_ready=wait_connected, ready_timeout=connect_timeout + 10),
    ], workdir)


def _args(sp: argparse.ArgumentParser) -> None:
    target_args(sp)
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


def _run(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    return run_tcp_source(a.dst, a.port, a.conns, a.rate, a.duration, a.id_base,
                          a.connect_timeout, a.stall_timeout, a.user_timeout_ms,
                          a.ready_file, should_stop, a.connect_rate)


TOOLS = (Tool("tcp-source", "N long-lived TCP counter streams", _args, _run),)
