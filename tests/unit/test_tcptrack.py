"""pf-style TCP window tracking and the FortiOS proto_state of a TCP session."""

from __future__ import annotations

from fgcp.tcptrack import (
    CLOSING,
    DROP,
    ESTABLISHED,
    FIN_WAIT_2,
    PASS,
    PASS_CHANGED,
    PS_CLOSE_WAIT,
    PS_ESTABLISHED,
    PS_FIN_WAIT,
    PS_SYN_RECV,
    PS_SYN_SENT,
    PS_TIME_WAIT,
    SYN_SENT,
    TIME_WAIT,
    TcpPeer,
    mark_pickup,
    new_peers,
    proto_state,
    track,
)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
CISN, SISN = 1000, 5000


def handshake(c_ws: int = 0x80 | 7, s_ws: int = 0x80 | 7,
              c_win: int = 512) -> tuple[TcpPeer, TcpPeer]:
    o, r = new_peers(SYN, CISN, 65535, 0, c_ws)
    assert proto_state(o, r) == PS_SYN_SENT
    assert track(r, o, SYN | ACK, SISN, CISN + 1, 65535, 0, s_ws) == PASS_CHANGED
    assert proto_state(o, r) == PS_SYN_RECV
    assert track(o, r, ACK, CISN + 1, SISN + 1, c_win, 0) == PASS_CHANGED
    assert proto_state(o, r) == PS_ESTABLISHED
    return o, r


def test_three_way_handshake_states() -> None:
    o, r = handshake()
    assert o.state == ESTABLISHED and r.state == ESTABLISHED
    assert o.wscale == 0x87 and r.wscale == 0x87


def test_data_in_window_passes_and_advances_seqlo() -> None:
    o, r = handshake()
    assert track(o, r, ACK | PSH, CISN + 1, SISN + 1, 512, 1000) == PASS
    assert o.seqlo == CISN + 1001
    assert track(r, o, ACK, SISN + 1, CISN + 1001, 512, 0) == PASS
    # retransmission of the same segment is still in window
    assert track(o, r, ACK | PSH, CISN + 1, SISN + 1, 512, 1000) == PASS


def test_segment_beyond_window_dropped() -> None:
    o, r = handshake()
    assert track(o, r, ACK, CISN + 1 + 10_000_000, SISN + 1, 512, 100) == DROP
    assert track(o, r, ACK, CISN + 1 - 10_000_000, SISN + 1, 512, 100) == DROP
    assert track(o, r, ACK, CISN + 1, SISN + 1, 512, 100) == PASS
    before = o.seqlo
    assert track(o, r, ACK, CISN + 1 + 10_000_000, SISN + 1, 512, 100) == DROP
    assert o.seqlo == before  # unchanged by dropped segments


def test_ack_of_unsent_data_dropped() -> None:
    o, r = handshake()
    assert track(o, r, ACK, CISN + 1, SISN + 1 + 5_000_000, 512, 10) == DROP


def test_sequence_wraparound() -> None:
    o, r = new_peers(SYN, 0xFFFFFF00, 65535, 0, 0)
    assert track(r, o, SYN | ACK, 7, 0xFFFFFF01, 65535, 0) == PASS_CHANGED
    assert track(o, r, ACK, 0xFFFFFF01, 8, 65535, 0) == PASS_CHANGED
    assert track(o, r, ACK, 0xFFFFFF01, 8, 65535, 1000) == PASS  # crosses 2**32
    assert o.seqlo == (0xFFFFFF01 + 1000) & 0xFFFFFFFF


def test_window_scaling_applies_to_later_segments() -> None:
    # the client's SYN offered 65535 bytes; its ACK offers 1024 << 7 = 131072
    o, r = handshake(c_win=1024)
    assert track(r, o, ACK, SISN + 1, CISN + 1, 512, 60_000) == PASS
    assert track(r, o, ACK, SISN + 60_001, CISN + 1, 512, 40_000) == PASS


def test_no_window_scaling_when_responder_omits_option() -> None:
    # without the option on the SYN|ACK, 1024 means 1024: the SYN's 65535 is the limit
    o, r = handshake(s_ws=0, c_win=1024)
    assert o.wscale == 0
    assert track(r, o, ACK, SISN + 1, CISN + 1, 512, 60_000) == PASS
    assert track(r, o, ACK, SISN + 60_001, CISN + 1, 512, 40_000) == DROP


def test_fin_close_sequence() -> None:
    o, r = handshake()
    assert track(o, r, FIN | ACK, CISN + 1, SISN + 1, 512, 0) == PASS_CHANGED
    assert o.state == CLOSING and proto_state(o, r) == PS_FIN_WAIT
    assert track(r, o, ACK, SISN + 1, CISN + 2, 512, 0) == PASS_CHANGED
    assert o.state == FIN_WAIT_2
    assert track(r, o, FIN | ACK, SISN + 1, CISN + 2, 512, 0) == PASS_CHANGED
    assert track(o, r, ACK, CISN + 2, SISN + 2, 512, 0) == PASS_CHANGED
    assert o.state == FIN_WAIT_2 and r.state == FIN_WAIT_2
    assert proto_state(o, r) == PS_TIME_WAIT


def test_server_closes_first_is_close_wait() -> None:
    o, r = handshake()
    assert track(r, o, FIN | ACK, SISN + 1, CISN + 1, 512, 0) == PASS_CHANGED
    assert proto_state(o, r) == PS_CLOSE_WAIT


def test_rst_in_window_closes() -> None:
    o, r = handshake()
    assert track(r, o, RST, SISN + 1, 0, 0, 0) == PASS_CHANGED
    assert o.state == TIME_WAIT and r.state == TIME_WAIT
    assert proto_state(o, r) == PS_TIME_WAIT


def test_rst_out_of_window_ignored() -> None:
    o, r = handshake()
    assert track(r, o, RST, SISN + 1 + 50_000_000, 0, 0, 0) == DROP
    assert o.state == ESTABLISHED and r.state == ESTABLISHED


def test_rst_answering_syn_closes() -> None:
    o, r = new_peers(SYN, CISN, 65535, 0, 0)
    assert track(r, o, RST | ACK, 0, CISN + 1, 0, 0) == PASS_CHANGED
    assert proto_state(o, r) == PS_TIME_WAIT


def test_pickup_adopts_windows_then_checks_strictly() -> None:
    # state synced long ago: sequence numbers moved on by 100 MB since
    o = TcpPeer(CISN, CISN + 65536, 512, 0x87, ESTABLISHED)
    r = TcpPeer(SISN, SISN + 65536, 512, 0x87, ESTABLISHED)
    base_c, base_s = CISN + 100_000_000, SISN + 200_000_000
    assert track(o, r, ACK, base_c, base_s, 512, 100) == DROP  # strict tracker refuses
    mark_pickup((o, r))
    assert track(o, r, ACK, base_c, base_s, 512, 100) == PASS_CHANGED  # adopted
    assert track(r, o, ACK, base_s, base_c + 100, 512, 0) == PASS_CHANGED
    assert not o.pickup and not r.pickup
    assert track(o, r, ACK, base_c + 100, base_s, 512, 100) == PASS
    assert track(o, r, ACK, base_c + 50_000_000, base_s, 512, 100) == DROP


def test_syn_sent_peer_state_after_syn() -> None:
    o, r = new_peers(SYN, CISN, 65535, 0, 0)
    assert o.state == SYN_SENT and r.state == 0
    # retransmitted SYN still passes
    assert track(o, r, SYN, CISN, 0, 65535, 0) == PASS
