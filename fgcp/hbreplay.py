"""Heartbeat anti-replay: the sender's u64 counter and the receiver's per-sender guard.

Self-contained behind two small interfaces (``SequenceCounter.next``, ``ReplayGuard.check``
/ ``forget``) so the replay protection can be redesigned without touching the codec or FSM.

The counter (TLV 0x84 of every heartbeat) starts at the sender's boot time in ns and grows
by one per frame; ``ReplayGuard`` rejects a counter <= the last one accepted from the same
(serial, heartbeat port).  A restarted peer starts at its new boot time, larger than any
counter it sent before (unless its clock stepped back: ``ReplayGuard.forget`` re-admits it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fgcp.hbframe import HeartbeatError

__all__ = ["ReplayGuard", "ReplayedHeartbeat", "SequenceCounter", "Stamped"]

M64 = 0xFFFFFFFFFFFFFFFF


class ReplayedHeartbeat(HeartbeatError):
    """The sequence counter is not newer than the last one accepted from that sender."""

    reason = "replay"


class Stamped(Protocol):
    """What the guard reads of a received frame (fgcp.hbframe.HeartbeatInfo has it)."""

    @property
    def serial(self) -> str: ...
    @property
    def port(self) -> str: ...
    @property
    def seq(self) -> int: ...



@dataclass
class SequenceCounter:
    """The sender side of anti-replay: starts at ``boot_ns`` (time.time_ns() at start)."""

    boot_ns: int
    sent: int = 0

    def next(self) -> int:
        """The counter of the next frame sent."""
        self.sent += 1
        return (self.boot_ns + self.sent) & M64


@dataclass
class ReplayGuard:
    """Receiver side: per (serial, heartbeat port) the last counter accepted.

    ``check`` raises ``ReplayedHeartbeat`` for a counter that is not newer; a
    guard keeps at most ``max_senders`` entries (the oldest are forgotten).
    """

    max_senders: int = 64
    last: dict[tuple[str, str], int] = field(default_factory=dict)

    def check(self, info: Stamped) -> None:
        """Accept ``info``'s counter or raise ``ReplayedHeartbeat``."""
        key = (info.serial, info.port)
        prev = self.last.get(key)
        if prev is not None and info.seq <= prev:
            raise ReplayedHeartbeat(
                f"counter {info.seq} from {info.serial}/{info.port} is not newer than {prev}"
            )
        self.last.pop(key, None)
        self.last[key] = info.seq
        while len(self.last) > self.max_senders:
            self.last.pop(next(iter(self.last)))

    def forget(self, serial: str) -> None:
        """Re-admit ``serial`` whatever its counter (e.g. after its clock stepped back)."""
        for key in [k for k in self.last if k[0] == serial]:
            del self.last[key]
