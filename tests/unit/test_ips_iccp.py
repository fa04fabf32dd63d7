"""ICCP emulator keywords: the engine feeds an ICCP decoder (fake of the contract here)."""

from inspection.ips import FlowState
from tests.unit.ips_fakes import Tcp, engine, sig, tpkt

WRITE_BRK = sig('--iccp_service write; --iccp_item "xcbr1$co$pos"; --no_case;',
                service="ICCP", name="Breaker_Write")
ASSOC = tpkt(b"initiate::")
READ = tpkt(b"read:VCC:Transfer_Set1")
WRITE = tpkt(b"write:SUB1:XCBR1$CO$Pos$Oper")
STREAM = ASSOC + READ + WRITE


def test_iccp_recognised_by_decoder_on_any_port():
    eng = engine(WRITE_BRK)
    tcp = Tcp(eng, dport=10102)
    assert tcp.send(STREAM).action == "block"
    assert tcp.st.service == "ICCP"
    assert eng.stats()["iccp_events"] == 3
    tcp = Tcp(eng, dport=102)
    assert tcp.send(b"GET /write:SUB1:XCBR1$CO$Pos$Oper HTTP/1.0\r\n").action == "pass"
    assert tcp.st.service == "HTTP"


def test_benign_iccp_passes():
    eng = engine(WRITE_BRK)
    assert Tcp(eng, dport=102).send(ASSOC + READ + tpkt(b"write:SUB1:GGIO1$SP")).action == "pass"


def test_every_split_point_of_the_pdu_stream():
    eng = engine(WRITE_BRK)
    for i in range(1, len(STREAM)):
        verdicts = Tcp(eng, dport=102).chunks([STREAM[:i], STREAM[i:]])
        assert [v.action for v in verdicts] == ["pass", "block"], i


def test_every_split_point_with_failover():
    for i in range(1, len(STREAM)):
        tcp = Tcp(engine(WRITE_BRK), dport=102)
        assert tcp.send(STREAM[:i]).action == "pass"
        new = Tcp(engine(WRITE_BRK), st=FlowState.from_bytes(tcp.st.to_bytes()))
        new.seq = dict(tcp.seq)
        assert new.send(STREAM[i:]).action == "block", i


def test_iccp_keyword_and_pattern_together():
    eng = engine(sig('--iccp_service write; --iccp_domain "SUB1"; --pattern "Oper";',
                     service="ICCP"))
    assert Tcp(eng, dport=102).send(STREAM).action == "block"
    assert Tcp(eng, dport=102).send(ASSOC + tpkt(b"write:SUB2:Oper")).action == "pass"
    assert Tcp(eng, dport=102).send(ASSOC + tpkt(b"write:SUB1:X")).action == "pass"


def test_iccp_anomaly_and_pdu_size():
    eng = engine(sig("--iccp_anomaly;", service="ICCP", name="bad"),
                 sig("--iccp_pdu_size >100;", service="ICCP", name="big"), action="monitor")
    v = Tcp(eng, dport=102).send(ASSOC + b"\x03\x00\x00\x02junk")
    assert [e.name for e in v.events] == ["bad"] and eng.stats()["iccp_anomalies"] == 1
    v = Tcp(eng, dport=102).send(ASSOC + tpkt(b"read:D:" + b"x" * 100))
    assert [e.name for e in v.events] == ["big"]


def test_server_direction_events():
    eng = engine(sig('--iccp_service informationReport;', service="ICCP", flow="from_server"))
    tcp = Tcp(eng, dport=102)
    assert tcp.send(ASSOC).action == "pass"
    assert tcp.send(tpkt(b"informationReport:VCC:Transfer_Set1"), "server").action == "block"


def test_iccp_signature_ignores_other_services_and_missing_decoder():
    eng = engine(WRITE_BRK, iccp=None)
    tcp = Tcp(eng, dport=102)
    assert tcp.send(STREAM).action == "pass" and tcp.st.service == "other"


def test_the_iccp_rule_index_finds_exactly_the_rules_a_full_scan_finds():
    """Candidates by service and item substring (engine._iccp_candidates) vs checking
    every ICCP rule with iccp_matches: the same rules match, on random rules and events."""
    import random
    from types import SimpleNamespace

    from inspection.ips.matcher import iccp_matches

    rng = random.Random(7)
    words = ["XCBR1", "xcbr1", "$CO$", "Pos", "GGIO1", "Oper", "$ST$", "Transfer_Set"]
    rules = []
    for i in range(120):
        kw = []
        if rng.random() < 0.7:
            kw.append(f"--iccp_service {rng.choice(['write', 'read', 'informationReport'])};")
        if rng.random() < 0.8:
            kw.append(f'--iccp_item "{"".join(rng.sample(words, rng.randint(1, 2)))}";')
            if rng.random() < 0.4:
                kw.append("--no_case;")
        if not kw or rng.random() < 0.1:
            kw.append("--iccp_anomaly;")
        rules.append(sig(" ".join(kw), service="ICCP", name=f"r{i}"))
    eng = engine(*rules)
    rs = eng.ruleset
    matched = 0
    for _ in range(400):
        ev = SimpleNamespace(
            kind=rng.choice(["pdu", "pdu", "anomaly"]),
            service=rng.choice(["write", "read", "informationReport", None]),
            domain=None, start=0, end=10,
            items=tuple("".join(rng.choices(words, k=rng.randint(1, 4)))
                        for _ in range(rng.randint(0, 3))))
        want = [ri for ri in rs.iccp_rules
                if iccp_matches(rs.rules[ri].signature.iccp, ev)]  # type: ignore[arg-type]
        got = [ri for ri in eng._iccp_candidates(ev.kind == "anomaly", ev.service, ev.items)
               if iccp_matches(rs.rules[ri].signature.iccp, ev)]  # type: ignore[arg-type]
        assert got == want, ev
        matched += bool(want)
    assert matched > 50  # the comparison is not vacuous
