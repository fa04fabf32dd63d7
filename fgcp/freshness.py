"""Freshness of HA frames (heartbeat and session sync): epochs, counters, challenges, pure.

One design for both protocols (docs/protocol.md "Freshness"): every fgcpd run draws a
random epoch; frames carry (epoch, counter) in their authenticated part; a (serial,
epoch) is trusted only once it echoed a nonce this member put in a challenge.  Time is
passed in; every table is bounded by the cluster size and ages out.

- ``new_epoch`` / ``new_nonce``: random non-zero u64 (``secrets``), never from the clock.
- ``CounterGuard``: strictly increasing counters per key (bounded, LRU).
- ``EpochRegistry``: per peer serial the verified epoch, pending challenges, retired
  epochs and counters; ``check`` gives a ``Verdict`` for one received frame.  Both
  protocols use it (heartbeat: fgcp.hbreplay, strict counters per port; session sync:
  fgcp.sync.fresh, a replay window), each with its own ``Counters``.
- ``Responder``: the challenges addressed to this member's epoch, to echo back.
- ``FreshnessSource``: what session sync asks the HA component (epoch, verified epochs).
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "ECHOES_PER_PEER",
    "MAX_MEMBERS",
    "MAX_STREAMS",
    "PENDING_PER_PEER",
    "RETIRED_EPOCHS",
    "Challenge",
    "CounterGuard",
    "Counters",
    "EpochRegistry",
    "FreshnessSource",
    "Responder",
    "Verdict",
    "new_epoch",
    "new_nonce",
]

M64 = 0xFFFFFFFFFFFFFFFF
MAX_MEMBERS = 4  # FGCP a-p cluster size in the lab: this member and 3 peers
RETIRED_EPOCHS = 4  # per serial, the last epochs it left (their frames are replays)
PENDING_PER_PEER = 4  # unverified epochs challenged at once per serial
ECHOES_PER_PEER = 4  # nonces echoed per challenger
MAX_STREAMS = 8  # counter streams per (serial, epoch) (heartbeat: the sender's ports)


def _rand64() -> int:
    while True:
        v = secrets.randbits(64)
        if v:
            return v


def new_epoch() -> int:
    """A random non-zero u64: this run's epoch (one per fgcpd start, both protocols)."""
    return _rand64()


def new_nonce() -> int:
    """A random non-zero u64 challenge nonce (never reused, never stored on disk)."""
    return _rand64()


class Verdict(enum.Enum):
    """What ``EpochRegistry.check`` says of one authenticated frame."""

    FRESH = "fresh"  # verified epoch, counter newer: use its content
    VERIFIED = "verified"  # this frame answered the challenge: a new epoch is verified now
    PENDING = "pending"  # unverified epoch (challenged): ignore the content
    REPLAY = "replay"  # counter not newer, or a retired epoch
    REFUSED = "refused"  # a new serial beyond MAX_MEMBERS - 1 peers


@runtime_checkable
class FreshnessSource(Protocol):
    """The HA component as session sync asks it (fgcp.hamember.HaMember)."""

    @property
    def epoch(self) -> int: ...
    def verified_epoch(self, serial: str) -> int | None: ...


@dataclass(frozen=True)
class Challenge:
    """``(serial, epoch, nonce)``: prove (serial, epoch) is live by echoing ``nonce``."""

    serial: str
    epoch: int
    nonce: int


@dataclass
class CounterGuard:
    """Strictly increasing u64 counters per key; at most ``max_keys`` keys (LRU)."""

    max_keys: int = MAX_STREAMS
    last: OrderedDict[Hashable, int] = field(default_factory=OrderedDict)

    def fresh(self, key: Hashable, counter: int) -> bool:
        """True (and remembered) when ``counter`` is newer than the last one of ``key``."""
        prev = self.last.get(key)
        if prev is not None and counter <= prev:
            return False
        self.last[key] = counter
        self.last.move_to_end(key)
        while len(self.last) > self.max_keys:
            self.last.popitem(last=False)
        return True

    def peek(self, key: Hashable, counter: int) -> bool:
        """Would ``fresh`` accept it (nothing remembered)?"""
        prev = self.last.get(key)
        return prev is None or counter > prev


class Counters(Protocol):
    """A counter check of one (serial, epoch): ``fresh`` is True (and remembers it) when
    ``counter`` in ``stream`` may be used.  Heartbeat: ``CounterGuard`` (strictly
    increasing per sender port); session sync: ``fgcp.sync.fresh.ReplayWindow``."""

    def fresh(self, key: Hashable, counter: int) -> bool: ...


def _counter_guard(floor: int) -> Counters:
    return CounterGuard()


@dataclass
class _Pending:
    nonce: int
    heard: float
    counters: Counters
    challenged: float = float("-inf")  # when a challenge was last sent (session sync's rate)


@dataclass
class _PeerState:
    heard: float
    counters: Counters  # of the verified epoch
    verified: int | None = None  # the epoch in force
    pending: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    retired: list[int] = field(default_factory=list)
    floor: int = 0  # session sync: the highest stream id adopted from the verified epoch


@dataclass
class EpochRegistry:
    """Receiver side: the verified epoch of every peer serial and the challenges out.

    ``ttl``: a serial not heard for this long is forgotten (safe: it is challenged
    again when it comes back) and a pending epoch not heard for this long is dropped.
    ``max_peers``: serials kept at once (cluster size minus this member).
    The protocol's own choices: ``counters(floor)`` makes the counter check of an
    epoch (``floor``: every counter <= it counts as seen); with ``close_at_verify`` the
    verified epoch's check starts closed at the verifying frame's counter (else the
    checks made while it was pending go on); ``shared_nonce`` (when not None) also
    verifies any pending epoch once echoed and is then replaced (session sync's
    broadcast HELLO); ``gate(serial, epoch)`` False keeps a frame unverified (session
    sync: the heartbeat's verified epoch as a second opinion).
    """

    ttl: float
    max_peers: int = MAX_MEMBERS - 1
    counters: Callable[[int], Counters] = _counter_guard
    close_at_verify: bool = False
    shared_nonce: int | None = None
    gate: Callable[[str, int], bool] | None = None
    peers: dict[str, _PeerState] = field(default_factory=dict)
    refused: int = 0

    def check(self, now: float, serial: str, epoch: int, stream: Hashable, counter: int,
              echoed: Collection[int] = ()) -> Verdict:
        """The verdict on a frame from ``serial`` of ``epoch`` with ``counter`` in ``stream``
        (heartbeat: the sender's port) that echoes the nonces ``echoed`` to this member."""
        st = self.peers.get(serial)
        if st is None:
            self.expire(now)
            if len(self.peers) >= self.max_peers:
                self.refused += 1
                return Verdict.REFUSED
            st = self.peers[serial] = _PeerState(now, self.counters(0))
        gate = self.gate
        if epoch == st.verified:
            if not st.counters.fresh(stream, counter):
                return Verdict.REPLAY
            if gate is not None and not gate(serial, epoch):
                return Verdict.PENDING
            st.heard = now
            return Verdict.FRESH
        if epoch in st.retired:
            return Verdict.REPLAY
        pend = st.pending.get(epoch)
        if pend is None:
            pend = _Pending(new_nonce(), now, self.counters(0))
            st.pending[epoch] = pend
            while len(st.pending) > PENDING_PER_PEER:
                st.pending.popitem(last=False)
        if not pend.counters.fresh(stream, counter):
            return Verdict.REPLAY
        pend.heard = now
        st.pending.move_to_end(epoch)
        shared = self.shared_nonce is not None and self.shared_nonce in echoed
        if not (shared or pend.nonce in echoed) or (gate is not None and not gate(serial, epoch)):
            return Verdict.PENDING
        if shared:  # used once: a recording of this answer proves nothing
            self.shared_nonce = new_nonce()
        # verified: the old epoch retires, everything of the pending ones is dropped
        if st.verified is not None:
            st.retired = [e for e in st.retired if e != st.verified][-(RETIRED_EPOCHS - 1):]
            st.retired.append(st.verified)
        st.verified, st.heard, st.floor = epoch, now, 0
        st.counters = self.counters(counter) if self.close_at_verify else pend.counters
        st.pending.clear()
        return Verdict.VERIFIED

    def verified_epoch(self, serial: str) -> int | None:
        st = self.peers.get(serial)
        return st.verified if st is not None else None

    def nonce_for(self, serial: str, epoch: int) -> int:
        """The challenge nonce for a pending (serial, epoch), 0 when it is not pending."""
        pend = self._pending(serial, epoch)
        return pend.nonce if pend is not None else 0

    def challenges(self) -> tuple[Challenge, ...]:
        """The challenges to advertise now (put them in every heartbeat)."""
        return tuple(Challenge(s, e, p.nonce) for s, st in self.peers.items()
                     for e, p in st.pending.items())

    def challenge_due(self, now: float, serial: str, epoch: int, interval: float) -> bool:
        """Rate limit of the challenges to one pending (serial, epoch) (True: send one now)."""
        pend = self._pending(serial, epoch)
        if pend is None or now - pend.challenged < interval:
            return False
        pend.challenged = now
        return True

    def _pending(self, serial: str, epoch: int) -> _Pending | None:
        st = self.peers.get(serial)
        return st.pending.get(epoch) if st is not None else None

    def expire(self, now: float) -> None:
        """Drop pending epochs and serials not heard for ``ttl``."""
        for serial, st in list(self.peers.items()):
            for e in [e for e, p in st.pending.items() if now - p.heard > self.ttl]:
                del st.pending[e]
            if not st.pending and now - st.heard > self.ttl:
                del self.peers[serial]

    def forget(self, serial: str) -> None:
        self.peers.pop(serial, None)


@dataclass
class Responder:
    """This member's answers: the nonces of the challenges naming its own ``epoch``.

    At most ``ECHOES_PER_PEER`` nonces per challenger (the most recently heard) and
    ``max_peers`` challengers; entries not heard for ``ttl`` age out.
    """

    epoch: int
    ttl: float
    max_peers: int = MAX_MEMBERS - 1
    heard: dict[str, OrderedDict[int, float]] = field(default_factory=dict)

    def note(self, now: float, challenger: str, challenges: Iterable[Challenge],
             me: str) -> bool:
        """Record the challenges of one frame from ``challenger``; True if one is new."""
        new = False
        for c in challenges:
            if c.serial != me or c.epoch != self.epoch:
                continue  # another member's, or an earlier run of this member
            nonces = self.heard.get(challenger)
            if nonces is None:
                self.expire(now)
                if len(self.heard) >= self.max_peers:
                    continue
                nonces = self.heard[challenger] = OrderedDict()
            new = new or c.nonce not in nonces
            nonces[c.nonce] = now
            nonces.move_to_end(c.nonce)
            while len(nonces) > ECHOES_PER_PEER:
                nonces.popitem(last=False)
        return new

    def echoes(self, now: float) -> tuple[tuple[str, int], ...]:
        """``(challenger serial, nonce)`` pairs to put in the next heartbeat."""
        self.expire(now)
        return tuple((s, n) for s, ns in self.heard.items() for n in ns)

    def expire(self, now: float) -> None:
        for s, ns in list(self.heard.items()):
            for n in [n for n, t in ns.items() if now - t > self.ttl]:
                del ns[n]
            if not ns:
                del self.heard[s]
