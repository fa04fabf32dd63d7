"""What every probe kind shares: the counter message layout, the error type,
atomic JSON reports, the Tool record the CLI registry holds, and argument helpers.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MSG = struct.Struct("!IQd")  # conn/flow id u32, counter u64, sender time f64 (CLOCK_REALTIME)
SHORT_FLAG = 0x8000_0000     # conn id bit: a short request the tcp-sink echoes back
MAX_ERRORS = 10

StopCheck = Callable[[], bool]
Report = dict[str, Any]


class ProbeError(RuntimeError):
    """A probe could not start or its report could not be collected."""


@dataclass(frozen=True)
class Tool:
    """One probe process of the CLI (``python -m lab.probes <name> ...``):
    ``add_args`` declares its options (after --out/--die-with-parent/--duration),
    ``run`` runs it until ``should_stop()`` or ``--duration`` and returns its report."""

    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, StopCheck], Report]


def errname(e: OSError) -> str:
    """``ECONNRESET``-style name of an OSError (its class name when it has no errno)."""
    return errno.errorcode.get(e.errno or 0, str(e.errno)) if e.errno else type(e).__name__


def write_report(path: str | Path, report: Report) -> None:
    """Write ``report`` as JSON to ``path`` atomically (tmp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def touch(path: str | None) -> None:
    """Write the ready file (this process's pid) when one is asked for."""
    if path:
        Path(path).write_text(str(os.getpid()))


def deadline(duration: float | None) -> float:
    """The monotonic time at which a run of ``duration`` s ends (inf: no limit)."""
    return time.monotonic() + duration if duration else float("inf")


# -- argument blocks several tools share ------------------------------------
def listen_args(sp: argparse.ArgumentParser) -> None:
    """A sink's --port, --bind and --gap-threshold-ms."""
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--bind", default="0.0.0.0")
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)


def target_args(sp: argparse.ArgumentParser, port: bool = True) -> None:
    """A client's --dst (and --port)."""
    sp.add_argument("--dst", required=True)
    if port:
        sp.add_argument("--port", type=int, required=True)


def stop_on_signals() -> StopCheck:
    """Install SIGTERM/SIGINT handlers that only raise a flag; returns the
    check a probe loop polls (the process then ends its run and reports)."""
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return lambda: stop["flag"]
