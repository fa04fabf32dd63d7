"""Evidence of a failing lab test: diag output, logs and HA-link captures per test.

``Evidence`` belongs to one test.  ``watch(lab)`` starts a tcpdump on every member's
HA ports (port3, port4, port5) of a running lab; ``snapshot(lab)`` writes each
member's ``diagnose`` output (through the lab's control sockets, tolerating dead or
hung members) and copies the lab's logs; ``finish(failed)`` snapshots the labs still
watched when the test failed, stops the captures by PID, then moves everything to
artefacts/<test>/ on failure or deletes it (pcaps included) on success.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

HA_PORTS = ("port3", "port4", "port5")
DIAG_COMMANDS = (
    "get system ha status",
    "diagnose sys ha history read",
    "diagnose sys session list",
    "diagnose sys session stat",
    "diagnose sys session sync",
    "diagnose lab stats",
)
SNAPLEN = 512  # whole heartbeats and record headers; keeps a loaded sync link small


def artefact_name(nodeid: str) -> str:
    """A test node id as one directory name (``tests/x.py::t[a]`` -> ``tests_x.py_t_a_``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", nodeid)


def member_names(lab: Any) -> list[str]:
    return [m.name for m in lab.topo.members]


def member_diag(lab: Any, member: str, commands: tuple[str, ...] = DIAG_COMMANDS) -> str:
    """Every ``commands`` output of ``member`` as one text; a dead or hung member
    is reported in the text, never raised (the first unanswered command ends it)."""
    proc = lab.daemons.get(member)
    if proc is None:
        return f"# {member}: no fgcpd running (not started, or stopped or killed by the test)\n"
    if proc.poll() is not None:
        return f"# {member}: fgcpd not running (exit code {proc.returncode})\n"
    out = []
    for cmd in commands:
        out.append(f"### {cmd}\n")
        try:
            out.append(lab.diag(member, cmd))
        except (OSError, RuntimeError) as exc:  # died meanwhile (CtlError), hangs, lab down
            out.append(f"# {member} did not answer: {type(exc).__name__}: {exc}\n")
            break
    return "".join(out)


class HaCapture:
    """tcpdump on ``HA_PORTS`` of every member of a running lab, one pcap per port,
    each process stopped by its PID."""

    def __init__(self, lab: Any, dest: Path) -> None:
        self.files: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.errors: list[str] = []
        for member in member_names(lab):
            for port in HA_PORTS:
                pcap = dest / f"{member}-{port}.pcap"
                try:
                    proc = lab.host(member).popen(
                        ["tcpdump", "-n", "-U", "-s", str(SNAPLEN), "-i", port, "-w", str(pcap)],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
                except (OSError, RuntimeError, KeyError) as exc:  # note it, go on
                    self.errors.append(f"{member} {port}: {type(exc).__name__}: {exc}")
                    continue
                self.procs.append(proc)
                self.files.append(pcap)
        deadline = time.monotonic() + 3.0  # tcpdump creates its file once it listens
        while time.monotonic() < deadline and not all(
                f.exists() or p.poll() is not None for f, p in zip(self.files, self.procs)):
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)  # tcpdump closes its file cleanly
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(3)
                except ProcessLookupError:
                    pass
        self.procs.clear()


class Evidence:
    """The evidence of one test, staged in a temporary directory until ``finish``."""

    def __init__(self, dest: Path, staging_base: Path | None = None) -> None:
        self.dest = dest
        base = staging_base if staging_base is not None else Path(tempfile.gettempdir())
        self.staging = Path(tempfile.mkdtemp(prefix="fgcp-evidence-", dir=base))
        self._captures: dict[int, tuple[Any, HaCapture]] = {}
        self._labs: dict[int, int] = {}  # id(lab) -> number (file prefix of a 2nd lab)

    def _dir(self, lab: Any) -> Path:
        """Where ``lab``'s evidence goes: the test's directory, lab<N>/ for a second lab."""
        n = self._labs.setdefault(id(lab), len(self._labs))
        d = self.staging if n == 0 else self.staging / f"lab{n}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def watch(self, lab: Any) -> None:
        """Start capturing ``lab``'s HA links (a running lab) for this test."""
        if id(lab) not in self._captures:
            self._captures[id(lab)] = (lab, HaCapture(lab, self._dir(lab)))

    def snapshot(self, lab: Any) -> None:
        """Write every member's diag output and copy the lab's logs, now."""
        d = self._dir(lab)
        if getattr(lab, "member_mode", "fgcpd") == "fgcpd":
            for member in member_names(lab):
                (d / f"{member}.diag.txt").write_text(member_diag(lab, member))
        try:
            logs = list(lab.log_files())
        except (OSError, RuntimeError):  # no run directory (the lab never started)
            logs = []
        for p in logs:
            shutil.copy2(p, d / p.name)

    def release(self, lab: Any) -> None:
        """``lab`` is about to stop: snapshot it and stop its captures."""
        self.snapshot(lab)
        entry = self._captures.pop(id(lab), None)
        if entry is not None:
            entry[1].stop()

    def finish(self, failed: bool) -> Path | None:
        """End of the test: keep the evidence in ``dest`` when ``failed`` (returned),
        otherwise delete it."""
        try:
            for lab, capture in list(self._captures.values()):
                if failed:
                    self.snapshot(lab)
                capture.stop()
                if capture.errors:
                    (self._dir(lab) / "capture-errors.txt").write_text(
                        "\n".join(capture.errors) + "\n")
            self._captures.clear()
            if not failed:
                return None
            self.dest.mkdir(parents=True, exist_ok=True)
            for p in self.staging.iterdir():
                target = self.dest / p.name
                if target.is_dir():
                    shutil.rmtree(target)
                shutil.move(str(p), str(target))
            return self.dest
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def keep_artefacts(rundir: Path, dest: Path, failed: bool,
                   suffixes: tuple[str, ...] = (".log", ".out")) -> None:
    """A lab run directory's teardown: copy its files with ``suffixes`` to ``dest``
    when ``failed`` or a log holds a Python traceback, remove the directory, then
    fail the test on such a traceback."""
    files = sorted(p for p in rundir.glob("*") if p.suffix in suffixes)
    crashed = [p.name for p in files if p.suffix in (".log", ".out")
               and "Traceback" in p.read_text(errors="replace")]
    if failed or crashed:
        dest.mkdir(parents=True, exist_ok=True)
        for p in files:
            shutil.copy2(p, dest / p.name)
    shutil.rmtree(rundir, ignore_errors=True)
    if crashed:
        pytest.fail(f"Traceback in {', '.join(crashed)} (copied to {dest})")


@contextmanager
def kept_rundir(prefix: str, dest: Path) -> Iterator[Path]:
    """A fresh run directory under /run for a lab shared by a module: removed at the
    end; its logs are copied to ``dest`` when the body raised (the lab did not start)
    or a log holds a traceback (which fails the last test)."""
    rundir = Path(tempfile.mkdtemp(prefix=prefix, dir="/run"))
    ok = False
    try:
        yield rundir
        ok = True
    finally:
        keep_artefacts(rundir, dest, failed=not ok)
