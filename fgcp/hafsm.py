"""The HA state machine of one cluster member (hello -> work/standby), pure: time is passed in.

Methods take ``now`` (seconds, time.time() in the daemon) and inputs and return the
actions to perform (heartbeat frames to send, role changes, gratuitous ARPs again):
every decision is an action; ``fgcp.hamember`` only executes them.

States and transitions are data (``TRANSITIONS``): a member starts in ``hello``,
sends heartbeats and listens for ``hello-holddown`` seconds, then every change of
input (a heartbeat, a lost peer, a monitored port, ``execute ha failover``) re-runs
the election (``fgcp.election``) and fires ``elected-primary`` / ``elected-secondary``.
Members in ``hello`` are not candidates for the others.  Peers are lost after
``hb-lost-threshold`` x ``hb-interval`` without heartbeat on any link, or at once
when every heartbeat interface of this member is down (then each side of a split
cluster becomes primary, as FortiOS does; heartbeats coming back resolve it).
A primary announces itself again (``Announce``) when a peer joins or a peer leaves
the work state, so the fabric follows the real primary after a split brain.  When
the member cannot take traffic (``takeover_failed``: a takeover hook failed) the
machine goes back to the state it left and the next tick elects and retries.

The heartbeat's wire codes of the states and roles (fgcp.hbframe) are mapped to
the vocabulary of fgcp.roles here and nowhere else (``WIRE_STATE``, ``STATE_OF_WIRE``,
``WIRE_ROLE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fgcp.election import Candidate, Decision, decide
from fgcp.freshness import MAX_MEMBERS, Verdict
from fgcp.hbframe import (
    IF_OPER_UP,
    MODE_AA,
    MODE_AP,
    ROLE_NONE,
    ROLE_PRIMARY,
    ROLE_SECONDARY,
    STATE_HELLO,
    STATE_STANDBY,
    STATE_WORK,
    HeartbeatError,
    HeartbeatInfo,
    IfaceRecord,
    decode_heartbeat,
    encode_heartbeat,
)
from fgcp.hbreplay import HeartbeatFreshness, RefusedPeer
from fgcp.model import HAConfig
from fgcp.roles import HaState

__all__ = [
    "HELLO",
    "STANDBY",
    "STATE_OF_WIRE",
    "TRANSITIONS",
    "WIRE_ROLE",
    "WIRE_STATE",
    "WORK",
    "Announce",
    "BecomePrimary",
    "BecomeSecondary",
    "FrameDropped",
    "HAStateMachine",
    "HAStatus",
    "HbdevStatus",
    "HistoryEntry",
    "MemberStatus",
    "PeerJoined",
    "PeerLost",
    "SendHeartbeat",
    "Transition",
]

HELLO = HaState.HELLO
WORK = HaState.WORK  # primary
STANDBY = HaState.STANDBY  # secondary

# The one mapping between the heartbeat's wire codes and the role vocabulary.
WIRE_STATE: dict[HaState, int] = {HELLO: STATE_HELLO, WORK: STATE_WORK, STANDBY: STATE_STANDBY}
STATE_OF_WIRE: dict[int, HaState] = {code: st for st, code in WIRE_STATE.items()}
WIRE_ROLE: dict[HaState, int] = {HELLO: ROLE_NONE, WORK: ROLE_PRIMARY, STANDBY: ROLE_SECONDARY}

E_PRIMARY = "elected-primary"
E_SECONDARY = "elected-secondary"

HISTORY_MAX = 512  # FortiOS keeps 512 entries
SELECTIONS_MAX = 4  # "Primary selected using:" shows the last few
LOST_KEEP = 300.0  # seconds a lost peer stays listed (at most MAX_MEMBERS - 1 of them)


@dataclass(frozen=True)
class Transition:
    """``state`` --``event``--> ``target`` allowed when ``guard`` (a method name) holds."""

    state: HaState
    event: str
    target: HaState
    guard: str | None = None


TRANSITIONS: tuple[Transition, ...] = (
    Transition(HELLO, E_PRIMARY, WORK, guard="holddown_over"),
    Transition(HELLO, E_SECONDARY, STANDBY, guard="holddown_over"),
    Transition(STANDBY, E_PRIMARY, WORK),
    Transition(WORK, E_SECONDARY, STANDBY),
)


# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class SendHeartbeat:
    """Transmit ``frame`` (a whole Ethernet frame) on heartbeat interface ``port``.

    ``seq``: its counter (TLV 0x84).  Receivers accept a port's counters only in
    increasing order, so a frame whose counter is below one already sent on ``port``
    (a newer heartbeat went out first, e.g. from a takeover hook) is stale: skip it.
    """

    port: str
    frame: bytes
    seq: int = 0


@dataclass(frozen=True)
class BecomePrimary:
    """This member now processes traffic: take the virtual MACs, send gratuitous ARPs."""

    reason: str
    previous: str  # the state it leaves


@dataclass(frozen=True)
class BecomeSecondary:
    """This member stops processing traffic and gives the virtual MACs up."""

    reason: str
    primary: str  # serial of the member now considered primary
    previous: str


@dataclass(frozen=True)
class Announce:
    """The primary sends its gratuitous ARPs again (a peer joined or left the work state)."""

    reason: str


@dataclass(frozen=True)
class PeerJoined:
    serial: str
    port: str


@dataclass(frozen=True)
class PeerLost:
    serial: str
    reason: str


@dataclass(frozen=True)
class FrameDropped:
    """A received heartbeat was refused (counted in ``counters['drop-<reason>']``)."""

    port: str
    reason: str  # malformed | auth | wrong-group | own-serial | replay | unverified | too-many-members
    detail: str


Action = (
    SendHeartbeat | BecomePrimary | BecomeSecondary | Announce | PeerJoined | PeerLost
    | FrameDropped
)


# ----------------------------------------------------------------------------- status data


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``diagnose sys ha history read``."""

    ts: float
    event: str  # short key: elected, state, member-joined, member-lost, split-brain, ...
    text: str


@dataclass(frozen=True)
class MemberStatus:
    serial: str
    hostname: str
    state: HaState  # as advertised
    priority: int
    uptime_s: float
    failed_monitors: int
    failover_set: bool
    sync_complete: bool
    is_self: bool
    last_seen_s: float  # seconds since the last heartbeat (0 for this member)
    cluster_index: int  # by serial number, highest first (FortiOS "HA cluster index")
    operating_index: int  # election order, primary first


@dataclass(frozen=True)
class HbdevStatus:
    port: str
    priority: int
    up: bool
    tx_packets: int
    tx_bytes: int
    rx_packets: int
    rx_bytes: int
    dropped: int


@dataclass(frozen=True)
class HAStatus:
    """A snapshot for ``get system ha status`` (rendered by ``fgcp.hadiag``)."""

    now: float
    serial: str
    hostname: str
    state: HaState
    primary: str | None
    group_name: str
    group_id: int
    mode: str
    override: bool
    session_pickup: bool
    session_pickup_delay: bool
    started: float
    state_change_time: float
    selections: tuple[tuple[float, str], ...]  # (when, "X is selected as the primary because ...")
    members: tuple[MemberStatus, ...]  # operating order, primary first
    hbdevs: tuple[HbdevStatus, ...]
    monitors: tuple[tuple[str, bool], ...]
    lost: tuple[tuple[str, float], ...]  # (serial, when) of peers lost and not back
    counters: dict[str, int]
    password_set: bool = True  # False: frames are accepted unauthenticated
    hb_interval: int = 2  # hb-interval, in units of hb_unit_ms
    hb_unit_ms: int = 100  # hb-interval-in-milliseconds (100 or 10)
    hb_lost_threshold: int = 6


# ----------------------------------------------------------------------------- the machine


@dataclass
class _Peer:
    info: HeartbeatInfo
    rx_time: float
    rx_by_port: dict[str, float] = field(default_factory=dict)

    def uptime(self, now: float) -> float:
        return self.info.uptime_ms / 1000.0 + max(0.0, now - self.rx_time)


@dataclass
class _PortStats:
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    dropped: int = 0


class HAStateMachine:
    """One member's FGCP state machine; see the module docstring.

    ``epoch``: this run's random epoch (fgcp.freshness.new_epoch by default; the
    daemon draws one per start).  ``hb_macs`` gives each heartbeat port's source
    MAC; ``interfaces`` the inventory advertised in heartbeats.
    """

    def __init__(
        self,
        cfg: HAConfig,
        serial: str,
        now: float,
        hostname: str = "",
        epoch: int | None = None,
        hb_macs: dict[str, bytes] | None = None,
        interfaces: tuple[IfaceRecord, ...] = (),
    ) -> None:
        if not serial:
            raise ValueError("a member needs a serial number")
        self.cfg = cfg
        self.serial = serial
        self.hostname = hostname or serial
        self.hb_macs = dict(hb_macs or {})
        self.interfaces = tuple(interfaces)
        self.started = now
        self.state: HaState = HELLO
        self._before_work: HaState = HELLO  # the state a takeover left (see takeover_failed)
        self.state_change_time = now
        self.hello_until = now + cfg.hello_holddown
        self.ha_start = now  # HA uptime origin; reset when a monitored port fails
        self.uptime_resets = 0
        self.failover_set = False
        self.sync_complete = True
        self.hbdev_up: dict[str, bool] = {p: True for p, _ in cfg.hbdev}
        self.hbdev_prio: dict[str, int] = {p: prio for p, prio in cfg.hbdev}
        self.monitor_up: dict[str, bool] = {p: True for p in cfg.monitor}
        self.peers: dict[str, _Peer] = {}
        self.lost: dict[str, float] = {}
        self.decision: Decision | None = None
        self.primary: str | None = None
        self.history: list[HistoryEntry] = []
        self.selections: list[tuple[float, str]] = []
        self.counters: dict[str, int] = {}
        self.port_stats: dict[str, _PortStats] = {p: _PortStats() for p in self.hbdev_up}
        ttl = max(2.0, 2 * cfg.hb_lost_threshold * cfg.hb_interval * cfg.hb_unit_ms / 1000)
        self.fresh = (HeartbeatFreshness(serial, ttl) if epoch is None
                      else HeartbeatFreshness(serial, ttl, epoch))
        self.next_hb = now
        self._split_with: set[str] = set()  # returning peers seen as primary too
        self._returning: set[str] = set()  # peers that came back after being lost
        self._disagree_since: dict[str, float] = {}  # peers whose election result differs
        self._ignore_uptime: set[str] = set()  # peers with a lasting disagreement (see _elect)
        self._record(
            now, "start", f"HA started in {HELLO} state, hello-holddown {cfg.hello_holddown}s"
        )

    # ------------------------------------------------------------------ derived values

    @property
    def interval(self) -> float:
        """Heartbeat interval in seconds (``hb-interval`` is in units of 100 ms, or of
        10 ms with ``hb-interval-in-milliseconds 10ms``)."""
        return self.cfg.hb_interval * self.cfg.hb_unit_ms / 1000

    @property
    def lost_timeout(self) -> float:
        """A peer is lost after this many seconds without any heartbeat."""
        return self.cfg.hb_lost_threshold * self.interval

    @property
    def is_primary(self) -> bool:
        return self.state == WORK

    def uptime(self, now: float) -> float:
        """This member's HA uptime in seconds."""
        return max(0.0, now - self.ha_start)

    def failed_monitors(self) -> int:
        return sum(1 for up in self.monitor_up.values() if not up)

    def next_deadline(self) -> float:
        """The latest time at which ``on_tick`` must be called again."""
        t = self.next_hb
        if self.state == HELLO:
            t = min(t, self.hello_until)
        for p in self.peers.values():
            t = min(t, p.rx_time + self.lost_timeout)
        return t

    def expiry_due(self, now: float) -> bool:
        """Whether ``on_tick(now)`` would lose a peer for lack of heartbeats."""
        return any(now - p.rx_time >= self.lost_timeout for p in self.peers.values())

    def holddown_over(self, now: float) -> bool:
        """Guard of the transitions out of hello."""
        return now >= self.hello_until

    # ------------------------------------------------------------------ inputs

    def on_tick(self, now: float) -> list[Action]:
        """Timers: lost peers, the end of hello-holddown, heartbeats due."""
        actions: list[Action] = []
        self._expire_peers(now, actions)
        self.fresh.expire(now)
        for serial in [s for s, t in self.lost.items() if now - t > LOST_KEEP]:
            del self.lost[serial]
        self._elect(now, actions)
        self._flush(now, actions)
        return actions

    def on_frame(self, now: float, port: str, frame: bytes) -> list[Action]:
        """A frame received on heartbeat interface ``port``: check it, then ``on_heartbeat``."""
        stats = self.port_stats.setdefault(port, _PortStats())
        try:
            info = decode_heartbeat(
                frame, self.cfg.password, self.cfg.group_id, self.cfg.group_name
            )
            if info.serial == self.serial:
                raise _OwnSerial(f"heartbeat carries this member's own serial {info.serial}")
            verdict, urgent = self.fresh.check(now, info)
        except HeartbeatError as exc:
            if isinstance(exc, RefusedPeer):
                self._count("ha_peers_refused")
            return self._dropped(stats, port, exc.reason, str(exc))
        stats.rx_packets += 1
        stats.rx_bytes += len(frame)
        actions: list[Action] = []
        if urgent:
            self.next_hb = min(self.next_hb, now)  # challenge or answer at once
        if verdict is Verdict.PENDING:  # the handshake's first frame, or a replay: not an hbdev drop
            self._count("drop-unverified")
            actions.append(FrameDropped(port, "unverified",
                                        f"{info.serial} epoch {info.epoch:016x} is challenged"))
            self._flush(now, actions)
            return actions
        if verdict is Verdict.VERIFIED:
            self._record(now, "epoch", f"member '{info.serial}' epoch {info.epoch:016x} verified")
            if info.serial in self.peers:
                self._lose(now, info.serial, "it restarted (new epoch)", actions)
        return actions + self.on_heartbeat(now, port, info)

    def _count(self, key: str) -> int:
        n = self.counters[key] = self.counters.get(key, 0) + 1
        return n

    def _dropped(self, stats: _PortStats, port: str, reason: str, detail: str) -> list[Action]:
        stats.dropped += 1
        self._count(f"drop-{reason}")
        return [FrameDropped(port, reason, detail)]

    def verified_epoch(self, serial: str) -> int | None:
        """The epoch of ``serial`` the heartbeat verified (fgcp.freshness.FreshnessSource)."""
        return self.fresh.verified_epoch(serial)

    def on_heartbeat(self, now: float, port: str, info: HeartbeatInfo) -> list[Action]:
        """A checked heartbeat from a peer (``on_frame`` did the auth/replay checks)."""
        actions: list[Action] = []
        self.counters["rx"] = self.counters.get("rx", 0) + 1
        self._expire_peers(now, actions)
        peer = self.peers.get(info.serial)
        if peer is None:
            if len(self.peers) >= MAX_MEMBERS - 1:  # FGCP clusters here: up to 4 members
                self._count("drop-too-many-members")
                self._count("ha_peers_refused")
                return [
                    FrameDropped(port, "too-many-members", f"{info.serial} would be a 5th member")
                ]
            peer = _Peer(info, now)
            self.peers[info.serial] = peer
            if self.lost.pop(info.serial, None) is not None:
                self._returning.add(info.serial)
            self._record(
                now,
                "member-joined",
                f"new member '{info.serial}' is added into group (hbdev {port})",
            )
            actions.append(PeerJoined(info.serial, port))
            if self.state == WORK:
                actions.append(Announce(f"peer {info.serial} joined"))
            self.next_hb = min(self.next_hb, now)  # let it hear from us at once
        old = peer.info
        if old is not info and old.epoch == info.epoch and info.seq <= old.seq:
            # An older frame that went by another hbdev (the sender's counter is
            # shared by its heartbeat ports): proof of life only; its state is stale
            # and must not undo what a newer frame said.
            peer.rx_time = max(peer.rx_time, now)
            peer.rx_by_port[port] = now
            self.counters["rx-stale"] = self.counters.get("rx-stale", 0) + 1
            return actions
        peer.info, peer.rx_time = info, now
        peer.rx_by_port[port] = now
        left_work = False
        if old.state != info.state and old is not info:
            left_work = old.state == STATE_WORK
            self._record(
                now,
                "peer-state",
                f"member '{info.serial}' state changed: "
                f"{STATE_OF_WIRE[old.state]}->{STATE_OF_WIRE[info.state]}",
            )
        self._check_split(now, info)
        self._elect(now, actions)
        self._flush(now, actions)
        if left_work and self.state == WORK:
            actions.append(Announce(f"peer {info.serial} left the work state"))
        return actions

    def on_monitor_change(self, now: float, port: str, up: bool) -> list[Action]:
        """Link state of a monitored interface; a failure resets this member's HA uptime."""
        if port not in self.monitor_up or self.monitor_up[port] == up:
            return []
        self.monitor_up[port] = up
        self._record(now, "monitor", f"{port} link status changed: {int(not up)}->{int(up)}")
        self.interfaces = tuple(
            replace(r, flags=(r.flags | IF_OPER_UP) if up else (r.flags & ~IF_OPER_UP))
            if r.name == port
            else r
            for r in self.interfaces
        )
        if not up:
            self.ha_start = now
            self.uptime_resets += 1
            self._record(now, "uptime-reset", f"HA uptime reset: monitored interface {port} failed")
        actions: list[Action] = []
        self.next_hb = now  # tell the peers at once
        self._elect(now, actions)
        self._flush(now, actions)
        return actions

    def on_hbdev_change(self, now: float, port: str, up: bool) -> list[Action]:
        """Carrier of a heartbeat interface; with every hbdev down all peers are lost."""
        if port not in self.hbdev_up or self.hbdev_up[port] == up:
            return []
        self.hbdev_up[port] = up
        self._record(now, "hbdev", f"hbdev {port} link status changed: {int(not up)}->{int(up)}")
        actions: list[Action] = []
        if not any(self.hbdev_up.values()) and self.peers:
            for serial in list(self.peers):
                self._lose(now, serial, "all heartbeat interfaces are down", actions)
            self._record(
                now,
                "split-brain",
                "all heartbeat interfaces are down: peers unreachable, possible split brain",
            )
        if up:
            self.next_hb = now
        self._elect(now, actions)
        self._flush(now, actions)
        return actions

    def force_failover(self, now: float, set_flag: bool) -> list[Action]:
        """``execute ha failover set 1`` (True) / ``unset 1`` (False) on this member."""
        if self.failover_set == set_flag:
            return []
        self.failover_set = set_flag
        self._record(now, "failover", f"execute ha failover {'set' if set_flag else 'unset'} 1")
        actions: list[Action] = []
        self.next_hb = now
        self._elect(now, actions)
        self._flush(now, actions)
        return actions

    def set_sync_complete(self, now: float, done: bool) -> list[Action]:
        """Bulk session sync state (from fgcp.syncmember): a member with pending sync does not take over."""
        if self.sync_complete == done:
            return []
        self.sync_complete = done
        self._record(
            now, "sync", "bulk session sync complete" if done else "bulk session sync pending"
        )
        actions: list[Action] = []
        self.next_hb = now
        self._elect(now, actions)
        self._flush(now, actions)
        return actions

    def takeover_failed(self, now: float, reason: str) -> list[Action]:
        """The member could not take traffic after ``BecomePrimary`` (a takeover hook
        failed): back to the state it left, advertised at once; the next ``on_tick``
        elects again and so retries the takeover."""
        if self.state != WORK:
            return []
        self.state = self._before_work
        self.state_change_time = now
        self.counters["takeover-failed"] = self.counters.get("takeover-failed", 0) + 1
        self._record(
            now, "takeover-failed",
            f"takeover failed ({reason}): back to {self.state}, retrying on the next tick",
        )
        actions: list[Action] = []
        self.next_hb = now
        self._flush(now, actions)
        return actions

    # ------------------------------------------------------------------ heartbeats

    def heartbeat_info(self, now: float, port: str) -> HeartbeatInfo:
        """What this member advertises on ``port`` now (without a sequence number)."""
        return HeartbeatInfo(
            serial=self.serial,
            group_name=self.cfg.group_name,
            group_id=self.cfg.group_id,
            mode=MODE_AA if self.cfg.mode == "a-a" else MODE_AP,
            port=port,
            priority=self.cfg.priority,
            override=self.cfg.override,
            interfaces=self.interfaces,
            uptime_ms=int(self.uptime(now) * 1000),
            state=WIRE_STATE[self.state],
            role=WIRE_ROLE[self.state],
            failed_monitors=self.failed_monitors(),
            monitored=len(self.monitor_up),
            hb_interval=self.cfg.hb_interval,
            hb_unit_ms=self.cfg.hb_unit_ms,
            hb_lost_threshold=self.cfg.hb_lost_threshold,
            hello_holddown=self.cfg.hello_holddown,
            sync_complete=self.sync_complete,
            failover_set=self.failover_set,
            members=tuple(sorted(self.peers))[:16],
            uptime_resets=self.uptime_resets,
            hostname=self.hostname[:35],
            primary=self.primary or "",
        )

    def _flush(self, now: float, actions: list[Action]) -> None:
        if now < self.next_hb:
            return
        for port, up in self.hbdev_up.items():
            if not up:
                continue
            info = self.fresh.stamp(now, self.heartbeat_info(now, port))
            src = self.hb_macs.get(port, b"\x00\x09\x0f\x09\x00\x00")
            frame = encode_heartbeat(info, self.cfg.password, src=src)
            st = self.port_stats[port]
            st.tx_packets += 1
            st.tx_bytes += len(frame)
            actions.append(SendHeartbeat(port, frame, info.seq))
        self.counters["tx"] = self.counters.get("tx", 0) + 1
        self.next_hb += self.interval
        if self.next_hb <= now:
            self.next_hb = now + self.interval

    # ------------------------------------------------------------------ peers

    def _expire_peers(self, now: float, actions: list[Action]) -> None:
        for serial, p in list(self.peers.items()):
            if now - p.rx_time >= self.lost_timeout:
                self._lose(
                    now,
                    serial,
                    f"no heartbeat for {now - p.rx_time:.3f}s (hb-lost-threshold {self.cfg.hb_lost_threshold}"
                    f" x hb-interval {self.interval * 1000:.0f}ms)",
                    actions,
                )

    def _lose(self, now: float, serial: str, why: str, actions: list[Action]) -> None:
        del self.peers[serial]
        self.lost.pop(serial, None)
        self.lost[serial] = now
        while len(self.lost) > MAX_MEMBERS - 1:
            del self.lost[next(iter(self.lost))]
        self._split_with.discard(serial)
        self._returning.discard(serial)
        self._disagree_since.pop(serial, None)
        self._ignore_uptime.discard(serial)
        self._record(now, "member-lost", f"member '{serial}' is lost: {why}")
        actions.append(PeerLost(serial, why))

    def _check_split(self, now: float, info: HeartbeatInfo) -> None:
        both_primary = info.state == STATE_WORK and self.state == WORK
        both_defer = (
            info.state == STATE_STANDBY
            and self.state == STANDBY
            and info.primary == self.serial
            and self.primary == info.serial
        )
        if (both_primary and info.primary == info.serial) or both_defer:
            self._disagree_since.setdefault(info.serial, now)
        else:
            self._disagree_since.pop(info.serial, None)
        if both_primary and info.serial in self._returning:
            if info.serial not in self._split_with:
                self._split_with.add(info.serial)
                self._record(
                    now,
                    "split-brain",
                    f"split brain detected: member '{info.serial}' is also primary",
                )
        elif info.serial in self._split_with and info.state != STATE_WORK:
            self._split_with.discard(info.serial)
            self._record(
                now,
                "split-brain-resolved",
                f"split brain resolved: member '{info.serial}' is now {STATE_OF_WIRE[info.state]}",
            )
        if info.state != STATE_WORK:
            self._returning.discard(info.serial)

    # ------------------------------------------------------------------ election

    def _candidates(self, now: float) -> list[Candidate]:
        me = Candidate(
            self.serial,
            self.cfg.priority,
            self.failed_monitors(),
            self.uptime(now),
            self.failover_set,
            self.sync_complete,
        )
        out = [me]
        for p in self.peers.values():
            if p.info.state == STATE_HELLO:
                continue  # not a candidate until it has left hello
            i = p.info
            out.append(
                Candidate(
                    i.serial,
                    i.priority,
                    i.failed_monitors,
                    p.uptime(now),
                    i.failover_set,
                    i.sync_complete,
                )
            )
        return out

    def _elect(self, now: float, actions: list[Action]) -> None:
        if self.state == HELLO and not self.holddown_over(now):
            return
        cands = self._candidates(now)
        for serial, since in self._disagree_since.items():
            if now - since > 2 * self.interval and serial not in self._ignore_uptime:
                # Two members keep electing different primaries: their uptime
                # estimates straddle the margin (network delay).  From now on both
                # ignore uptime, which every member computes identically, so exactly
                # one of them is primary (until that peer is lost).
                self._ignore_uptime.add(serial)
                self._record(
                    now,
                    "disagreement",
                    f"election disagrees with member '{serial}': uptime ignored",
                )
        margin = float("inf") if self._ignore_uptime else float(self.cfg.ha_uptime_diff_margin)
        d = decide(cands, self.cfg.override, margin)
        prev = self.decision
        self.decision = d
        self.primary = d.primary
        if prev is None or (prev.primary, prev.reason, len(prev.order)) != (
            d.primary,
            d.reason,
            len(d.order),
        ):
            text = d.explain()
            self.selections.append((now, text))
            del self.selections[:-SELECTIONS_MAX]
            if prev is None or prev.primary != d.primary or len(prev.order) != len(d.order):
                self._record(
                    now,
                    "elected",
                    f"{d.primary} is elected as the cluster primary of {len(cands)} members: {text}",
                )
        event = E_PRIMARY if d.primary == self.serial else E_SECONDARY
        self._fire(now, event, d, actions)

    def _fire(self, now: float, event: str, d: Decision, actions: list[Action]) -> None:
        for t in TRANSITIONS:
            if t.state != self.state or t.event != event:
                continue
            if t.guard is not None and not getattr(self, t.guard)(now):
                continue
            prev, self.state = self.state, t.target
            self.state_change_time = now
            self.next_hb = now  # advertise the new state at once
            reason = d.explain()
            if t.target == WORK:
                self._before_work = prev
                if not any(self.hbdev_up.values()) and self.lost:
                    reason = "split brain (all heartbeat interfaces down): " + reason
                    self._record(
                        now, "split-brain", "split brain: this member becomes primary without peers"
                    )
                actions.append(BecomePrimary(reason, prev))
            else:
                if self._split_with:
                    self._record(
                        now,
                        "split-brain-resolved",
                        f"split brain resolved: {d.primary} is the primary",
                    )
                    self._split_with.clear()
                self._returning.clear()
                actions.append(BecomeSecondary(reason, d.primary, prev))
            self._record(now, "state", f"state changed: {prev}->{t.target} ({reason})")
            return

    # ------------------------------------------------------------------ diagnostics

    def _record(self, now: float, event: str, text: str) -> None:
        self.history.append(HistoryEntry(now, event, text))
        del self.history[:-HISTORY_MAX]

    def status(self, now: float) -> HAStatus:
        """A snapshot for ``get system ha status``."""
        rows = [
            (
                self.serial,
                self.hostname,
                self.state,
                self.cfg.priority,
                self.uptime(now),
                self.failed_monitors(),
                self.failover_set,
                self.sync_complete,
                True,
                0.0,
            )
        ]
        for p in self.peers.values():
            i = p.info
            rows.append(
                (
                    i.serial,
                    i.hostname or i.serial,
                    STATE_OF_WIRE[i.state],
                    i.priority,
                    p.uptime(now),
                    i.failed_monitors,
                    i.failover_set,
                    i.sync_complete,
                    False,
                    now - p.rx_time,
                )
            )
        by_serial = sorted((r[0] for r in rows), reverse=True)
        order = [s for s in (self.decision.order if self.decision else ()) if s in by_serial]
        order += [s for s in by_serial if s not in order]
        members = sorted(
            (
                MemberStatus(
                    *r, cluster_index=by_serial.index(r[0]), operating_index=order.index(r[0])
                )
                for r in rows
            ),
            key=lambda m: m.operating_index,
        )
        hbdevs = tuple(
            HbdevStatus(
                port,
                self.hbdev_prio.get(port, 0),
                up,
                s.tx_packets,
                s.tx_bytes,
                s.rx_packets,
                s.rx_bytes,
                s.dropped,
            )
            for port, up in self.hbdev_up.items()
            for s in (self.port_stats[port],)
        )
        return HAStatus(
            now=now,
            serial=self.serial,
            hostname=self.hostname,
            state=self.state,
            primary=self.primary,
            group_name=self.cfg.group_name,
            group_id=self.cfg.group_id,
            mode=self.cfg.mode,
            override=self.cfg.override,
            session_pickup=self.cfg.session_pickup,
            session_pickup_delay=self.cfg.session_pickup_delay,
            started=self.started,
            state_change_time=self.state_change_time,
            selections=tuple(self.selections),
            members=tuple(members),
            hbdevs=hbdevs,
            monitors=tuple(self.monitor_up.items()),
            lost=tuple(self.lost.items()),
            counters=dict(self.counters),
            password_set=bool(self.cfg.password),
            hb_interval=self.cfg.hb_interval,
            hb_unit_ms=self.cfg.hb_unit_ms,
            hb_lost_threshold=self.cfg.hb_lost_threshold,
        )


class _OwnSerial(HeartbeatError):
    reason = "own-serial"
