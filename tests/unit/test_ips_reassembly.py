"""TCP reassembly under the IPS: out of order, retransmits, overlaps, wraparound, bounds."""

from inspection.ips import OVERLAP_CHANGED, REASSEMBLY_OVERFLOW
from inspection.ips.reassembly import seq_diff
from tests.unit.ips_fakes import Tcp, engine, sig

ATTACK = b"GET /?q=DROP TABLE users HTTP/1.0\r\n"
RULE = sig('--pattern "DROP TABLE";', name="sqli")


def feed(tcp, segments):
    """Send (relative offset, bytes) segments of the client stream in the given order."""
    base = tcp.seq["client"]
    return [tcp.eng.inspect(tcp.st, "client", (base + off) % 2**32, data, 0.0)
            for off, data in segments]


def test_seq_diff_wraps():
    assert seq_diff(5, 2**32 - 5) == 10 and seq_diff(2**32 - 5, 5) == -10


def test_out_of_order_held_then_inspected_in_order():
    eng = engine(RULE)
    for i in range(1, len(ATTACK)):
        tcp = Tcp(eng)
        later, first = feed(tcp, [(i, ATTACK[i:]), (0, ATTACK[:i])])
        assert later.action == "pass" and first.action == "block", i
    assert eng.stats()["out_of_order"] == len(ATTACK) - 1


def test_reverse_order_of_many_segments():
    eng = engine(RULE)
    segs = [(i, ATTACK[i:i + 3]) for i in range(0, len(ATTACK), 3)]
    verdicts = feed(Tcp(eng), list(reversed(segs)))
    assert [v.action for v in verdicts][-1] == "block"
    assert all(v.action == "pass" for v in verdicts[:-1])


def test_retransmit_same_data_is_not_an_anomaly():
    eng = engine(RULE)
    tcp = Tcp(eng)
    feed(tcp, [(0, b"GET /?q=DROP "), (0, b"GET /?q=DROP ")])
    v = feed(tcp, [(13, b"TABLE x")])[0]
    assert v.action == "block" and [e.kind for e in v.events] == ["signature"]
    assert eng.stats()["retransmits"] == 1 and eng.stats()["anomalies"] == 0


def test_partial_overlap_with_same_data_delivers_only_new_bytes():
    eng = engine(RULE)
    tcp = Tcp(eng)
    feed(tcp, [(0, b"GET /?q=DRO")])
    v = feed(tcp, [(5, b"?q=DROP TABLE")])[0]
    assert v.action == "block" and tcp.st.dirs[0].offset == 18
    assert eng.stats()["anomalies"] == 0


def test_overlap_changing_inspected_bytes_is_an_anomaly_the_sensor_blocks():
    eng = engine(RULE)
    tcp = Tcp(eng)
    feed(tcp, [(0, b"GET /?q=DROP XABLE")])
    v = feed(tcp, [(13, b"TABLE")])[0]  # rewrites already inspected bytes
    assert v.action == "block"
    assert [(e.kind, e.name) for e in v.events] == [("anomaly", OVERLAP_CHANGED)]
    assert eng.stats()["anomalies"] == 1


def test_overlap_anomaly_can_be_monitored_only():
    from inspection.ips import IpsEngine, Rule, RuleSet, parse_signature
    eng = IpsEngine(RuleSet.compile([Rule(parse_signature(RULE))], anomaly_action="monitor"),
                    iccp=None)
    tcp = Tcp(eng)
    feed(tcp, [(0, b"GET /abc")])
    assert feed(tcp, [(5, b"xyz")])[0].action == "monitor"
    assert not tcp.st.blocked


def test_held_segments_first_received_wins():
    eng = engine(RULE)
    tcp = Tcp(eng)
    feed(tcp, [(8, b"DROP TABLE")])  # held
    v1 = feed(tcp, [(8, b"DROP FABLE")])[0]  # conflicting copy of the held bytes
    assert [e.name for e in v1.events] == [OVERLAP_CHANGED]
    eng2 = engine(RULE)
    eng2.ruleset.anomaly_action = "pass"  # let the stream continue to show which copy won
    tcp = Tcp(eng2)
    feed(tcp, [(8, b"DROP TABLE")])
    feed(tcp, [(8, b"DROP FABLE")])
    assert feed(tcp, [(0, b"GET /?q=")])[0].action == "block"  # the first copy was inspected


def test_gap_filler_overlapping_held_data_keeps_held_bytes():
    eng = engine(RULE)
    eng.ruleset.anomaly_action = "pass"
    tcp = Tcp(eng)
    feed(tcp, [(13, b"TABLE")])
    v = feed(tcp, [(0, b"GET /?q=DROP XXXXX")])[0]  # the held TABLE is what is inspected
    assert v.action == "block" and [e.name for e in v.events] == [OVERLAP_CHANGED, "sqli"]
    assert tcp.st.dirs[0].tail.endswith(b"DROP TABLE")


def test_sequence_wraparound_at_every_split():
    eng = engine(RULE)
    for i in range(1, len(ATTACK)):
        isn = (2**32 - 1 - i) % 2**32  # the sequence space wraps at byte i
        tcp = Tcp(eng, isn=isn)
        assert tcp.chunks([ATTACK[:i], ATTACK[i:]])[1].action == "block", i
        tcp = Tcp(eng, isn=isn)
        assert feed(tcp, [(i, ATTACK[i:]), (0, ATTACK[:i])])[1].action == "block", i


def test_bounded_held_segments_count_and_drop():
    eng = engine(RULE, max_segments=4, max_pending_bytes=100)
    tcp = Tcp(eng)
    verdicts = feed(tcp, [(10 + 10 * k, b"x" * 5) for k in range(6)])
    assert [v.action for v in verdicts] == ["pass"] * 4 + ["drop"] * 2
    assert verdicts[4].events[0].name == REASSEMBLY_OVERFLOW
    assert eng.stats()["reassembly_drops"] == 2
    assert len(tcp.st.dirs[0].pending) == 4
    big = feed(Tcp(eng), [(10, b"y" * 101)])[0]
    assert big.action == "drop"
    assert not tcp.st.blocked  # dropped packets are retransmitted later, not a session block


def test_mid_stream_pickup_without_syn():
    eng = engine(RULE)
    st = eng.new_flow("tcp", 40000, 80)
    assert eng.inspect(st, "client", 555, b"GET /?q=DROP ", 0.0).action == "pass"
    assert eng.inspect(st, "client", 568, b"TABLE", 0.0).action == "block"


def test_far_future_segment_dropped():
    eng = engine(RULE)
    tcp = Tcp(eng)
    assert feed(tcp, [(1 << 21, b"x")])[0].action == "drop"


def test_random_segments_never_raise_and_stay_bounded():
    import random
    rng = random.Random(7)
    eng = engine(RULE, sig('--pcre "/a.{0,40}b/"; ', name="p"), max_segments=8,
                 max_pending_bytes=2000, action="monitor")
    eng.ruleset.anomaly_action = "monitor"  # keep inspecting: nothing blocks
    for _ in range(50):
        st = eng.new_flow("tcp", 1, 80)
        for _ in range(60):
            direction = rng.choice(["client", "server"])
            data = rng.randbytes(rng.randrange(0, 300))
            seq = rng.choice([rng.randrange(2**32), 1000 + rng.randrange(400)])
            v = eng.inspect(st, direction, seq, data, 0.0, rng.choice([0, 2, 0x10, 0x11]))
            assert v.action in ("pass", "monitor", "drop", "block", "reset")
            for d in st.dirs:
                assert len(d.pending) <= 8 and d.pending_bytes <= 2000
            assert len(st.to_bytes()) < 2000 + 1200
    stats = eng.stats()
    assert stats["packets"] == 50 * 60 and stats["blocked_packets"] == 0
    assert stats["anomalies"] and stats["reassembly_drops"] and stats["out_of_order"]


def test_gap_that_never_fills_is_skipped_after_the_timeout():
    eng = engine(RULE, gap_timeout=2.0)
    tcp = Tcp(eng)
    base = tcp.seq["client"]
    ins = tcp.eng.inspect
    assert ins(tcp.st, "client", base + 100, b"GET /?q=DROP TABLE", 10.0).action == "pass"
    assert ins(tcp.st, "client", base + 118, b" x", 11.0).action == "pass"  # still held
    v = ins(tcp.st, "client", base + 120, b" y", 12.0)
    assert v.action == "block" and eng.stats()["gaps_skipped"] == 1


def test_late_bytes_of_a_skipped_gap_are_scanned_on_their_own():
    eng = engine(RULE, gap_timeout=1.0)
    tcp = Tcp(eng)
    tcp.send(b"GET / HTTP/1.0\r\n")
    base = tcp.seq["client"]
    ins = tcp.eng.inspect
    ins(tcp.st, "client", base + 100, b"benign", 0.0)
    assert ins(tcp.st, "client", base + 106, b"later", 5.0).action == "pass"  # gap skipped
    v = ins(tcp.st, "client", base, b"X: /?q=DROP TABLE users!", 6.0)  # the late filler
    assert v.action == "block" and eng.stats()["orphan_bytes"] == 24


def test_payload_views_of_a_reused_buffer_are_copied():
    eng = engine(RULE)
    tcp = Tcp(eng)
    base = tcp.seq["client"]
    ring = bytearray(b"GET /?q=DROP TABLE users")
    held = memoryview(ring)[8:]
    assert eng.inspect(tcp.st, "client", base + 8, held, 0.0).action == "pass"  # held
    ring[8:] = b"x" * (len(ring) - 8)  # the receive buffer is reused
    assert eng.inspect(tcp.st, "client", base, bytearray(b"GET /?q="), 0.0).action == "block"
