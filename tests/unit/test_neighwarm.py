"""fgcp.neighwarm: a secondary resolves the next hops of its synced sessions ahead of a
takeover (ARP probes from 0.0.0.0, replies learned as secondary, headers moved to the
virtual MAC at takeover)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from typing import Any

import pytest
from scapy.layers.l2 import ARP, Ether

from fgcp import diag, neighwarm
from fgcp.neighwarm import NeighWarm, next_hops
from fgcp.packet import BROADCAST_MAC, parse_arp
from fgcp.roles import Role
from fgcp.syncrecord import SessionRecord
from tests.unit.test_forward import (
    C1,
    CLI,
    FGT1,
    FGT2,
    OUT_IP,
    P1,
    P2,
    SRV,
    SV,
    VMAC,
    mac,
    make_fwd,
    send,
)

IP = lambda s: int(IPv4Address(s))
# c1:40000 -> sv:80 NATed to 203.0.113.1:5000 (reply: sv:80 -> 203.0.113.1:5000)
REC = SessionRecord(6, (IP(C1), 40000, IP(SV), 80), (IP(SV), 80, IP(OUT_IP), 5000))


class FakeSync:
    name = "sync"

    def __init__(self, records: list[SessionRecord]) -> None:
        self.records = records

    def table_records(self) -> dict[Any, SessionRecord]:
        return {r.key: r for r in self.records}


class FakeHost:
    def __init__(self, records: list[SessionRecord], role: Role = Role.SECONDARY) -> None:
        self.fwd = make_fwd(learn=False)
        self.fwd.set_active(role == Role.PRIMARY)
        self.role = role
        self.sync = FakeSync(records)
        self.table = diag.default_table()
        self.sent: list[tuple[int, bytes | bytearray]] = []
        from fgcp.model import HAConfig

        self.cfg = type("Cfg", (), {"ha": HAConfig(mode="a-p")})()

    def component(self, name: str) -> Any:
        return self.sync if name == "sync" else None

    def send_frames(self, frames: Sequence[tuple[int, bytes | bytearray]]) -> int:
        self.sent.extend(frames)
        return len(frames)


def warm(host: FakeHost, **kw: Any) -> NeighWarm:
    nw = NeighWarm(**kw)
    nw.open(host)  # type: ignore[arg-type]
    return nw


def test_next_hops_are_both_ends_of_each_session() -> None:
    fwd = make_fwd(learn=False)
    assert next_hops([REC], fwd.routes.lookup) == {(P1, IP(C1)), (P2, IP(SV))}


def test_secondary_probes_each_next_hop_from_0_0_0_0_with_its_own_mac() -> None:
    host = FakeHost([REC])
    nw = warm(host)
    nw.on_tick(100.0)
    probes = {(port, parse_arp(f).tpa): f for port, f in host.sent}
    assert set(probes) == {(P1, IP(C1)), (P2, IP(SV))}
    for port, frame in host.sent:
        a = parse_arp(frame)
        assert (a.oper, a.spa, bytes(frame[0:6])) == (1, 0, BROADCAST_MAC)  # no cache poisoned
        assert a.sha == mac(FGT1 if port == P1 else FGT2)  # the port's own MAC, not the virtual
    assert nw.next_deadline() == pytest.approx(100.0 + neighwarm.REFRESH)


def test_replies_learned_as_secondary_are_ready_with_the_virtual_mac_at_takeover() -> None:
    host = FakeHost([REC])
    nw = warm(host)
    nw.on_tick(100.0)
    fwd = host.fwd
    send(fwd, P1, Ether(src=CLI, dst=FGT1) / ARP(op=2, hwsrc=CLI, psrc=C1, hwdst=FGT1, pdst="0.0.0.0"))
    send(fwd, P2, Ether(src=SRV, dst=FGT2) / ARP(op=2, hwsrc=SRV, psrc=SV, hwdst=FGT2, pdst="0.0.0.0"))
    assert fwd.arp.known(P1, IP(C1)) and fwd.arp.known(P2, IP(SV))
    fwd.set_port_mac(P2, mac(VMAC))  # the takeover (fgcp.daemon.become_primary)
    assert fwd.arp.hdr[(P2, IP(SV))] == mac(SRV) + mac(VMAC)
    host.sent.clear()
    nw.on_tick(100.0 + neighwarm.REFRESH)
    assert len(host.sent) == 2  # known hops are refreshed every pass (a moved host)
    state = diag.DiagState(cfg=None, forwarder=None, now=0.0)  # type: ignore[arg-type]
    assert "hops_known=2" in host.table.run("diagnose lab neighwarm", state)


def test_primary_sends_no_probe_and_a_pass_waits_for_refresh() -> None:
    host = FakeHost([REC], role=Role.PRIMARY)
    nw = warm(host)
    assert nw.next_deadline() is None
    nw.on_tick(100.0)
    assert host.sent == []
    host.role = Role.SECONDARY
    nw.on_tick(100.0)
    n = len(host.sent)
    nw.on_tick(100.0 + neighwarm.REFRESH / 2)
    assert len(host.sent) == n == 2


def test_burst_bounds_the_probes_of_one_pass() -> None:
    recs = [SessionRecord(17, (IP(f"198.51.100.{i}"), 1000, IP(SV), 53),
                          (IP(SV), 53, IP(OUT_IP), 5000 + i)) for i in range(10, 40)]
    host = FakeHost(recs)
    nw = warm(host, burst=8)
    nw.on_tick(100.0)
    assert len(host.sent) == 8
    nw.on_tick(100.0 + neighwarm.REFRESH)
    assert len({parse_arp(f).tpa for _, f in host.sent}) == 16  # the next pass takes others


def test_environment_switch() -> None:
    assert neighwarm.enabled({}) and neighwarm.enabled({neighwarm.ENV: "on"})
    assert not neighwarm.enabled({neighwarm.ENV: "off"})
    with pytest.raises(ValueError, match="expected on or off"):
        neighwarm.enabled({neighwarm.ENV: "no"})
