"""IPS with the real ICCP decoder (inspection.iccp): built MMS frames and the golden capture."""

from pathlib import Path

from scapy.all import TCP, rdpcap

from inspection.iccp import frames
from inspection.ips import FlowState, IpsEngine, Rule, RuleSet, parse_signature
from tests.unit.ips_fakes import Tcp

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "iccp_session.pcap"
BREAKER = ('F-SBID( --name "Breaker_Oper_Write"; --service ICCP; --flow from_client; '
           '--iccp_service write; --iccp_item "XCBR1$CO$Pos$Oper"; )')
OT_SENSOR = (
    BREAKER,
    ('F-SBID( --name "MMS_Oversized"; --service ICCP; --flow bi_direction; '
     '--iccp_pdu_size >8000; )'),
    'F-SBID( --name "ICCP_Malformed"; --service ICCP; --flow bi_direction; --iccp_anomaly; )',
)


def real_engine(*texts: str, action: str = "block") -> IpsEngine:
    rules = [Rule(parse_signature(t), action=action, entry_id=i + 1) for i, t in enumerate(texts)]
    eng = IpsEngine(RuleSet.compile(rules))
    assert eng.iccp is not None and eng.iccp.__name__ == "inspection.iccp"
    return eng


def association() -> bytes:
    return frames.cotp_cr()


def attack_stream() -> bytes:
    write = frames.iccp_dt(frames.mms_write(7, "SUB1", "XCBR1$CO$Pos$Oper",
                                            frames.spc_oper(True)))
    return association() + write


def test_split_breaker_write_blocked_at_every_split_with_failover():
    data = attack_stream()
    old, new_primary = real_engine(*OT_SENSOR), real_engine(*OT_SENSOR)
    for i in range(1, len(data)):
        tcp = Tcp(old, dport=102)
        assert tcp.send(data[:i]).action == "pass", i
        new = Tcp(new_primary, st=FlowState.from_bytes(tcp.st.to_bytes()))
        new.seq = dict(tcp.seq)
        v = new.send(data[i:])
        assert v.action == "block" and v.events[-1].name == "Breaker_Oper_Write", i


def test_read_of_the_breaker_passes():
    data = association() + frames.iccp_dt(frames.mms_read(3, "SUB1", "XCBR1$ST$Pos$stVal"))
    assert Tcp(real_engine(*OT_SENSOR), dport=102).send(data).action == "pass"


def test_golden_benign_session_passes_and_is_decoded():
    eng = real_engine(*OT_SENSOR)
    packets = [p for p in rdpcap(str(GOLDEN)) if TCP in p]
    first = packets[0][TCP]
    client_port, server_port = first.sport, first.dport
    st = eng.new_flow("tcp", client_port, server_port)
    for p in packets:
        t = p[TCP]
        if {t.sport, t.dport} != {client_port, server_port}:
            continue
        direction = "client" if t.sport == client_port else "server"
        v = eng.inspect(st, direction, t.seq, bytes(t.payload), float(p.time), int(t.flags))
        assert v.action == "pass", v.events
    stats = eng.stats()
    assert st.service == "ICCP" and stats["iccp_events"] > 4 and stats["iccp_anomalies"] == 0
    assert stats["anomalies"] == 0 and stats["reassembly_drops"] == 0
