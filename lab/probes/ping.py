"""The ping probe process: iputils ``ping -D`` run until stopped, its output
parsed into replies, loss, duplicates and gaps (receiver timestamps); and its starter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.gaps import Gap, gaps_above, max_gap, seq_stats
from lab.probes.common import (
    ProbeError,
    Report,
    StopCheck,
    Tool,
    deadline,
    target_args,
    touch,
)
from lab.probes.hosts import LabLike, Launch, ProbeHandle, duration_args, start_probes, target_ip

_PING_REPLY = re.compile(
    r"^\[(?P<ts>\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(?P<seq>\d+)"
    r"(?: ttl=\d+)?(?: time=(?P<rtt>[\d.]+) ms)?(?P<dup> \(DUP!\))?"
)
_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping_output(
    text: str, gap_threshold_ms: float = 100.0, end: float | None = None
) -> dict[str, Any]:
    """Parse ``ping -D`` output: replies (receiver timestamps, seq, rtt),
    loss, duplicates, gaps between replies; ``reply_times`` lists the receive
    times (sorted, duplicates left out) for gaps within a window (lab.gaps.max_gap)."""
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
        "reply_times": times,
    }


def run_ping(
    dst: str,
    interval: float = 0.01,
    duration: float | None = None,
    gap_threshold_ms: float = 100.0,
    ping: str = "ping",
    should_stop: StopCheck = lambda: False,
    ready_file: str | None = None,
) -> dict[str, Any]:
    """Run iputils ``ping -D -n -i INTERVAL -W 1 DST`` until stopped; parse it.
    ``ready_file`` is written once the first reply has arrived."""
    if shutil.which(ping) is None:
        raise ProbeError(f"{ping} not found")
    started = time.time()
    until = deadline(duration)
    cmd = [ping, "-D", "-n", "-i", str(interval), "-W", "1", dst]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    stdout = proc.stdout
    assert stdout is not None  # stdout=PIPE
    os.set_blocking(stdout.fileno(), False)
    chunks: list[bytes] = []
    sel = selectors.DefaultSelector()
    sel.register(stdout, selectors.EVENT_READ)

    def drain() -> None:
        with contextlib.suppress(BlockingIOError, TypeError):
            while data := stdout.read(65536):
                chunks.append(data)
                if ready_file and b" bytes from " in data:
                    touch(ready_file)

    try:
        while not should_stop() and time.monotonic() < until and proc.poll() is None:
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
        os.set_blocking(stdout.fileno(), True)
        chunks.append(stdout.read())
        sel.close()
        stdout.close()
    text = b"".join(chunks).decode(errors="replace")
    rep = parse_ping_output(text, gap_threshold_ms, end)
    tail = text.strip().splitlines()[-3:]
    return {"tool": "ping", "dst": dst, "interval": interval, "started": started,
            "ended": end, "exit_code": proc.returncode, **rep, "output_tail": tail}


def merge_ping(reports: dict[str, Report]) -> Report:
    """The ping process's report, marked ``kind: ping``."""
    return {"kind": "ping", **reports["ping"]}


def start_ping(
    lab: LabLike, client: str = "c1", server: str = "sv1", interval: float = 0.01,
    duration: float | None = None, server_ip: str | None = None,
    gap_threshold_ms: float = 100.0, workdir: str | Path | None = None,
    wait_reply: bool = False,
) -> ProbeHandle:
    """iputils ping from ``client`` to ``server``; ``stop()`` -> ping report.
    With ``wait_reply`` it returns once the first reply has arrived."""
    args = ["--dst", target_ip(lab, server, server_ip), "--interval", str(interval),
            "--gap-threshold-ms", str(gap_threshold_ms), *duration_args(duration)]
    return start_probes("ping", merge_ping, [
        Launch(lab.host(client), "ping", "ping", args, wait_ready=wait_reply)], workdir)


def _args(sp: argparse.ArgumentParser) -> None:
    target_args(sp, port=False)
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)
    sp.add_argument("--ready-file", help="written once the first reply has arrived")


def _run(a: argparse.Namespace, should_stop: StopCheck) -> dict[str, Any]:
    return run_ping(a.dst, a.interval, a.duration, a.gap_threshold_ms,
                    should_stop=should_stop, ready_file=a.ready_file)


TOOLS = (Tool("ping", "iputils ping -D, parsed", _args, _run),)
