"""Session table: both directions keyed, limit, expiry per state, removal callback."""

from __future__ import annotations

import logging

import pytest
from scapy.layers.inet import UDP

from fgcp.config import parse_config
from fgcp.session import ORIG, REPLY, Session, SessionTable, Timeouts
from fgcp.tcptrack import PS_ESTABLISHED, PS_SYN_SENT, PS_TIME_WAIT
from tests.unit.test_forward import P1, from_client, make_fwd, send

C, S, N = 0xC633640A, 0xCB00710A, 0xCB007101


def udp_session(table: SessionTable, sport: int) -> Session:
    return Session(sid=table.next_sid(), proto=17, orig=(C, sport, S, 53),
                   reply=(S, 53, N, sport), in_intf="port1", out_intf="port2", nat=True,
                   nat_ip=N, nat_port=sport)


def test_lookup_both_directions() -> None:
    t = SessionTable(10)
    s = udp_session(t, 40000)
    assert t.add(s, 0.0)
    assert t.lookup((17, C, 40000, S, 53)) == (s, ORIG)
    assert t.lookup((17, S, 53, N, 40000)) == (s, REPLY)
    assert t.lookup((17, S, 53, C, 40000)) is None
    assert len(t) == 1 and list(t) == [s]


def test_limit_refuses_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    t = SessionTable(3)
    for i in range(3):
        assert t.add(udp_session(t, 1000 + i), 0.0)
    with caplog.at_level(logging.WARNING, logger="fgcp.session"):
        for i in range(5):
            assert not t.add(udp_session(t, 2000 + i), 1.0)
    assert t.counters["session_table_full"] == 5
    assert len(caplog.records) == 1  # rate-limited
    assert len(t) == 3


def test_duplicate_key_refused() -> None:
    t = SessionTable(10)
    assert t.add(udp_session(t, 1000), 0.0)
    assert not t.add(udp_session(t, 1000), 0.0)
    assert t.counters["session_clash"] == 1


def test_expiry_per_protocol_and_refresh() -> None:
    removed: list[Session] = []
    t = SessionTable(10, on_remove=removed.append)
    u = udp_session(t, 1000)
    t.add(u, 0.0)
    assert u.expires == 180.0
    tcp = Session(sid=t.next_sid(), proto=6, orig=(C, 1, S, 80), reply=(S, 80, C, 1),
                  in_intf="port1", out_intf="port2", state=PS_SYN_SENT)
    t.add(tcp, 0.0)
    assert tcp.expires == 10.0  # tcp-halfopen-timer
    assert t.expire(11.0) == 1 and removed == [tcp]
    assert t.lookup((6, C, 1, S, 80)) is None
    u.expires = 100.0 + u.timeout  # a packet at t=100 refreshes
    assert t.expire(181.0) == 0
    assert t.expire(280.0) == 1 and removed[-1] is u
    assert len(t) == 0 and not t.keys


def test_state_change_sets_timeout() -> None:
    t = SessionTable(10, timeouts=Timeouts(tcp_established=600))
    s = Session(sid=1, proto=6, orig=(C, 1, S, 80), reply=(S, 80, C, 1), in_intf="port1",
                out_intf="port2", state=PS_SYN_SENT)
    t.add(s, 0.0)
    t.set_state(s, PS_ESTABLISHED, 5.0)
    assert s.expires == 605.0 and s.state_name == "ESTABLISHED"
    t.set_state(s, PS_TIME_WAIT, 6.0)
    assert s.expires == 7.0


def test_remove_twice_is_harmless() -> None:
    t = SessionTable(10)
    s = udp_session(t, 1)
    t.add(s, 0.0)
    assert t.remove(s)
    assert not t.remove(s)
    assert t.clear() == 0


def test_full_table_drops_new_sessions_counted_and_keeps_forwarding() -> None:
    fwd = make_fwd(session_table_max=3)
    for sport in (1, 2, 3):
        assert len(send(fwd, P1, from_client(UDP(sport=sport, dport=9)), now=0.0)) == 1
    for sport in (4, 5):  # new sessions on a full table: dropped, counted
        assert send(fwd, P1, from_client(UDP(sport=sport, dport=9)), now=1.0) == []
    assert fwd.counters["session_table_full"] == 2
    assert fwd.sessions.counters["session_table_full"] == 2  # diag: memory_tension_drop
    assert len(fwd.sessions) == 3
    assert len(send(fwd, P1, from_client(UDP(sport=1, dport=9)), now=100.0)) == 1  # existing
    assert fwd.expire(181.0) == 2  # sports 2 and 3 (sport 1 refreshed at 100)
    assert len(send(fwd, P1, from_client(UDP(sport=4, dport=9)), now=181.0)) == 1  # room again
    assert fwd.counters["session_table_full"] == 2


def test_lab_session_max_one_million_sizes_the_forwarders_table() -> None:
    cfg = parse_config("config system global\n    set lab-session-max 1000000\nend\n", "t.conf")
    assert cfg.session_table_max == 1_000_000
    fwd = make_fwd(session_table_max=cfg.session_table_max)
    assert fwd.sessions.max_sessions == 1_000_000
