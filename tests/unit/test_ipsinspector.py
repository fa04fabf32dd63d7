"""fgcp/ipsinspector.py + fgcp/ipsmember.py: the IPS behind the real Forwarder, in memory.

Two Forwarders stand for the two members: the primary inspects, its session record
(EXT_IPS included) goes through the sync record codec, the other member installs it and
resumes (or forwards uninspected) as docs/ips.md "HA" says.
"""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from scapy.layers.inet import TCP

from fgcp import diag
from fgcp.component import STATE_NOW
from fgcp.config import parse_config
from fgcp.forward import Forwarder
from fgcp.ipsinspector import IpsInspector, event_line
from fgcp.ipsmember import ips_log_path, ips_setup
from fgcp.model import HAConfig, MemberConfig, Policy
from fgcp.session import SYNCED, Session
from fgcp.syncrecord import (
    EXT_IPS,
    OP_ADD,
    apply_record,
    decode_records,
    encode_record,
    record_from_session,
)
from fgcp.tcptrack import TcpPeer
from inspection.iccp import frames
from inspection.ips import AttackEvent, FlowState
from tests.unit.test_forward import (
    C1,
    CLI,
    P1,
    P2,
    SRV,
    SV,
    from_client,
    from_server,
    make_fwd,
    one,
    send,
)

ITEM = "GGIO1$CO$SPCSO1$Oper"
IPS_TEXT = r'''
config ips custom
    edit "breaker"
        set signature "F-SBID( --name \"ICCP.Breaker\"; --attack_id 9001; --service ICCP; --flow from_client; --iccp_service write; --iccp_item \"$CO$SPCSO1$Oper\"; )"
        set action block
        set severity critical
    next
    edit "http-breaker"
        set signature "F-SBID( --name \"HTTP.Breaker\"; --attack_id 9005; --service HTTP; --flow from_client; --pattern \"GGIO1$CO$SPCSO1$Oper\"; )"
        set action block
    next
end
config ips sensor
    edit "ot"
        config entries
            edit 1
                set rule "breaker" "9005"
            next
        end
    next
end
'''
_IPS = parse_config(IPS_TEXT)


def ips_cfg(mode: str = "iccp", inspection: str = "flow") -> MemberConfig:
    pol = Policy(1, srcintf=("port1",), dstintf=("port2",), srcaddr=("all",),
                 dstaddr=("all",), service=("ALL",), action="accept", nat=True,
                 inspection_mode=inspection, ips_sensor="ot")
    base = make_fwd(learn=False).cfg
    return dataclasses.replace(base, policies=(pol,), ips_custom=_IPS.ips_custom,
                               ips_sensors=_IPS.ips_sensors,
                               ha=HAConfig(ips_session_sync=mode))


class Events:
    """Records what the sync component would be told (``on_session_event``)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes | None]] = []

    def __call__(self, kind: str, s: Session) -> None:
        self.seen.append((kind, s.ext.get(EXT_IPS)))


def member(cfg: MemberConfig, log: Path | None = None) -> tuple[Forwarder, IpsInspector, Events]:
    insp = IpsInspector(cfg, log)
    fwd = Forwarder(cfg, list(make_fwd(learn=False).ports.values()), inspector=insp)
    insp.attach(fwd)
    ev = Events()
    fwd.on_session_event = ev
    for p, ip, m in ((P1, C1, CLI), (P2, SV, SRV)):
        fwd.arp.learn(p, int(IPv4Address(ip)), bytes.fromhex(m.replace(":", "")),
                      fwd.port_macs[p], 0.0)
    return fwd, insp, ev


def handshake(fwd: Forwarder, dport: int) -> tuple[Session, int]:
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=dport, seq=1000, flags="S"))))
    s = next(iter(fwd.sessions))
    nport = s.reply[3]
    one(send(fwd, P2, from_server(TCP(sport=dport, dport=nport, seq=5000, ack=1001,
                                      flags="SA"))))
    one(send(fwd, P1, from_client(TCP(sport=40001, dport=dport, seq=1001, ack=5001,
                                      flags="A"))))
    return s, nport


def data(fwd: Forwarder, dport: int, seq: int, payload: bytes, now: float = 2.0) -> list[Any]:
    return send(fwd, P1, from_client(TCP(sport=40001, dport=dport, seq=seq, ack=5001,
                                         flags="PA") / payload), now)


def take_over(primary_session: Session, cfg: MemberConfig) -> tuple[Forwarder, IpsInspector,
                                                                     Session]:
    """The session's sync record through the wire codec, installed on another member."""
    wire = encode_record(OP_ADD, record_from_session(primary_session))
    (op,) = decode_records(wire, 0, len(wire), 1, 0, 0.0)
    assert op.record is not None
    fwd, insp, _ = member(cfg)
    s = apply_record(op.record, lambda **f: Session(sid=fwd.sessions.next_sid(), **f),
                     TcpPeer, synced_flag=SYNCED)
    assert fwd.install_session(s, 3.0)
    return fwd, insp, s


def iccp_attack() -> tuple[bytes, int]:
    """COTP CR + the breaker write, and the split point in the middle of the item name."""
    cr = frames.cotp_cr()
    write = frames.iccp_dt(frames.mms_write(1, "ICC1", ITEM, frames.spc_oper(True)))
    stream = cr + write
    return stream, stream.find(ITEM.encode()) + len(ITEM) // 2


HTTP = b"POST /w HTTP/1.1\r\nHost: sv\r\nContent-Length: 30\r\n\r\nop=" + ITEM.encode() + b"&v=1"


def test_split_http_attack_blocked_logged_and_every_later_segment_dropped(tmp_path: Path
                                                                          ) -> None:
    log = tmp_path / "fgt1.ips.log"
    fwd, insp, _ = member(ips_cfg(), log)
    s, _ = handshake(fwd, 8080)
    assert s.inspect and insp.session_note(s) == "ips=on"
    cut = HTTP.find(b"SPCSO1")
    one(data(fwd, 8080, 1001, HTTP[:cut]))
    assert data(fwd, 8080, 1001 + cut, HTTP[cut:], now=1234.5) == []
    assert data(fwd, 8080, 1001 + cut, HTTP[cut:]) == []  # the retransmission too
    assert fwd.counters["inspect_drop"] == 2
    line = ('t=1234.500 attack_id=9005 name="HTTP.Breaker" action=block proto=6 '
            f"{C1}:40001->{SV}:8080 dir=from_client service=http")
    assert insp.render_anomalies() == line + "\n"
    assert log.read_text() == line + "\n"
    st = insp.stats()
    assert (st["ips_sessions"], st["ips_events"], st["ips_blocked"]) == (1, 1, 1)
    assert st["ips_bytes"] == len(HTTP) * 2 - cut and st["ips.detections"] == 1


def test_iccp_state_rides_every_update_non_iccp_state_stops_riding() -> None:
    fwd, insp, ev = member(ips_cfg())
    stream, cut = iccp_attack()
    s, _ = handshake(fwd, 102)
    assert ev.seen[0][0] == "add" and ev.seen[0][1] is not None  # undecided: carried
    one(data(fwd, 102, 1001, stream[:cut]))
    assert ev.seen[-1][0] == STATE_NOW and ev.seen[-1][1] == s.ext[EXT_IPS]
    st = FlowState.from_bytes(s.ext[EXT_IPS])
    assert st.service == "ICCP" and st.dirs[0].offset == cut and st.dirs[0].next_seq == 1001 + cut
    fwd2, insp2, ev2 = member(ips_cfg())
    s2, _ = handshake(fwd2, 8080)
    one(data(fwd2, 8080, 1001, b"GET / HTTP/1.1\r\n"))
    assert EXT_IPS not in s2.ext and ev2.seen[-1] == ("state", None)
    n = len(ev2.seen)
    one(data(fwd2, 8080, 1017, b"Host: x\r\n"))
    assert len(ev2.seen) == n  # no more updates for this session
    assert insp.stats()["ips_state_syncs"] == 1 and insp2.stats()["ips_state_syncs"] == 1


def test_iccp_attack_split_at_every_byte_blocked_by_the_member_that_takes_over() -> None:
    stream, _ = iccp_attack()
    start = len(frames.cotp_cr())
    for cut in range(start + 1, len(stream)):
        fwd, _, _ = member(ips_cfg())
        s, _ = handshake(fwd, 102)
        one(data(fwd, 102, 1001, stream[:cut]))
        fwd2, insp2, s2 = take_over(s, ips_cfg())
        assert insp2.session_note(s2) == "ips=on"
        assert data(fwd2, 102, 1001 + cut, stream[cut:]) == [], cut
        assert insp2.stats()["ips_resumed"] == 1 and insp2.stats()["ips_blocked"] == 1
        assert 'name="ICCP.Breaker" action=block' in insp2.render_anomalies()


def test_non_iccp_flow_session_uninspected_after_takeover_unless_sync_all() -> None:
    cut = HTTP.find(b"SPCSO1")
    for mode, passes in (("iccp", True), ("all", False)):
        fwd, _, _ = member(ips_cfg(mode))
        s, _ = handshake(fwd, 8080)
        one(data(fwd, 8080, 1001, HTTP[:cut]))
        assert (EXT_IPS in s.ext) == (mode == "all")
        fwd2, insp2, s2 = take_over(s, ips_cfg(mode))
        out = data(fwd2, 8080, 1001 + cut, HTTP[cut:])
        assert (len(out) == 1) == passes, mode
        st = insp2.stats()
        if passes:
            assert insp2.session_note(s2) == "ips=uninspected"
            assert (st["ips_uninspected"], st["ips_resumed"], st["ips.packets"]) == (1, 0, 0)
        else:
            assert insp2.session_note(s2) == "ips=on" and st["ips_blocked"] == 1


def test_proxy_session_state_never_carried() -> None:
    fwd, _, ev = member(ips_cfg("all", inspection="proxy"))
    s, _ = handshake(fwd, 8080)
    one(data(fwd, 8080, 1001, b"GET / HTTP/1.1\r\n"))
    assert EXT_IPS not in s.ext and all(blob is None for _, blob in ev.seen)


def test_bad_state_blob_and_garbage_never_raise() -> None:
    fwd, _, _ = member(ips_cfg())
    s, _ = handshake(fwd, 102)
    s.ext[EXT_IPS] = b"\x01\x06garbage"
    _fwd2, insp2, s2 = take_over(s, ips_cfg())
    assert insp2.session_note(s2) == "ips=uninspected"
    assert insp2.stats()["ips_anomalies"] == 1
    rnd = random.Random(7)
    fwd3, insp3, _ = member(ips_cfg("all"))
    _s3, _ = handshake(fwd3, 102)
    seq = 1001
    for _ in range(200):
        blob = rnd.randbytes(rnd.randrange(1, 300))
        data(fwd3, 102, seq + rnd.randrange(-50, 50), blob)
        seq += len(blob)
    assert insp3.stats()["ips.packets"] > 0


def test_setup_and_diag_commands(tmp_path: Path) -> None:
    plain = make_fwd(learn=False).cfg
    factory, comp = ips_setup(plain, tmp_path / "x.ips.log")
    assert factory is Forwarder and comp is None and not (tmp_path / "x.ips.log").exists()
    assert ips_log_path("/run/lab/fgt1.log") == Path("/run/lab/fgt1.ips.log")
    cfg = ips_cfg()
    factory, comp = ips_setup(cfg, tmp_path / "fgt1.ips.log")
    assert comp is not None
    fwd = factory(cfg, list(make_fwd(learn=False).ports.values()))
    assert isinstance(fwd, Forwarder) and fwd.inspector is comp.inspector

    class Host:
        table = diag.default_table()

    host = Host()
    host.table.register("diagnose lab stats", lambda st, a: "loop_errors=0\n")
    comp.open(host)  # type: ignore[arg-type]
    state = diag.DiagState(cfg=cfg, forwarder=fwd, now=5.0)
    for p, ip, m in ((P1, C1, CLI), (P2, SV, SRV)):
        fwd.arp.learn(p, int(IPv4Address(ip)), bytes.fromhex(m.replace(":", "")),
                      fwd.port_macs[p], 0.0)
    handshake(fwd, 102)
    stats = host.table.run("diagnose lab stats", state)
    assert stats.startswith("loop_errors=0\n") and "\nips_sessions=1\n" in stats
    for name in ("ips_bytes", "ips_events", "ips_blocked", "ips_resets", "ips_resumed",
                 "ips_uninspected", "ips_state_syncs", "ips_anomalies"):
        assert f"\n{name}=" in stats
    listing = host.table.run("diagnose sys session list", state)
    assert "\nips=on\n" in listing
    assert host.table.run("diagnose ips anomaly list", state) == ""
    comp.close()


def test_event_line_of_an_anomaly_without_attack_id() -> None:
    s = Session(sid=1, proto=6, orig=(int(IPv4Address(C1)), 1, int(IPv4Address(SV)), 102),
                reply=(0, 0, 0, 0), in_intf="port1", out_intf="port2", policy_id=1)
    ev = AttackEvent("anomaly", "overlap with different data", None, "high", "server", 10,
                     "block", 0, 1.0)
    assert event_line(s, None, ev) == (
        f't=1.000 attack_id=0 name="overlap with different data" action=block proto=6 '
        f"{C1}:1->{SV}:102 dir=from_server service=other")



def test_after_takeover_segments_lost_in_the_outage_are_waited_for_not_skipped() -> None:
    """The middle of a split attack sent during the outage (lost), the rest reaches the new
    primary first: withheld (not forwarded: the receiver may hold bytes this member never
    saw), the retransmitted middle fills the gap and passes, the rest retransmitted again
    completes the attack on the new primary, which blocks it."""
    first, middle = HTTP.find(b"GGIO1") + 4, HTTP.find(b"$Oper")
    fwd, _, _ = member(ips_cfg("all"))
    s, _ = handshake(fwd, 8080)
    one(data(fwd, 8080, 1001, HTTP[:first]))
    fwd2, insp2, _ = take_over(s, ips_cfg("all"))
    assert data(fwd2, 8080, 1001 + middle, HTTP[middle:], now=3.0) == []  # withheld
    assert len(data(fwd2, 8080, 1001 + first, HTTP[first:middle], now=3.2)) == 1  # filler
    assert data(fwd2, 8080, 1001 + middle, HTTP[middle:], now=3.4) == []  # blocked
    st = insp2.stats()
    assert (st["ips_blocked"], st["ips.gaps_skipped"], st["ips.withheld"]) == (1, 0, 1)
    assert 'name="HTTP.Breaker" action=block' in insp2.render_anomalies()


def test_after_takeover_a_gap_nobody_fills_resets_the_session_both_ways() -> None:
    """Bytes the old primary forwarded after its last update (the receiver acknowledged
    them, the sender never resends them): what follows is withheld, never skipped; after
    gap_timeout (2 s) the session is reset both ways and the event logged."""
    fwd, _, _ = member(ips_cfg("all"))
    s, _ = handshake(fwd, 8080)
    one(data(fwd, 8080, 1001, b"GET / HTTP/1.1\r\n"))
    fwd2, insp2, _ = take_over(s, ips_cfg("all"))
    assert data(fwd2, 8080, 1001 + 16 + 10, b"Host: b\r\n", now=3.0) == []
    assert data(fwd2, 8080, 1001 + 16 + 10, b"Host: b\r\n", now=4.0) == []
    rst = data(fwd2, 8080, 1001 + 16 + 10, b"Host: b\r\n", now=5.5)
    # RST|ACK to the server (port2) and to the client (port1), the segment itself dropped
    assert sorted((p, str(f[TCP].flags)) for p, f in rst) == [(P1, "RA"), (P2, "RA")]
    st = insp2.stats()
    assert (st["ips_resets"], st["ips.gaps_unrecoverable"], st["ips.gaps_skipped"]) == (1, 1, 0)
    assert 'attack_id=0 name="stream gap unrecoverable" action=reset' in \
        insp2.render_anomalies()
    assert data(fwd2, 8080, 1001 + 16 + 10, b"Host: b\r\n", now=5.6) == []
