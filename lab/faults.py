"""Fault injection for failover experiments: each fault of a scenario applied to a
running lab (fgcpd members, or the keepalived + conntrackd reference) and undone.

`FaultInjector.apply(fault)` returns an `AppliedFault` with the wall-clock time
(time.time(), the clock of the probes and the member logs) at which it hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lab.scenario import Fault

if TYPE_CHECKING:
    from topologies.lab import LabNetwork
    from topologies.reference import FailKind, ReferenceCluster

HB_PORTS = ("port3", "port4")


class FaultError(RuntimeError):
    """A fault could not be applied (no primary, unsupported on this system...)."""


@dataclass
class AppliedFault:
    """A fault as it happened: target member, time applied, time restored."""

    index: int
    kind: str
    member: str
    t: float
    port: str | None = None
    restored_at: float | None = None
    primary_before: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _other(members: list[str], primary: str | None) -> str | None:
    rest = [m for m in members if m != primary]
    return rest[0] if rest else None


class Injector(Protocol):
    """What the experiment runner asks of a system's fault injector."""

    def apply(self, fault: Fault, index: int = 0) -> AppliedFault: ...

    def restore(self, rec: AppliedFault) -> None: ...

    def cleanup(self) -> None: ...


class FaultInjector:
    """Faults on an fgcpd lab (`topologies.lab.LabNetwork`). Remembers what it
    took down so that `restore` / `old-primary-back` / `cleanup` can undo it."""

    def __init__(self, lab: LabNetwork, wait_stable: Callable[[], str | None] | None = None) -> None:
        self.lab = lab
        self.wait_stable = wait_stable or (lambda: lab.wait_ha_stable(timeout=30))
        self.down: list[str] = []  # members killed / powered off, oldest first
        self.powered_off: set[str] = set()
        self.links_down: dict[str, set[str]] = {}
        self.failover_set: set[str] = set()

    def target(self, fault: Fault) -> tuple[str, str | None]:
        """(member the fault hits, primary before it)."""
        if fault.kind == "old-primary-back":
            if not self.down:
                raise FaultError("old-primary-back: no member was taken down before")
            return self.down[-1], None
        primary = self.wait_stable()
        if fault.member == "primary":
            if primary is None:
                raise FaultError(f"{fault.kind}: no HA primary to fail")
            return primary, primary
        if fault.member == "secondary":
            other = _other(self.lab.running_members(), primary)
            if other is None:
                raise FaultError(f"{fault.kind}: no secondary running")
            return other, primary
        return fault.member, primary

    def apply(self, fault: Fault, index: int = 0) -> AppliedFault:
        member, primary = self.target(fault)
        lab = self.lab
        kind = fault.kind
        rec = AppliedFault(index, kind, member, 0.0, fault.port, primary_before=primary)
        if kind == "kill-primary":
            rec.t = lab.kill_daemon(member)
            self.down.append(member)
        elif kind == "power-off":
            rec.t = time.time()
            lab.kill_daemon(member)
            lab.set_links(member, False)
            self.powered_off.add(member)
            self.down.append(member)
        elif kind in ("monitor-link-down", "hb-link-cut", "sync-link-down"):
            assert fault.port is not None
            rec.t = lab.set_links(member, False, [fault.port])
            self.links_down.setdefault(member, set()).add(fault.port)
        elif kind == "split-brain":
            rec.t = lab.set_links(member, False, list(HB_PORTS))
            self.links_down.setdefault(member, set()).update(HB_PORTS)
            rec.port = ",".join(HB_PORTS)
        elif kind == "old-primary-back":
            self.down.pop()
            rec.t = time.time()
            if member in self.powered_off:
                lab.set_links(member, True)
                self.powered_off.discard(member)
            lab.start_daemon(member)
            rec.detail = "restarted"
        elif kind == "failover-set":
            rec.t = time.time()
            rec.detail = lab.diag(member, "execute ha failover set 1").strip()
            self.failover_set.add(member)
        else:
            raise FaultError(f"unknown fault {kind!r}")
        return rec

    def restore(self, rec: AppliedFault) -> None:
        """Undo a restorable fault (links up, daemon back, failover unset)."""
        lab = self.lab
        if rec.kind == "power-off":
            if rec.member in self.powered_off:
                lab.set_links(rec.member, True)
                self.powered_off.discard(rec.member)
                if rec.member in self.down:
                    self.down.remove(rec.member)
                rec.restored_at = time.time()
                lab.start_daemon(rec.member)
            return
        if rec.kind == "failover-set":
            rec.restored_at = time.time()
            lab.diag(rec.member, "execute ha failover unset 1")
            self.failover_set.discard(rec.member)
            return
        ports = (rec.port or "").split(",")
        ports = [p for p in ports if p]
        if ports:
            rec.restored_at = lab.set_links(rec.member, True, ports)
            self.links_down.get(rec.member, set()).difference_update(ports)

    def cleanup(self) -> None:
        """Bring every link this injector took down back up (best effort)."""
        for member, ports in self.links_down.items():
            if ports:
                self.lab.set_links(member, True, sorted(ports))
        self.links_down.clear()
        for member in self.powered_off:
            self.lab.set_links(member, True)
        self.powered_off.clear()


# -- the reference cluster (keepalived + conntrackd) --------------------------
REFERENCE_KINDS: dict[str, FailKind] = {
    "kill-primary": "kill",  # the router stops: keepalived + conntrackd killed, links down
    "power-off": "kill",
    "monitor-link-down": "link-down",  # port1 and port2 of the master down
}


class ReferenceFaultInjector:
    """The same faults on `topologies.reference.ReferenceCluster`. Only faults with a
    kernel-router equivalent exist (REFERENCE_KINDS + old-primary-back)."""

    def __init__(self, ref: ReferenceCluster) -> None:
        self.ref = ref
        self.down: list[str] = []

    @staticmethod
    def supports(kind: str) -> bool:
        return kind in REFERENCE_KINDS or kind == "old-primary-back"

    def apply(self, fault: Fault, index: int = 0) -> AppliedFault:
        ref = self.ref
        if fault.kind == "old-primary-back":
            if not self.down:
                raise FaultError("old-primary-back: no member was taken down before")
            member = self.down.pop()
            t = time.time()
            ref.restore(member)
            return AppliedFault(index, fault.kind, member, t, detail="restored")
        if fault.kind not in REFERENCE_KINDS:
            raise FaultError(f"{fault.kind}: no equivalent on the keepalived + conntrackd "
                             f"reference (supported: {', '.join(REFERENCE_KINDS)})")
        master = ref.wait_master(15.0)
        mode = REFERENCE_KINDS[fault.kind]
        t = time.time()
        if mode == "kill":
            self._freeze(master)
        ev = ref.fail_master(mode)
        if mode == "kill":
            self.down.append(ev.member)
        detail = ("keepalived + conntrackd SIGKILLed, all links down" if mode == "kill"
                  else "port1 and port2 down")
        return AppliedFault(index, fault.kind, ev.member, t,
                            port="port1,port2" if mode == "link-down" else None,
                            primary_before=master, detail=detail)

    def _freeze(self, name: str) -> None:
        """SIGSTOP the member's keepalived (parent and VRRP child) and conntrackd before
        fail_master kills them: a power cut gives no chance to resign gracefully, but
        the VRRP child, SIGTERMed when its parent dies first, would send priority-0
        adverts and hand the VIPs over faster than any real failure allows."""
        pids = []
        procs = self.ref.procs.get(name)
        if procs is not None:
            pids += [p.pid for p in (procs.keepalived, procs.conntrackd)
                     if p is not None and p.poll() is None]
        child = self.ref._vrrp_child(self.ref.member(name))
        if child is not None:
            pids.append(child)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def restore(self, rec: AppliedFault) -> None:
        if rec.member in self.down:
            self.down.remove(rec.member)
        rec.restored_at = time.time()
        self.ref.restore(rec.member)

    def cleanup(self) -> None:
        for member in list(self.down):
            host = self.ref.lab.host(member)
            host.cmd("; ".join(f"ip link set {i} up" for i in host.intfNames() if i != "lo"))
        self.down.clear()
