"""IPS flow state: to_bytes/from_bytes at every split point resumes the scan (failover)."""

import pytest

from inspection.ips import FlowState, StateError
from tests.unit.ips_fakes import Tcp, engine, sig

ATTACK = b"GET /scripts/..%255c../winnt/system32/CMD.EXE?/c+dir HTTP/1.0\r\n\r\n"
RULES = (sig('--pattern "cmd.exe"; --no_case; --pattern "/c"; --distance 1; --within 4;',
             name="IIS_Traversal"),
         sig('--pcre "/system\\d\\d/"; --pattern "winnt"; ', name="pcre_rule"),
         sig('--pattern "nothing-here";', name="other"))


NEW_PRIMARY = engine(*RULES)  # another engine, its own compiled rule set (same config)


def failover(tcp: Tcp) -> Tcp:
    """Serialize the session, restore it on the other engine (a new primary), continue."""
    blob = tcp.st.to_bytes()
    new = Tcp(NEW_PRIMARY, st=FlowState.from_bytes(blob))
    new.seq = dict(tcp.seq)
    return new


def test_round_trip_at_every_split_point_still_blocks():
    eng = engine(*RULES)
    sizes = []
    for i in range(1, len(ATTACK)):
        tcp = Tcp(eng)
        first = tcp.send(ATTACK[:i])
        if first.action == "block":
            assert FlowState.from_bytes(tcp.st.to_bytes()).blocked == "block"
            continue
        sizes.append(len(tcp.st.to_bytes()))
        v = failover(tcp).send(ATTACK[i:])
        assert v.action == "block", i
        assert "IIS_Traversal" in [e.name for e in v.events], i
    print(f"\nIPS flow state after a partial match: {min(sizes)}..{max(sizes)} bytes")
    assert max(sizes) < 200


def test_round_trip_at_every_three_way_split_with_two_failovers():
    old_primary = engine(*RULES)
    for i in range(1, len(ATTACK) - 1):
        for j in range(i + 1, len(ATTACK)):
            tcp = Tcp(old_primary)
            verdicts = [tcp.send(ATTACK[:i])]
            tcp = failover(tcp)
            verdicts.append(tcp.send(ATTACK[i:j]))
            tcp = failover(tcp)
            verdicts.append(tcp.send(ATTACK[j:]))
            assert any(v.action == "block" for v in verdicts), (i, j)


def test_held_out_of_order_segment_travels_in_the_state():
    tcp = Tcp(engine(*RULES))
    base = tcp.seq["client"]
    tcp.eng.inspect(tcp.st, "client", base + 30, ATTACK[30:], 0.0)
    new = failover(tcp)
    assert new.st.dirs[0].pending and new.send(ATTACK[:30]).action == "block"


def test_blocked_state_survives():
    tcp = Tcp(engine(*RULES))
    tcp.send(ATTACK)
    assert failover(tcp).send(b"x").action == "block"


def test_state_of_another_rule_set_drops_progress_but_keeps_the_stream():
    tcp = Tcp(engine(*RULES))
    assert tcp.send(ATTACK[:25]).action == "pass"
    other = engine(sig('--pattern "winnt";'))
    new = Tcp(other, st=FlowState.from_bytes(tcp.st.to_bytes()))
    new.seq = dict(tcp.seq)
    assert new.send(ATTACK[25:]).action == "block"  # "winnt" spans the split: tail kept
    assert other.stats()["state_mismatch"] == 1


def test_round_trip_is_exact():
    tcp = Tcp(engine(*RULES))
    tcp.send(ATTACK[:40])
    tcp.send(b"HTTP/1.0 100 Continue\r\n", "server")
    blob = tcp.st.to_bytes()
    assert FlowState.from_bytes(blob).to_bytes() == blob


@pytest.mark.parametrize("blob", [b"", b"\x02", b"\x01\x06", b"\x01\x06" + b"\x00" * 9,
                                  b"\x01\x06\x00\x01\x00\x02\x00\x00\x00\x00\x00\x00\x00\xff"])
def test_bad_blob_raises_state_error(blob):
    with pytest.raises(StateError):
        FlowState.from_bytes(blob)


def test_truncated_real_blob_raises_state_error():
    tcp = Tcp(engine(*RULES))
    tcp.send(ATTACK[:40])
    blob = tcp.st.to_bytes()
    for n in range(len(blob)):
        with pytest.raises(StateError):
            FlowState.from_bytes(blob[:n])


def _lagging(eng_rules, first: bytes, lost: bytes):
    """The old primary synced after ``first``, then forwarded ``lost`` (inspected there,
    acknowledged by the receiver, never synced): the new primary resumes the old state."""
    tcp = Tcp(engine(*eng_rules))
    tcp.send(first)
    blob = tcp.st.to_bytes()  # the last sync update that reached the new primary
    tcp.lost_verdict = tcp.send(lost)  # passes the old primary only (unless it blocks it)
    new_eng = engine(*eng_rules)
    new = Tcp(new_eng, st=new_eng.resume(blob))
    new.seq = dict(tcp.seq)
    return tcp, new


def test_lagging_state_never_passes_data_beyond_the_unsynced_bytes():
    """An attack split exactly where the old primary's last update ends: its middle passed
    the old primary after the update (the receiver holds it), the rest reaches the new
    primary.  At every split of that middle, the rest is withheld (verdict drop: nothing
    beyond the gap reaches the receiver) and, the gap never filling, the session is reset
    after gap_timeout with a logged event: the attack never completes at the receiver."""
    from inspection.ips import GAP_UNRECOVERABLE
    rules = (sig('--pattern "cmd.exe"; --no_case; --pattern "/c"; --distance 1; --within 4;',
                 name="IIS_Traversal"),)
    start = ATTACK.find(b"CMD")
    tested = 0
    for i in range(start, start + 12):
        for j in range(i + 1, start + 13):
            old, new = _lagging(rules, ATTACK[:i], ATTACK[i:j])
            if old.lost_verdict.action == "block":  # complete in the middle: never forwarded
                continue
            tested += 1
            rest = ATTACK[j:]
            verdicts = [new.eng.inspect(new.st, "client", new.seq["client"], rest, t)
                        for t in (0.0, 0.2, 0.6, 1.4, 3.0)]  # the sender's retransmissions
            assert [v.action for v in verdicts] == ["drop"] * 4 + ["reset"], (i, j)
            assert [(e.kind, e.name, e.action) for e in verdicts[-1].events] == [
                ("anomaly", GAP_UNRECOVERABLE, "reset")], (i, j)
            assert verdicts[-1].events[0].offset == i  # the first byte never seen here
            assert new.st.blocked == "reset"
            stats = new.eng.stats()
            assert (stats["withheld"], stats["gaps_unrecoverable"], stats["gaps_skipped"],
                    stats["resumed"]) == (5, 1, 0, 1)
            assert old.eng.stats()["detections"] == 0  # the old primary saw no attack either
    assert tested >= 40  # splits where the middle alone does not complete the attack


def test_lagging_state_gap_event_names_the_unseen_bytes():
    from inspection.ips import GAP_UNRECOVERABLE
    _old, new = _lagging(RULES, b"GET / HTTP/1.0\r\n", b"X-Lost: 1\r\n")
    new.eng.inspect(new.st, "client", new.seq["client"], b"X: 2\r\n", 1.0)
    v = new.eng.inspect(new.st, "client", new.seq["client"], b"X: 2\r\n", 3.0)
    ev = v.events[0]
    assert (ev.name, ev.offset, ev.direction, ev.severity) == (GAP_UNRECOVERABLE, 16, "client",
                                                               "high")


def test_lagging_state_retransmitted_middle_fills_the_gap_and_is_inspected():
    """The receiver never got the middle (lost in the outage): the sender retransmits it
    after the rest, which was withheld; the filler passes, the rest (retransmitted again)
    completes the attack on the new primary, which blocks it there."""
    rules = (sig('--pattern "cmd.exe"; --no_case; --pattern "/c"; --distance 1; --within 4;',
                 name="IIS_Traversal"),)
    i = ATTACK.find(b"CMD") + 2
    j = i + 5
    tcp = Tcp(engine(*rules))
    tcp.send(ATTACK[:i])
    blob = tcp.st.to_bytes()
    new_eng = engine(*rules)
    new = Tcp(new_eng, st=new_eng.resume(blob))
    new.seq = dict(tcp.seq)
    base = new.seq["client"]
    assert new_eng.inspect(new.st, "client", base + j - i, ATTACK[j:], 0.1).action == "drop"
    assert new_eng.inspect(new.st, "client", base, ATTACK[i:j], 0.3).action == "pass"
    v = new_eng.inspect(new.st, "client", base + j - i, ATTACK[j:], 0.5)
    assert v.action == "block" and [e.name for e in v.events] == ["IIS_Traversal"]


def test_lagging_state_does_not_stall_a_benign_session_that_catches_up():
    """Bytes lost in the outage, retransmitted: the benign session goes on, nothing reset."""
    eng = engine(*RULES)
    tcp = Tcp(eng)
    tcp.send(b"GET / HTTP/1.0\r\n")
    blob = tcp.st.to_bytes()
    new_eng = engine(*RULES)
    new = Tcp(new_eng, st=new_eng.resume(blob))
    new.seq = dict(tcp.seq)
    assert new_eng.inspect(new.st, "client", new.seq["client"] + 500, b"B" * 100,
                           0.1).action == "drop"
    assert new.send(b"A" * 500).action == "pass"  # the retransmitted filler
    assert [new.send(b"B" * 100).action for _ in range(100)] == ["pass"] * 100
    assert new.st.blocked is None and new.st.dirs[0].offset == 16 + 500 + 10000


def test_partial_tells_when_a_sync_update_matters():
    tcp = Tcp(engine(*RULES))
    assert not tcp.st.partial
    tcp.send(b"GET /index.html HTTP/1.0\r\n")
    assert not tcp.st.partial
    tcp.send(b"X: cmd.exe")
    assert tcp.st.partial
    assert FlowState.from_bytes(tcp.st.to_bytes()).partial
