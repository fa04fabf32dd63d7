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
