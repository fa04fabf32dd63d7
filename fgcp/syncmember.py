"""Session-sync component of the member daemon: the I/O shell around fgcp.sync's engines.

Opens AF_PACKET sockets (ethertype 0x8892) on the session-sync-dev and hbdev ports,
runs a SyncSender while primary (fed by the forwarder's session events through the
FortiOS pickup filter) or a SyncReceiver otherwise, installs the synced sessions
BEFORE the member takes traffic, and renders the sync diag commands.

Diag commands it registers on the daemon's table:

* ``diagnose sys session sync`` (FortiOS name) and its alias
  ``diagnose sys ha session-sync``: sync context, counters, lag, per-peer streams.
* ``diagnose sys session list`` (replaced): the forwarder's sessions and, on a
  secondary, the synced sessions held for takeover (``state=... synced``).

Test-only knob: environment ``FGCP_LAB_PICKUP_DELAY_SCALE`` (a float in (0, 1],
default 1) multiplies the 30 s of ``session-pickup-delay``; the rule itself (only
TCP sessions older than the delay are synced) never changes.  Read once at open.
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from fgcp import diag
from fgcp.component import (
    STATE_NOW,
    ComponentError,
    ForwardingPlane,
    Host,
    SyncCompleteListener,
)
from fgcp.freshness import MAX_MEMBERS, FreshnessSource
from fgcp.hakeys import derive_sync_key
from fgcp.model import HAConfig
from fgcp.packetsock import PACKET_OUTGOING, link_up, open_packet_socket
from fgcp.session import SYNCED, Session
from fgcp.sync import (
    PICKUP_DELAY_S,
    SyncFreshness,
    SyncReceiver,
    SyncSender,
    SyncTuning,
    Tx,
    should_sync,
    sync_eligible_at,
)
from fgcp.syncdiag import render_sync_stats
from fgcp.syncframe import ETH_P_FGCP_SYNC
from fgcp.syncrecord import SessionRecord, apply_record, record_from_session
from fgcp.tcptrack import TcpPeer

__all__ = [
    "DELAY_SCALE_ENV",
    "PICKUP_DELAY_S",
    "LinkIO",
    "PacketLink",
    "SyncMember",
    "SyncMemberError",
    "pickup_delay_s",
]

log = logging.getLogger(__name__)

DELAY_SCALE_ENV = "FGCP_LAB_PICKUP_DELAY_SCALE"
BROADCAST_MAC = b"\xff" * 6
RCVBUF = 8 << 20
LINK_CHECK = 0.1  # seconds between carrier checks
PEER_SILENCE = 5.0  # a secondary silent this long is dropped (its HELLO brings it back)
FLUSH_DELAY = 0.002  # a partly filled DATA frame waits this long (engine default 10 ms): lag
GC_THRESHOLD = (100_000, 50, 100)  # big tables: default gen-0 threshold makes GC dominate
_ETYPE = struct.pack("!H", ETH_P_FGCP_SYNC)


class SyncMemberError(ComponentError):
    """Bad session-sync set-up (e.g. an invalid FGCP_LAB_PICKUP_DELAY_SCALE)."""


def pickup_delay_s(env: dict[str, str] | os._Environ[str] | None = None) -> float:
    """The session-pickup-delay in seconds: 30 s times the test-only scale knob."""
    env = os.environ if env is None else env
    raw = env.get(DELAY_SCALE_ENV, "").strip()
    if not raw:
        return PICKUP_DELAY_S
    try:
        scale = float(raw)
    except ValueError:
        raise SyncMemberError(f"{DELAY_SCALE_ENV}={raw!r} is not a number") from None
    if not 0.0 < scale <= 1.0:
        raise SyncMemberError(f"{DELAY_SCALE_ENV}={raw!r} must be in (0, 1]")
    return PICKUP_DELAY_S * scale


class LinkIO(Protocol):
    """One HA port as the component uses it (PacketLink, or a fake in unit tests)."""

    name: str
    mac: bytes

    def fileno(self) -> int: ...
    def recv(self, limit: int) -> list[tuple[bytes, bytes]]: ...
    def send(self, dst: bytes, payload: bytes) -> bool: ...
    def is_up(self) -> bool: ...
    def close(self) -> None: ...


class PacketLink:
    """AF_PACKET socket bound to ethertype 0x8892 on one interface (non-blocking)."""

    def __init__(self, name: str, ifname: str | None = None) -> None:
        self.name = name
        self.ifname = ifname or name
        self.counters: dict[str, int] = {"rx": 0, "tx": 0, "tx_errors": 0}
        s = open_packet_socket(self.ifname, ETH_P_FGCP_SYNC, rcvbuf=RCVBUF)
        self.mac: bytes = s.getsockname()[4][:6]
        self._sock = s

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` received frames as (source MAC, payload after the Ethernet header)."""
        out: list[tuple[bytes, bytes]] = []
        rf = self._sock.recvfrom
        for _ in range(limit):
            try:
                data, addr = rf(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ENETDOWN reported once after the link went down
                self.counters["rx_errors"] = self.counters.get("rx_errors", 0) + 1
                break
            if addr[2] == PACKET_OUTGOING or len(data) < 14:
                continue
            out.append((data[6:12], data[14:]))
        self.counters["rx"] += len(out)
        return out

    def send(self, dst: bytes, payload: bytes) -> bool:
        try:
            self._sock.send(dst + self.mac + _ETYPE + payload)
        except OSError:  # ENETDOWN, ENOBUFS, ...: the protocol retransmits
            self.counters["tx_errors"] += 1
            return False
        self.counters["tx"] += 1
        return True

    def is_up(self) -> bool:
        """Carrier (an admin-down link reads as down)."""
        return link_up(self.ifname)

    def close(self) -> None:
        self._sock.close()


LinkFactory = Callable[[str], LinkIO]


class SyncMember:
    """The daemon component ``sync`` (see the module docstring and docs/protocol.md "Session sync").

    ``link_factory(port_name)`` opens one HA port (default: PacketLink);
    ``clock`` is used only for the forwarder's session events (they carry no
    time; the daemon's clock is time.time()).  ``epoch``: this run's epoch (default:
    the HA component's, fgcp.freshness.FreshnessSource, else a new one).

    A peer's MAC (``macs``) and liveness (``peer_seen``) are learned only from frames
    the engine accepted (authentic, fresh: ``engine.accepted``), for at most
    ``MAX_MEMBERS - 1`` peers; more are refused (``counters["peers_refused"]``).
    """

    name = "sync"

    def __init__(self, *, link_factory: LinkFactory | None = None,
                 tuning: SyncTuning | None = None, delay_s: float | None = None,
                 clock: Callable[[], float] = time.time, epoch: int | None = None,
                 tune_gc: bool = True) -> None:
        self.link_factory: LinkFactory = link_factory or PacketLink
        self.tuning = tuning or SyncTuning(flush_delay=FLUSH_DELAY)
        self.delay_s = delay_s
        self.clock = clock
        self.epoch = epoch
        self.fresh = SyncFreshness(epoch)  # replaced at open (the HA component's epoch)
        self.tune_gc = tune_gc
        self.daemon: Host | None = None
        self.ha: HAConfig | None = None
        self.enabled = False
        self.links: dict[str, LinkIO] = {}
        self.by_fd: dict[int, LinkIO] = {}
        self.sync_names: list[str] = []
        self.hb_names: list[str] = []
        self.link_up: dict[str, bool] = {}
        self.sender: SyncSender | None = None
        self.receiver: SyncReceiver | None = None
        self.macs: dict[tuple[str, str], bytes] = {}  # (serial, link) -> MAC
        self.peer_seen: dict[str, float] = {}
        self.counters: dict[str, int] = {
            "installed": 0, "install_failed": 0, "replaced": 0, "takeovers": 0,
            "released_sessions": 0, "delayed_synced": 0, "tx_errors": 0, "no_ha": 0,
            "peers_refused": 0,
        }
        self.last_takeover_ms = 0.0
        self._delayed: list[tuple[float, int, Session]] = []
        self._work = False
        self._last_tick = 0.0
        self._last_link_check = float("-inf")
        self._reported: bool | None = None
        self._prev_event: Callable[[str, Session], None] | None = None
        self.key: bytes | None = None
        self.serial = ""

    # ------------------------------------------------------------ lifecycle

    def open(self, daemon: Host) -> None:
        self.daemon = daemon
        cfg = daemon.cfg
        self.ha = ha = cfg.ha
        self.serial = cfg.member_serial
        if self.delay_s is None:
            try:
                self.delay_s = pickup_delay_s()
            except SyncMemberError as exc:
                log.error("session sync: %s; using %.0f s", exc, PICKUP_DELAY_S)
                self.delay_s = PICKUP_DELAY_S
        self.enabled = ha.mode != "standalone" and bool(self.serial)
        self.key = derive_sync_key(ha.password, ha.group_id)
        self.sync_names = list(ha.session_sync_dev)
        self.hb_names = [p for p, _ in ha.hbdev]
        self._register_diag(daemon.table)
        if not self.enabled:
            log.info("session sync off (HA mode %s)", ha.mode)
            return
        self.fresh = self._freshness(daemon)
        for name in dict.fromkeys(self.sync_names + self.hb_names):
            try:
                link = self.link_factory(name)
            except OSError as exc:
                log.warning("session sync: cannot open %s: %s", name, exc)
                continue
            self.links[name] = link
            self.by_fd[link.fileno()] = link
        fwd = daemon.fwd
        if fwd is not None:
            self._prev_event = fwd.on_session_event
            fwd.on_session_event = self._on_session_event
        if self.tune_gc:
            gc.set_threshold(*GC_THRESHOLD)
        now = self.clock()
        self._last_tick = now
        self.receiver = self._receiver()
        self._check_links(now, force=True)
        self._send(self.receiver.poll(now))  # HELLO at once: a joining member asks for its bulk
        self._report_sync(now)
        log.info("session sync: links %s (sync) / %s (hb fallback), pickup=%s "
                 "connectionless=%s delay=%s (%.1f s)", ",".join(self.sync_names) or "-",
                 ",".join(self.hb_names) or "-", ha.session_pickup,
                 ha.session_pickup_connectionless, ha.session_pickup_delay,
                 self.delay_s)

    def _freshness(self, daemon: Host) -> SyncFreshness:
        """This run's sync freshness: the heartbeat's epoch and its verified peers' epochs
        (a sync frame of an epoch the heartbeat verified differently is not used)."""
        ha: object = daemon.component("ha")
        if not isinstance(ha, FreshnessSource) or not ha.epoch:
            return SyncFreshness(self.epoch)
        src = ha

        def gate(serial: str, epoch: int) -> bool:
            known = src.verified_epoch(serial)
            return known is None or known == epoch

        return SyncFreshness(self.epoch or src.epoch, gate=gate)

    def _receiver(self) -> SyncReceiver:
        assert self.daemon is not None and self.ha is not None
        return SyncReceiver(self.serial, self.ha.group_id, self.key, self.tuning,
                            fresh=self.fresh, max_sessions=self.daemon.cfg.session_table_max)

    def close(self) -> None:
        fwd = self.daemon.fwd if self.daemon is not None else None
        if fwd is not None and fwd.on_session_event == self._on_session_event:
            fwd.on_session_event = self._prev_event
        for link in self.links.values():
            link.close()
        self.links.clear()
        self.by_fd.clear()

    # ------------------------------------------------------------ loop hooks

    def fds(self) -> list[int]:
        return list(self.by_fd)

    def on_readable(self, fd: int, now: float) -> None:
        link = self.by_fd.get(fd)
        if link is None:
            return
        engine = self.sender or self.receiver
        for _ in range(8):
            frames = link.recv(64)
            if not frames:
                break
            if engine is None:
                continue
            for src, payload in frames:
                out = engine.receive(payload, now)
                if engine.accepted is not None:
                    self._learn(engine.accepted, link.name, src, now)
                if out:
                    self._send(out)
            if len(frames) < 64:
                break
        if self.receiver is not None and engine is self.receiver:
            self._report_sync(now)

    def _learn(self, serial: str, link: str, src: bytes, now: float) -> None:
        """A fresh, authentic frame of ``serial`` came from ``src`` on ``link``."""
        seen = self.peer_seen
        if serial not in seen and len(seen) >= MAX_MEMBERS - 1:
            stale = min(seen, key=seen.__getitem__)
            if now - seen[stale] <= PEER_SILENCE:
                self.counters["peers_refused"] += 1
                return
            self._forget(stale)
        seen[serial] = now
        self.macs[(serial, link)] = src

    def _forget(self, serial: str) -> None:
        self.peer_seen.pop(serial, None)
        for k in [k for k in self.macs if k[0] == serial]:
            del self.macs[k]

    def next_deadline(self) -> float | None:
        if not self.enabled:
            return None
        base = self._last_tick
        step = 0.1
        if self._work:
            step = 0.002
        elif self.sender is not None:
            for p in self.sender.peers.values():
                if p.dirty or p.bulk_begin_due or p.bulk_end_due or p.bulk_pos < len(p.bulk_keys):
                    step = 0.002
                    break
                if p.inflight:
                    step = min(step, 0.02)
        elif self.receiver is not None and self.receiver.owes_ack:
            step = 0.01
        d = base + step
        if self._delayed and self._delayed[0][0] < d:
            d = self._delayed[0][0]
        return d

    def on_tick(self, now: float) -> None:
        self._last_tick = now
        self._work = False
        if now - self._last_link_check >= LINK_CHECK:
            self._check_links(now)
        if self.sender is not None:
            self._run_delayed(now)
            for serial in [s for s in self.sender.peers
                           if now - self.peer_seen.get(s, now) > PEER_SILENCE]:
                log.info("session sync: peer %s silent for %.0f s, stream dropped",
                         serial, PEER_SILENCE)
                self.sender.remove_peer(serial)
                self._forget(serial)
            self._send(self.sender.poll(now))
        elif self.receiver is not None:
            self._send(self.receiver.poll(now))
            self._report_sync(now)

    # ------------------------------------------------------------ roles

    def before_takeover(self, now: float) -> None:
        """Install every synced session, then start the sender (no traffic before this)."""
        if not self.enabled or self.sender is not None:
            return
        t0 = time.perf_counter()
        assert self.daemon is not None and self.ha is not None
        fwd = self.daemon.fwd
        rx = self.receiver
        if rx is not None and fwd is not None:
            self._install(rx.table.values(), fwd, now)
        self.receiver = None
        self.sender = SyncSender(self.serial, self.ha.group_id, self.key, self.tuning,
                                 fresh=self.fresh)  # stream ids go on growing in this epoch
        self._apply_links()
        self._delayed.clear()
        self.peer_seen.clear()
        if fwd is not None:
            for s in fwd.sessions:
                self._offer(s, now, "add")
        self._send(self.sender.start(now))
        self.counters["takeovers"] += 1
        self.last_takeover_ms = (time.perf_counter() - t0) * 1000.0
        log.info("session sync: takeover, %d synced sessions installed (%d failed) in %.1f ms; "
                 "sender started with %d sessions", self.counters["installed"],
                 self.counters["install_failed"], self.last_takeover_ms,
                 len(self.sender.records))
        self._report_sync(now)

    def after_release(self, now: float) -> None:
        """No longer primary: drop the sender and the forwarder's sessions, receive again."""
        if not self.enabled:
            return
        self.sender = None
        self._delayed.clear()
        assert self.daemon is not None and self.ha is not None
        fwd = self.daemon.fwd
        if fwd is not None:
            self.counters["released_sessions"] += fwd.sessions.clear()
        self.receiver = self._receiver()
        self._apply_links()
        self._send(self.receiver.poll(now))
        self._report_sync(now)

    def _install(self, records: Iterable[SessionRecord], fwd: ForwardingPlane, now: float) -> None:
        """Install synced records; a session the forwarder already holds on either of the
        record's tuples (e.g. forwarded during a split brain) is replaced by the synced one."""
        table = fwd.sessions
        check = len(table) > 0  # after a release the table is empty: no lookups
        next_sid = table.next_sid
        install = fwd.install_session
        for rec in list(records):
            if check:
                r = rec.reply
                for k in (rec.key, (rec.proto, r[0], r[1], r[2], r[3])):
                    ent = table.lookup(k)
                    if ent is not None and table.remove(ent[0]):  # NAT port released
                        self.counters["replaced"] += 1
            # apply_record inlined (hot path of a takeover: 100k sessions in a few 100 ms)
            tcp = None
            if rec.tcp is not None:
                a, b = rec.tcp
                tcp = (TcpPeer(a.seqlo, a.seqhi, a.max_win, a.wscale, a.state),
                       TcpPeer(b.seqlo, b.seqhi, b.max_win, b.wscale, b.state))
            s = Session(next_sid(), rec.proto, rec.orig, rec.reply, rec.in_intf,
                        rec.out_intf, rec.policy_id, rec.nat, rec.nat_ip, rec.nat_port,
                        rec.state, tcp, rec.created, flags=rec.flags | SYNCED,
                        inspection=rec.inspection, ext=dict(rec.ext))
            if install(s, now, pickup=True):
                self.counters["installed"] += 1
            else:
                self.counters["install_failed"] += 1

    # ------------------------------------------------------------ sender feed

    def _on_session_event(self, kind: str, s: Session) -> None:
        now_kind = kind == STATE_NOW
        if now_kind:
            kind = "state"
        if self._prev_event is not None:
            self._prev_event(kind, s)
        if self.sender is None:
            return
        now = self.clock()
        self._offer(s, now, kind)
        if now_kind and self._work:
            self._flush_now(now)

    def _flush_now(self, now: float) -> None:
        """Send the waiting live records now, not after the flush delay (STATE_NOW)."""
        tx = self.sender
        assert tx is not None
        t = tx.tuning
        tx.tuning = dataclasses.replace(t, flush_delay=0.0)
        try:
            self._send(tx.poll(now))
        finally:
            tx.tuning = t

    def _offer(self, s: Session, now: float, kind: str) -> None:
        tx = self.sender
        ha = self.ha
        assert tx is not None and ha is not None
        if kind == "remove":
            if tx.delete(s.orig_key, now):
                self._work = True
            return
        if should_sync(s, ha, now, self.delay_s or PICKUP_DELAY_S):
            s.flags |= SYNCED  # FortiOS marks synced sessions on the primary too
            if tx.upsert(record_from_session(s), now):
                self._work = True
        elif kind == "add":
            t = sync_eligible_at(s, ha, self.delay_s or PICKUP_DELAY_S)
            if t is not None:
                heapq.heappush(self._delayed, (t, s.sid, s))

    def _run_delayed(self, now: float) -> None:
        assert self.daemon is not None and self.ha is not None
        fwd = self.daemon.fwd
        assert fwd is not None
        q = self._delayed
        while q and q[0][0] <= now:
            _, sid, s = heapq.heappop(q)
            if fwd.sessions.get(sid) is not s:
                continue  # gone before it became eligible
            if should_sync(s, self.ha, now, self.delay_s or PICKUP_DELAY_S):
                assert self.sender is not None
                s.flags |= SYNCED
                if self.sender.upsert(record_from_session(s), now):
                    self.counters["delayed_synced"] += 1
                    self._work = True

    # ------------------------------------------------------------ links and frames

    def _check_links(self, now: float, force: bool = False) -> None:
        self._last_link_check = now
        changed = force
        for name, link in self.links.items():
            up = link.is_up()
            if self.link_up.get(name) != up:
                if not force:
                    log.info("session sync: link %s %s", name, "up" if up else "down")
                self.link_up[name] = up
                changed = True
        if changed:
            self._apply_links()

    def _apply_links(self) -> None:
        sync_up = [n for n in self.sync_names if self.link_up.get(n)]
        hb_up = [n for n in self.hb_names if self.link_up.get(n)]
        for eng in (self.sender, self.receiver):
            if eng is not None:
                eng.set_links(sync_up, hb_up)

    def _send(self, out: Sequence[Tx]) -> None:
        links, macs = self.links, self.macs
        for tx in out:
            link = links.get(tx.link)
            if link is None:
                continue
            dst = macs.get((tx.peer, tx.link), BROADCAST_MAC) if tx.peer else BROADCAST_MAC
            if not link.send(dst, tx.payload):
                self.counters["tx_errors"] += 1

    # ------------------------------------------------------------ HA

    def sync_complete(self) -> bool:
        """What this member advertises: True unless it waits for a (bulk) sync."""
        if not self.enabled or self.ha is None or not self.ha.session_pickup \
                or self.sender is not None:
            return True
        return self.receiver is not None and self.receiver.bulk_complete

    def _report_sync(self, now: float) -> None:
        """Tell the HA component (``SyncCompleteListener``) when the sync state changes."""
        done = self.sync_complete()
        if done == self._reported:
            return
        assert self.daemon is not None
        ha: object = self.daemon.component("ha")
        self._reported = done
        if not isinstance(ha, SyncCompleteListener):
            self.counters["no_ha"] += 1
            return
        log.info("session sync: %s", "bulk sync complete" if done else "bulk sync pending")
        ha.set_sync_complete(now, done)

    # ------------------------------------------------------------ diagnostics

    def _register_diag(self, table: diag.CommandTable) -> None:
        for words in ("diagnose sys session sync", "diagnose sys ha session-sync"):
            table.register(words, self.render_stats, "session sync statistics")
        table.override("diagnose sys session list", self.render_session_list,
                       "list sessions (synced ones on a secondary)")

    def stats_text(self, now: float) -> str:
        tx = self.sender.snapshot(now) if self.sender is not None else None
        rx = self.receiver.snapshot(now) if self.receiver is not None else None
        text = render_sync_stats(tx, rx, self.ha)
        c = self.counters
        extra = (f"  takeover: count={c['takeovers']} installed={c['installed']} "
                 f"install_failed={c['install_failed']} last={self.last_takeover_ms:.1f}ms\n"
                 f"  pickup_delay={self.delay_s:.1f}s delayed_waiting={len(self._delayed)} "
                 f"delayed_synced={c['delayed_synced']} tx_errors={c['tx_errors']}\n"
                 f"  peers: known={len(self.peer_seen)} macs={len(self.macs)} "
                 f"peers_refused={c['peers_refused']}\n")
        return text + extra

    def render_stats(self, state: diag.DiagState, args: Sequence[str]) -> str:
        return self.stats_text(self.clock())

    def synced_sessions(self, now: float) -> list[Session]:
        """The secondary's synced table as Session objects (for display only)."""
        rx = self.receiver
        if rx is None:
            return []
        out = []

        def factory(**fields: Any) -> Session:
            return Session(sid=0, **fields)

        fwd = self.daemon.fwd if self.daemon is not None else None
        timeouts = fwd.sessions.timeouts if fwd is not None else None
        for n, rec in enumerate(rx.table.values(), 1):
            s = apply_record(rec, factory, TcpPeer, synced_flag=SYNCED)
            s.sid = 0x80000000 | n
            if timeouts is not None:
                s.timeout = timeouts.for_state(s.proto, s.state)
                s.expires = now + s.timeout
            out.append(s)
        return out

    def render_session_list(self, state: diag.DiagState, args: Sequence[str]) -> str:
        fwd = state.forwarder
        own = list(fwd.sessions) if fwd is not None else []
        shim = _SessionsView(own + self.synced_sessions(state.now),
                             fwd.counters if fwd is not None else {})
        view = diag.DiagState(cfg=state.cfg, forwarder=shim, now=state.now, wall=state.wall,
                              started=state.started, serial=state.serial, ports=state.ports,
                              stats=state.stats, ha_role=state.ha_role, extra=state.extra)
        return diag.render_session_list(view, args)

    def table_records(self) -> dict[Any, SessionRecord]:
        """The records this member holds: the sender's (primary) or the receiver's."""
        if self.sender is not None:
            return dict(self.sender.records)
        return dict(self.receiver.table) if self.receiver is not None else {}


class _SessionsView:
    """Forwarder-like view (sessions + counters) for the session-list renderer."""

    def __init__(self, sessions: list[Session], counters: Any) -> None:
        self.sessions = sessions
        self.counters = counters
