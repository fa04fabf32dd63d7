"""The iccp probe kind: the real ICCP peers of lab.iccp (pyiec61850 / libiec61850) as lab
probes, and what the cluster says about their sessions after a failover.

Tools (``python -m lab.probes <tool>``): ``iccp-server`` (the MMS server, a "sink"),
``iccp-client`` (one benign TASE.2 association: reads and writes at ``--rate``, each op's
latency, gaps and failures; never re-associates) and ``iccp-attack`` (a genuine
association, then an MMS write of the breaker split in two TCP segments: the first half
at once, the second after SIGUSR1, i.e. after the fault, see ``IccpHandle.fault_applied``).
Both clients report their TCP local port (from /proc), so their sessions can be found in
the members' ``diagnose sys session list``.

``start_iccp(lab, ...)`` -> an ``IccpHandle``: after the first fault it waits for the new
primary, reads its session list (the ``ips=`` field of each ICCP session: ``on``,
``uninspected``; ``-`` when the field is absent), then releases the attack's second half;
``stop()`` reads the session list and ``diagnose ips anomaly list`` once more and returns
{"kind": "iccp", "client", "attack", "server", "fault_t", "new_primary", "inspection"}.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.probes.common import ProbeError, Report, StopCheck, Tool, target_args, touch
from lab.probes.hosts import (
    LabLike,
    Launch,
    ProbeHandle,
    duration_args,
    start_probes,
    target_ip,
)

ICCP_PORT = 102
TAKEOVER_WAIT = 10.0   # s the handle waits for a new primary after a fault
TCP_ESTABLISHED = "01"
IPS_FIELD = re.compile(r"\bips=(\S+)")


# -- the processes -------------------------------------------------------------------
def own_tcp_ports(remote_port: int) -> list[int]:
    """Local ports of this process's established TCP connections to ``remote_port``
    (its socket inodes matched in /proc/self/net/tcp: the process's network namespace)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) > 9 and f[3] == TCP_ESTABLISHED and f[9] in inodes \
                and int(f[2].rsplit(":", 1)[1], 16) == remote_port:
            ports.append(int(f[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _server_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--port", type=int, default=ICCP_PORT)
    sp.add_argument("--bind", default="0.0.0.0")
    sp.add_argument("--ready-file")


def _run_server(a: argparse.Namespace, should_stop: StopCheck) -> Report:
    from lab.iccp.server import IccpServerError, serve

    started = time.time()
    try:
        serve(a.port, a.bind, a.duration, a.ready_file, should_stop)
    except IccpServerError as e:
        raise ProbeError(str(e)) from e
    return {"tool": "iccp-server", "port": a.port, "started": started, "ended": time.time()}


def _client_args(sp: argparse.ArgumentParser) -> None:
    target_args(sp, port=False)
    sp.add_argument("--port", type=int, default=ICCP_PORT)
    sp.add_argument("--rate", type=float, default=5.0, help="MMS operations per second")
    sp.add_argument("--gap-threshold-ms", type=float, default=100.0)
    sp.add_argument("--reports", action="store_true",
                    help="enable the server's report control block (informationReports)")


def _run_client(a: argparse.Namespace, should_stop: StopCheck) -> Report:
    from lab.iccp.client import run_client

    found: list[int] = []
    done = threading.Event()

    def watch() -> None:  # the association's TCP local port, once it is established
        while not done.is_set() and not found:
            found.extend(own_tcp_ports(a.port))
            done.wait(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        rep = run_client(a.dst, a.port, a.rate, a.duration, should_stop,
                         gap_threshold_ms=a.gap_threshold_ms, reports=a.reports)
    finally:
        done.set()
        t.join(1.0)
    rep["local_port"] = found[0] if found else None
    return rep


def _attack_args(sp: argparse.ArgumentParser) -> None:
    target_args(sp, port=False)
    sp.add_argument("--port", type=int, default=ICCP_PORT)
    sp.add_argument("--split", default="item",
                    help="bytes of the write PDU sent first, or 'item' (the middle of the "
                         "item name)")
    sp.add_argument("--timeout", type=float, default=3.0, help="per answer (s)")
    sp.add_argument("--ready-file", help="written once the first half is out")


def _run_attack(a: argparse.Namespace, should_stop: StopCheck) -> Report:
    from lab.iccp.attack import run_attack

    got = threading.Event()
    signal.signal(signal.SIGUSR1, lambda signum, frame: got.set())
    info: dict[str, Any] = {"local_port": None, "second_half_on": None}
    end = time.monotonic() + a.duration if a.duration else float("inf")

    def between() -> None:  # first half out: report ready, wait for the fault (SIGUSR1)
        ports = own_tcp_ports(a.port)
        info["local_port"] = ports[-1] if ports else None
        touch(a.ready_file)
        while not got.wait(0.05):
            if should_stop() or time.monotonic() > end:
                break
        info["second_half_on"] = "fault" if got.is_set() else "stop"

    split = None if a.split == "item" else int(a.split)
    rep = run_attack(a.dst, a.port, split, between, a.timeout)
    if rep["outcome"] is None:
        raise ProbeError(f"iccp-attack: no outcome ({rep.get('error')})")
    return {**rep, **info}


TOOLS = (
    Tool("iccp-server", "real MMS/ICCP server (libiec61850) with a TASE.2-style model",
         _server_args, _run_server),
    Tool("iccp-client", "one benign TASE.2 association: reads + writes at --rate",
         _client_args, _run_client),
    Tool("iccp-attack", "an MMS breaker write split in two segments (second on SIGUSR1)",
         _attack_args, _run_attack),
)


# -- what the members say -------------------------------------------------------------
def session_ips(listing: str, server_ip: str, port: int, local_port: int | None) -> str | None:
    """The ``ips=`` field of the session ``*:local_port -> server_ip:port`` in a
    ``diagnose sys session list``: its value, ``-`` when the row has none, None when
    there is no such session."""
    if local_port is None:
        return None
    tup = re.compile(rf":{local_port}->{re.escape(server_ip)}:{port}\b")
    for block in listing.split("\n\n"):
        org = [ln for ln in block.splitlines() if "dir=org" in ln]
        if org and tup.search(org[0]):
            m = IPS_FIELD.search(block)
            return m.group(1) if m else "-"
    return None


def anomaly_lines(listing: str, port: int, local_port: int | None) -> list[str]:
    """The ``diagnose ips anomaly list`` lines about the session from ``local_port`` to
    ``port``."""
    if local_port is None:
        return []
    tup = re.compile(rf":{local_port}->\S+:{port}\b")
    return [ln.strip() for ln in listing.splitlines() if tup.search(ln)]


class IccpHandle(ProbeHandle):
    """The iccp probes plus what the new primary reports about their sessions."""

    def __init__(self, lab: LabLike, server_ip: str, port: int,
                 workdir: str | Path | None = None) -> None:
        super().__init__("iccp", workdir)
        self.lab = lab
        self.server_ip = server_ip
        self.port = port
        self.fault_t: float | None = None
        self.new_primary: str | None = None
        self.primary_before = self._primary()
        self.snapshots: list[tuple[float, str, str]] = []  # (time, member, session list)
        self.anomalies = ""
        self._after: threading.Thread | None = None
        self.merge = self._merge

    def _diag(self, member: str, command: str) -> str:
        diag: Callable[[str, str], str] | None = getattr(self.lab, "diag", None)
        if diag is None:
            return ""
        try:
            return diag(member, command)
        except Exception:  # noqa: BLE001 - a member gone or without the command
            return ""

    def _primary(self) -> str | None:
        primaries: Callable[[], list[str]] | None = getattr(self.lab, "primaries", None)
        if primaries is None:
            return None
        try:
            found = primaries()
        except Exception:  # noqa: BLE001 - members down mid-fault
            return None
        return found[0] if len(found) == 1 else None

    def _snapshot(self, member: str | None) -> None:
        if member is not None:
            self.snapshots.append((time.time(), member,
                                   self._diag(member, "diagnose sys session list")))

    def fault_applied(self, t: float) -> None:
        """After the first fault: wait for the new primary, read its session list, then
        let the attack send its second half."""
        if self.fault_t is not None:
            return
        self.fault_t = t

        def after() -> None:
            waits = getattr(self.lab, "primaries", None) is not None  # not on loopback
            limit = time.monotonic() + (TAKEOVER_WAIT if waits else 0.0)
            primary = None
            while time.monotonic() < limit:
                primary = self._primary()
                if primary is not None and primary != self.primary_before:
                    break
                time.sleep(0.05)
            self.new_primary = primary
            self._snapshot(primary)
            self.signal("attack", signal.SIGUSR1)

        self._after = threading.Thread(target=after, daemon=True)
        self._after.start()

    def stop(self, timeout: float = 10.0, collect: bool = True) -> dict[str, Any]:
        if self._after is not None:
            self._after.join(TAKEOVER_WAIT + 5.0)
        if collect and self.result is None:
            member = self.new_primary or self._primary()
            self._snapshot(member)
            if member is not None:
                self.anomalies = self._diag(member, "diagnose ips anomaly list")
        return super().stop(timeout, collect)

    def _flow(self, rep: Report | None) -> dict[str, Any] | None:
        """What the new primary said about one probe's session."""
        if rep is None:
            return None
        lport = rep.get("local_port")
        seen = [(t, m, session_ips(text, self.server_ip, self.port, lport))
                for t, m, text in self.snapshots if self.fault_t is None or t >= self.fault_t]
        present = [s for s in seen if s[2] is not None]
        last = present[-1] if present else None
        return {"local_port": lport, "ips": last[2] if last else None,
                "seen_by": last[1] if last else None,
                "snapshots": [{"t": t, "member": m, "ips": v} for t, m, v in seen],
                "anomalies": anomaly_lines(self.anomalies, self.port, lport)}

    def _merge(self, reports: dict[str, Report]) -> Report:
        client, attack = reports.get("client"), reports.get("attack")
        return {"kind": "iccp", "client": client, "attack": attack,
                "server": reports.get("sink"), "server_ip": self.server_ip, "port": self.port,
                "fault_t": self.fault_t, "primary_before": self.primary_before,
                "new_primary": self.new_primary,
                "inspection": {"client": self._flow(client), "attack": self._flow(attack)}}


def start_iccp(lab: LabLike, client: str = "c1", server: str = "sv1", rate: float = 5.0,
               attack: bool = True, split: str = "item", port: int = ICCP_PORT,
               duration: float | None = None, server_ip: str | None = None,
               workdir: str | Path | None = None) -> IccpHandle:
    """The ICCP server on ``server``, the benign client (and the split attack) on
    ``client``; ``stop()`` -> the merged report (see the module docstring)."""
    dst = target_ip(lab, server, server_ip)
    h = IccpHandle(lab, dst, port, workdir)
    launches = [
        Launch(lab.host(server), "sink", "iccp-server", ["--port", str(port)],
               wait_ready=True, ready_timeout=20.0),
        Launch(lab.host(client), "client", "iccp-client",
               ["--dst", dst, "--port", str(port), "--rate", str(rate),
                *duration_args(duration)]),
    ]
    if attack:
        launches.append(Launch(lab.host(client), "attack", "iccp-attack",
                               ["--dst", dst, "--port", str(port), "--split", split],
                               wait_ready=True, ready_timeout=20.0))
    start_probes("iccp", None, launches, handle=h)
    return h
