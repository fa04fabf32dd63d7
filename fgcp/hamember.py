"""HA glue of the member daemon: heartbeat sockets, carrier polling and diag around fgcp.hafsm.

`HaMember` is a `fgcp.component.Component`: it feeds the pure HA state machine with
received 0x8890 frames, timer ticks and link changes, and executes its actions.

- One AF_PACKET socket per ``hbdev`` (port3, port4), bound to ethertype 0x8890
  (outgoing copies ignored); heartbeats are sent when the FSM says so (``hb-interval``).
  Before a tick that would lose a peer, the frames queued on every heartbeat socket
  are read first (counted ``rx_read_before_expiry``): a heartbeat that arrived but
  was not yet read by the poll loop never loses its sender.
- Carrier of the heartbeat and monitored interfaces (``fgcp.packetsock.link_up``: an
  admin-down link reads as down) is polled every ``POLL_INTERVAL`` ->
  ``on_hbdev_change`` / ``on_monitor_change``.
- ``BecomePrimary`` / ``BecomeSecondary`` -> ``host.become_primary`` /
  ``become_secondary`` (the daemon runs the takeover hooks, moves the virtual MACs
  and sends gratuitous ARPs); when the takeover fails (a hook refused) the FSM is
  told (``takeover_failed``) and retries on its next tick.  ``Announce`` ->
  ``host.announce`` (gratuitous ARPs again).
- ``set_sync_complete(now, done)``: session sync reports the bulk sync state here
  (``fgcp.component.SyncCompleteListener``); the FSM advertises it and elects.
- Diag: ``get system ha status``, ``diagnose sys ha history read``,
  ``execute ha failover set 1`` / ``unset 1`` and ``diagnose lab ha`` (key=value
  lines for scripts: state, primary, peers, frame counters).
- HA mode ``standalone``: nothing is opened and the daemon makes the member
  primary at once.
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from fgcp import hadiag
from fgcp.component import ComponentError, Host
from fgcp.diag import DiagState
from fgcp.freshness import new_epoch
from fgcp.hafsm import (
    Action,
    Announce,
    BecomePrimary,
    BecomeSecondary,
    FrameDropped,
    HAStateMachine,
    PeerJoined,
    PeerLost,
    SendHeartbeat,
)
from fgcp.hbframe import (
    ETH_P_FGCP_HB,
    IF_ADMIN_UP,
    IF_HA_ELIGIBLE,
    IF_MONITORED,
    IF_OPER_UP,
    IfaceRecord,
)
from fgcp.packetsock import SystemLinks, open_packet_socket

log = logging.getLogger("fgcpd.ha")

POLL_INTERVAL = 0.05  # seconds between carrier reads
RECV_BURST = 64  # frames read per readable event
DROP_LOG_EVERY = 100  # log the 1st, then every Nth dropped frame of a reason


class HaError(ComponentError):
    """The HA component cannot start (e.g. a heartbeat interface is missing)."""


class Links(Protocol):
    """The interfaces as the HA component reads them (fgcp.packetsock.SystemLinks;
    unit tests pass a fake)."""

    def exists(self, ifname: str) -> bool: ...
    def carrier(self, ifname: str) -> bool: ...
    def mac(self, ifname: str) -> bytes: ...


def open_hb_socket(ifname: str) -> socket.socket:
    """Non-blocking AF_PACKET socket on ``ifname`` for ethertype 0x8890 (own frames ignored)."""
    return open_packet_socket(ifname, ETH_P_FGCP_HB)


class HaMember:
    """The HA component (see the module docstring)."""

    name = "ha"

    def __init__(
        self,
        ifnames: dict[str, str] | None = None,
        poll_interval: float = POLL_INTERVAL,
        links: Links | None = None,
        opener: Callable[[str], socket.socket] = open_hb_socket,
        bring_up: bool = True,
    ) -> None:
        self.ifnames = dict(ifnames or {})  # FortiOS port name -> kernel interface
        self.poll_interval = poll_interval
        self.links: Links = links if links is not None else SystemLinks()
        self.opener = opener  # unit tests pass socketpair ends
        self.bring_up = bring_up
        self.daemon: Host | None = None
        self.fsm: HAStateMachine | None = None
        self.socks: dict[str, socket.socket] = {}
        self.by_fd: dict[int, str] = {}
        self.counters: dict[str, int] = {}
        self.sent_seq: dict[str, int] = {}  # port -> counter of the last heartbeat sent
        self.next_poll = 0.0

    # ------------------------------------------------------------------ lifecycle

    def ifname(self, port: str) -> str:
        return self.ifnames.get(port, port)

    @property
    def enabled(self) -> bool:
        return self.fsm is not None

    def open(self, daemon: Host) -> None:
        self.daemon = daemon
        cfg = daemon.cfg
        ha = cfg.ha
        if ha.mode == "standalone":
            log.info("HA mode standalone: no heartbeat")
            return
        if not ha.hbdev:
            raise HaError(f"HA mode {ha.mode} needs at least one hbdev")
        now = time.time()
        hb_macs = {}
        for port, _prio in ha.hbdev:
            ifn = self.ifname(port)
            if not self.links.exists(ifn):
                raise HaError(f"heartbeat interface {ifn!r} (for {port}) does not exist")
            if self.bring_up:
                self._bring_up(ifn)
            sock = self.opener(ifn)
            self.socks[port] = sock
            self.by_fd[sock.fileno()] = port
            hb_macs[port] = self.links.mac(ifn)
        self.fsm = HAStateMachine(
            ha,
            cfg.member_serial,
            now,
            hostname=cfg.hostname,
            epoch=new_epoch(),
            hb_macs=hb_macs,
            interfaces=self._inventory(),
        )
        if not ha.password:
            log.warning("%s", hadiag.AUTH_NONE)
        self._register_diag()
        daemon.enter_hello(now, f"HA {ha.mode} group {ha.group_name!r} id {ha.group_id}")
        log.info("HA %s group %r id %d priority %d hbdev %s monitor %s", ha.mode,
                 ha.group_name, ha.group_id, ha.priority, [p for p, _ in ha.hbdev],
                 list(ha.monitor))
        self._poll_links(now, initial=True)
        self._apply(now, self.fsm.on_tick(now))

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()
        self.by_fd.clear()

    def _bring_up(self, ifname: str) -> None:
        subprocess.run(["ip", "link", "set", ifname, "up"], check=False, capture_output=True)

    def _inventory(self) -> tuple[IfaceRecord, ...]:
        assert self.daemon is not None
        cfg = self.daemon.cfg
        hb = {p for p, _ in cfg.ha.hbdev}
        out = []
        for name in cfg.interfaces:
            ifn = self.ifname(name)
            flags = IF_ADMIN_UP
            if self.links.carrier(ifn):
                flags |= IF_OPER_UP
            if name in cfg.ha.monitor:
                flags |= IF_MONITORED
            if name not in hb:
                flags |= IF_HA_ELIGIBLE
            out.append(IfaceRecord(name[:16], self.links.mac(ifn), flags))
        return tuple(out)

    # ------------------------------------------------------------------ loop hooks

    def fds(self) -> list[int]:
        return list(self.by_fd)

    def next_deadline(self) -> float | None:
        if self.fsm is None:
            return None
        return min(self.fsm.next_deadline(), self.next_poll)

    def on_tick(self, now: float) -> None:
        if self.fsm is None:
            return
        if now >= self.next_poll:
            self._poll_links(now)
        if self.fsm.expiry_due(now):
            # A heartbeat may be queued on a socket the loop has not read yet (at
            # 10 ms x 3 a late read expired its own sender): read them all first.
            for port in list(self.socks):
                n = self._read(port, now)
                if n:
                    self._count("rx_read_before_expiry", n)
        self._apply(now, self.fsm.on_tick(now))

    def on_readable(self, fd: int, now: float) -> None:
        port = self.by_fd.get(fd)
        if port is None or self.fsm is None:
            return
        self._read(port, now)

    def _read(self, port: str, now: float) -> int:
        """Up to RECV_BURST queued frames of ``port`` into the FSM; how many were read."""
        assert self.fsm is not None
        sock = self.socks[port]
        n = 0
        for _ in range(RECV_BURST):
            try:
                frame = sock.recv(65535)
            except BlockingIOError:
                break
            except OSError as exc:
                self._count("rx_error")
                log.warning("%s: receive failed: %s", port, exc)
                break
            n += 1
            self._apply(now, self.fsm.on_frame(now, port, frame))
        return n

    @property
    def epoch(self) -> int:
        """This run's epoch (fgcp.freshness.FreshnessSource; 0 before ``open``)."""
        return self.fsm.fresh.epoch if self.fsm is not None else 0

    def verified_epoch(self, serial: str) -> int | None:
        """The epoch of ``serial`` the heartbeat challenge verified (FreshnessSource)."""
        return self.fsm.verified_epoch(serial) if self.fsm is not None else None

    def before_takeover(self, now: float) -> None:
        return

    def after_release(self, now: float) -> None:
        return

    def set_sync_complete(self, now: float, done: bool) -> None:
        """Session sync's report: bulk sync done (True) or pending (False)."""
        if self.fsm is not None:
            self._apply(now, self.fsm.set_sync_complete(now, done))

    # ------------------------------------------------------------------ inputs

    def _poll_links(self, now: float, initial: bool = False) -> None:
        fsm = self.fsm
        assert fsm is not None
        self.next_poll = now + self.poll_interval
        for port in list(fsm.hbdev_up):
            up = self.links.carrier(self.ifname(port))
            if up != fsm.hbdev_up[port]:
                log.info("hbdev %s carrier %s t=%.6f", port, "up" if up else "down", now)
                self._apply(now, fsm.on_hbdev_change(now, port, up))
        for port in list(fsm.monitor_up):
            up = self.links.carrier(self.ifname(port))
            if up != fsm.monitor_up[port]:
                log.info("monitor %s carrier %s t=%.6f", port, "up" if up else "down", now)
                self._apply(now, fsm.on_monitor_change(now, port, up))
        if initial:
            log.info("links: hbdev %s monitor %s", fsm.hbdev_up, fsm.monitor_up)

    def _apply(self, now: float, actions: Sequence[Action]) -> None:
        daemon, fsm = self.daemon, self.fsm
        assert daemon is not None and fsm is not None
        superseded = False  # heartbeats after a failed takeover advertise the state it left
        for act in actions:
            if isinstance(act, SendHeartbeat):
                if act.seq and act.seq <= self.sent_seq.get(act.port, 0):
                    self._count("tx_stale")  # a newer one left first (a nested _apply)
                elif not superseded:
                    self.sent_seq[act.port] = act.seq
                    self._send(act.port, act.frame)
            elif isinstance(act, BecomePrimary):
                log.info("HA became primary t=%.6f (from %s): %s", now, act.previous, act.reason)
                if not daemon.become_primary(now, act.reason):
                    self._count("takeover_failed")
                    log.error("HA takeover failed t=%.6f: a takeover hook failed, staying %s "
                              "and retrying", now, daemon.role)
                    superseded = True
                    self._apply(now, fsm.takeover_failed(now, "a takeover hook failed"))
            elif isinstance(act, Announce):
                log.info("HA announcing again t=%.6f: %s", now, act.reason)
                daemon.announce(now)
            elif isinstance(act, BecomeSecondary):
                log.info("HA became secondary t=%.6f (from %s, primary %s): %s", now,
                         act.previous, act.primary, act.reason)
                daemon.become_secondary(now, act.reason)
            elif isinstance(act, PeerJoined):
                log.info("HA peer joined t=%.6f serial=%s hbdev=%s", now, act.serial, act.port)
            elif isinstance(act, PeerLost):
                log.info("HA peer lost t=%.6f serial=%s: %s", now, act.serial, act.reason)
            elif isinstance(act, FrameDropped):
                n = self._count(f"drop-{act.reason}")
                if n == 1 or n % DROP_LOG_EVERY == 0:
                    log.warning("HA frame dropped on %s (%s, #%d): %s", act.port, act.reason,
                                n, act.detail)

    def _send(self, port: str, frame: bytes) -> None:
        sock = self.socks.get(port)
        if sock is None:
            return
        try:
            sock.send(frame)
        except OSError as exc:
            # ENETDOWN / ENXIO while the link is down: counted, never fatal.
            key = "tx_error_linkdown" if exc.errno in (errno.ENETDOWN, errno.ENXIO) else "tx_error"
            self._count(key)

    def _count(self, key: str, by: int = 1) -> int:
        n = self.counters[key] = self.counters.get(key, 0) + by
        return n

    # ------------------------------------------------------------------ diag

    def _register_diag(self) -> None:
        assert self.daemon is not None
        t = self.daemon.table
        t.register("get system ha status", self._render_status, "HA cluster status")
        t.register("diagnose sys ha history read", self._render_history, "HA event history")
        t.register("execute ha failover set", self._failover_set,
                   "force this member to lose the election (argument 1)", max_args=1)
        t.register("execute ha failover unset", self._failover_unset,
                   "clear the forced failover (argument 1)", max_args=1)
        t.register("diagnose lab ha", self._render_lab, "HA state as key=value lines")

    def _render_status(self, state: DiagState, args: Sequence[str]) -> str:
        assert self.fsm is not None
        sessions = None
        fwd = state.forwarder
        if fwd is not None:
            try:
                sessions = len(fwd.sessions)
            except TypeError:
                sessions = None
        return hadiag.render_ha_status(self.fsm.status(time.time()), sessions=sessions)

    def _render_history(self, state: DiagState, args: Sequence[str]) -> str:
        assert self.fsm is not None
        return hadiag.render_ha_history(self.fsm.history)

    def _failover(self, args: Sequence[str], flag: bool) -> str:
        assert self.fsm is not None
        if list(args) != ["1"]:
            return "command parse error: expected 1\nCommand fail. Return code -61\n"
        now = time.time()
        log.info("execute ha failover %s 1 t=%.6f", "set" if flag else "unset", now)
        self._apply(now, self.fsm.force_failover(now, flag))
        if flag:
            return ("Caution: This command will trigger an HA failover.\n"
                    "It is intended for testing purposes.\n")
        return ""

    def _failover_set(self, state: DiagState, args: Sequence[str]) -> str:
        return self._failover(args, True)

    def _failover_unset(self, state: DiagState, args: Sequence[str]) -> str:
        return self._failover(args, False)

    def _render_lab(self, state: DiagState, args: Sequence[str]) -> str:
        fsm = self.fsm
        assert fsm is not None and self.daemon is not None
        lines = [
            f"state={fsm.state}",
            f"role={self.daemon.role}",
            f"serial={fsm.serial}",
            f"epoch={fsm.fresh.epoch:016x}",
            f"auth={'hmac' if fsm.cfg.password else 'none'}",
            f"primary={fsm.primary or ''}",
            f"peers={','.join(sorted(fsm.peers))}",
            f"lost={','.join(sorted(fsm.lost))}",
            f"hbdev_up={','.join(p for p, u in fsm.hbdev_up.items() if u)}",
            f"monitor_up={','.join(p for p, u in fsm.monitor_up.items() if u)}",
            f"failover_set={int(fsm.failover_set)}",
            f"state_change_time={fsm.state_change_time:.6f}",
        ]
        counters = dict(fsm.counters)
        for k, v in self.counters.items():
            counters[f"io-{k}"] = v
        lines += [f"counter.{k}={v}" for k, v in sorted(counters.items())]
        return "\n".join(lines) + "\n"
