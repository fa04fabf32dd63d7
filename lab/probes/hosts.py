"""Orchestration of the probe processes: start them in lab hosts (Mininet hosts
or this machine), stop them clients first, collect and merge their JSON reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, Self

from lab.probes.common import ProbeError, Report

REPO_ROOT = Path(__file__).resolve().parents[2]
Merge = Callable[[dict[str, Report]], Report]


class HostLike(Protocol):
    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]: ...
    def IP(self) -> str: ...


class LabLike(Protocol):
    def host(self, name: str) -> Any: ...


class LoopbackHost:
    """A stand-in for a Mininet host: runs commands locally, IP 127.0.0.1."""

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, **kwargs)

    def IP(self) -> str:
        return "127.0.0.1"


class LoopbackLab:
    """A stand-in for LabNetwork whose every host is this machine (tests)."""

    def host(self, name: str) -> LoopbackHost:
        return LoopbackHost()


@dataclass
class _Proc:
    role: str
    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    logf: IO[bytes]


def probe_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


class ProbeHandle:
    """Probe processes started in lab hosts. ``stop()`` stops them (clients
    first, so sinks see the clean end), reads their JSON reports and returns
    ``merge(reports)``. Also a context manager; always kills what it started."""

    def __init__(self, kind: str, workdir: str | Path | None = None,
                 python: str = sys.executable) -> None:
        self.kind = kind
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=f"probe-{kind}-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.python = python
        self.procs: list[_Proc] = []
        self.result: dict[str, Any] | None = None
        self.merge: Merge = lambda r: r

    def start(self, host: HostLike, role: str, tool: str, args: list[str],
              ready_timeout: float = 10.0, wait_ready: bool = False) -> None:
        out = self.dir / f"{role}.json"
        log = self.dir / f"{role}.log"
        cmd = [self.python, "-m", "lab.probes", tool, "--out", str(out),
               "--die-with-parent", *args]
        ready = self.dir / f"{role}.ready"
        if wait_ready:
            cmd += ["--ready-file", str(ready)]
        logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        proc = host.popen(cmd, cwd=str(REPO_ROOT), env=probe_env(), stdout=logf,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(_Proc(role, proc, out, log, logf))
        if wait_ready:
            limit = time.monotonic() + ready_timeout
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > limit:
                    self.stop(collect=False)
                    raise ProbeError(f"{role} ({tool}) did not start: {self._log_tail(log)}")
                time.sleep(0.02)

    @staticmethod
    def _log_tail(log: Path) -> str:
        try:
            return log.read_text(errors="replace").strip()[-500:] or "(no output)"
        except OSError:
            return "(no log)"

    def signal(self, role: str, sig: int) -> bool:
        """Send ``sig`` to the running process of ``role``; False when there is none."""
        for p in self.procs:
            if p.role == role and p.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.send_signal(sig)
                    return True
        return False

    def fault_applied(self, t: float) -> None:
        """The experiment applied a fault at ``t`` (time.time()); probe kinds that act on
        it (lab.probes.iccp) override this."""

    def running(self) -> bool:
        return any(p.proc.poll() is None for p in self.procs)

    def wait(self, timeout: float) -> bool:
        """Wait for every process to end on its own (``--duration``)."""
        limit = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > limit:
                return False
            time.sleep(0.05)
        return True

    def stop(self, timeout: float = 10.0, collect: bool = True) -> dict[str, Any]:
        """Stop (SIGTERM, then SIGKILL after ``timeout``) the clients first,
        then the sinks (which drain what is in flight before reporting).
        Returns the merged result (also kept in ``self.result``)."""
        try:
            clients = [p for p in self.procs if not p.role.endswith("sink")]
            sinks = [p for p in self.procs if p.role.endswith("sink")]
            for group in (clients, sinks):
                for p in group:
                    if p.proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            p.proc.send_signal(signal.SIGTERM)
                for p in group:
                    try:
                        p.proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        p.proc.kill()
                        p.proc.wait()
        finally:
            for p in self.procs:
                if p.proc.poll() is None:
                    p.proc.kill()
                    p.proc.wait()
                p.logf.close()
        if not collect:
            return {}
        if self.result is not None:
            return self.result
        reports: dict[str, dict[str, Any]] = {}
        missing = []
        for p in self.procs:
            try:
                reports[p.role] = json.loads(p.out.read_text())
            except (OSError, json.JSONDecodeError):
                missing.append(f"{p.role} (exit {p.proc.returncode}): {self._log_tail(p.log)}")
        if missing:
            raise ProbeError("no report from " + "; ".join(missing))
        self.result = self.merge(reports)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.result is None:
            self.stop(collect=exc[0] is None)


@dataclass
class Launch:
    """One probe process to start: ``tool`` as ``role`` in ``host`` with ``args``;
    with ``wait_ready`` the start waits for its ready file."""

    host: HostLike
    role: str
    tool: str
    args: list[str] = field(default_factory=list)
    wait_ready: bool = False
    ready_timeout: float = 10.0


def start_probes(kind: str, merge: Merge | None, launches: Sequence[Launch],
                 workdir: str | Path | None = None,
                 handle: ProbeHandle | None = None) -> ProbeHandle:
    """Start ``launches`` in order (sinks first) under one handle (``handle``, or a new
    one) whose ``stop()`` returns ``merge(reports by role)`` (None: the handle's own);
    a failed start stops what already runs."""
    h = handle if handle is not None else ProbeHandle(kind, workdir)
    if merge is not None:
        h.merge = merge
    try:
        for la in launches:
            h.start(la.host, la.role, la.tool, la.args,
                    ready_timeout=la.ready_timeout, wait_ready=la.wait_ready)
    except BaseException:
        h.stop(collect=False)
        raise
    return h


def duration_args(duration: float | None) -> list[str]:
    """``--duration S`` when a duration is given."""
    return ["--duration", str(duration)] if duration else []


def stop_all(handles: dict[str, ProbeHandle], timeout: float = 10.0) -> dict[str, Any]:
    """Stop every handle (even when one fails); returns {name: result}.
    Raises ProbeError naming the probes whose reports are missing."""
    results: dict[str, Any] = {}
    errors = []
    for name, h in handles.items():
        try:
            results[name] = h.stop(timeout)
        except ProbeError as e:
            errors.append(f"{name}: {e}")
    if errors:
        raise ProbeError("; ".join(errors))
    return results


def target_ip(lab: LabLike, server: str, server_ip: str | None) -> str:
    return server_ip or lab.host(server).IP()
