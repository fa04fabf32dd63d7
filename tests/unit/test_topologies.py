"""Unit tests (no root) of the lab topology, the fabric controller's decision
core, the traffic-result parsers and the lab's argument checks."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
from os_ken.lib.packet import arp, ethernet, packet
from os_ken.ofproto import ether

from topologies.cli import build_parser
from topologies.controller import garp_address
from topologies.fabric import (
    FLOOD,
    FlowDelete,
    FlowMod,
    LearningFabric,
    PacketOut,
    TableMiss,
    is_virtual_mac,
)
from topologies.lab import LabError, LabNetwork, config_hostnames, free_tcp_port, wait_until
from topologies.launcher import parse_args as launcher_args
from topologies.topo import FgcpTopo, HaBridge, TopologyError, ha_address
from topologies.traffic import parse_iperf3, parse_ping


def links(topo: FgcpTopo) -> list[dict]:
    return [info for _, _, info in topo.links(withInfo=True)]


def link_between(topo: FgcpTopo, a: str, b: str, intf: str) -> dict:
    found = [
        i for i in links(topo)
        if {i["node1"], i["node2"]} == {a, b} and i.get("intfName1") == intf
    ]
    assert len(found) == 1, (a, b, intf, found)
    return found[0]


# -- topology ---------------------------------------------------------------
def test_default_topology_nodes_and_addresses() -> None:
    topo = FgcpTopo()
    assert topo.hosts() == ["c1", "fgt1", "fgt2", "sv1"]
    assert topo.switches() == ["s1", "s2"]
    c1, sv1 = topo.nodeInfo("c1"), topo.nodeInfo("sv1")
    assert c1["ip"] == "198.51.100.11/24"
    assert c1["defaultRoute"] == "via 198.51.100.1"
    assert sv1["ip"] == "203.0.113.11/24"
    assert sv1["defaultRoute"] == "via 203.0.113.1"
    # members get no Mininet default address (10.0.0.x must never appear)
    assert topo.nodeInfo("fgt1")["ip"] is None


def test_switches_are_userspace_secure_openflow13() -> None:
    topo = FgcpTopo()
    for name, dpid in (("s1", "1"), ("s2", "2")):
        info = topo.nodeInfo(name)
        assert info["datapath"] == "user"
        assert info["failMode"] == "secure"
        assert info["protocols"] == "OpenFlow13"
        assert info["dpid"] == dpid


def test_member_ports_are_cabled_by_fortios_name() -> None:
    topo = FgcpTopo(clients=2, servers=3)
    for i in (1, 2):
        inside = link_between(topo, f"fgt{i}", "s1", "port1")
        outside = link_between(topo, f"fgt{i}", "s2", "port2")
        # member i is OpenFlow port i on both switches; the member is node1
        assert inside["node1"] == f"fgt{i}" and inside["port2"] == i
        assert outside["node1"] == f"fgt{i}" and outside["port2"] == i
    clients = [i for i in links(topo) if i["node1"].startswith("c")]
    assert [(i["node1"], i["node2"]) for i in clients] == [("c1", "s1"), ("c2", "s1")]
    assert topo.nodeInfo("sv3")["ip"] == "203.0.113.13/24"


def test_two_members_have_direct_ha_links() -> None:
    topo = FgcpTopo(members=2)
    for port in ("port3", "port4", "port5"):
        link = link_between(topo, "fgt1", "fgt2", port)
        assert link["intfName2"] == port
    assert topo.member("fgt2").port("port3").peer == "fgt1"
    assert not any(topo.isSwitch(n) and n.startswith(("hb", "sync")) for n in topo.nodes())


@pytest.mark.parametrize("members", [1, 3, 4])
def test_other_sizes_share_ha_bridges(members: int) -> None:
    topo = FgcpTopo(members=members)
    assert sorted(topo.switches()) == ["hb1", "hb2", "s1", "s2", "sync1"]
    assert topo.nodeInfo("hb1")["cls"] is HaBridge
    for i in range(1, members + 1):
        for port, bridge in (("port3", "hb1"), ("port4", "hb2"), ("port5", "sync1")):
            link_between(topo, f"fgt{i}", bridge, port)
    assert not [i for i in links(topo) if {i["node1"], i["node2"]} <= {"fgt1", "fgt2"}]


def test_ha_address_plan() -> None:
    assert ha_address("port3", 1) == IPv4Interface("169.254.0.1/26")
    assert ha_address("port4", 2) == IPv4Interface("169.254.0.66/26")
    assert ha_address("port5", 4) == IPv4Interface("169.254.0.132/26")
    plan = FgcpTopo(members=3).member("fgt3")
    assert plan.serial == "FGVM01TM00000003"
    assert [str(p.address) for p in plan.ports] == [
        "None", "None", "169.254.0.3/26", "169.254.0.67/26", "169.254.0.131/26",
    ]
    assert FgcpTopo().servers[0].gateway == IPv4Address("203.0.113.1")


@pytest.mark.parametrize("kwargs", [{"members": 0}, {"members": 5}, {"clients": 0},
                                    {"servers": 41}])
def test_invalid_sizes_are_rejected(kwargs: dict) -> None:
    with pytest.raises(TopologyError):
        FgcpTopo(**kwargs)


# -- fabric decision core -----------------------------------------------------
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
VMAC = "00:09:0f:09:0a:01"
BCAST = "ff:ff:ff:ff:ff:ff"


def test_switch_up_installs_table_miss() -> None:
    fab = LearningFabric()
    assert fab.switch_up(1) == [TableMiss(1)]


def test_unknown_destination_floods_then_learned_one_gets_a_flow() -> None:
    fab = LearningFabric(idle_timeout=30)
    fab.switch_up(1)
    assert fab.packet_in(1, 3, A, B, now=0.0) == [PacketOut(1, 3, FLOOD)]
    acts = fab.packet_in(1, 1, B, A, now=0.1)
    assert acts == [FlowMod(1, A, 3, 10, 30, "learn"), PacketOut(1, 1, 3)]


def test_broadcast_is_flooded_and_multicast_source_not_learned() -> None:
    fab = LearningFabric()
    assert fab.packet_in(1, 2, A, BCAST, now=0.0) == [PacketOut(1, 2, FLOOD)]
    fab.packet_in(1, 4, "01:00:5e:00:00:01", BCAST, now=0.0)
    assert fab.lookup(1, "01:00:5e:00:00:01", now=0.0) is None


def test_mac_move_deletes_old_flows() -> None:
    fab = LearningFabric()
    fab.packet_in(1, 3, A, BCAST, now=0.0)
    acts = fab.packet_in(1, 5, A, BCAST, now=1.0)
    assert acts == [FlowDelete(1, A, "move"), PacketOut(1, 5, FLOOD)]
    assert fab.lookup(1, A, now=1.0) == 5


def test_learned_mac_ages_out() -> None:
    fab = LearningFabric(mac_ttl=10)
    fab.packet_in(1, 3, A, BCAST, now=0.0)
    assert fab.lookup(1, A, now=5.0) == 3
    assert fab.lookup(1, A, now=20.0) is None


def test_garp_from_virtual_mac_steers_it() -> None:
    fab = LearningFabric(idle_timeout=30)
    fab.packet_in(1, 1, VMAC, BCAST, now=0.0)  # learned normally on port 1
    acts = fab.packet_in(1, 2, VMAC, BCAST, now=1.0, garp_ip="198.51.100.1")
    assert acts == [
        FlowDelete(1, VMAC, "steer"),
        FlowMod(1, VMAC, 2, 20, 30, "steer"),
        PacketOut(1, 2, FLOOD),
    ]
    # the same announcement again changes nothing; stray frames don't move it
    assert fab.packet_in(1, 2, VMAC, BCAST, now=2.0, garp_ip="198.51.100.1") == [
        PacketOut(1, 2, FLOOD)
    ]
    fab.packet_in(1, 1, VMAC, BCAST, now=3.0)
    assert fab.lookup(1, VMAC, now=3.0) == 2
    # traffic to the steered MAC gets the steering priority
    assert fab.packet_in(1, 4, A, VMAC, now=4.0)[0] == FlowMod(1, VMAC, 2, 20, 30, "learn")


def test_garp_from_ordinary_mac_is_just_learned() -> None:
    fab = LearningFabric()
    acts = fab.packet_in(1, 2, A, BCAST, now=0.0, garp_ip="198.51.100.11")
    assert acts == [PacketOut(1, 2, FLOOD)]
    assert is_virtual_mac(VMAC.upper()) and not is_virtual_mac(A)


def test_explicit_steer_and_switch_reconnect() -> None:
    fab = LearningFabric()
    assert fab.steer(1, VMAC, 7, now=0.0)[1].out_port == 7
    fab.switch_up(1)  # reconnect forgets the table
    assert fab.lookup(1, VMAC, now=0.0) is None


def _arp_frame(src_ip: str, dst_ip: str, opcode: int = arp.ARP_REQUEST) -> packet.Packet:
    pkt = packet.Packet()
    pkt.add_protocol(ethernet.ethernet(BCAST, VMAC, ether.ETH_TYPE_ARP))
    pkt.add_protocol(arp.arp(opcode=opcode, src_mac=VMAC, src_ip=src_ip,
                             dst_mac="00:00:00:00:00:00", dst_ip=dst_ip))
    pkt.serialize()
    return packet.Packet(bytes(pkt.data))


def test_garp_detection_in_the_shim() -> None:
    assert garp_address(_arp_frame("198.51.100.1", "198.51.100.1")) == "198.51.100.1"
    assert garp_address(_arp_frame("198.51.100.1", "198.51.100.1", arp.ARP_REPLY)) == (
        "198.51.100.1"
    )
    assert garp_address(_arp_frame("198.51.100.11", "198.51.100.1")) is None


# -- traffic parsers ----------------------------------------------------------
PING_OK = """PING 203.0.113.11 (203.0.113.11) 56(84) bytes of data.
--- 203.0.113.11 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 403ms
rtt min/avg/max/mdev = 0.416/2.967/7.953/3.525 ms
"""
PING_LOSS = """--- 203.0.113.11 ping statistics ---
3 packets transmitted, 1 received, 66.6667% packet loss, time 2010ms
rtt min/avg/max/mdev = 0.5/0.5/0.5/0.0 ms
"""


def test_parse_ping() -> None:
    ok = parse_ping(PING_OK)
    assert (ok.sent, ok.received, ok.avg_ms, ok.ok) == (3, 3, 2.967, True)
    assert not parse_ping(PING_LOSS).ok
    assert not parse_ping("connect: Network is unreachable").ok


def test_parse_iperf3() -> None:
    tcp = parse_iperf3(
        '{"end": {"sum_sent": {"retransmits": 7}, '
        '"sum_received": {"bits_per_second": 5.4e8}}}', udp=False)
    assert tcp.ok and tcp.mbps == 540.0 and tcp.retransmits == 7
    udp = parse_iperf3('{"end": {"sum": {"bits_per_second": 1e7, "lost_percent": 0.5}}}',
                       udp=True)
    assert udp.ok and udp.lost_percent == 0.5
    err = parse_iperf3('{"error": "unable to connect to server"}', udp=False)
    assert not err.ok and "unable to connect" in err.error
    assert not parse_iperf3("", udp=True).ok


# -- lab arguments -------------------------------------------------------------
def test_lab_rejects_bad_arguments_before_touching_the_host() -> None:
    with pytest.raises(LabError, match="active_members"):
        LabNetwork(active_members=("fgt3",))
    with pytest.raises(LabError, match="member_mode"):
        LabNetwork(member_mode="vm")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="run directory"):
        _ = LabNetwork().rundir


def test_config_hostnames(tmp_path: Path) -> None:
    conf = tmp_path / "fgt1.conf"
    conf.write_text('config system global\n    set hostname "FGT1"\nend\n')
    assert config_hostnames(conf) == ["FGT1"]
    assert config_hostnames(tmp_path / "missing.conf") == []


def test_cli_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.clients, args.servers, args.members) == (1, 1, 2)
    # no --active: every member starts (tests/unit/test_labcmds.py checks the lab made)
    assert args.member_mode == "fgcpd" and args.active is None and not args.demo


def test_wait_until_names_what_timed_out() -> None:
    with pytest.raises(LabError, match="the impossible"):
        wait_until(lambda: False, timeout=0.05, what="the impossible", interval=0.01)
    wait_until(lambda: True, timeout=0.0, what="nothing")


def test_free_tcp_port_and_launcher_arguments() -> None:
    port = free_tcp_port()
    assert 1024 <= port <= 65535
    args = launcher_args(["--port", str(port)])
    assert (args.port, args.host, args.app) == (port, "127.0.0.1", None)
