"""Incremental session expiry (fgcp/expiry.py behind SessionTable.expire): bounded steps,
every expired session gone within the documented bound, refreshes and state changes."""

from __future__ import annotations

import math
import random

import pytest

from fgcp.expiry import TICKS_PER_SECOND, ExpiryQueue
from fgcp.session import Session, SessionTable
from fgcp.tcptrack import PS_ESTABLISHED, PS_SYN_SENT, PS_TIME_WAIT

C, S = 0xC633640A, 0xCB00710A
LATE = 1.0 / TICKS_PER_SECOND  # the documented lateness: one tick


def udp(table: SessionTable, i: int) -> Session:
    hi, lo = divmod(i, 60000)
    return Session(sid=table.next_sid(), proto=17, orig=(C + hi, 1024 + lo, S, 53),
                   reply=(S, 53, C + hi, 1024 + lo), in_intf="port1", out_intf="port2")


def fill(table: SessionTable, n: int, now: float) -> list[Session]:
    got = [udp(table, i) for i in range(n)]
    for s in got:
        assert table.add(s, now)
    return got


def test_mass_expiry_is_bounded_steps_and_every_session_goes() -> None:
    removed: list[Session] = []
    t = SessionTable(100_000, on_remove=removed.append, expiry_budget=500)
    sessions = fill(t, 10_000, 0.0)  # all expire at 180.0 (udp timeout), one bucket
    assert t.expiry_queued == 10_000
    assert t.expire(179.9) == 0 and not t.expiry_behind
    steps = 0
    while True:
        n = t.expire(180.0)
        steps += 1
        assert t.expiry_last_work <= 500  # no step touches more than its budget
        assert n <= 500
        if not t.expiry_behind:
            break
        assert steps < 100, "expiry does not progress"
    # the bound: ceil(D / budget) steps, D = 10,000 entries + 1 due bucket
    assert steps <= math.ceil((10_000 + 1) / 500)
    assert len(t) == 0 and not t.keys and len(removed) == 10_000
    assert {s.sid for s in removed} == {s.sid for s in sessions}
    assert t.counters["session_expired"] == 10_000


def test_never_early_at_most_one_tick_late_random() -> None:
    """A random mix of adds, refreshes, state changes and removals against a model."""
    rng = random.Random(12)
    removed: list[Session] = []
    t = SessionTable(10_000, on_remove=removed.append)
    live: dict[int, Session] = {}
    now = 0.0
    for i in range(3000):
        now += rng.random() * 0.05
        op = rng.random()
        if op < 0.4 or not live:
            s = udp(t, i)
            s.timeout = rng.choice((1, 2, 5, 30))
            assert t.add(s, now)
            live[s.sid] = s
        elif op < 0.7:  # a packet refreshes: expires moves later, directly (the fast path)
            s = rng.choice(list(live.values()))
            s.expires = now + s.timeout
        elif op < 0.8:  # a state change that shortens the timeout
            s = rng.choice(list(live.values()))
            s.timeout = 1
            t.set_expires(s, now + rng.random())
        elif op < 0.85:
            s = rng.choice(list(live.values()))
            assert t.remove(s)
            del live[s.sid]
            removed.pop()
        before = len(removed)
        t.expire(now, budget=100_000)
        for s in removed[before:]:
            assert s.expires <= now, "removed before its expiry"
            del live[s.sid]
        for s in live.values():
            assert s.expires > now - LATE - 1e-9, "left more than one tick past its expiry"
    assert len(t) == len(live)


def test_refreshed_session_is_refiled_not_removed() -> None:
    t = SessionTable(10)
    (s,) = fill(t, 1, 0.0)
    s.expires = 100.0 + s.timeout  # a packet at t=100
    assert t.expire(180.0) == 0 and t.get(s.sid) is s
    assert t.expire(279.9) == 0
    assert t.expire(280.0) == 1 and len(t) == 0


def test_state_change_to_shorter_timeout_expires_on_time() -> None:
    t = SessionTable(10)
    s = Session(sid=1, proto=6, orig=(C, 1, S, 80), reply=(S, 80, C, 1), in_intf="port1",
                out_intf="port2", state=PS_SYN_SENT)
    t.add(s, 0.0)
    t.set_state(s, PS_ESTABLISHED, 1.0)  # 3601
    t.set_state(s, PS_TIME_WAIT, 2.0)  # 1 s: 3.0, not 3601
    assert t.expire(2.9) == 0
    assert t.expire(3.0) == 1 and len(t) == 0


def test_removed_sessions_leave_the_queue() -> None:
    t = SessionTable(100)
    sessions = fill(t, 50, 0.0)
    for s in sessions[:30]:
        t.remove(s)
    assert t.expiry_queued == 20  # the queue holds live sessions only
    assert all(s.expiry_bucket is None for s in sessions[:30])
    assert t.expire(1000.0) == 20
    assert t.clear() == 0 and t.expiry_queued == 0


def test_clear_empties_the_queue() -> None:
    t = SessionTable(100)
    fill(t, 40, 0.0)
    assert t.clear() == 40
    assert t.expire(1000.0) == 0 and not t.expiry_behind


def test_empty_buckets_count_against_the_budget() -> None:
    t = SessionTable(100)
    for i in range(5):  # five buckets, emptied by removal
        s = udp(t, i)
        s.timeout = i + 1
        t.add(s, 0.0)
    for s in list(t):
        t.remove(s)
    assert t.expire(10.0, budget=2) == 0 and t.expiry_behind and t.expiry_last_work == 2
    assert t.expire(10.0, budget=10) == 0 and not t.expiry_behind
    assert t.expiry_last_work == 3


def test_bad_budget_and_ticks_refused() -> None:
    with pytest.raises(ValueError):
        SessionTable(10, expiry_budget=0)
    with pytest.raises(ValueError):
        ExpiryQueue(0)
