"""The two systems an experiment runs on, behind one adapter shape (running,
injector, before_fault, sample, roles_text, finish, keep_logs): the fgcpd cluster
behind the OpenFlow fabric, and the keepalived + conntrackd reference.
"""

from __future__ import annotations

import contextlib
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from lab.analysis import Sampler, log_errors, parse_sync_lag
from lab.faults import FaultInjector, Injector, ReferenceFaultInjector
from lab.scenario import Scenario
from topologies.lab import LabNetwork, wait_until
from topologies.reference import ReferenceCluster, setup_reference
from topologies.util import read_text


class ExperimentError(RuntimeError):
    """The experiment could not be run (lab, traffic or a fault failed)."""


class System(ABC):
    """What the runner drives: ``running(status)`` (a context manager that
    builds the system and waits until traffic passes), ``injector()``,
    ``before_fault``, ``sample`` / ``roles_text`` (the progress loop),
    ``finish()`` (logs, roles, settings for lab.analysis) and ``keep_logs``."""

    name = ""

    def __init__(self, sc: Scenario, rundir: Path) -> None:
        self.sc = sc
        self.rundir = rundir
        self._lab: LabNetwork | None = None

    @property
    def lab(self) -> LabNetwork:
        """The running lab (inside ``running``)."""
        if self._lab is None:
            raise ExperimentError(f"the {self.name} system is not running")
        return self._lab

    @abstractmethod
    def running(self, status: Callable[[str], None]) -> AbstractContextManager[None]:
        """Build the system, wait until traffic passes, tear it down on exit."""

    @abstractmethod
    def injector(self) -> Injector:
        """The fault injector for this system (inside ``running``)."""

    @abstractmethod
    def sample(self, s: Sampler, now: float) -> None:
        """Record the members' roles (and the sync lag) at ``now``."""

    @abstractmethod
    def roles_text(self, s: Sampler) -> str:
        """The last sampled roles, for the live display."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Logs, roles and settings for lab.analysis (before the system stops)."""

    def wait_first_ping(self, through: str, timeout: float = 20.0) -> None:
        """Until c1 pings sv1 (the system forwards); LabError naming ``through``."""
        dst = self.lab.host("sv1").IP()
        wait_until(lambda: " 0% packet loss" in self.lab.host("c1").cmd(
            f"ping -c 1 -W 1 {dst}"), timeout, f"the first ping through {through}")

    def before_fault(self, fault_kind: str, member: str | None) -> None:
        return

    def keep_logs(self, dest: Path) -> None:
        """Copy the lab's log files (members, controller) to ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        if self._lab is not None:
            for p in self._lab.log_files():
                shutil.copy2(p, dest / p.name)


class FgcpSystem(System):
    """fgcpd members behind the OpenFlow fabric (topologies.lab.LabNetwork)."""

    name = "fgcp"

    def __init__(self, sc: Scenario, rundir: Path) -> None:
        super().__init__(sc, rundir)
        self.history: dict[str, list[str]] = {m: [] for m in sc.member_names()}

    @contextlib.contextmanager
    def running(self, status: Callable[[str], None]) -> Iterator[None]:
        configs = {}
        for m in self.sc.members:
            path = self.rundir / f"{m.name}.conf"
            path.write_text(m.text)
            configs[m.name] = path
        status("starting the lab (Mininet, controller, fgcpd members)")
        with LabNetwork(clients=self.sc.clients, servers=self.sc.servers,
                        members=len(self.sc.members), configs=configs,
                        rundir=self.rundir, wait_ha=False) as lab:
            self._lab = lab
            status("waiting for one agreed HA primary")
            lab.wait_ha_stable(timeout=40)
            self._wait_traffic(status)
            self.wait_synced(status)
            yield

    def _wait_traffic(self, status: Callable[[str], None]) -> None:
        status("waiting for the first ping through the cluster")
        self.wait_first_ping("the cluster")

    def wait_synced(self, status: Callable[[str], None], timeout: float = 20.0) -> None:
        """With session pickup: until every secondary's bulk sync is complete."""
        if not self.sc.pickup:
            return
        primary = self.lab.wait_ha_stable(timeout=40)
        secs = [m for m in self.lab.running_members() if m != primary]
        if secs:
            status("waiting for the secondaries' bulk session sync")

        def done() -> bool:
            return all("bulk=complete" in self._diag(m, "diagnose sys session sync")
                       for m in secs)

        wait_until(done, timeout, "the secondaries' bulk session sync", interval=0.2)

    def _diag(self, member: str, cmd: str) -> str:
        try:
            return self.lab.diag(member, cmd)
        except OSError:
            return ""
        except Exception as exc:  # noqa: BLE001 - ctl errors: member gone
            return f"({type(exc).__name__}: {exc})"

    def injector(self) -> FaultInjector:
        def stable() -> str | None:
            primary = self.lab.wait_ha_stable(timeout=40)
            return primary

        return FaultInjector(self.lab, stable)

    def before_fault(self, fault_kind: str, member: str | None) -> None:
        if fault_kind in ("kill-primary", "power-off"):
            self.wait_synced(lambda s: None)
            if member is not None:
                self.history[member].append(
                    self._diag(member, "diagnose sys ha history read"))

    def sample(self, s: Sampler, now: float) -> None:
        roles = self.lab.roles()
        s.add_roles(now, roles)
        primaries = [m for m, r in roles.items() if r == "work"]
        if primaries:
            lag = parse_sync_lag(self._diag(primaries[0], "diagnose sys session sync"))
            if lag is not None:
                s.sync_lag.append((now, *lag))

    def roles_text(self, s: Sampler) -> str:
        return ", ".join(f"{m}={r or '-'}" for m, r in (s.roles[-1][1] if s.roles else {})
                         .items()) or "-"

    def finish(self) -> dict[str, Any]:
        lab = self.lab
        for m in lab.running_members():
            self.history[m].append(self._diag(m, "diagnose sys ha history read"))
        status = {m: self._diag(m, "get system ha status") for m in lab.running_members()}
        logs = {m: read_text(lab.member_log(m)) for m in self.sc.member_names()}
        return {
            "member_logs": logs, "controller_log": read_text(lab.controller_log),
            "members": {m.name: {"config": m.text, "config_source": m.source,
                                 "ha_history": "\n--- daemon restarted ---\n".join(
                                     self.history[m.name]),
                                 "ha_status": status.get(m.name, "(not running)"),
                                 "errors": log_errors(logs[m.name])}
                        for m in self.sc.members},
            "roles_end": lab.roles(),
            "settings": {"hb_interval_ms": round(self.sc.hb_interval_s() * 1000),
                         "hb_lost_threshold": int(self.sc.ha["hb-lost-threshold"]),
                         "detect_budget_ms": round(self.sc.hb_detect_s() * 1000),
                         "session_pickup": self.sc.pickup},
        }


class ReferenceSystem(System):
    """keepalived (VRRP) + conntrackd (FT-FW) on kernel routers fgt1/fgt2."""

    name = "reference"

    def __init__(self, sc: Scenario, rundir: Path) -> None:
        super().__init__(sc, rundir)
        self._ref: ReferenceCluster | None = None

    @property
    def ref(self) -> ReferenceCluster:
        """The running keepalived + conntrackd cluster (inside ``running``)."""
        if self._ref is None:
            raise ExperimentError("the reference cluster is not running")
        return self._ref

    @contextlib.contextmanager
    def running(self, status: Callable[[str], None]) -> Iterator[None]:
        status("starting the lab (Mininet, kernel routers)")
        with LabNetwork(clients=self.sc.clients, servers=self.sc.servers, members=2,
                        member_mode="kernel", active_members=(), rundir=self.rundir) as lab:
            self._lab = lab
            status(f"starting keepalived (advert_int {self.sc.advert_int():g} s) + conntrackd")
            with setup_reference(lab, advert_int=self.sc.advert_int(),
                                 conntrack_sync=bool(self.sc.reference["conntrack_sync"])) as ref:
                self._ref = ref
                self.wait_first_ping("the reference")
                yield

    def injector(self) -> ReferenceFaultInjector:
        return ReferenceFaultInjector(self.ref)

    def sample(self, s: Sampler, now: float) -> None:
        roles = {m.name: ("master" if self.ref.holds_vip(m.name) else "backup")
                 for m in self.ref.members}
        s.add_roles(now, roles)

    def roles_text(self, s: Sampler) -> str:
        return ", ".join(f"{m}={r}" for m, r in (s.roles[-1][1] if s.roles else {}).items())

    def finish(self) -> dict[str, Any]:
        members = {}
        logs = {}
        for m in self.ref.members:
            notify = read_text(m.notify_log)
            ka = read_text(m.path("keepalived.out"))
            logs[m.name] = notify
            members[m.name] = {
                "config": (f"# keepalived.conf\n{read_text(m.keepalived_conf)}\n"
                           f"# conntrackd.conf\n{read_text(m.conntrackd_conf)}"),
                "config_source": str(m.workdir),
                "ha_history": notify + "\n--- keepalived ---\n" + "\n".join(
                    ka.splitlines()[-60:]),
                "ha_status": str(self.ref.status().get(m.name)),
                "errors": [ln for ln in ka.splitlines() if "error" in ln.lower()][:20],
            }
        return {
            "member_logs": logs, "controller_log": "", "members": members,
            "roles_end": {m.name: "master" if self.ref.holds_vip(m.name) else "backup"
                          for m in self.ref.members},
            "settings": {"advert_int_ms": round(self.sc.advert_int() * 1000),
                         "master_down_ms": round(3 * self.sc.advert_int() * 1000),
                         "conntrack_sync": bool(self.sc.reference["conntrack_sync"])},
        }

    def keep_logs(self, dest: Path) -> None:
        super().keep_logs(dest)
        if self._ref is not None:
            for p in self._ref.members[0].workdir.glob("*"):
                if p.is_file():
                    shutil.copy2(p, dest / p.name)


def make_system(sc: Scenario, system: str, rundir: Path) -> System:
    if system == "fgcp":
        return FgcpSystem(sc, rundir)
    if system == "reference":
        return ReferenceSystem(sc, rundir)
    raise ExperimentError(f"unknown system {system!r} (fgcp or reference)")


def check_supported(sc: Scenario, system: str) -> None:
    """Raise ExperimentError when a fault has no equivalent on ``system``."""
    if system == "reference":
        bad = [f"faults[{i}].kind: {f.kind}" for i, f in enumerate(sc.faults)
               if not ReferenceFaultInjector.supports(f.kind)]
        if bad:
            raise ExperimentError(
                f"{sc.source}: {'; '.join(bad)}: no equivalent on keepalived + conntrackd "
                "(supported: kill-primary, power-off, monitor-link-down, old-primary-back)")
        if len(sc.members) != 2 or sc.faults and any(
                f.member not in ("primary",) for f in sc.faults
                if f.kind != "old-primary-back"):
            raise ExperimentError(f"{sc.source}: the reference runs 2 members and fails "
                                  "the master only (member: primary)")
