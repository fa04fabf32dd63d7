"""The forwarder's inspection hook: the contract an inspection engine (IPS, later ZTNA) meets.

``Forwarder(..., inspector=...)`` asks ``on_new`` once per session whether to
inspect it; only sessions it claimed reach ``on_payload`` (the others pay one
attribute test per packet).  ``reset_frames`` builds the two TCP resets of a
``Verdict.RESET`` from the session's rewrites and tracked sequence numbers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from fgcp.packet import TH_ACK, TH_RST, build_tcp
from fgcp.session import Rewrite, Session

__all__ = ["Inspector", "Verdict", "reset_frames"]


class Verdict(IntEnum):
    """What ``on_payload`` decides for one segment or datagram (plain ints work too)."""

    PASS = 0  # forward it
    DROP = 1  # drop it (the sender retransmits; the engine keeps saying DROP or not)
    RESET = 2  # drop it and reset the TCP connection both ways (UDP: as DROP)


class Inspector(Protocol):
    """An inspection engine as the forwarder calls it (time passed in, never raises).

    ``direction`` is ``session.ORIG`` (0: from the side that opened the session)
    or ``session.REPLY`` (1); ``seq`` is the TCP sequence number of ``payload``'s
    first byte as it arrived (0 for UDP), ``tcp_flags`` the TCP flags byte (0
    for UDP).  State to be synced to the other member goes in ``session.ext``.
    """

    def on_new(self, session: Session) -> bool:
        """A session was created (or installed by session sync, ``SYNCED`` in
        ``session.flags``): True to inspect it."""
        ...

    def on_payload(self, session: Session, direction: int, seq: int, payload: bytes,
                   tcp_flags: int, now: float) -> int:
        """A TCP segment with data, FIN or RST that the TCP tracker accepted in its
        window, or a UDP datagram, of an inspected session: a ``Verdict``."""
        ...

    def on_close(self, session: Session) -> None:
        """An inspected session was removed (expired, closed, cleared): free its state."""
        ...


def reset_frames(s: Session, direction: int, seq: int, rw: tuple[Rewrite, Rewrite]
                 ) -> list[tuple[tuple[int, int], bytearray]]:
    """TCP RST|ACK to both ends of ``s`` after a segment sent in ``direction`` was refused.

    The receiver gets one from the sender's address at the refused segment's
    ``seq`` (what it expects next, that segment never reached it); the sender
    gets one from the receiver's address at the receiver's tracked next
    sequence number.  Each comes with the (egress port, next hop) to send it by;
    the Ethernet addresses are left zero.
    """
    if s.tcp is None:
        return []
    snd, rcv = s.tcp[direction], s.tcp[1 - direction]
    out: list[tuple[tuple[int, int], bytearray]] = []
    _p, nhk, src, dst, sport, dport, _ipd, _l4d = rw[direction]
    out.append((nhk, build_tcp(src, dst, sport, dport, seq, rcv.seqlo, TH_RST | TH_ACK)))
    _p, nhk, src, dst, sport, dport, _ipd, _l4d = rw[1 - direction]
    out.append((nhk, build_tcp(src, dst, sport, dport, rcv.seqlo, snd.seqlo, TH_RST | TH_ACK)))
    return out
