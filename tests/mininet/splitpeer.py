"""Plain-socket peers of tests/mininet/test_ips.py: a split request across a fault.

    python -m tests.mininet.splitpeer server --port 8080 --port 8081 --dir D --ready-file F
    python -m tests.mininet.splitpeer client --dst IP --port 8080 --first TEXT --second TEXT
                                             --ready-file F --go-file G --out R.json

The server echoes every byte it receives and appends it to ``D/<port>.bin``; how each
connection ended (``reset``, ``eof``, ``error ...``) is a line of ``D/<port>.end``.  The
client connects, sends ``--first`` and reads its echo, writes ``--ready-file``, waits
for ``--go-file`` to exist, sends ``--second`` and waits up to ``--timeout`` s for its
echo; the report says what came back (``second_echoed``) or how the connection ended.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from topologies.util import die_with_parent


def _ended(out: Path, lock: threading.Lock, how: str) -> None:
    with lock, out.with_suffix(".end").open("a") as f:
        f.write(how + "\n")


def _serve_conn(conn: socket.socket, out: Path, lock: threading.Lock) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except ConnectionResetError:
                _ended(out, lock, "reset")
                return
            except OSError as e:
                _ended(out, lock, f"error {e}")
                return
            if not data:
                _ended(out, lock, "eof")
                return
            with lock, out.open("ab") as f:
                f.write(data)
            try:
                conn.sendall(data)
            except OSError:
                return


def serve(ports: Sequence[int], directory: Path, ready: Path | None) -> None:
    lock = threading.Lock()
    socks = []
    for port in ports:
        s = socket.create_server(("0.0.0.0", port), reuse_port=True)
        socks.append((port, s))
    if ready is not None:
        ready.write_text("ok")

    def accept(port: int, s: socket.socket) -> None:
        while True:
            conn, _ = s.accept()
            threading.Thread(target=_serve_conn, args=(conn, directory / f"{port}.bin", lock),
                             daemon=True).start()

    threads = [threading.Thread(target=accept, args=ps, daemon=True) for ps in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _read_exactly(sock: socket.socket, n: int, timeout: float) -> bytes:
    end = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(n - len(buf))
        except TimeoutError:
            break
        if not data:
            raise ConnectionAbortedError("closed by peer (EOF)")
        buf += data
    return buf


def client(dst: str, port: int, first: bytes, second: bytes, ready: Path, go: Path,
           timeout: float) -> dict[str, Any]:
    rep: dict[str, Any] = {"dst": dst, "port": port, "connected": False, "first_echoed": False,
                           "second_echoed": False, "outcome": None, "error": None}
    try:
        sock = socket.create_connection((dst, port), timeout=timeout)
    except OSError as e:
        rep["outcome"], rep["error"] = "connect-failed", str(e)
        return rep
    rep["connected"] = True
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(first)
        rep["first_echoed"] = _read_exactly(sock, len(first), timeout) == first
        ready.write_text(str(time.time()))
        while not go.exists():
            time.sleep(0.02)
        sock.sendall(second)
        got = _read_exactly(sock, len(second), timeout)
        rep["second_echoed"] = got == second
        rep["outcome"] = "echoed" if got == second else "no-answer"
    except ConnectionResetError as e:
        rep["outcome"], rep["error"] = "reset", str(e)
    except OSError as e:
        rep["outcome"], rep["error"] = "error", str(e)
    finally:
        sock.close()
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.mininet.splitpeer")
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, action="append", required=True)
    s.add_argument("--dir", type=Path, required=True)
    s.add_argument("--ready-file", type=Path)
    c = sub.add_parser("client")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--first", required=True)
    c.add_argument("--second", required=True)
    c.add_argument("--ready-file", type=Path, required=True)
    c.add_argument("--go-file", type=Path, required=True)
    c.add_argument("--timeout", type=float, default=4.0)
    c.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    die_with_parent()
    if a.role == "server":
        serve(a.port, a.dir, a.ready_file)
        return 0
    rep = client(a.dst, a.port, a.first.encode(), a.second.encode(), a.ready_file, a.go_file,
                 a.timeout)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rep))
    tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
