"""Process, polling and file helpers shared by topologies/ and lab/ (no Mininet
import: the probe processes use them too): wait_until, die_with_parent, terminate, read_text, make_run_dir.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1,
    error: type[Exception] = TimeoutError,
) -> None:
    """Poll ``check`` until true; raise ``error`` naming ``what`` on timeout
    (``check`` runs at least once, even with ``timeout`` 0)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies, even by SIGKILL (prctl
    PR_SET_PDEATHSIG); usable as a ``preexec_fn`` and at a process's start."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def terminate(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """Stop ``proc`` (SIGTERM, then SIGKILL after ``timeout``); returns its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        except ProcessLookupError:
            pass
    return proc.returncode


def read_text(path: str | Path) -> str:
    """The text of a file (a log), "" when it cannot be read."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def make_run_dir(prefix: str) -> Path:
    """A new private directory named ``prefix...`` under /run (tmpfs, root) when
    writable, else under the system's temp directory."""
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
