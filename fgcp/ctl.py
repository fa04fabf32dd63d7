"""Control socket of a member daemon: unix stream, one command line in, text out.

``CtlServer`` is polled by the daemon's event loop (state read consistently);
``query`` is the client used by ``fgcp-lab diag``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Self

DEFAULT_RUNDIR = "/run/fgcp-lab"
RUNDIR_ENV = "FGCP_LAB_RUNDIR"
MAX_REQUEST = 4096


class CtlError(OSError):
    """The control socket could not be reached or answered badly."""


def default_rundir() -> str:
    """``$FGCP_LAB_RUNDIR`` or /run/fgcp-lab."""
    return os.environ.get(RUNDIR_ENV) or DEFAULT_RUNDIR


def socket_path(rundir: str | os.PathLike[str], member: str) -> Path:
    """``<rundir>/<member>.sock``."""
    return Path(rundir) / f"{member}.sock"


class CtlServer:
    """Listening unix socket; ``handle_ready`` serves one waiting client.

    The handler maps a request line to the response text.  Each connection
    is short: read one line (bounded by ``io_timeout``), answer, close.
    """

    def __init__(
        self, path: str | os.PathLike[str], handler: Callable[[str], str], io_timeout: float = 1.0
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.io_timeout = io_timeout
        self.served = 0
        self.errors = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # stale socket of a daemon that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            sock.listen(16)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def handle_ready(self) -> int:
        """Serve every pending connection; returns how many were served."""
        n = 0
        while True:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return n
            with conn:
                conn.settimeout(self.io_timeout)
                try:
                    request = _read_line(conn)
                    response = self.handler(request)
                    if response and not response.endswith("\n"):
                        response += "\n"
                    conn.sendall(response.encode())
                    self.served += 1
                except OSError:
                    self.errors += 1  # client went away or was too slow
            n += 1

    def close(self) -> None:
        self._sock.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_line(conn: socket.socket) -> str:
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def query(rundir: str | os.PathLike[str] | None, member: str, command: str, timeout: float = 5) -> str:
    """Send ``command`` to ``member``'s daemon and return its answer."""
    path = socket_path(rundir if rundir is not None else default_rundir(), member)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise CtlError(f"{member}: no daemon listening on {path} ({exc.strerror})") from exc
        sock.sendall(command.strip().encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except TimeoutError as exc:
        raise CtlError(f"{member}: no answer within {timeout} s on {path}") from exc
    except OSError as exc:
        if isinstance(exc, CtlError):
            raise
        raise CtlError(f"{member}: control socket {path}: {exc}") from exc
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")
