"""The forwarder's inspection hook with a fake engine: claim, drop after a pattern, reset, close."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Packet

from fgcp.forward import Forwarder
from fgcp.inspecthook import Inspector, Verdict
from fgcp.session import REPLY, SYNCED, Session
from fgcp.tcptrack import PS_ESTABLISHED, TcpPeer
from tests.unit.test_forward import (
    C1,
    CLI,
    OUT_IP,
    P1,
    P2,
    SRV,
    SV,
    assert_checksums_valid,
    from_client,
    from_server,
    make_fwd,
    one,
    send,
    tcp_handshake,
)


@dataclass
class FakeIPS:
    """Claims sessions to port 80 (and all UDP); ``verdict`` once ``pattern`` was seen."""

    pattern: bytes = b"EVIL"
    verdict: int = Verdict.DROP
    calls: list[tuple[int, int, int, bytes, int]] = field(default_factory=list)
    claimed: list[Session] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    seen: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def on_new(self, session: Session) -> bool:
        if session.proto == 17 or session.orig[3] == 80:
            self.claimed.append(session)
            return True
        return False

    def on_payload(self, session: Session, direction: int, seq: int, payload: bytes,
                   tcp_flags: int, now: float) -> int:
        self.calls.append((session.sid, direction, seq, payload, tcp_flags))
        k = (session.sid, direction)
        buf = self.seen.get(k, b"") + payload  # the pattern may span segments
        self.seen[k] = buf[-(len(self.pattern) - 1):]
        return self.verdict if self.pattern in buf else Verdict.PASS

    def on_close(self, session: Session) -> None:
        self.closed.append(session.sid)


def inspected_fwd(ips: FakeIPS) -> Forwarder:
    base = make_fwd()
    inspector: Inspector = ips  # the fake meets the Protocol
    fwd = Forwarder(base.cfg, list(base.ports.values()), inspector=inspector)
    for p, ip, m in ((P1, C1, CLI), (P2, SV, SRV)):
        fwd.arp.learn(p, int(IPv4Address(ip)), bytes.fromhex(m.replace(":", "")),
                      fwd.port_macs[p], 0.0)
    return fwd


def data(seq: int, payload: bytes, flags: str = "PA") -> Packet:
    return from_client(TCP(sport=40001, dport=80, seq=seq, ack=5001, flags=flags) / payload)


def test_inspected_session_drop_after_pattern_spanning_segments() -> None:
    ips = FakeIPS()
    fwd = inspected_fwd(ips)
    s, _ = tcp_handshake(fwd)
    assert s.inspect and ips.claimed == [s]
    assert ips.calls == []  # SYN, SYN/ACK, ACK carry no data
    one(send(fwd, P1, data(1001, b"GET / HTTP/1.1 EV")))
    assert send(fwd, P1, data(1018, b"IL\r\n")) == []  # 'EVIL' across two segments
    assert fwd.counters["inspect_drop"] == 1
    assert [(c[1], c[2], c[3]) for c in ips.calls] == [(0, 1001, b"GET / HTTP/1.1 EV"),
                                                      (0, 1018, b"IL\r\n")]
    assert s.state == PS_ESTABLISHED  # a drop keeps the session


def test_reset_verdict_sends_rst_both_ways_at_the_expected_sequence_numbers() -> None:
    ips = FakeIPS(verdict=Verdict.RESET)
    fwd = inspected_fwd(ips)
    s, nport = tcp_handshake(fwd)
    one(send(fwd, P1, data(1001, b"hello ")))
    frames = send(fwd, P1, data(1007, b"EVIL payload"))
    assert len(frames) == 2
    (p_srv, to_srv), (p_cli, to_cli) = frames
    assert p_srv == P2 and to_srv.dst == SRV
    assert (to_srv[IP].src, to_srv[IP].dst, to_srv[TCP].sport, to_srv[TCP].dport) == \
        (OUT_IP, SV, nport, 80)
    assert to_srv[TCP].flags == "RA" and to_srv[TCP].seq == 1007  # the refused segment's seq
    assert p_cli == P1 and to_cli.dst == CLI
    assert (to_cli[IP].src, to_cli[IP].dst, to_cli[TCP].sport, to_cli[TCP].dport) == \
        (SV, C1, 80, 40001)
    assert to_cli[TCP].flags == "RA" and to_cli[TCP].seq == 5001  # the server's next byte
    for f in (to_srv, to_cli):
        assert_checksums_valid(f)
    assert fwd.counters["inspect_reset"] == 1
    assert len(fwd.sessions) == 0 and ips.closed == [s.sid]  # the session is gone
    assert fwd.nat.in_use(int(IPv4Address(OUT_IP)), 6) == 0
    assert send(fwd, P1, data(1007, b"more")) == []  # a retransmission passes nothing more
    assert fwd.counters["no_session"] == 1


def test_unclaimed_sessions_never_reach_the_inspector() -> None:
    ips = FakeIPS()
    fwd = inspected_fwd(ips)
    one(send(fwd, P1, from_client(TCP(sport=40002, dport=443, seq=1, flags="S"))))
    s = next(iter(fwd.sessions))
    assert not s.inspect and ips.claimed == []
    one(send(fwd, P2, from_server(TCP(sport=443, dport=s.reply[3], seq=9, ack=2, flags="SA"))))
    one(send(fwd, P1, from_client(TCP(sport=40002, dport=443, seq=2, ack=10, flags="PA")
                                  / b"EVIL")))
    assert ips.calls == []
    fwd.expire(10_000.0)
    assert ips.closed == []


def test_udp_datagrams_inspected_both_directions_and_close_reported() -> None:
    ips = FakeIPS()
    fwd = inspected_fwd(ips)
    one(send(fwd, P1, from_client(UDP(sport=5353, dport=53) / b"query")))
    s = next(iter(fwd.sessions))
    one(send(fwd, P2, from_server(UDP(sport=53, dport=5353) / b"answer")))
    assert send(fwd, P2, from_server(UDP(sport=53, dport=5353) / b"EVIL")) == []
    assert [(c[1], c[2], c[3], c[4]) for c in ips.calls] == [
        (0, 0, b"query", 0), (REPLY, 0, b"answer", 0), (REPLY, 0, b"EVIL", 0)]
    assert fwd.counters["inspect_drop"] == 1
    assert fwd.expire(10_000.0) == 1 and ips.closed == [s.sid]


def test_fin_reaches_the_inspector_and_synced_sessions_are_offered() -> None:
    ips = FakeIPS()
    fwd = inspected_fwd(ips)
    _s, nport = tcp_handshake(fwd)
    one(send(fwd, P2, from_server(TCP(sport=80, dport=nport, seq=5001, ack=1001, flags="FA"))))
    assert ips.calls[-1][1:] == (REPLY, 5001, b"", 0x11)
    nat_ip = int(IPv4Address(OUT_IP))
    synced = Session(sid=77, proto=6, orig=(int(IPv4Address(C1)), 40009, int(IPv4Address(SV)), 80),
                     reply=(int(IPv4Address(SV)), 80, nat_ip, 40009), in_intf="port1",
                     out_intf="port2", policy_id=1, nat=True, nat_ip=nat_ip, nat_port=40009,
                     state=PS_ESTABLISHED, tcp=(TcpPeer(1, 9, 512, 0, 4), TcpPeer(1, 9, 512, 0, 4)))
    assert fwd.install_session(synced, 2.0)
    assert synced.inspect and ips.claimed[-1] is synced and synced.flags & SYNCED
