"""Heartbeat freshness: fgcp.freshness applied to the 0x8890 frames (pure, ``now`` passed in).

``HeartbeatFreshness`` stamps outgoing heartbeats (epoch TLV 0x8C, counter TLV 0x84,
challenges 0x8D, responses 0x8E) and gives the verdict on a decoded one: fresh,
verified now (a new epoch answered our challenge), pending (ignore it), or it raises
``ReplayedHeartbeat`` / ``RefusedPeer``.  The design is docs/protocol.md "Freshness".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fgcp.freshness import MAX_MEMBERS, EpochRegistry, Responder, Verdict, new_epoch
from fgcp.hbframe import HeartbeatError, HeartbeatInfo

__all__ = ["HeartbeatFreshness", "RefusedPeer", "ReplayedHeartbeat", "SequenceCounter"]


class ReplayedHeartbeat(HeartbeatError):
    """The counter is not newer within that (serial, epoch, port), or the epoch is retired."""

    reason = "replay"


class RefusedPeer(HeartbeatError):
    """A new serial while the cluster already has MAX_MEMBERS members (``ha_peers_refused``)."""

    reason = "too-many-members"


@dataclass
class SequenceCounter:
    """The sender's counter within its epoch: 1, 2, ... (never from the clock)."""

    sent: int = 0

    def next(self) -> int:
        self.sent += 1
        return self.sent


@dataclass
class HeartbeatFreshness:
    """One member's heartbeat freshness state: its epoch, counter, challenges, answers.

    ``ttl``: pending challenges, answers and idle peers age out after it (seconds).
    """

    serial: str
    ttl: float
    epoch: int = field(default_factory=new_epoch)
    max_peers: int = MAX_MEMBERS - 1
    counter: SequenceCounter = field(default_factory=SequenceCounter)
    registry: EpochRegistry = field(init=False)
    responder: Responder = field(init=False)

    def __post_init__(self) -> None:
        self.registry = EpochRegistry(self.ttl, self.max_peers)
        self.responder = Responder(self.epoch, self.ttl, self.max_peers)

    def check(self, now: float, info: HeartbeatInfo) -> tuple[Verdict, bool]:
        """Verdict on an authenticated, decoded heartbeat and whether this member should
        send at once (a new challenge to send or to answer); raises on replay/refusal."""
        before = len(self.registry.challenges())
        echoed = [n for s, n in info.responses if s == self.serial]
        v = self.registry.check(now, info.serial, info.epoch, info.port, info.seq, echoed)
        if v is Verdict.REPLAY:
            raise ReplayedHeartbeat(
                f"counter {info.seq} of {info.serial} epoch {info.epoch:016x} on {info.port}"
                " is not newer (or the epoch is retired)")
        if v is Verdict.REFUSED:
            raise RefusedPeer(f"{info.serial} would be member {self.max_peers + 2}"
                              f" (at most {self.max_peers + 1})")
        urgent = self.responder.note(now, info.serial, info.challenges, self.serial)
        urgent = urgent or len(self.registry.challenges()) > before
        return v, urgent

    def stamp(self, now: float, info: HeartbeatInfo) -> HeartbeatInfo:
        """``info`` with this member's epoch, the next counter, challenges and answers."""
        return replace(info, epoch=self.epoch, seq=self.counter.next(),
                       challenges=self.registry.challenges(),
                       responses=self.responder.echoes(now))

    def expire(self, now: float) -> None:
        self.registry.expire(now)
        self.responder.expire(now)

    def verified_epoch(self, serial: str) -> int | None:
        return self.registry.verified_epoch(serial)

    @property
    def refused(self) -> int:
        return self.registry.refused
