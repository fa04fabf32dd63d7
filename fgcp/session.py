"""Session record and the bounded session table (both directions keyed, expiry per state).

The forwarding plane creates and refreshes sessions; the sync engine copies
them between members.  Pure: time is always passed in.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from fgcp.expiry import STEP_BUDGET, ExpiryQueue
from fgcp.tcptrack import (
    PROTO_STATE_NAMES,
    PS_CLOSE,
    PS_ESTABLISHED,
    PS_FIN_WAIT,
    PS_SYN_RECV,
    PS_SYN_SENT,
    PS_TIME_WAIT,
    TcpPeer,
)

__all__ = [
    "CONNECTIONLESS",
    "ORIG",
    "PICKUP",
    "PROXY",
    "REPLY",
    "SYNCED",
    "Rewrite",
    "Session",
    "SessionKey",
    "SessionTable",
    "Timeouts",
]

log = logging.getLogger(__name__)

# Session.flags
SYNCED = 1
CONNECTIONLESS = 2
PROXY = 4
PICKUP = 8  # installed by session pickup: TCP windows adopted from the next segments

# directions
ORIG = 0
REPLY = 1

SessionKey = tuple[int, int, int, int, int]  # (proto, src_ip, sport, dst_ip, dport)
# One direction's rewrite, precomputed by the forwarder (fgcp/forward.py ``_build_rw``):
# (egress port, ARP key (port, next hop), new src, new dst, new sport (ICMP: new id),
#  new dport, IPv4 checksum delta (incl. TTL decrement), L4 checksum delta or 0)
Rewrite = tuple[int, tuple[int, int], int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Idle timeouts in seconds (FortiOS defaults: config system global / session-ttl)."""

    tcp_established: int = 3600  # session-ttl default
    tcp_halfopen: int = 10  # tcp-halfopen-timer
    tcp_halfclose: int = 120  # tcp-halfclose-timer
    tcp_timewait: int = 1  # tcp-timewait-timer
    udp: int = 180
    icmp: int = 60
    other: int = 60

    def for_state(self, proto: int, state: int) -> int:
        """Idle timeout of a session of ``proto`` in proto_state ``state``."""
        if proto == 6:
            if state == PS_ESTABLISHED:
                return self.tcp_established
            if state in (PS_SYN_SENT, PS_SYN_RECV, 0):
                return self.tcp_halfopen
            if state in (PS_TIME_WAIT, PS_CLOSE):
                return self.tcp_timewait
            if state >= PS_FIN_WAIT:
                return self.tcp_halfclose
            return self.tcp_halfopen
        if proto == 17:
            return self.udp
        if proto == 1:
            return self.icmp
        return self.other


@dataclass(slots=True, eq=False)
class Session:
    """One firewall session.

    orig = (src_ip, sport, dst_ip, dport) as the first packet arrived;
    reply = the same tuple expected on the reply direction (after NAT).
    For ICMP echo, sport is the identifier in orig and dport in reply.
    """

    sid: int
    proto: int
    orig: tuple[int, int, int, int]
    reply: tuple[int, int, int, int]
    in_intf: str
    out_intf: str
    policy_id: int = 0
    nat: bool = False
    nat_ip: int = 0
    nat_port: int = 0
    state: int = 0
    tcp: tuple[TcpPeer, TcpPeer] | None = None
    created: float = 0.0
    last_seen: float = 0.0
    expires: float = 0.0
    org_packets: int = 0
    org_bytes: int = 0
    reply_packets: int = 0
    reply_bytes: int = 0
    flags: int = 0
    inspection: str = "flow"
    ext: dict[int, bytes] = field(default_factory=dict)
    timeout: int = 0  # idle timeout of the current state (not synced)
    rw: tuple[Rewrite, Rewrite] | None = None  # forwarder's rewrite cache (not synced)
    inspect: bool = False  # claimed by the forwarder's inspector (not synced, see inspecthook)
    # the table's expiry bucket holding it (fgcp/expiry.py; not synced)
    expiry_bucket: dict[int, Session] | None = field(default=None, repr=False)

    @property
    def orig_key(self) -> SessionKey:
        o = self.orig
        return (self.proto, o[0], o[1], o[2], o[3])

    @property
    def reply_key(self) -> SessionKey:
        r = self.reply
        return (self.proto, r[0], r[1], r[2], r[3])

    @property
    def state_name(self) -> str:
        if self.proto == 6:
            return PROTO_STATE_NAMES.get(self.state, str(self.state))
        return f"{self.state:02d}"


class SessionTable:
    """Sessions keyed by the 5-tuple of each direction as seen arriving on the wire.

    ``on_remove(session)`` is called for every removed session (NAT release).
    At ``max_sessions`` new sessions are refused and counted.  Expiry is incremental
    (fgcp/expiry.py): ``expire`` touches at most ``expiry_budget`` sessions a call and
    ``expiry_behind`` says that due sessions are left for the next call.  A packet may
    move ``Session.expires`` later directly; an earlier expiry goes through
    ``set_state`` or ``set_expires``.
    """

    LOG_INTERVAL = 10.0

    def __init__(self, max_sessions: int = 65536,
                 on_remove: Callable[[Session], None] | None = None,
                 timeouts: Timeouts | None = None, expiry_budget: int = STEP_BUDGET) -> None:
        if expiry_budget < 1:
            raise ValueError(f"expiry_budget {expiry_budget} < 1")
        self.max_sessions = max_sessions
        self.expiry_budget = expiry_budget
        self._expiry = ExpiryQueue()
        self.on_remove = on_remove
        self.timeouts = timeouts or Timeouts()
        self.keys: dict[SessionKey, tuple[Session, int]] = {}
        self._sessions: dict[int, Session] = {}
        self.counters: Counter[str] = Counter()
        self._next_sid = 1
        self._last_full_log = float("-inf")

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def next_sid(self) -> int:
        sid = self._next_sid
        self._next_sid = (sid + 1) & 0xFFFFFFFF or 1
        return sid

    def lookup(self, key: SessionKey) -> tuple[Session, int] | None:
        """(session, ORIG|REPLY) for a packet's (proto, src, sport, dst, dport)."""
        return self.keys.get(key)

    def get(self, sid: int) -> Session | None:
        return self._sessions.get(sid)

    def add(self, s: Session, now: float) -> bool:
        """Insert ``s``; False (and counted) when full or a key is taken."""
        if len(self._sessions) >= self.max_sessions:
            self.counters["session_table_full"] += 1
            if now - self._last_full_log >= self.LOG_INTERVAL:
                self._last_full_log = now
                log.warning("session table full (%d sessions): new sessions refused "
                            "(%d so far)", self.max_sessions, self.counters["session_table_full"])
            return False
        ok, rk = s.orig_key, s.reply_key
        if ok in self.keys or rk in self.keys or s.sid in self._sessions:
            self.counters["session_clash"] += 1
            return False
        self.keys[ok] = (s, ORIG)
        self.keys[rk] = (s, REPLY)
        self._sessions[s.sid] = s
        if not s.timeout:
            s.timeout = self.timeouts.for_state(s.proto, s.state)
        if not s.expires:
            s.expires = now + s.timeout
        self._expiry.file(s)
        self.counters["session_added"] += 1
        return True

    def set_state(self, s: Session, state: int, now: float) -> None:
        """Change a session's proto_state and its idle timeout."""
        s.state = state
        s.timeout = self.timeouts.for_state(s.proto, state)
        s.expires = now + s.timeout
        if s.expiry_bucket is not None:
            self._expiry.refile(s)

    def set_expires(self, s: Session, expires: float) -> None:
        """Set a session's expiry (earlier or later) and keep its expiry bucket right."""
        s.expires = expires
        if s.expiry_bucket is not None:
            self._expiry.refile(s)

    def remove(self, s: Session) -> bool:
        """Remove ``s`` (both keys); calls on_remove. False if it was not there."""
        if self._sessions.get(s.sid) is not s:
            return False
        del self._sessions[s.sid]
        self._expiry.discard(s)
        for k in (s.orig_key, s.reply_key):
            ent = self.keys.get(k)
            if ent is not None and ent[0] is s:
                del self.keys[k]
        self.counters["session_removed"] += 1
        if self.on_remove is not None:
            self.on_remove(s)
        return True

    @property
    def expiry_behind(self) -> bool:
        """The last ``expire`` stopped at its budget: due sessions are left (call again soon)."""
        return self._expiry.behind

    @property
    def expiry_last_work(self) -> int:
        """Sessions (and buckets) the last ``expire`` touched (at most its budget)."""
        return self._expiry.last_work

    @property
    def expiry_queued(self) -> int:
        """Sessions filed in the expiry queue (every session of the table, once)."""
        return len(self._expiry)

    def expire(self, now: float, budget: int | None = None) -> int:
        """Remove sessions idle past their expiry, touching at most ``budget`` (default
        ``expiry_budget``) of them; returns how many were removed."""
        n = self._expiry.step(now, budget or self.expiry_budget, self.remove)
        if n:
            self.counters["session_expired"] += n
        return n

    def clear(self) -> int:
        """Remove all sessions; returns how many."""
        dead = list(self._sessions.values())
        for s in dead:
            self.remove(s)
        self._expiry.clear()
        return len(dead)
