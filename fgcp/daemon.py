"""fgcpd: the member daemon, the thin I/O shell around the pure forwarding plane.

Prepares the member's namespace, opens PACKET_MMAP ports on port1/port2, runs
one poll loop (rings, control socket, expiry timer, signals, components) and logs.

Components (HA in fgcp.hamember, session sync in fgcp.syncmember) plug into the
loop through the contract of fgcp.component (``Component``; the daemon is their
``Host``).  ``now`` is always ``time.time()`` (one clock for the forwarder, the
components and the diag snapshot).

Roles (``Daemon.role``, fgcp.roles.Role): ``init`` -> ``hello`` (HA negotiating, no
forwarding) -> ``primary`` / ``secondary``.  ``become_primary(now, reason)`` runs
every component's ``before_takeover``, then activates the forwarder, takes the HA
virtual MACs (00:09:0f:09:<group-id>:<vcluster*0x80 + idx>) and sends the
gratuitous ARPs (``arps`` of them, ``arps-interval`` apart, the first at once).
When a ``before_takeover`` hook fails the member never forwards without its state:
it stays out of primary, counts ``takeover_hook_failures`` (``diagnose lab stats``),
logs the error and returns False; the HA component retries on its next tick.
``become_secondary(now, reason)`` stops forwarding, gives the virtual MACs up,
then runs ``after_release``.  Without a component that drives the role (HA mode
standalone, or no HA component) the member is primary as soon as it is open.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from fgcp import ctl, diag, neighwarm, ring
from fgcp.component import Component, DaemonError, ForwarderFactory, ForwardingPlane
from fgcp.config import ConfigError, load_config
from fgcp.config.system import GLOBAL
from fgcp.config.values import Invalid
from fgcp.confparse import Word
from fgcp.forward import Forwarder, PortSpec
from fgcp.hamember import HaMember
from fgcp.ipsinspector import IpsSetupError
from fgcp.ipsmember import ips_log_path, ips_setup
from fgcp.model import MemberConfig
from fgcp.roles import Role
from fgcp.syncmember import SyncMember

__all__ = ["Daemon", "DaemonError", "data_plane_ports", "main", "parse_ports", "virtual_mac"]

log = logging.getLogger("fgcpd")

BATCH = 64  # frames per recv_batch
ROUNDS = 8  # batches per readable port before polling again (fairness)
EXPIRE_INTERVAL = 1.0
EXPIRE_BEHIND_INTERVAL = 0.001  # next expiry step while due sessions are left (fgcp/expiry.py)
TRACEBACKS_LOGGED = 20  # then one summary line per LOG_EVERY errors
LOG_EVERY = 1000
OFFLOADS = ("tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off")


def virtual_mac(group_id: int, index: int, vcluster: int = 0) -> bytes:
    """FGCP virtual MAC of interface ``index``: 00:09:0f:09:<group-id>:<vcluster*0x80 + idx>."""
    return bytes((0x00, 0x09, 0x0F, 0x09, group_id & 0xFF, (vcluster * 0x80 + index) & 0xFF))


def data_plane_ports(cfg: MemberConfig) -> list[str]:
    """Configured interfaces with an address that are not HA links (port1, port2)."""
    ha = {name for name, _ in cfg.ha.hbdev} | set(cfg.ha.session_sync_dev)
    return [n for n, i in cfg.interfaces.items() if i.ip is not None and n not in ha]


def parse_ports(text: str) -> list[tuple[str, str]]:
    """``port1,port2`` or ``port1=eth0,port2=eth1`` -> [(name, ifname), ...]."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, ifname = item.partition("=")
        out.append((name, ifname or name))
    if not out:
        raise DaemonError(f"--ports {text!r} names no port")
    return out


def _run(cmd: Sequence[str]) -> None:
    res = subprocess.run(list(cmd), check=False, capture_output=True, text=True)
    if res.returncode != 0:
        log.warning("%s failed (%d): %s", " ".join(cmd), res.returncode, res.stderr.strip())


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    try:
        path.write_text(value)
    except OSError as exc:
        log.warning("sysctl %s=%s failed: %s", key, value, exc)


def prepare_namespace(ifnames: Sequence[str]) -> None:
    """Hand ``ifnames`` to the member: no kernel ARP/IP/IPv6 on them, no offloads,
    no kernel forwarding.  HA ports keep their kernel addresses."""
    _sysctl("net.ipv4.ip_forward", "0")
    for ifname in ifnames:
        _run(["ip", "link", "set", ifname, "up", "arp", "off"])
        _run(["ip", "addr", "flush", "dev", ifname])
        _sysctl(f"net.ipv6.conf.{ifname}.disable_ipv6", "1")
        _run(["ethtool", "-K", ifname, *OFFLOADS])


def _clear_socket_error(fd: int) -> None:
    """Consume a pending socket error (ENETDOWN left by a link that went down and
    came back): otherwise the next transmit kick fails with it and the frames
    queued in the tx ring wait for the kick after (the first GARP was lost)."""
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError:
        pass
    finally:
        dup.close()


class Daemon:
    """One member: ports, forwarding plane, control socket; ``run`` until stopped."""

    def __init__(
        self,
        cfg: MemberConfig,
        rundir: str | os.PathLike[str],
        *,
        ports: Sequence[tuple[str, str]] | None = None,
        port_kind: str = "ring",
        forwarder: ForwarderFactory = Forwarder,
        prepare: bool = True,
        components: Sequence[Component] = (),
    ) -> None:
        self.cfg = cfg
        self.rundir = Path(rundir)
        self.port_kind = port_kind
        self.factory = forwarder
        self.prepare = prepare
        self.wanted = list(ports) if ports is not None else [(n, n) for n in data_plane_ports(cfg)]
        self.explicit_ports = ports is not None
        self.ports: list[ring.RingPort | ring.PlainPort] = []
        self.names: list[str] = []
        self.table = diag.default_table()
        self.table.register("diagnose lab stats", self._render_stats, "daemon and port counters")
        self.stats: dict[str, int] = {"loop_errors": 0, "ctl_errors": 0, "expired": 0,
                                      "takeover_hook_failures": 0}
        self.started = time.time()
        self.components: list[Component] = list(components)
        self.role = Role.INIT
        self.role_since = self.started
        self.role_reason = "starting"
        self.role_changes = 0
        self.own_macs: list[bytes] = []
        self.vmacs: list[bytes] = []
        self._garp_left = 0
        self._garp_next = 0.0
        self.fwd: ForwardingPlane | None = None
        self.server: ctl.CtlServer | None = None
        self._stop = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._old_handlers: dict[int, Any] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def hostname(self) -> str:
        return self.cfg.hostname

    @property
    def pidfile(self) -> Path:
        return self.rundir / f"{self.hostname}.pid"

    def open(self) -> None:
        """Prepare the namespace, open ports, build the forwarder, listen."""
        self.rundir.mkdir(parents=True, exist_ok=True)
        present = {name for _, name in socket.if_nameindex()}
        chosen = []
        for name, ifname in self.wanted:
            if ifname in present:
                chosen.append((name, ifname))
            elif self.explicit_ports:
                raise DaemonError(f"interface {ifname!r} (for {name}) does not exist")
            else:
                log.warning("%s: no interface %r in this namespace, not forwarded", name, ifname)
        if not chosen:
            raise DaemonError("no data-plane port to open (configure port1/port2 with an ip)")
        if self.prepare:
            prepare_namespace([ifname for _, ifname in chosen])
        specs: list[PortSpec] = []
        for index, (name, ifname) in enumerate(chosen):
            port = ring.open_port(ifname, index, self.port_kind)
            self.ports.append(port)
            self.names.append(name)
            specs.append(PortSpec(index, name, port.mac))
            log.info("%s: %s port on %s, mac %s", name, port.kind, ifname, port.mac.hex(":"))
        self.fwd = self.factory(self.cfg, specs)
        self.own_macs = [p.mac for p in self.ports]
        order = list(self.cfg.interfaces)
        self.vmacs = [
            virtual_mac(self.cfg.ha.group_id, order.index(n) if n in order else i)
            for i, n in enumerate(self.names)
        ]
        self.server = ctl.CtlServer(ctl.socket_path(self.rundir, self.hostname), self.answer)
        now = time.time()
        for comp in self.components:
            comp.open(self)
        if self.role == Role.INIT and not self.become_primary(now, "standalone: no HA negotiation"):
            # no HA component retries: refuse to run rather than forward without the state
            raise DaemonError("a takeover hook failed: the member cannot take traffic")
        self.pidfile.write_text(f"{os.getpid()}\n")
        log.info("%s listening on %s", self.hostname, self.server.path)

    def add_component(self, comp: Component) -> None:
        """Host ``comp`` (before ``open``)."""
        if self.fwd is not None:
            raise DaemonError(f"component {comp.name!r} added after open()")
        self.components.append(comp)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    # ------------------------------------------------------------ roles

    @property
    def ha_enabled(self) -> bool:
        return self.cfg.ha.mode != "standalone"

    def enter_hello(self, now: float, reason: str = "HA hello") -> None:
        """HA negotiation: the member forwards nothing until it is elected."""
        self._set_active(False)
        self._set_role(now, Role.HELLO, reason)

    def become_primary(self, now: float, reason: str) -> bool:
        """Take traffic: components' ``before_takeover`` first, then forwarder,
        virtual MACs and gratuitous ARPs.  False when a hook failed: the member
        stays in its role (it never forwards without the state) and the caller
        retries; counted in ``takeover_hook_failures``."""
        if self.role == Role.PRIMARY:
            return True
        for comp in self.components:
            try:
                comp.before_takeover(now)
            except Exception:  # noqa: BLE001 - a component bug: refuse the takeover
                self.stats["takeover_hook_failures"] += 1
                self._error(f"{comp.name}: before_takeover failed, staying {self.role} "
                            f"(no traffic without the state; takeover retried)")
                return False
        if self.ha_enabled and self.fwd is not None:
            for i, mac in enumerate(self.vmacs):
                self.fwd.set_port_mac(i, mac)
        self._set_active(True)
        self._set_role(now, Role.PRIMARY, reason)
        if self.ha_enabled:
            self.announce(now)
        return True

    def become_secondary(self, now: float, reason: str) -> None:
        """Stop forwarding and give the virtual MACs up, then ``after_release``."""
        if self.role == Role.SECONDARY:
            return
        was = self.role
        self._set_active(False)
        self._garp_left = 0
        if self.fwd is not None:
            for i, mac in enumerate(self.own_macs):
                self.fwd.set_port_mac(i, mac)
        self._set_role(now, Role.SECONDARY, reason)
        if was == Role.PRIMARY:
            for comp in self.components:
                try:
                    comp.after_release(now)
                except Exception:  # noqa: BLE001 - logged, the release goes on
                    self._error(f"{comp.name}: after_release")

    def announce(self, now: float) -> None:
        """Send gratuitous ARPs now and ``arps - 1`` more, ``arps-interval`` apart."""
        if self.role != Role.PRIMARY:
            return
        self._send_garps()
        self._garp_left = max(0, self.cfg.ha.arps - 1)
        self._garp_next = now + self.cfg.ha.arps_interval

    def send_frames(self, frames: Sequence[tuple[int, bytes | bytearray]]) -> int:
        """Send (port index, frame) pairs on the data ports (components' probes, e.g.
        fgcp.neighwarm); returns how many left; a failing port is logged, never fatal."""
        n = 0
        for index, frame in frames:
            port = self.ports[index]
            try:
                port.send(frame)
                port.flush()
                n += 1
            except Exception:  # noqa: BLE001 - a down port must not stop the loop
                self._error(f"{self.names[index]}: send")
        return n

    def _send_garps(self) -> None:
        fwd = self.fwd
        if fwd is None:
            return
        n = 0
        for port in self.ports:
            _clear_socket_error(port.fileno())
            try:
                for oi, frame in fwd.gratuitous_arps(port.index):
                    self.ports[oi].send(frame)
                    n += 1
                port.flush()
            except Exception:  # noqa: BLE001 - a down port must not stop the takeover
                self._error(f"{self.names[port.index]}: gratuitous ARP")
        self.stats["garp_tx"] = self.stats.get("garp_tx", 0) + n

    def _set_active(self, active: bool) -> None:
        if self.fwd is not None:
            self.fwd.set_active(active)

    def _set_role(self, now: float, role: Role, reason: str) -> None:
        prev, self.role = self.role, role
        self.role_since, self.role_reason = now, reason
        self.role_changes += 1
        log.info("role %s -> %s t=%.6f reason=%s", prev, role, now, reason)

    def close(self) -> None:
        for comp in reversed(self.components):
            try:
                comp.close()
            except Exception:  # noqa: BLE001 - close the rest
                log.error("%s: close failed:\n%s", comp.name, traceback.format_exc())
        for p in self.ports:
            p.close()
        self.ports.clear()
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            if self.pidfile.read_text().strip() == str(os.getpid()):
                self.pidfile.unlink()
        except OSError:
            pass
        self._restore_signals()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        self._stop = True

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_signals(self) -> None:
        if self._wake_w is None:
            return
        signal.set_wakeup_fd(-1)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop = True

    # ------------------------------------------------------------ control

    def snapshot(self, now: float | None = None) -> diag.DiagState:
        now = time.time() if now is None else now
        infos = {}
        for name, port in zip(self.names, self.ports, strict=True):
            try:
                ifindex = socket.if_nametoindex(port.ifname)
            except OSError:
                ifindex = 0
            infos[name] = diag.PortInfo(name, port.mac, ifindex, True, True)
        return diag.DiagState(
            cfg=self.cfg,
            forwarder=self.fwd,
            now=now,
            wall=time.time(),
            started=self.started,
            serial=self.cfg.member_serial,
            ports=infos,
            stats=dict(self.stats),
            ha_role=self.role,
        )

    def answer(self, line: str) -> str:
        """Control-socket handler: render ``line`` against the current state."""
        try:
            return self.table.run(line, self.snapshot())
        except Exception:  # noqa: BLE001 - a renderer bug must not stop forwarding
            self.stats["ctl_errors"] += 1
            log.error("command %r failed:\n%s", line, traceback.format_exc())
            return "Command fail. Return code -1\n"

    def _render_stats(self, state: diag.DiagState, args: Sequence[str]) -> str:
        lines = [f"{k}={v}" for k, v in sorted(self.stats.items())]
        lines.append(f"role={self.role}")
        for name, port in zip(self.names, self.ports, strict=True):
            lines += [f"{name}.{k}={v}" for k, v in port.counters().items()]
        if self.fwd is not None:
            lines += [f"fwd.{k}={v}" for k, v in sorted(dict(self.fwd.counters).items())]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ loop

    def _error(self, what: str) -> None:
        n = self.stats["loop_errors"] = self.stats["loop_errors"] + 1
        if n <= TRACEBACKS_LOGGED:
            log.error("%s (error %d):\n%s", what, n, traceback.format_exc())
        elif n % LOG_EVERY == 0:
            log.error("%s: %d errors so far (tracebacks after the first %d not logged)",
                      what, n, TRACEBACKS_LOGGED)

    def _io_error(self, what: str, exc: OSError) -> None:
        """An I/O error (link down, ...): counted, one log line, no traceback."""
        n = self.stats["io_errors"] = self.stats.get("io_errors", 0) + 1
        if n <= TRACEBACKS_LOGGED or n % LOG_EVERY == 0:
            log.warning("%s: %s (I/O error %d)", what, exc, n)

    def _pump(self, port: ring.RingPort | ring.PlainPort, now: float) -> None:
        fwd = self.fwd
        assert fwd is not None
        ports = self.ports
        handle = fwd.handle
        idx = port.index
        out: list[tuple[int, bytes | bytearray]] = []
        touched: set[int] = set()
        for _ in range(ROUNDS):
            frames = port.recv_batch(BATCH)
            if not frames:
                break
            for frame in frames:
                try:
                    handle(idx, frame, now, out)
                except Exception:  # noqa: BLE001 - count, log, keep forwarding
                    self._error(f"{self.names[idx]}: forwarding a frame failed")
            for oi, data in out:
                ports[oi].send(data)
                touched.add(oi)
            out.clear()
            for oi in touched:
                ports[oi].flush()
            touched.clear()
            if len(frames) < BATCH:
                break

    def run(self) -> None:
        """Poll until SIGTERM/SIGINT or ``stop()``."""
        assert self.fwd is not None and self.server is not None, "open() first"
        self._install_signals()
        assert self._wake_r is not None
        poller = select.poll()
        by_fd: dict[int, ring.RingPort | ring.PlainPort] = {}
        for p in self.ports:
            poller.register(p.fileno(), select.POLLIN)
            by_fd[p.fileno()] = p
        ctl_fd = self.server.fileno()
        wake_fd = self._wake_r.fileno()
        poller.register(ctl_fd, select.POLLIN)
        poller.register(wake_fd, select.POLLIN)
        comp_fds: dict[int, Component] = {}
        comps = self.components
        next_expire = time.time() + EXPIRE_INTERVAL
        log.info("%s forwarding (%d ports, %s, %d components)", self.hostname,
                 len(self.ports), self.port_kind, len(comps))
        while not self._stop:
            if comps:
                self._sync_fds(poller, comp_fds)
            deadline = next_expire
            for comp in comps:
                d = comp.next_deadline()
                if d is not None and d < deadline:
                    deadline = d
            if self._garp_left and self._garp_next < deadline:
                deadline = self._garp_next
            wait = deadline - time.time()
            events = poller.poll(int(wait * 1000) + 1 if wait > 0 else 0)
            now = time.time()
            for fd, _ev in events:
                port = by_fd.get(fd)
                if port is not None:
                    try:
                        self._pump(port, now)
                    except Exception:  # noqa: BLE001 - e.g. a bad out port index
                        self._error(f"{self.names[port.index]}: port I/O failed")
                elif fd in comp_fds:
                    comp = comp_fds[fd]
                    try:
                        comp.on_readable(fd, now)
                    except OSError as exc:  # e.g. ENETDOWN on a link going down
                        self._io_error(f"{comp.name}: on_readable", exc)
                    except Exception:  # noqa: BLE001 - a component bug must not stop forwarding
                        self._error(f"{comp.name}: on_readable")
                elif fd == ctl_fd:
                    try:
                        self.server.handle_ready()
                    except Exception:  # noqa: BLE001 - control errors never stop the loop
                        self._error("control socket")
                elif fd == wake_fd:
                    try:
                        self._wake_r.recv(64)
                    except BlockingIOError:
                        pass
            for comp in comps:
                d = comp.next_deadline()
                if d is not None and now >= d:
                    try:
                        comp.on_tick(now)
                    except OSError as exc:
                        self._io_error(f"{comp.name}: on_tick", exc)
                    except Exception:  # noqa: BLE001 - a component bug must not stop forwarding
                        self._error(f"{comp.name}: on_tick")
            if self._garp_left and now >= self._garp_next:
                self._garp_left -= 1
                self._garp_next = now + self.cfg.ha.arps_interval
                self._send_garps()
            if now >= next_expire:
                next_expire = now + EXPIRE_INTERVAL
                try:  # one bounded step; again soon while due sessions are left
                    self.stats["expired"] += self.fwd.expire(now)
                    if self.fwd.sessions.expiry_behind:
                        next_expire = now + EXPIRE_BEHIND_INTERVAL
                    else:  # the long-lived objects (sessions) leave the cyclic GC's scans:
                        gc.freeze()  # a full collection over 1M sessions is a 2.5 s pause
                except Exception:  # noqa: BLE001 - an expiry bug must not stop forwarding
                    self._error("session expiry")
        log.info("%s stopping: %s", self.hostname,
                 " ".join(f"{k}={v}" for k, v in sorted(self.stats.items())))

    def _sync_fds(self, poller: select.poll, comp_fds: dict[int, Component]) -> None:
        """(Un)register the components' descriptors when they changed."""
        want: dict[int, Component] = {}
        for comp in self.components:
            for fd in comp.fds():
                want[fd] = comp
        if want == comp_fds:
            return
        for fd in comp_fds.keys() - want.keys():
            try:
                poller.unregister(fd)
            except (KeyError, ValueError):
                pass
        for fd in want.keys() - comp_fds.keys():
            poller.register(fd, select.POLLIN)
        comp_fds.clear()
        comp_fds.update(want)


def _setup_logging(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def build_parser(prog: str = "fgcpd") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="fgcp-lab cluster member daemon")
    p.add_argument("--config", required=True, help="member configuration (FortiOS syntax)")
    p.add_argument("--rundir", default=None, help="socket/pid/log directory "
                   f"(default ${ctl.RUNDIR_ENV} or {ctl.DEFAULT_RUNDIR})")
    p.add_argument("--serial", default=None, help="serial number (overrides the config)")
    p.add_argument("--log", default=None, help="log file (default <rundir>/<hostname>.log)")
    p.add_argument("--ips-log", default=None,
                   help="IPS attack log (default <log minus .log>.ips.log)")
    p.add_argument("--ports", default=None,
                   help="data-plane ports: port1,port2 or port1=IFNAME,port2=IFNAME "
                   "(default: configured interfaces with an ip that are not HA links)")
    p.add_argument("--port-kind", choices=("ring", "plain"), default="ring",
                   help="AF_PACKET I/O: PACKET_MMAP rings (default) or plain recv/send")
    p.add_argument("--no-ha", action="store_true",
                   help="no HA component: the member is primary at once (benchmarks)")
    p.add_argument("--no-prepare", action="store_true",
                   help="leave the namespace alone (no arp/ip/ipv6/offload changes)")
    return p


def main(argv: Sequence[str] | None = None, *, forwarder: ForwarderFactory = Forwarder,
         prog: str = "fgcpd") -> int:
    """``fgcpd`` entry point; returns the exit status.  ``forwarder`` builds the
    forwarding plane (a benchmark passes its stand-in, lab.bridge)."""
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.serial:
        try:  # the rule of ``set lab-serial``: a bad one would kill HA at its start
            GLOBAL.keys["lab-serial"].type.parse([Word(args.serial, 0, True)])
        except Invalid as exc:
            print(f"{prog}: --serial: {exc.reason}", file=sys.stderr)
            return 2
        cfg = dataclasses.replace(cfg, serial=args.serial)
    rundir = Path(args.rundir or ctl.default_rundir())
    log_file = Path(args.log) if args.log else rundir / f"{cfg.hostname}.log"
    _setup_logging(log_file)
    try:
        ports = parse_ports(args.ports) if args.ports else None
        components: list[Component] = [] if args.no_ha else [HaMember(), SyncMember()]
        if components and neighwarm.enabled():
            components.append(neighwarm.NeighWarm())
        forwarder, ips = ips_setup(cfg, args.ips_log or ips_log_path(log_file), forwarder)
        if ips is not None:
            components.append(ips)
        daemon = Daemon(cfg, rundir, ports=ports, port_kind=args.port_kind,
                        forwarder=forwarder, prepare=not args.no_prepare,
                        components=components)
        with daemon:
            daemon.run()
    except IpsSetupError as exc:
        log.error("%s: %s", prog, exc)
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (DaemonError, OSError) as exc:
        log.error("%s: %s", prog, exc)
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
