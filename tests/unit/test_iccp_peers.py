"""The real ICCP peers (lab.iccp, pyiec61850-ng / libiec61850) on loopback high ports:
the benign client's association and ops, the attacker's split write, the CLIs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspection.iccp import IccpDecoder
from lab.iccp.attack import breaker_write, item_split, run_attack
from lab.iccp.client import run_client
from lab.iccp.server import IccpServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[IccpServer, int]]:
    port = _free_port()
    srv = IccpServer()
    srv.start(port, "127.0.0.1")
    yield srv, port
    srv.stop()


def test_benign_client_reads_and_writes_on_one_association(
        server: tuple[IccpServer, int]) -> None:
    srv, port = server
    rep = run_client("127.0.0.1", port, rate=20, duration=1.0, should_stop=lambda: False)
    assert rep["associated"] and rep["ended"] == "completed"
    assert rep["ops_failed"] == 0 and rep["ops_attempted"] == rep["ops_ok"] >= 10
    assert rep["reads_ok"] > 0 and rep["writes_ok"] > 0
    assert len(rep["ops"]) == rep["ops_attempted"]
    last_write = max(i for i, op in enumerate(rep["ops"]) if op[1] == "write")
    assert srv.setpoint() == float(last_write)  # the server holds the last value written


def test_attacker_split_write_is_answered_by_the_server(
        server: tuple[IccpServer, int]) -> None:
    _, port = server
    halves: list[float] = []
    rep = run_attack("127.0.0.1", port, split=30, between=lambda: halves.append(time.time()))
    assert rep["associated"] and rep["outcome"] == "answered", rep
    assert rep["answer"]["service"] == "write" and rep["answer"]["invoke_id"] == 1
    assert rep["split"] == 30 and len(halves) == 1
    ev = IccpDecoder().feed(breaker_write())
    assert [(e.service, e.items) for e in ev] == [("write", ("GGIO1$CO$SPCSO1$Oper",))]


def test_default_split_cuts_the_item_name_in_two(server: tuple[IccpServer, int]) -> None:
    _, port = server
    rep = run_attack("127.0.0.1", port, split=None, between=lambda: None)
    pdu = breaker_write()
    first, second = pdu[:rep["split"]], pdu[rep["split"]:]
    assert rep["split"] == item_split(pdu) and rep["outcome"] == "answered"
    assert first.endswith(b"GGIO1$CO$S") and second.startswith(b"PCSO1$Oper")
    assert b"GGIO1$CO$SPCSO1$Oper" not in first and b"GGIO1$CO$SPCSO1$Oper" not in second


def test_attacker_reports_a_connection_closed_between_the_halves() -> None:
    port = _free_port()
    srv = IccpServer()
    srv.start(port, "127.0.0.1")
    rep = run_attack("127.0.0.1", port, split=30, between=srv.stop, timeout=2.0)
    assert rep["associated"] and rep["outcome"] in ("reset", "closed"), rep


def test_client_without_server_reports_connect_failed() -> None:
    rep = run_client("127.0.0.1", _free_port(), rate=10, duration=0.5,
                     should_stop=lambda: False, connect_timeout_ms=500)
    assert not rep["associated"] and rep["ended"] == "connect-failed"
    assert rep["first_error"] and rep["ops_attempted"] == 0


def test_server_and_client_clis(tmp_path: Path) -> None:
    port = _free_port()
    ready = tmp_path / "ready"
    srv = subprocess.Popen([sys.executable, "-m", "lab.iccp.server", "--port", str(port),
                            "--bind", "127.0.0.1", "--ready-file", str(ready),
                            "--duration", "20"])
    try:
        for _ in range(100):
            if ready.exists():
                break
            time.sleep(0.05)
        out = tmp_path / "client.json"
        rc = subprocess.run([sys.executable, "-m", "lab.iccp.client", "--dst", "127.0.0.1",
                             "--port", str(port), "--rate", "20", "--duration", "0.5",
                             "--conclude", "--out", str(out)], check=False,
                            timeout=30).returncode
        rep = json.loads(out.read_text())
        assert rc == 0 and rep["ops_ok"] > 0 and rep["conclude_error"] is None
    finally:
        srv.terminate()
        assert srv.wait(10) == 0
