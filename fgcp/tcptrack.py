"""Stateful TCP tracking: pf-style sequence windows (van Rooij) and TCP states.

Per-packet, pure and allocation-free: ``track`` checks one segment against the
two peers' windows and advances their states; ``proto_state`` maps the peer
states to the FortiOS session proto_state code shown by the diag commands.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLOSED",
    "CLOSING",
    "DROP",
    "ESTABLISHED",
    "FIN_WAIT_2",
    "PASS",
    "PASS_CHANGED",
    "PROTO_STATE_NAMES",
    "SYN_SENT",
    "TIME_WAIT",
    "TcpPeer",
    "mark_pickup",
    "new_peers",
    "proto_state",
    "track",
]

# Peer states (BSD tcp_fsm.h numbering, the subset pf uses; order matters).
CLOSED = 0
SYN_SENT = 2
ESTABLISHED = 4
CLOSING = 7
FIN_WAIT_2 = 9
TIME_WAIT = 10
PEER_STATE_NAMES = {
    CLOSED: "CLOSED",
    SYN_SENT: "SYN_SENT",
    ESTABLISHED: "ESTABLISHED",
    CLOSING: "CLOSING",
    FIN_WAIT_2: "FIN_WAIT_2",
    TIME_WAIT: "TIME_WAIT",
}

# FortiOS session proto_state codes for TCP.
PS_ESTABLISHED = 1
PS_SYN_SENT = 2
PS_SYN_RECV = 3
PS_FIN_WAIT = 4
PS_TIME_WAIT = 5
PS_CLOSE = 6
PS_CLOSE_WAIT = 7
PS_LAST_ACK = 8
PS_LISTEN = 9
PS_CLOSING = 10
PROTO_STATE_NAMES = {
    0: "NONE",
    PS_ESTABLISHED: "ESTABLISHED",
    PS_SYN_SENT: "SYN_SENT",
    PS_SYN_RECV: "SYN_RECV",
    PS_FIN_WAIT: "FIN_WAIT",
    PS_TIME_WAIT: "TIME_WAIT",
    PS_CLOSE: "CLOSE",
    PS_CLOSE_WAIT: "CLOSE_WAIT",
    PS_LAST_ACK: "LAST_ACK",
    PS_LISTEN: "LISTEN",
    PS_CLOSING: "CLOSING",
}

# track() results
DROP = 0
PASS = 1
PASS_CHANGED = 2

WSCALE_FLAG = 0x80
WSCALE_MASK = 0x0F
MAXACKWINDOW = 0xFFFF + 1500
M32 = 0xFFFFFFFF
HALF = 0x80000000

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10


@dataclass(slots=True)
class TcpPeer:
    """One end of a TCP connection as seen by the firewall (pf ``pf_state_peer``).

    seqlo: highest sequence number sent + 1 (end of data seen);
    seqhi: highest sequence number the other end's window allows;
    max_win: largest window advertised (unscaled); wscale: 0x80 | shift when
    the option was sent, else 0; pickup: adopt the windows from the next
    segment instead of checking it (session pickup after failover).
    """

    seqlo: int = 0
    seqhi: int = 1
    max_win: int = 1
    wscale: int = 0
    state: int = CLOSED
    pickup: bool = False


def new_peers(flags: int, seq: int, win: int, plen: int, wscale: int) -> tuple[TcpPeer, TcpPeer]:
    """Peers for a session created by the segment (pf_create_state)."""
    seqhi = seq + plen + 1
    max_win = max(win, 1)
    ws = 0
    if flags & _SYN:
        seqhi += 1
        ws = wscale
        if ws & WSCALE_MASK:
            shift = ws & WSCALE_MASK
            max_win = (max_win + (1 << shift) - 1) >> shift
    if flags & _FIN:
        seqhi += 1
    src = TcpPeer(seq & M32, seqhi & M32, max_win, ws, SYN_SENT)
    dst = TcpPeer(0, 1, 1, 0, CLOSED)
    return src, dst


def mark_pickup(peers: tuple[TcpPeer, TcpPeer]) -> None:
    """Loose pickup: the next segment of each side adopts its window (failover)."""
    peers[0].pickup = True
    peers[1].pickup = True


def _pickup(src: TcpPeer, dst: TcpPeer, flags: int, seq: int, ack: int, win: int, plen: int) -> int:
    end = seq + plen
    if flags & _SYN:
        end += 1
    if flags & _FIN:
        end += 1
    end &= M32
    if src.wscale and dst.wscale and not flags & _SYN:
        sws = src.wscale & WSCALE_MASK
        dws = dst.wscale & WSCALE_MASK
    else:
        sws = dws = 0
    src.pickup = False
    src.seqlo = end
    src.max_win = max(src.max_win, win)
    hi = (end + max(dst.max_win << dws, 1)) & M32
    if ((hi - src.seqhi) & M32) < HALF:
        src.seqhi = hi
    if flags & _ACK:
        if dst.pickup:
            dst.seqlo = ack
        hi = (ack + max(win << sws, 1)) & M32
        if dst.pickup or ((hi - dst.seqhi) & M32) < HALF:
            dst.seqhi = hi
    if src.state < ESTABLISHED and not flags & _SYN:
        src.state = ESTABLISHED
    if flags & _FIN and src.state < CLOSING:
        src.state = CLOSING
    if flags & _RST:
        src.state = dst.state = TIME_WAIT
    return PASS_CHANGED  # windows adopted: the caller re-reads the session state


def track(src: TcpPeer, dst: TcpPeer, flags: int, seq: int, ack: int, win: int, plen: int,
          wscale: int = 0) -> int:
    """Check a segment sent by ``src`` to ``dst``; update both peers.

    ``win`` is the raw header window, ``plen`` the payload length, ``wscale``
    the segment's window scale option (see ``packet.tcp_wscale``; only read on
    SYNs).  Returns DROP, PASS or PASS_CHANGED (a peer state changed).
    """
    if src.pickup:
        return _pickup(src, dst, flags, seq, ack, win, plen)
    changed = PASS
    if src.wscale and dst.wscale and not flags & _SYN:
        sws = src.wscale & WSCALE_MASK
        dws = dst.wscale & WSCALE_MASK
    else:
        sws = dws = 0
    end = seq + plen
    if src.state == CLOSED:
        # First packet from this end (normally the SYN|ACK): set its state.
        if flags & _SYN:
            end += 1
            if dst.wscale & WSCALE_FLAG:
                src.wscale = wscale
                if wscale & WSCALE_FLAG:
                    sws = wscale & WSCALE_MASK
                    win = (win + (1 << sws) - 1) >> sws
                    dws = dst.wscale & WSCALE_MASK
                else:
                    dst.max_win <<= dst.wscale & WSCALE_MASK
                    dst.wscale = 0
        if flags & _FIN:
            end += 1
        end &= M32
        src.seqlo = seq
        src.state = SYN_SENT
        changed = PASS_CHANGED
        hi = (end + max(1, dst.max_win << dws)) & M32
        if src.seqhi == 1 or ((hi - src.seqhi) & M32) < HALF:
            src.seqhi = hi
        if win > src.max_win:  # noqa: PLR1730
            src.max_win = win
    else:
        if flags & _SYN:
            end += 1
        if flags & _FIN:
            end += 1
        end &= M32

    if not flags & _ACK or dst.state < SYN_SENT or (ack == 0 and flags & _RST):
        ack = dst.seqlo  # no (usable) ACK: let it pass the ack skew check

    rseq = seq  # a RST must carry a sequence number inside the window (checked below)
    if seq == end:
        # Ease sequencing restrictions on segments without data.
        seq = end = src.seqlo

    ackskew = ((dst.seqlo - ack + HALF) & M32) - HALF
    seqlo = src.seqlo
    if (((src.seqhi - end) & M32) < HALF
            and ((seq - seqlo + (dst.max_win << dws)) & M32) < HALF
            and -MAXACKWINDOW <= ackskew <= (MAXACKWINDOW << sws)
            and (not flags & _RST or (((src.seqhi - rseq) & M32) < HALF
                                      and ((rseq - seqlo + (dst.max_win << dws)) & M32) < HALF))):
        if src.max_win < win:  # noqa: PLR1730 (hot path: no call)
            src.max_win = win
        if ((seqlo - end) & M32) >= HALF:  # end > seqlo
            src.seqlo = end
        swin = win << sws
        if ((ack + swin - dst.seqhi) & M32) < HALF:
            dst.seqhi = (ack + (swin or 1)) & M32
        if (flags & (_SYN | _FIN | _RST | _ACK)) == _ACK and src.state == ESTABLISHED \
                and dst.state == ESTABLISHED:
            return changed  # the common data/ACK segment
        if flags & _SYN and src.state < SYN_SENT:
            src.state = SYN_SENT
            changed = PASS_CHANGED
        if flags & _FIN and src.state < CLOSING:
            src.state = CLOSING
            changed = PASS_CHANGED
        if flags & _ACK:
            if dst.state == SYN_SENT:
                dst.state = ESTABLISHED
                changed = PASS_CHANGED
            elif dst.state == CLOSING:
                dst.state = FIN_WAIT_2
                changed = PASS_CHANGED
        if flags & _RST:
            src.state = dst.state = TIME_WAIT
            changed = PASS_CHANGED
        return changed
    if ((dst.state < SYN_SENT or dst.state >= FIN_WAIT_2 or src.state >= FIN_WAIT_2)
            and ((src.seqhi + MAXACKWINDOW - end) & M32) < HALF
            and ((seq - seqlo + MAXACKWINDOW) & M32) < HALF
            and (not flags & _RST or (((src.seqhi + MAXACKWINDOW - rseq) & M32) < HALF
                                      and ((rseq - seqlo + MAXACKWINDOW) & M32) < HALF))):
        # Loose: a closing connection or a stack that lost its state (pf).
        if src.max_win < win:  # noqa: PLR1730 (hot path: no call)
            src.max_win = win
        if ((seqlo - end) & M32) >= HALF:
            src.seqlo = end
        swin = win << sws
        if ((ack + swin - dst.seqhi) & M32) < HALF:
            dst.seqhi = (ack + (swin or 1)) & M32
        if flags & _FIN and src.state < CLOSING:
            src.state = CLOSING
            changed = PASS_CHANGED
        if flags & _RST:
            src.state = dst.state = TIME_WAIT
            changed = PASS_CHANGED
        return changed
    return DROP


def proto_state(orig: TcpPeer, reply: TcpPeer) -> int:
    """FortiOS proto_state code of a TCP session from its two peers."""
    o = orig.state
    r = reply.state
    if o == TIME_WAIT or r == TIME_WAIT or (o >= FIN_WAIT_2 and r >= FIN_WAIT_2):
        return PS_TIME_WAIT
    if o >= CLOSING and r >= CLOSING:
        return PS_CLOSING if o == CLOSING and r == CLOSING else PS_LAST_ACK
    if o >= CLOSING:
        return PS_FIN_WAIT
    if r >= CLOSING:
        return PS_CLOSE_WAIT
    if o == ESTABLISHED and r == ESTABLISHED:
        return PS_ESTABLISHED
    if r == CLOSED:
        return PS_SYN_SENT
    return PS_SYN_RECV
