"""lab.probes: the real probe processes over loopback (127.0.0.1), no root:
TCP continuity and reset detection, UDP loss, ping parsing, short TCP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.probes import (
    MSG,
    LoopbackLab,
    ProbeError,
    failure_windows,
    parse_ping_output,
    start_ping,
    start_short_tcp,
    start_tcp_streams,
    start_udp_streams,
)

REPO = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(tool: str, out: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "lab.probes", tool, "--out", str(out), *args],
                            cwd=REPO, env=env)


def wait_file(path: Path, timeout: float = 10.0) -> None:
    limit = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < limit, f"{path} did not appear"
        time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_tcp_streams_all_continuous_none_reset(tmp_path: Path) -> None:
    h = start_tcp_streams(LoopbackLab(), conns=20, rate=50, port=free_port(), workdir=tmp_path)
    try:
        time.sleep(1.5)
    finally:
        res = h.stop()
    s = res["summary"]
    assert s == {**s, "conns": 20, "connected": 20, "survived": 20, "reset": 0,
                 "continuity_failures": 0}
    assert s["max_gap_ms"] < 500
    for c in res["connections"]:
        assert c["sink_end"] == "eof" and c["source_state"] == "open"
        assert c["messages_received"] == c["messages_sent"] >= 50  # ~1.5 s at 50/s
        assert c["bytes_received"] == c["bytes_sent"] == c["messages_sent"] * MSG.size
    # the reports are kept in the given work directory
    assert json.loads((tmp_path / "sink.json").read_text())["tool"] == "tcp-sink"


def test_sink_reports_reset_and_broken_continuity(tmp_path: Path) -> None:
    port, out, ready = free_port(), tmp_path / "sink.json", tmp_path / "ready"
    sink = probe("tcp-sink", out, "--port", str(port), "--ready-file", str(ready),
                 "--drain", "0.2")
    try:
        wait_file(ready)
        now = time.time()
        good = socket.create_connection(("127.0.0.1", port))
        good.sendall(b"".join(MSG.pack(1, i, now) for i in range(5)))
        rst = socket.create_connection(("127.0.0.1", port))
        rst.sendall(b"".join(MSG.pack(2, i, now) for i in range(3)))
        holey = socket.create_connection(("127.0.0.1", port))
        holey.sendall(b"".join(MSG.pack(3, i, now) for i in (0, 1, 5, 5, 6)))
        time.sleep(0.2)
        rst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        rst.close()  # RST
        good.close()  # FIN
        time.sleep(0.3)
    finally:
        stop(sink)
        holey.close()
    rep = {c["id"]: c for c in json.loads(out.read_text())["connections"]}
    assert rep[1]["ended"] == "eof" and rep[1]["continuity_ok"] and rep[1]["messages"] == 5
    assert rep[2]["ended"] == "reset" and rep[2]["messages"] == 3
    assert rep[3]["ended"] == "open"
    assert not rep[3]["continuity_ok"]
    assert rep[3]["lost_messages"] == 3 and rep[3]["duplicated_messages"] == 1
    assert any("3 missing" in e for e in rep[3]["errors"])


def test_source_sees_reset_when_the_sink_dies_and_stays_dead(tmp_path: Path) -> None:
    port, ready = free_port(), tmp_path / "ready"
    sink = probe("tcp-sink", tmp_path / "sink.json", "--port", str(port),
                 "--ready-file", str(ready))
    try:
        wait_file(ready)
        src = probe("tcp-source", tmp_path / "src.json", "--dst", "127.0.0.1", "--port",
                    str(port), "--conns", "10", "--rate", "50", "--duration", "1.5")
        time.sleep(0.6)
        sink.send_signal(signal.SIGSTOP)  # unread data piles up in the sink's sockets
        time.sleep(0.2)
        killed = time.time()
        sink.kill()  # closing with unread data: the kernel resets every connection
        src.wait(10)
    finally:
        sink.kill()
        sink.wait()
    rep = json.loads((tmp_path / "src.json").read_text())
    assert rep["connected"] == 10 and rep["open_at_end"] == 0
    for c in rep["connections"]:
        assert c["state"] == "reset", c
        assert c["failed_at"] >= killed - 0.05
        assert c["messages_sent"] < 1.5 * 50  # no sending (and no reconnect) after the reset


def test_udp_skipped_sequence_numbers_are_reported_lost(tmp_path: Path) -> None:
    h = start_udp_streams(LoopbackLab(), flows=2, interval=0.01, port=free_port(socket.SOCK_DGRAM),
                          skip=(10, 11, 12, 40), workdir=tmp_path)
    try:
        time.sleep(2.0)  # seq 40 is due at 0.4 s: margin for a loaded machine
    finally:
        res = h.stop()
    assert len(res["flows"]) == 2
    for f in res["flows"]:
        assert f["skipped"] == 4 and f["lost"] == 0  # lost counts sent-but-not-received
        assert f["missing"] == [[10, 12], [40, 40]]
        assert f["duplicates"] == 0 and f["reordered"] == 0
        assert 30 <= f["max_gap_ms"] < 300  # the 3-datagram hole
        # on the sender's clock: 9 -> 13 (4 intervals) and 39 -> 41 (2 intervals)
        windows = [round(w["duration_ms"] / 10) for w in f["loss_windows"]]
        assert len(windows) == 2 and 3 <= windows[0] <= 6 and 1 <= windows[1] <= 4, windows
    sink = res["sink"]["flows"][0]
    assert sink["lost"] == 4  # the sink alone sees the holes


def test_udp_sink_counts_duplicates_and_reordering(tmp_path: Path) -> None:
    port, out, ready = free_port(socket.SOCK_DGRAM), tmp_path / "u.json", tmp_path / "ready"
    sink = probe("udp-sink", out, "--port", str(port), "--ready-file", str(ready))
    try:
        wait_file(ready)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for seq in (0, 1, 1, 3, 2, 6):
                s.sendto(MSG.pack(7, seq, time.time()), ("127.0.0.1", port))
                time.sleep(0.01)
            s.sendto(b"short", ("127.0.0.1", port))
        time.sleep(0.2)
    finally:
        stop(sink)
    rep = json.loads(out.read_text())
    (f,) = rep["flows"]
    assert (f["id"], f["received"], f["unique"]) == (7, 6, 5)
    assert (f["duplicates"], f["reordered"], f["lost"]) == (1, 1, 2)
    assert f["missing"] == [[4, 5]]
    assert rep["malformed"] == 1


PING_TEXT = """PING 203.0.113.11 (203.0.113.11) 56(84) bytes of data.
[1000.000000] 64 bytes from 203.0.113.11: icmp_seq=1 ttl=63 time=0.5 ms
[1000.010000] 64 bytes from 203.0.113.11: icmp_seq=2 ttl=63 time=0.5 ms
[1000.360000] 64 bytes from 203.0.113.11: icmp_seq=37 ttl=63 time=0.6 ms
[1000.360500] 64 bytes from 203.0.113.11: icmp_seq=37 ttl=63 time=0.7 ms (DUP!)
[1000.370000] 64 bytes from 203.0.113.11: icmp_seq=38 ttl=63 time=0.5 ms

--- 203.0.113.11 ping statistics ---
40 packets transmitted, 4 received, +1 duplicates, 90% packet loss, time 390ms
"""


def test_parse_ping_finds_the_hole_the_loss_and_the_duplicate() -> None:
    r = parse_ping_output(PING_TEXT, gap_threshold_ms=100, end=1000.5)
    assert r["transmitted"] == 40 and r["received"] == 4 and r["duplicates"] == 1
    assert r["lost"] == 36  # 3..36 and 39..40
    assert r["missing"] == [[3, 36], [39, 40]]
    assert r["max_gap_ms"] == pytest.approx(350, abs=0.1)
    assert r["max_gap"]["start"] == 1000.01
    assert [round(g["duration_ms"]) for g in r["gaps"]] == [350]
    assert r["trailing_gap"]["resumed"] is False  # silent 130 ms before the end
    # receive times of the replies, duplicates left out (for windowed gaps)
    assert r["reply_times"] == [1000.0, 1000.01, 1000.36, 1000.37]


@pytest.mark.skipif(shutil.which("ping") is None, reason="iputils ping not installed")
def test_real_ping_over_loopback(tmp_path: Path) -> None:
    h = start_ping(LoopbackLab(), interval=0.02, workdir=tmp_path, wait_reply=True)
    try:
        assert (tmp_path / "ping.ready").exists()  # returned after the first reply
        time.sleep(1.0)
    finally:
        res = h.stop()
    assert res["transmitted"] and res["transmitted"] >= 20, res["output_tail"]
    assert len(res["reply_times"]) == res["received"]
    assert res["received"] == res["transmitted"] and res["lost"] == 0
    assert res["max_gap_ms"] < 300


def test_short_tcp_all_succeed_against_the_sink(tmp_path: Path) -> None:
    h = start_short_tcp(LoopbackLab(), rate=20, port=free_port(), workdir=tmp_path)
    try:
        time.sleep(1.0)
    finally:
        res = h.stop()
    # (20/s for 1 s; the count is only a floor that a loaded machine still reaches)
    assert res["attempts"] >= 5 and res["ok"] == res["attempts"] and res["failed"] == 0
    assert res["served"] == res["ok"]
    assert res["failure_windows"] == []


def test_short_tcp_without_server_fails_every_attempt(tmp_path: Path) -> None:
    out = tmp_path / "short.json"
    cli = probe("short-tcp", out, "--dst", "127.0.0.1", "--port", str(free_port()),
                "--rate", "20", "--duration", "0.5")
    cli.wait(10)
    rep = json.loads(out.read_text())
    assert rep["attempts"] >= 8 and rep["ok"] == 0 and rep["failed"] == rep["attempts"]
    assert {r["error"] for r in rep["results"]} == {"connect ECONNREFUSED"}
    (w,) = rep["failure_windows"]
    assert w["resumed"] is False


def test_failure_windows_from_attempts() -> None:
    rs = [{"start": float(i), "ok": ok, "error": "" if ok else "connect timeout"}
          for i, ok in enumerate([True, False, False, True, False, True])]
    ws = failure_windows(rs, end=10.0)
    assert [(w.start, w.end) for w in ws] == [(1.0, 3.0), (4.0, 5.0)]


def test_handle_reports_a_tool_that_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ProbeError, match="did not start"):
            start_tcp_streams(LoopbackLab(), conns=1, port=port, workdir=tmp_path)


def test_a_probe_stops_and_reports_when_its_starter_dies(tmp_path: Path) -> None:
    out, port = tmp_path / "sink.json", free_port()
    starter = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-m', 'lab.probes', 'tcp-sink', '--out', {str(out)!r}, "
        f"'--port', '{port}', '--die-with-parent', '--ready-file', {str(tmp_path / 'r')!r}]); "
        "time.sleep(1.0)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", starter], cwd=REPO, env=env, check=True, timeout=10)
    wait_file(out, timeout=5)  # no --duration: only the parent's death stopped it
    assert json.loads(out.read_text())["tool"] == "tcp-sink"
