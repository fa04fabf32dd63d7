"""The tcp-sink probe process: accepts TCP counter streams and checks each
connection's continuity, gaps and latency; echoes the short-tcp probe's requests.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from lab.gaps import GapTracker
from lab.probes.common import (
    MAX_ERRORS,
    MSG,
    SHORT_FLAG,
    StopCheck,
    Tool,
    deadline,
    errname,
    listen_args,
    touch,
)


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
    until = deadline(duration)
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
    touch(ready_file)

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
            if drain_until is None and (should_stop() or mono >= until):
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
                    finish(c, "error", now, f"recv: {errname(e)}")
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
            if isinstance(key.fileobj, socket.socket):  # every registered object is one
                key.fileobj.close()
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



def _args(sp: argparse.ArgumentParser) -> None:
    listen_args(sp)
    sp.add_argument("--bin", type=float, default=0.1, help="timeline bin (s)")
    sp.add_argument("--drain", type=float, default=5.0,
                    help="after the stop, read on up to S s until every stream ended")
    sp.add_argument("--ready-file")


def _run(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    return run_tcp_sink(a.port, a.bind, a.duration, a.gap_threshold_ms, a.bin,
                        a.ready_file, should_stop, a.drain)


TOOLS = (Tool("tcp-sink", "accept TCP counter streams, check continuity", _args, _run),)
