"""The short-tcp probe process: every 1/rate s a new connection, one request
echoed by the tcp-sink, close; failure windows of the attempts; and its starter.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.gaps import Gap
from lab.probes.common import (
    MSG,
    SHORT_FLAG,
    ProbeError,
    Report,
    StopCheck,
    Tool,
    deadline,
    errname,
    target_args,
)
from lab.probes.hosts import LabLike, Launch, ProbeHandle, duration_args, start_probes, target_ip


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
    until = deadline(duration)
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
        while not should_stop() and time.monotonic() < until:
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
                    done(a, False, f"{a.stage} {errname(e)}")
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

def merge_short_tcp(reports: dict[str, Report]) -> Report:
    """The client's report, marked ``kind: short-tcp``, with the sink's served count."""
    return {"kind": "short-tcp", **reports["client"], "served": reports["sink"]["short_served"]}


def start_short_tcp(
    lab: LabLike, client: str = "c1", server: str = "sv1", rate: float = 20.0,
    duration: float | None = None, port: int = 5003, timeout: float = 1.0,
    server_ip: str | None = None, workdir: str | Path | None = None,
) -> ProbeHandle:
    """A tcp-sink (echo for short requests) on ``server`` + short-tcp on
    ``client``; ``stop()`` -> {"kind": "short-tcp", ...client report, "served"}."""
    args = ["--dst", target_ip(lab, server, server_ip), "--port", str(port),
            "--rate", str(rate), "--timeout", str(timeout), *duration_args(duration)]
    return start_probes("short", merge_short_tcp, [
        Launch(lab.host(server), "sink", "tcp-sink", ["--port", str(port)], wait_ready=True),
        Launch(lab.host(client), "client", "short-tcp", args),
    ], workdir)


def _args(sp: argparse.ArgumentParser) -> None:
    target_args(sp)
    sp.add_argument("--rate", type=float, default=20.0, help="attempts/s")
    sp.add_argument("--timeout", type=float, default=1.0, help="per attempt (s)")


def _run(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    return run_short_tcp(a.dst, a.port, a.rate, a.duration, a.timeout, should_stop)


TOOLS = (Tool("short-tcp", "short connections: connect, request, reply, close", _args, _run),)
