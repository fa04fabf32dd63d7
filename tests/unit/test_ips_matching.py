"""IPS matching: hyperscan patterns across every split point, modifiers, flow, ports, service."""

import pytest

from inspection.ips import IpsEngine, Rule, RuleSet, parse_signature
from tests.unit.ips_fakes import Tcp, engine, sig

ATTACK = b"GET /scripts/..%255c../winnt/system32/CMD.EXE?/c+dir HTTP/1.0\r\n\r\n"
BENIGN = b"GET /scripts/cmd.exe.html?q=dir HTTP/1.0\r\nX: /c\r\n\r\n"
TRAVERSAL = sig('--pattern "cmd.exe"; --no_case; --pattern "/c"; --distance 1; --within 4;',
                name="IIS_Traversal")


def blocked(verdicts) -> bool:
    return any(v.action == "block" for v in verdicts)


def test_whole_attack_blocked_and_logged():
    eng = engine(TRAVERSAL)
    v = Tcp(eng).send(ATTACK)
    assert v.action == "block"
    (ev,) = v.events
    assert (ev.kind, ev.name, ev.direction, ev.action, ev.entry_id) == (
        "signature", "IIS_Traversal", "client", "block", 1)
    assert eng.stats()["blocks"] == 1 and eng.stats()["detections"] == 1


def test_benign_request_passes():
    assert Tcp(engine(TRAVERSAL)).send(BENIGN).action == "pass"


def test_every_two_way_split_blocks_the_attack_on_the_packet_that_completes_it():
    eng = engine(TRAVERSAL)
    end = ATTACK.index(b"/c+") + 2  # the byte that completes the second pattern
    for i in range(1, len(ATTACK)):
        tcp = Tcp(eng)
        first, second = tcp.chunks([ATTACK[:i], ATTACK[i:]])
        assert first.action == ("block" if i >= end else "pass"), i
        assert second.action == "block", i
        assert tcp.st.blocked == "block"


def test_every_three_way_split_blocks_and_benign_never_does():
    eng = engine(TRAVERSAL)
    for data, want in ((ATTACK, True), (BENIGN, False)):
        for i in range(1, len(data) - 1):
            for j in range(i + 1, len(data)):
                verdicts = Tcp(eng).chunks([data[:i], data[i:j], data[j:]])
                assert blocked(verdicts) == want, (i, j)


def test_one_byte_segments():
    assert blocked(Tcp(engine(TRAVERSAL)).chunks([bytes([b]) for b in ATTACK]))


def test_every_later_packet_of_a_blocked_session_gets_the_verdict():
    eng = engine(TRAVERSAL, action="reset")
    tcp = Tcp(eng)
    assert tcp.send(ATTACK).action == "reset"
    assert tcp.send(b"anything").action == "reset"
    assert tcp.send(b"HTTP/1.0 200 OK\r\n", "server").action == "reset"
    assert eng.stats()["resets"] == 1 and eng.stats()["blocked_packets"] == 2


def test_no_case_only_where_asked():
    eng = engine(sig('--pattern "Secret";'), sig('--pattern "Token"; --no_case;', name="b"))
    assert Tcp(eng).send(b"GET /SECRET HTTP/1.0\r\n").action == "pass"
    v = Tcp(eng).send(b"GET /tOkEn HTTP/1.0\r\n")
    assert [e.name for e in v.events] == ["b"]


@pytest.mark.parametrize("payload, want", [
    (b"GET /AAxxBB HTTP/1.0", True),   # distance 2 exact
    (b"GET /AAxBB HTTP/1.0", False),   # too close
    (b"GET /AAxxxxBB HTTP/1.0", True),  # end at distance + within = 2 + 4
    (b"GET /AAxxxxxBB HTTP/1.0", False),  # past the window
    (b"GET /BB AAxxBB HTTP/1.0", True),  # B before A does not count, the later one does
    (b"GET /BBxxAA HTTP/1.0", False),
])
def test_distance_and_within(payload, want):
    eng = engine(sig('--pattern "AA"; --pattern "BB"; --distance 2; --within 4;'))
    for i in range(1, len(payload)):
        assert blocked(Tcp(eng).chunks([payload[:i], payload[i:]])) == want, i


def test_within_window_with_many_earlier_candidates():
    eng = engine(sig('--pattern "A"; --pattern "Z"; --within 3;'))
    data = b"GET /" + b"A" * 40 + b"Z HTTP/1.0"
    for i in range(1, len(data)):
        assert blocked(Tcp(eng).chunks([data[:i], data[i:]])), i


def test_independent_patterns_any_order():
    eng = engine(sig('--pattern "alpha"; --pattern "beta";'))
    assert Tcp(eng).send(b"GET /beta?alpha HTTP/1.0\r\n").action == "block"
    assert Tcp(eng).send(b"GET /beta HTTP/1.0\r\n").action == "pass"


def test_offset_and_depth():
    eng = engine(sig('--pattern "GET"; --depth 3; --pattern "/x"; --offset 4; --depth 3;'))
    assert Tcp(eng).send(b"GET /x HTTP/1.0\r\n").action == "block"
    assert Tcp(eng).send(b"GET /a/x HTTP/1.0\r\n").action == "pass"


def test_pcre_across_every_split_and_flags():
    eng = engine(sig('--pattern "passwd"; --pcre "/etc\\/pass(wd|word)/i";'))
    data = b"GET /../../ETC/passwd HTTP/1.0\r\n"
    for i in range(1, len(data)):
        assert blocked(Tcp(eng).chunks([data[:i], data[i:]])), i
    assert Tcp(eng).send(b"GET /etc/shadow?passwd HTTP/1.0\r\n").action == "pass"


def test_pcre_chained_with_distance():
    eng = engine(sig('--pattern "user="; --pcre "/[a-z]{8,}/"; --within 12;'))
    assert Tcp(eng).send(b"GET /?user=administrator HTTP/1.0").action == "block"
    assert Tcp(eng).send(b"GET /?user=bob&q=abcdefghijk HTTP/1.0").action == "pass"


def test_flow_direction():
    eng = engine(sig('--pattern "root:x:0"; ', flow="from_server", name="srv"),
                 sig('--pattern "DELETE"; ', flow="from_client", name="cli"),
                 sig('--pattern "BOTH"; ', flow="bi_direction", name="bi"), action="monitor")
    tcp = Tcp(eng)
    assert tcp.send(b"GET /root:x:0 HTTP/1.0\r\n").events == []
    v = tcp.send(b"HTTP/1.0 200 OK\r\n\r\nroot:x:0:0 DELETE", "server")
    assert v.action == "monitor" and [e.name for e in v.events] == ["srv"]
    assert v.events[0].direction == "server"
    assert [e.name for e in tcp.send(b"DELETE BOTH").events] == ["cli", "bi"]


def test_ports_are_packet_ports():
    eng = engine(sig('--dst_port 8080; --pattern "evil";', name="to8080"),
                 sig('--src_port 1:1023; --pattern "evil";', name="from_low", flow="bi_direction"))
    assert Tcp(eng, dport=80).send(b"GET /evil HTTP/1.0\r\n").events == []
    assert [e.name for e in Tcp(eng, dport=8080).send(b"GET /evil HTTP/1.0\r\n").events] == [
        "to8080"]
    tcp = Tcp(eng, dport=80)
    tcp.send(b"GET / HTTP/1.0\r\n")
    assert [e.name for e in tcp.send(b"evil", "server").events] == ["from_low"]


def test_service_by_decoder_not_port():
    eng = engine(sig('--pattern "evil";'))
    assert Tcp(eng, dport=80).send(b"\x16\x03\x01 evil not http").action == "pass"
    assert Tcp(eng, dport=5555).send(b"POST /evil HTTP/1.1\r\n").action == "block"


def test_match_before_the_service_is_decided_waits_for_it():
    eng = engine(sig('--pattern "evil"; ', flow="bi_direction"))
    tcp = Tcp(eng)
    assert tcp.send(b"evil banner", "server").action == "pass"
    assert tcp.send(b"GET / HTTP/1.0\r\n").action == "block"
    tcp = Tcp(eng)
    tcp.send(b"evil banner", "server")
    assert tcp.send(b"SSH-2.0-x" + b"." * 64).action == "pass"


def test_header_only_signature():
    eng = engine(sig("--dst_port 23;"), action="monitor")
    v = Tcp(eng, dport=23).send(b"GET / HTTP/1.0\r\n")
    assert v.action == "monitor" and v.events[0].name == "t"


def test_udp_datagrams_scanned_one_by_one():
    eng = engine(sig('--protocol udp; --pattern "GET /evil";'))
    st = eng.new_flow("udp", 5000, 80)
    assert eng.inspect(st, "client", 0, b"GET /ev", 0.0).action == "pass"
    assert eng.inspect(st, "client", 0, b"il", 0.0).action == "pass"
    assert eng.inspect(st, "client", 0, b"GET /evil x", 0.0).action == "block"
    tcp_st = eng.new_flow("tcp", 5000, 80)
    assert eng.inspect(tcp_st, "client", 1, b"GET /evil HTTP/1.0", 0.0).action == "pass"


def test_pass_and_log_disable():
    s = parse_signature(sig('--pattern "evil";'))
    eng = IpsEngine(RuleSet.compile([Rule(s, action="pass"), Rule(s, action="block", log=False,
                                                                   entry_id=9)]), iccp=None)
    v = Tcp(eng).send(b"GET /evil HTTP/1.0\r\n")
    assert v.action == "block" and [e.action for e in v.events] == ["pass"]
    assert eng.stats()["detections"] == 2


def test_disabled_rule_and_bad_action():
    from inspection.ips import RuleSetError
    s = parse_signature(sig('--pattern "evil";'))
    eng = IpsEngine(RuleSet.compile([Rule(s, status=False)]), iccp=None)
    assert Tcp(eng).send(b"GET /evil HTTP/1.0\r\n").action == "pass"
    with pytest.raises(RuleSetError, match="drop"):
        RuleSet.compile([Rule(s, action="drop")])


def test_many_signatures_one_database():
    texts = [sig(f'--pattern "attack{i:04d}";', name=f"s{i}") for i in range(1000)]
    eng = engine(*texts)
    assert eng.ruleset.db is not None and len(eng.ruleset.targets) == 1000
    v = Tcp(eng).send(b"GET /x?attack0777 HTTP/1.0\r\n")
    assert [e.name for e in v.events] == ["s777"]


def test_leading_caret_anchors_to_the_stream_start_not_the_segment():
    eng = engine(sig('--pcre "/^POST \\/admin/";'))
    data = b"POST /admin HTTP/1.0\r\n"
    for i in range(1, len(data)):
        assert blocked(Tcp(eng).chunks([data[:i], data[i:]])), i
    tcp = Tcp(eng)
    assert tcp.send(b"GET / HTTP/1.0\r\n\r\n").action == "pass"
    assert tcp.send(b"POST /admin HTTP/1.0\r\n").action == "pass"  # a segment start is not ^


def test_pcre_anchors_a_stream_cannot_honour_are_rejected():
    from inspection.ips import SignatureError
    for regex in ("/abc$/", "/a(^b)/", "/^a/m", "/\\Aab|c/", "/x\\Z/"):
        with pytest.raises(SignatureError, match="^--pcre: "):
            parse_signature(sig(f'--pcre "{regex}";'))


def test_long_pattern_at_the_very_start_of_the_stream_at_every_split():
    eng = engine(sig('--pattern "POST /cgi-bin/admin.cgi";'))
    data = b"POST /cgi-bin/admin.cgi HTTP/1.0\r\n"
    for i in range(1, len(data)):
        for j in range(i + 1, len(data)):
            assert blocked(Tcp(eng).chunks([data[:i], data[i:j], data[j:]])), (i, j)
