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


def test_lagging_state_skips_the_gap_and_keeps_inspecting():
    """The old primary forwarded bytes after its last sync: the new one never sees them."""
    from inspection.ips.reassembly import GAP_SKIPPED
    eng = engine(sig('--pattern "START"; --pattern "EVIL"; --distance 10; --within 40;'))
    tcp = Tcp(eng)
    assert tcp.send(b"GET /START HTTP/1.0\r\n").action == "pass"
    blob = tcp.st.to_bytes()  # last sync
    tcp.send(b"X-Lost: 123456\r\n")  # passes the old primary only
    new = Tcp(engine(sig('--pattern "START"; --pattern "EVIL"; --distance 10; --within 40;')),
              st=FlowState.from_bytes(blob))
    new.seq = dict(tcp.seq)
    v = new.send(b"X: EVIL\r\n")
    assert [(e.kind, e.name) for e in v.events] == [("anomaly", GAP_SKIPPED), ("signature", "t")]
    assert v.action == "block"  # the chain kept its offsets across the 16 skipped bytes
    assert new.eng.stats()["gaps_skipped"] == 1


def test_lagging_state_does_not_stall_a_benign_session():
    eng = engine(*RULES)
    tcp = Tcp(eng)
    tcp.send(b"GET / HTTP/1.0\r\n")
    blob = tcp.st.to_bytes()
    tcp.send(b"A" * 500)
    new = Tcp(engine(*RULES), st=FlowState.from_bytes(blob))
    new.seq = dict(tcp.seq)
    assert [new.send(b"B" * 100).action for _ in range(100)] == ["pass"] * 100
    assert new.st.dirs[0].pending == [] and new.st.dirs[0].offset == 16 + 500 + 10000


def test_partial_tells_when_a_sync_update_matters():
    tcp = Tcp(engine(*RULES))
    assert not tcp.st.partial
    tcp.send(b"GET /index.html HTTP/1.0\r\n")
    assert not tcp.st.partial
    tcp.send(b"X: cmd.exe")
    assert tcp.st.partial
    assert FlowState.from_bytes(tcp.st.to_bytes()).partial
