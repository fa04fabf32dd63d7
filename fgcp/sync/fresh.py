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

``Verdict`` and the bounds are fgcp.freshness's (one design for both protocols).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from fgcp.freshness import (
    M64,
    MAX_MEMBERS,
    PENDING_PER_PEER,
    RETIRED_EPOCHS,
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


class _Pending:
    __slots__ = ("challenged", "heard", "nonce", "window")

    def __init__(self, now: float) -> None:
        self.nonce = new_nonce()
        self.window = ReplayWindow()
        self.heard = now
        self.challenged = float("-inf")


class _Peer:
    __slots__ = ("floor", "heard", "pending", "retired", "verified", "window")

    def __init__(self, now: float) -> None:
        self.verified: int | None = None
        self.window = ReplayWindow()
        self.heard = now
        self.pending: OrderedDict[int, _Pending] = OrderedDict()
        self.retired: list[int] = []
        self.floor = 0  # highest stream id adopted from the verified epoch


class SyncFreshness:
    """One member's freshness state for session sync (see the module docstring).

    ``epoch``: this run's (fgcp.freshness.new_epoch when None; the daemon passes the
    heartbeat's).  ``gate(serial, epoch)``: optional second opinion (the heartbeat's
    verified epoch, fgcp.freshness.FreshnessSource); a False makes the frame unverified.
    """

    def __init__(self, epoch: int | None = None, *, ttl: float = PEER_TTL,
                 max_peers: int = MAX_MEMBERS - 1,
                 gate: Callable[[str, int], bool] | None = None) -> None:
        self.epoch = (epoch or new_epoch()) & M64
        self.ttl = ttl
        self.max_peers = max_peers
        self.gate = gate
        self.peers: dict[str, _Peer] = {}
        self.hello_nonce = new_nonce()  # the challenge of a broadcast HELLO (any new epoch)
        self._counter = 0
        self._streams = 0

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
        st = self.peers.get(serial)
        if st is None:
            st = self._admit(now, serial)
            if st is None:
                return Verdict.REFUSED
        if epoch == st.verified:
            if not st.window.accept(counter):
                return Verdict.REPLAY
            if self.gate is not None and not self.gate(serial, epoch):
                return Verdict.PENDING
            st.heard = now
            return Verdict.FRESH
        if epoch in st.retired:
            return Verdict.REPLAY
        pend = st.pending.get(epoch)
        if pend is None:
            pend = st.pending[epoch] = _Pending(now)
            while len(st.pending) > PENDING_PER_PEER:
                st.pending.popitem(last=False)
        if not pend.window.accept(counter):
            return Verdict.REPLAY
        pend.heard = now
        st.pending.move_to_end(epoch)
        if not echo or echo not in (pend.nonce, self.hello_nonce) or (
                self.gate is not None and not self.gate(serial, epoch)):
            return Verdict.PENDING
        if echo == self.hello_nonce:  # used once: a recording of this answer proves nothing
            self.hello_nonce = new_nonce()
        if st.verified is not None:
            st.retired = [e for e in st.retired if e != st.verified][-(RETIRED_EPOCHS - 1):]
            st.retired.append(st.verified)
        st.verified, st.window, st.heard, st.floor = epoch, ReplayWindow(counter), now, 0
        st.pending.clear()
        return Verdict.VERIFIED

    def _admit(self, now: float, serial: str) -> _Peer | None:
        self.expire(now)
        if len(self.peers) >= self.max_peers:
            return None
        st = self.peers[serial] = _Peer(now)
        return st

    def nonce_for(self, serial: str, epoch: int) -> int:
        """The challenge for a pending (serial, epoch), 0 when it is not pending."""
        st = self.peers.get(serial)
        pend = st.pending.get(epoch) if st is not None else None
        return pend.nonce if pend is not None else 0

    def challenge_due(self, now: float, serial: str, epoch: int, interval: float) -> bool:
        """Rate limit of the challenges to one pending (serial, epoch) (True: send one now)."""
        st = self.peers.get(serial)
        pend = st.pending.get(epoch) if st is not None else None
        if pend is None or now - pend.challenged < interval:
            return False
        pend.challenged = now
        return True

    def verified_epoch(self, serial: str) -> int | None:
        st = self.peers.get(serial)
        return st.verified if st is not None else None

    def adopt(self, serial: str, stream: int) -> bool:
        """A stream of ``serial``'s verified epoch may be adopted (newer than the last)."""
        st = self.peers.get(serial)
        if st is None or st.verified is None or stream <= st.floor:
            return False
        st.floor = stream
        return True

    def expire(self, now: float) -> None:
        """Forget pending epochs and serials not heard for ``ttl``."""
        for serial, st in list(self.peers.items()):
            for e in [e for e, p in st.pending.items() if now - p.heard > self.ttl]:
                del st.pending[e]
            if not st.pending and now - st.heard > self.ttl:
                del self.peers[serial]

    def forget(self, serial: str) -> None:
        self.peers.pop(serial, None)
