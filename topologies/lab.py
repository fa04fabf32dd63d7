"""A running lab: FgcpTopo on Mininet + os-ken fabric controller + member daemons.

`LabNetwork` is a context manager that builds everything on enter and always
tears down what it started (daemons, controller, Mininet) on exit or error.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Interface
from pathlib import Path
from typing import IO, Literal, Self

from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController

from fgcp.confparse import ConfigError
from fgcp.daemon import OFFLOADS
from topologies.confedit import SectionMissing, section_values, set_keys
from topologies.topo import (
    HA_BRIDGES,
    INSIDE_GATEWAY,
    INSIDE_SWITCH,
    OUTSIDE_GATEWAY,
    OUTSIDE_SWITCH,
    FgcpTopo,
)
from topologies.util import die_with_parent, make_run_dir, terminate
from topologies.util import wait_until as _wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MemberMode = Literal["fgcpd", "kernel"]
LOCK_PATH = Path("/run/fgcp-lab.lock")  # held (flock) by the one running lab


class LabError(RuntimeError):
    """The lab could not be started (or a step of it failed)."""


# poll until true, raising LabError on timeout (topologies.util.wait_until)
wait_until = functools.partial(_wait_until, error=LabError)


class LabController(RemoteController):
    """The os-ken controller as Mininet sees it: remote, started by the lab.

    Mininet's own reachability probe (``telnet``) is skipped: the lab waits
    for the port itself, and the probe crashes Mininet when telnet prints the
    controller's binary OpenFlow HELLO (UnicodeDecodeError, a flaky start).
    """

    def checkListening(self) -> None:
        return


class LabBusyError(LabError):
    """Another lab (or the leftovers of a crashed one) holds the lab's names."""


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (picked by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False)


def lab_names() -> list[str]:
    """Root-namespace bridge names a lab creates (their ports are <name>-ethN)."""
    return [INSIDE_SWITCH, OUTSIDE_SWITCH, *HA_BRIDGES.values()]


def existing_lab_names() -> list[str]:
    """Which of the lab's bridge names exist now (in OVS or as a Linux link)."""
    found = []
    for name in lab_names():
        in_ovs = _run(["ovs-vsctl", "--timeout=5", "br-exists", name]).returncode == 0
        if in_ovs or Path(f"/sys/class/net/{name}").exists():
            found.append(name)
    return found


def cleanup_leftovers() -> list[str]:
    """Delete the lab's own bridges and switch-side veths left by a crashed lab.

    Only names this module creates (s1, s2, hb1, hb2, sync1 and their
    ``<name>-ethN`` ports) are touched.  Returns what was removed.
    """
    removed = []
    prefixes = tuple(f"{n}-eth" for n in lab_names())
    for name in lab_names():
        if _run(["ovs-vsctl", "--timeout=5", "br-exists", name]).returncode == 0:
            _run(["ovs-vsctl", "--timeout=5", "del-br", name])
            removed.append(name)
    for path in sorted(Path("/sys/class/net").iterdir()):
        ours = path.name in lab_names() or path.name.startswith(prefixes)
        if ours and _run(["ip", "link", "del", path.name]).returncode == 0:
            removed.append(path.name)
    return removed


def config_hostnames(path: Path) -> list[str]:
    """The ``set hostname`` of ``config system global`` in a FortiOS configuration
    file (read with fgcp.confparse); [] when unreadable, unparsable or not set."""
    try:
        words = section_values(path.read_text(errors="replace"), "system global", "hostname",
                               str(path))
    except (OSError, ConfigError):
        return []
    return words[:1] if words else []


def ha_config_text(text: str, settings: Mapping[str, object], source: str = "<string>") -> str:
    """``text`` (a member configuration) with ``set <key> <value>`` of ``config
    system ha`` rewritten or added, e.g. {"hb-interval": 1, "override": "enable"}
    (topologies.confedit on the parsed tree). Raises LabError when the section is
    missing, fgcp.confparse.ConfigError (naming ``source``) on a syntax error."""
    try:
        return set_keys(text, "system ha", settings, source)
    except SectionMissing as exc:
        raise LabError(exc.reason) from None


def write_ha_config(member: str, dest: Path, settings: Mapping[str, object],
                    base: Path | None = None) -> Path:
    """Write ``member``'s configuration (default topologies/configs/<member>.conf)
    with HA ``settings`` applied to ``dest``; returns ``dest``."""
    src = base if base is not None else CONFIG_DIR / f"{member}.conf"
    dest.write_text(ha_config_text(src.read_text(), settings))
    return dest


class LabNetwork:
    """Context manager: the whole lab up on enter, everything down on exit.

    ``member_mode='fgcpd'`` runs ``python -m fgcp.daemon`` in each active
    member (default: all of them; with HA configured ``start`` waits until they
    agree on one primary); ``'kernel'`` makes each active member (default: fgt1)
    a Linux router with masquerade (the reference path and a topology self-test).
    """

    def __init__(
        self,
        clients: int = 1,
        servers: int = 1,
        members: int = 2,
        member_mode: MemberMode = "fgcpd",
        active_members: Sequence[str] | None = None,
        configs: Mapping[str, Path | str] | None = None,
        rundir: Path | str | None = None,
        python: str = sys.executable,
        timeout: float = 30.0,
        wait_ha: bool = True,
    ) -> None:
        if member_mode not in ("fgcpd", "kernel"):
            raise LabError(f"member_mode must be 'fgcpd' or 'kernel', not {member_mode!r}")
        self.topo = FgcpTopo(clients=clients, servers=servers, members=members)
        names = [m.name for m in self.topo.members]
        if active_members is None:
            # fgcpd: every member runs (the cluster elects its primary); kernel:
            # one Linux router owns the gateway addresses (fgt1)
            active_members = names if member_mode == "fgcpd" else names[:1]
        unknown = [m for m in active_members if m not in names]
        if unknown:
            raise LabError(f"active_members {unknown} not in topology {names}")
        self.member_mode: MemberMode = member_mode
        self.active_members = tuple(active_members)
        self.configs = {n: Path(p) for n, p in (configs or {}).items()}
        self._own_rundir = rundir is None
        self._rundir = Path(rundir) if rundir is not None else None
        self.python = python
        self.timeout = timeout
        self.wait_ha = wait_ha
        self.controller_port = 0
        self.net: Mininet | None = None
        self.controller: subprocess.Popen[bytes] | None = None
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self._ctl_names: dict[str, str] = {}  # member -> control socket name
        self._files: list[IO[bytes]] = []
        self._lock_fd: int | None = None

    @staticmethod
    def _make_rundir() -> Path:
        return make_run_dir(f"fgcp-lab-{os.getpid()}-")

    # -- context manager --------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- accessors --------------------------------------------------------
    @property
    def rundir(self) -> Path:
        """Sockets, pidfiles and logs (fresh under /run unless given)."""
        if self._rundir is None:
            raise LabError("the lab has no run directory before start()")
        return self._rundir

    @property
    def controller_log(self) -> Path:
        return self.rundir / "controller.log"

    def host(self, name: str) -> Host:
        if self.net is None:
            raise LabError("lab is not running")
        return self.net.get(name)

    def member(self, name: str) -> Host:
        return self.host(name)

    def config_path(self, member: str) -> Path:
        return self.configs.get(member, CONFIG_DIR / f"{member}.conf")

    def member_log(self, member: str) -> Path:
        return self.rundir / f"{member}.log"

    def ips_log(self, member: str) -> Path:
        """The member's IPS attack log (fgcpd --ips-log): ``<member>.ips.log``."""
        return self.rundir / f"{member}.ips.log"

    def diag(self, member: str, command: str) -> str:
        """Run a FortiOS-style diag command on ``member`` via its control socket."""
        if self.member_mode != "fgcpd":
            raise LabError("diag needs member_mode='fgcpd'")
        from fgcp.ctl import query

        return query(str(self.rundir), self._ctl_names.get(member, member), command)

    def log_files(self) -> list[Path]:
        """Logs worth keeping: controller and member logs/outputs."""
        return sorted(p for p in self.rundir.glob("*") if p.suffix in (".log", ".out"))

    # -- start ------------------------------------------------------------
    def start(self) -> None:
        self._preflight()
        if self._rundir is None:
            self._rundir = self._make_rundir()
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.controller_port = free_tcp_port()
        self.net = Mininet(
            topo=self.topo,
            controller=None,
            build=False,
            autoSetMacs=False,
            ipBase="198.51.100.0/24",
            waitConnected=False,
        )
        self._start_controller()
        self.net.addController("c0", controller=LabController,
                               ip="127.0.0.1", port=self.controller_port)
        self.net.build()
        self._configure_hosts()
        self.net.start()
        self._wait_switches()
        for plan in self.topo.members:
            self._configure_member(plan.name)
        if self.member_mode == "fgcpd":
            for name in self.active_members:
                self._start_daemon(name)
            for name in self.active_members:
                self._wait_daemon(name)
            if self.wait_ha:
                self.wait_ha_stable()

    def _lock(self) -> None:
        """Take the machine-wide lab lock (Mininet's switch names are global):
        two labs starting at once cannot both pass the name check."""
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LabBusyError(
                f"another lab is running (it holds {LOCK_PATH}); stop it first"
            ) from None
        self._lock_fd = fd

    def _preflight(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (Mininet): run it with sudo")
        if _run(["ovs-vsctl", "--timeout=5", "show"]).returncode != 0:
            raise LabError("Open vSwitch is not running: run scripts/setup-host.sh")
        self._lock()
        busy = existing_lab_names()
        if busy:
            raise LabBusyError(
                f"another lab is running ({', '.join(busy)} exist); stop it first, "
                "or remove a crashed lab's leftovers with `fgcp-lab topo --cleanup`"
            )
        if self.member_mode == "fgcpd":
            missing = [n for n in self.active_members if not self.config_path(n).is_file()]
            if missing:
                raise LabError(
                    f"no configuration for {missing} (looked for "
                    f"{[str(self.config_path(n)) for n in missing]})"
                )

    def _configure_hosts(self) -> None:
        assert self.net is not None
        for host in self.net.hosts:
            host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                     "net.ipv6.conf.default.disable_ipv6=1")
            for intf in host.intfNames():
                if intf != "lo":
                    host.cmd(f"sysctl -qw net.ipv6.conf.{intf}.disable_ipv6=1")
                    host.cmd(f"ethtool -K {intf} {' '.join(OFFLOADS)}")
        for switch in self.net.switches:
            for intf in switch.intfNames():
                if intf != "lo":
                    switch.cmd(f"ethtool -K {intf} {' '.join(OFFLOADS)}")

    def _configure_member(self, name: str) -> None:
        host = self.host(name)
        plan = self.topo.member(name)
        addresses = {p.name: p.address for p in plan.ports if p.address is not None}
        if self.member_mode == "kernel" and name in self.active_members:
            addresses["port1"] = IPv4Interface(f"{INSIDE_GATEWAY}/24")
            addresses["port2"] = IPv4Interface(f"{OUTSIDE_GATEWAY}/24")
        for port, addr in addresses.items():
            host.cmd(f"ip addr add {addr} dev {port}")
            intf = host.intf(port)  # keep Mininet's view (CLI `dump`, IP()) right
            intf.ip, intf.prefixLen = str(addr.ip), addr.network.prefixlen
        if self.member_mode == "kernel" and name in self.active_members:
            host.cmd("sysctl -qw net.ipv4.ip_forward=1")
            ruleset = (
                "add table ip fgcplab; add chain ip fgcplab post { type nat hook "
                "postrouting priority srcnat; policy accept; }; "
                'add rule ip fgcplab post oifname "port2" masquerade'
            )
            out = host.cmd(f"nft '{ruleset}' && echo nft-ok")
            if "nft-ok" not in out:
                raise LabError(f"{name}: nft masquerade failed: {out.strip()}")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return env

    def _open(self, path: Path) -> IO[bytes]:
        f = open(path, "ab")  # noqa: SIM115 - closed in stop()
        self._files.append(f)
        return f

    def _start_controller(self) -> None:
        out = self._open(self.rundir / "controller.out")
        self.controller = subprocess.Popen(
            [self.python, "-m", "topologies.launcher", "--port", str(self.controller_port),
             "--log", str(self.controller_log)],
            cwd=REPO_ROOT, env=self._env(), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the lab starts no threads
        )

        def listening() -> bool:
            if self.controller is not None and self.controller.poll() is not None:
                raise LabError(
                    f"controller exited with {self.controller.returncode}; see "
                    f"{self.rundir / 'controller.out'}"
                )
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.controller_port)) == 0

        wait_until(listening, self.timeout, f"the controller on port {self.controller_port}")

    def _wait_switches(self) -> None:
        assert self.net is not None
        ovs = [s for s in self.net.switches if isinstance(s, OVSSwitch)]

        def ready() -> bool:
            for sw in ovs:
                if not sw.connected():
                    return False
                flows = _run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", sw.name]).stdout
                if "actions=CONTROLLER" not in flows:
                    return False
            return True

        wait_until(ready, self.timeout, "the switches to connect to the controller",
                   interval=0.2)

    def _start_daemon(self, name: str) -> None:
        plan = self.topo.member(name)
        out = self._open(self.rundir / f"{name}.out")
        cmd = [
            self.python, "-m", "fgcp.daemon",
            "--config", str(self.config_path(name)),
            "--rundir", str(self.rundir),
            "--serial", plan.serial,
            "--log", str(self.member_log(name)),
            "--ips-log", str(self.ips_log(name)),
        ]
        self.daemons[name] = self.host(name).popen(
            cmd, cwd=str(REPO_ROOT), env=self._env(), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # the lab process starts no threads
        )

    def _wait_daemon(self, name: str) -> None:
        # The socket is <rundir>/<hostname>.sock: the member name, or the
        # configured hostname (set hostname "FGT1") if the daemon uses that.
        names = [name, *config_hostnames(self.config_path(name))]
        proc = self.daemons[name]

        def up() -> bool:
            if proc.poll() is not None:
                raise LabError(
                    f"{name}: fgcpd exited with {proc.returncode}; see "
                    f"{self.rundir / (name + '.out')} and {self.member_log(name)}"
                )
            for ctl in names:
                sock = self.rundir / f"{ctl}.sock"
                if sock.exists():
                    with socket.socket(socket.AF_UNIX) as s:
                        if s.connect_ex(str(sock)) == 0:
                            self._ctl_names[name] = ctl
                            return True
            return False

        wait_until(up, self.timeout, f"{name}'s control socket in {self.rundir}")

    # -- HA -----------------------------------------------------------------
    def ha_state(self, member: str) -> dict[str, str]:
        """``diagnose lab ha`` of ``member`` as a dict ({} when HA is standalone/down)."""
        try:
            text = self.diag(member, "diagnose lab ha")
        except OSError:
            return {}
        lines = text.splitlines()
        if not lines or not lines[0].startswith("state="):
            return {}
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def running_members(self) -> list[str]:
        return [n for n, p in self.daemons.items() if p.poll() is None]

    def roles(self) -> dict[str, str]:
        """HA state (hello | work | standby, '' when unknown) of every running member."""
        return {n: self.ha_state(n).get("state", "") for n in self.running_members()}

    def primaries(self) -> list[str]:
        return [n for n, st in self.roles().items() if st == "work"]

    def ha_stable(self, members: Sequence[str] | None = None) -> bool:
        """Every member out of hello, exactly one primary, all agree on it."""
        members = list(members) if members is not None else self.running_members()
        states = [self.ha_state(n) for n in members]
        if not states or any(not st for st in states):
            return all(not st for st in states)  # all standalone: nothing to wait for
        if any(st.get("state") not in ("work", "standby") for st in states):
            return False
        work = [st for st in states if st["state"] == "work"]
        if len(work) != 1:
            return False
        primary = work[0]["serial"]
        return all(st.get("primary") == primary for st in states)

    def wait_ha_stable(self, timeout: float | None = None,
                       members: Sequence[str] | None = None) -> str | None:
        """Wait until ``ha_stable``; returns the primary member (None when standalone)."""
        if timeout is None:
            timeout = self.timeout + 30.0  # hello-holddown up to 20 s by default
        wait_until(lambda: self.ha_stable(members), timeout,
                   "one HA primary agreed by every member", interval=0.1)
        work = self.primaries()
        return work[0] if work else None

    def kill_daemon(self, name: str, sig: int = signal.SIGKILL, timeout: float = 5.0) -> float:
        """Signal ``name``'s fgcpd (SIGKILL by default), reap it; returns when (time.time())."""
        proc = self.daemons.pop(name, None)
        if proc is None:
            raise LabError(f"{name}: no fgcpd running")
        t = time.time()
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        return t

    def set_links(self, member: str, up: bool, ports: Sequence[str] | None = None) -> float:
        """Links of ``member`` up/down (default all its ports: "power off"); returns when."""
        host = self.host(member)
        names = list(ports) if ports is not None else [
            i for i in host.intfNames() if i != "lo"]
        t = time.time()
        cmd = " ; ".join(f"ip link set {p} {'up' if up else 'down'}" for p in names)
        host.cmd(cmd)
        return t

    def start_daemon(self, name: str, config: Path | str | None = None) -> None:
        """(Re)start ``name``'s fgcpd (optionally with another config) and wait for its
        control socket."""
        if config is not None:
            self.configs[name] = Path(config)
        if self.member_mode != "fgcpd":
            raise LabError("start_daemon needs member_mode='fgcpd'")
        if name in self.daemons and self.daemons[name].poll() is None:
            raise LabError(f"{name}: fgcpd is already running")
        self._start_daemon(name)
        self._wait_daemon(name)

    # -- stop -------------------------------------------------------------
    def stop_daemon(self, name: str, timeout: float = 5.0) -> int | None:
        """Stop one member daemon (SIGTERM, then SIGKILL); returns its exit code."""
        proc = self.daemons.pop(name, None)
        if proc is None:
            return None
        return terminate(proc, timeout)

    def stop(self) -> None:
        """Tear down everything this lab started; safe to call twice."""
        try:
            for name in list(self.daemons):
                self.stop_daemon(name)
        finally:
            try:
                if self.net is not None:
                    net, self.net = self.net, None
                    net.stop()
            finally:
                if self.controller is not None:
                    proc, self.controller = self.controller, None
                    terminate(proc, 5.0)
                for f in self._files:
                    f.close()
                self._files.clear()
                if self._lock_fd is not None:
                    fd, self._lock_fd = self._lock_fd, None
                    os.close(fd)  # releases the lab lock

    def remove_rundir(self) -> None:
        """Delete the run directory if this lab created it."""
        if self._own_rundir and self._rundir is not None:
            shutil.rmtree(self._rundir, ignore_errors=True)
