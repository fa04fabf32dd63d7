"""Control socket (fgcp.ctl): request/response round trip over a real unix socket."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fgcp import ctl


def _serve(server: ctl.CtlServer, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([server], [], [], 0.05)
        if ready:
            server.handle_ready()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[[Callable[[str], str]], ctl.CtlServer]]:
    started: list[tuple[ctl.CtlServer, threading.Event, threading.Thread]] = []

    def start(handler: Callable[[str], str]) -> ctl.CtlServer:
        server = ctl.CtlServer(ctl.socket_path(tmp_path, "fgt1"), handler)
        stop = threading.Event()
        t = threading.Thread(target=_serve, args=(server, stop), daemon=True)
        t.start()
        started.append((server, stop, t))
        return server

    yield start
    for server, stop, t in started:
        stop.set()
        t.join(2)
        server.close()


def test_round_trip(running: Callable[[Callable[[str], str]], ctl.CtlServer], tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(line: str) -> str:
        seen.append(line)
        return f"got [{line}]"

    server = running(handler)
    answer = ctl.query(tmp_path, "fgt1", "diagnose sys session list")
    assert answer == "got [diagnose sys session list]\n"
    assert ctl.query(str(tmp_path), "fgt1", "  get system status \n") == "got [get system status]\n"
    assert seen == ["diagnose sys session list", "get system status"]
    assert server.served == 2


def test_large_answer_arrives_whole(running: Callable[[Callable[[str], str]], ctl.CtlServer], tmp_path: Path) -> None:
    big = "".join(f"session {i}\n" for i in range(200_000))  # ~2.4 MB
    running(lambda line: big)
    assert ctl.query(tmp_path, "fgt1", "x") == big


def test_utf8_request(running: Callable[[Callable[[str], str]], ctl.CtlServer], tmp_path: Path) -> None:
    running(lambda line: line.upper())
    assert ctl.query(tmp_path, "fgt1", "get système") == "GET SYSTÈME\n"


def test_no_daemon_is_a_ctl_error_naming_the_socket(tmp_path: Path) -> None:
    with pytest.raises(ctl.CtlError, match=r"fgt9: no daemon listening on .*fgt9\.sock"):
        ctl.query(tmp_path, "fgt9", "get system status")


def test_silent_daemon_times_out(tmp_path: Path) -> None:
    path = ctl.socket_path(tmp_path, "fgt1")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)  # accepts (in the backlog) but never answers
    try:
        with pytest.raises(ctl.CtlError, match="no answer within 0.2 s"):
            ctl.query(tmp_path, "fgt1", "get system status", timeout=0.2)
    finally:
        listener.close()


def test_stale_socket_file_is_replaced_and_removed_on_close(tmp_path: Path) -> None:
    path = ctl.socket_path(tmp_path, "fgt1")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, like after a crash
    server = ctl.CtlServer(path, lambda line: "ok")
    assert path.is_socket()
    server.close()
    assert not path.exists()


def test_default_rundir_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FGCP_LAB_RUNDIR", "/tmp/elsewhere")
    assert ctl.default_rundir() == "/tmp/elsewhere"
    monkeypatch.delenv("FGCP_LAB_RUNDIR")
    assert ctl.default_rundir() == "/run/fgcp-lab"
