"""Freshness of session-sync frames: this run's epoch and counter, the peers' epochs (pure).

The sync side of docs/protocol.md "Freshness": every frame carries the sender's epoch
(one random u64 per fgcpd run, shared with the heartbeat) and a counter (+1 per frame in
that epoch) in its authenticated part.  ``SyncFreshness`` is one member's state, shared
by the sender and receiver engines it runs (a role change keeps it; a restart loses it):

- a peer (serial, epoch) is trusted only once one of its frames echoed a nonce this
  member sent it (HELLO challenge, answered by a HELLO or a BULK_BEGIN echo): the nonce
  of that pending (serial, epoch), or ``hello_nonce``, the one of the broadcast HELLO
  (a new one after each use); until then the peer is *pending* and only a HELLO
  answering the challenge is built from its frames;
- counters of the verified epoch are accepted once each, within a sliding window
  (``ReplayWindow``, RFC 4303 section 3.4.3): sync frames are spread round robin over
  several links, so a frame may overtake another without being a replay; the window
  starts closed at the counter of the frame that verified the epoch;
- the streams adopted from a sender's epoch only grow (stream ids are counted per epoch),
  so no frame of an earlier stream can be adopted again;
- at most ``MAX_MEMBERS - 1`` peer serials are kept (fgcp.freshness bounds); a further
  serial is refused until one is forgotten (not heard for ``PEER_TTL``).

The verification, retirement and bounds are fgcp.freshness.EpochRegistry's, the
heartbeat's own (one design for both protocols); this module adds the window, the
stream ids and this run's counter.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from fgcp.freshness import (
    M64,
    MAX_MEMBERS,
    EpochRegistry,
    Verdict,
    new_epoch,
    new_nonce,
)

__all__ = ["PEER_TTL", "REPLAY_WINDOW", "ReplayWindow", "SyncFreshness", "Verdict"]

REPLAY_WINDOW = 1024  # counters below the highest one accepted that may still arrive once
PEER_TTL = 10.0  # a peer serial not heard for this long is forgotten (challenged again)
_FULL = (1 << REPLAY_WINDOW) - 1


class ReplayWindow:
    """Counters accepted at most once; none more than ``REPLAY_WINDOW`` below the highest.

    Starts closed at ``floor``: every counter <= floor counts as already seen.
    """

    __slots__ = ("bits", "top")

    def __init__(self, floor: int = 0) -> None:
        self.top = floor
        self.bits = _FULL  # bit i set: counter top - i seen

    def accept(self, counter: int) -> bool:
        """True (and remembered) the first time ``counter`` is seen inside the window."""
        top = self.top
        if counter > top:
            shift = counter - top
            self.bits = ((self.bits << shift) | 1) & _FULL if shift < REPLAY_WINDOW else 1
            self.top = counter
            return True
        d = top - counter
        if d >= REPLAY_WINDOW or (self.bits >> d) & 1:
            return False
        self.bits |= 1 << d
        return True

    def fresh(self, key: Hashable, counter: int) -> bool:
        """``fgcp.freshness.Counters``: one window per epoch, ``key`` unused."""
        return self.accept(counter)


class SyncFreshness:
    """One member's freshness state for session sync (see the module docstring).

    ``epoch``: this run's (fgcp.freshness.new_epoch when None; the daemon passes the
    heartbeat's).  ``gate(serial, epoch)``: optional second opinion (the heartbeat's
    verified epoch, fgcp.freshness.FreshnessSource); a False makes the frame unverified.
    The peers' epochs are a ``fgcp.freshness.EpochRegistry`` (the heartbeat's rules) with
    a ``ReplayWindow`` per epoch, closed at verification, and the broadcast HELLO's nonce
    as its shared nonce.
    """

    def __init__(self, epoch: int | None = None, *, ttl: float = PEER_TTL,
                 max_peers: int = MAX_MEMBERS - 1,
                 gate: Callable[[str, int], bool] | None = None) -> None:
        self.epoch = (epoch or new_epoch()) & M64
        self.registry = EpochRegistry(ttl, max_peers, counters=ReplayWindow,
                                      close_at_verify=True, shared_nonce=new_nonce(),
                                      gate=gate)
        self._counter = 0
        self._streams = 0

    @property
    def hello_nonce(self) -> int:
        """The challenge of a broadcast HELLO (verifies any new epoch; replaced once used)."""
        nonce = self.registry.shared_nonce
        assert nonce is not None
        return nonce

    # -- this member's frames -------------------------------------------------------

    def next_counter(self) -> int:
        self._counter += 1
        return self._counter

    def next_stream(self) -> int:
        """A new stream id of this epoch (they only grow)."""
        self._streams += 1
        return self._streams

    # -- the peers' frames ----------------------------------------------------------

    def check(self, now: float, serial: str, epoch: int, counter: int, echo: int) -> Verdict:
        """The verdict on an authenticated frame of ``serial`` (``echo``: a nonce it echoes)."""
        return self.registry.check(now, serial, epoch, None, counter, (echo,) if echo else ())

    def nonce_for(self, serial: str, epoch: int) -> int:
        """The challenge for a pending (serial, epoch), 0 when it is not pending."""
        return self.registry.nonce_for(serial, epoch)

    def challenge_due(self, now: float, serial: str, epoch: int, interval: float) -> bool:
        """Rate limit of the challenges to one pending (serial, epoch) (True: send one now)."""
        return self.registry.challenge_due(now, serial, epoch, interval)

    def verified_epoch(self, serial: str) -> int | None:
        return self.registry.verified_epoch(serial)

    def adopt(self, serial: str, stream: int) -> bool:
        """A stream of ``serial``'s verified epoch may be adopted (newer than the last)."""
        st = self.registry.peers.get(serial)
        if st is None or st.verified is None or stream <= st.floor:
            return False
        st.floor = stream
        return True

    def expire(self, now: float) -> None:
        """Forget pending epochs and serials not heard for ``ttl``."""
        self.registry.expire(now)

    def forget(self, serial: str) -> None:
        self.registry.forget(serial)
