"""The lab's Mininet topology: clients, servers and FortiGate cluster members.

Pure description (no root needed): `FgcpTopo` plus the address plan that
`topologies.lab.LabNetwork` applies to the running network.

Layout (documented in docs and tested in tests/unit/test_topologies.py):

- inside segment: OpenFlow switch ``s1``; clients ``c1..cN`` at
  198.51.100.(10+i)/24, default route via 198.51.100.1; every member's
  ``port1``.
- outside segment: OpenFlow switch ``s2``; servers ``sv1..svN`` at
  203.0.113.(10+i)/24, default route via 203.0.113.1; every member's
  ``port2``.
- HA networks: ``port3`` and ``port4`` heartbeat, ``port5`` session sync.
  With exactly two members they are direct veth links (fgt1-portN <->
  fgt2-portN).  With one, three or four members a direct link cannot make a
  shared segment, so each HA network is one plain Linux bridge (``hb1``,
  ``hb2``, ``sync1``, class `HaBridge`): kernel forwarding, no OpenFlow, so
  heartbeats never depend on the fabric controller (as on real dedicated HA
  cabling).
- HA addresses of member i: 169.254.0.i/26 (port3), 169.254.0.(64+i)/26
  (port4), 169.254.0.(128+i)/26 (port5).

Members are added first so that member i is OpenFlow port i on s1 and s2.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from mininet.node import Controller, OVSSwitch, Switch
from mininet.topo import Topo

INSIDE_SWITCH = "s1"
OUTSIDE_SWITCH = "s2"
INSIDE_GATEWAY = IPv4Address("198.51.100.1")
OUTSIDE_GATEWAY = IPv4Address("203.0.113.1")
MAX_MEMBERS = 4
MAX_HOSTS = 40
HA_BRIDGES = {"port3": "hb1", "port4": "hb2", "port5": "sync1"}
_HA_OFFSETS = {"port3": 0, "port4": 64, "port5": 128}


class TopologyError(ValueError):
    """Invalid topology size or name."""


@dataclass(frozen=True)
class HostPlan:
    """A client or server host: one interface on one OpenFlow switch."""

    name: str
    switch: str
    address: IPv4Interface
    gateway: IPv4Address

    @property
    def intf(self) -> str:
        return f"{self.name}-eth0"


@dataclass(frozen=True)
class PortPlan:
    """One member port: FortiOS name, what it is cabled to, its kernel address.

    ``address`` is None for port1/port2: those addresses belong to the
    member's configuration (fgcpd owns the port; in kernel mode the lab
    assigns the gateway addresses to the active member only).
    """

    name: str
    peer: str  # switch or bridge name, or "fgtN" for a direct link
    address: IPv4Interface | None


@dataclass(frozen=True)
class MemberPlan:
    """A cluster member (emulated FortiGate) and its five ports."""

    name: str
    index: int
    serial: str
    ports: tuple[PortPlan, ...]

    def port(self, name: str) -> PortPlan:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(name)


def member_serial(index: int) -> str:
    """The lab serial number of member ``index`` (as in topologies/configs/fgtN.conf)."""
    return f"FGVM01TM{index:08d}"


def ha_address(port: str, index: int) -> IPv4Interface:
    """HA-link address of member ``index`` on ``port`` (port3, port4 or port5)."""
    return IPv4Interface(f"169.254.0.{_HA_OFFSETS[port] + index}/26")


def client_address(index: int) -> IPv4Interface:
    return IPv4Interface(f"198.51.100.{10 + index}/24")


def server_address(index: int) -> IPv4Interface:
    return IPv4Interface(f"203.0.113.{10 + index}/24")


class HaBridge(Switch):
    """A plain Linux bridge used as a shared HA segment (no OpenFlow)."""

    def __init__(self, name: str, **params: object) -> None:
        params.setdefault("dpid", "0")  # never an OpenFlow switch
        super().__init__(name, **params)

    def connected(self) -> bool:
        return True

    def start(self, controllers: list[Controller]) -> None:
        del controllers  # a plain bridge has no controller
        self.cmd(f"ip link del {self.name} 2>/dev/null")
        self.cmd(f"ip link add name {self.name} type bridge stp_state 0 forward_delay 0")
        # Heartbeats may use multicast destinations: flood them, no snooping.
        self.cmd(f"ip link set {self.name} type bridge mcast_snooping 0")
        for intf in self.intfList():
            if self.ports[intf] is not None and intf.name != "lo":
                self.cmd(f"ip link set {intf} master {self.name}")
                self.cmd(f"ip link set {intf} up")
        self.cmd(f"ip link set {self.name} up")

    def stop(self, deleteIntfs: bool = True) -> None:
        self.cmd(f"ip link del {self.name}")
        super().stop(deleteIntfs)


class FgcpTopo(Topo):
    """clients -- s1 -- members (fgt1..fgtM) -- s2 -- servers, plus HA links."""

    def build(self, clients: int = 1, servers: int = 1, members: int = 2) -> None:
        for what, count, lo, hi in (
            ("clients", clients, 1, MAX_HOSTS),
            ("servers", servers, 1, MAX_HOSTS),
            ("members", members, 1, MAX_MEMBERS),
        ):
            if not lo <= count <= hi:
                raise TopologyError(f"{what} must be {lo}..{hi}, got {count}")
        self.direct_ha = members == 2
        self.clients: list[HostPlan] = []
        self.servers: list[HostPlan] = []
        self.members: list[MemberPlan] = []
        sw = {
            "cls": OVSSwitch,
            "protocols": "OpenFlow13",
            "failMode": "secure",
            "datapath": "user",
        }
        self.addSwitch(INSIDE_SWITCH, dpid="1", **sw)
        self.addSwitch(OUTSIDE_SWITCH, dpid="2", **sw)
        if not self.direct_ha:
            for bridge in HA_BRIDGES.values():
                self.addSwitch(bridge, cls=HaBridge)

        for i in range(1, members + 1):
            name = f"fgt{i}"
            self.addHost(name, ip=None)
            ports = [
                PortPlan("port1", INSIDE_SWITCH, None),
                PortPlan("port2", OUTSIDE_SWITCH, None),
            ]
            for pname, bridge in HA_BRIDGES.items():
                peer = ("fgt2" if i == 1 else "fgt1") if self.direct_ha else bridge
                ports.append(PortPlan(pname, peer, ha_address(pname, i)))
            self.members.append(MemberPlan(name, i, member_serial(i), tuple(ports)))
            self.addLink(name, INSIDE_SWITCH, intfName1="port1")
            self.addLink(name, OUTSIDE_SWITCH, intfName1="port2")
            if not self.direct_ha:
                for pname, bridge in HA_BRIDGES.items():
                    self.addLink(name, bridge, intfName1=pname)
        if self.direct_ha:
            for pname in HA_BRIDGES:
                self.addLink("fgt1", "fgt2", intfName1=pname, intfName2=pname)

        for kind, count, switch, gateway, addr in (
            ("c", clients, INSIDE_SWITCH, INSIDE_GATEWAY, client_address),
            ("sv", servers, OUTSIDE_SWITCH, OUTSIDE_GATEWAY, server_address),
        ):
            for i in range(1, count + 1):
                plan = HostPlan(f"{kind}{i}", switch, addr(i), gateway)
                (self.clients if kind == "c" else self.servers).append(plan)
                self.addHost(
                    plan.name,
                    ip=str(plan.address),
                    defaultRoute=f"via {gateway}",
                )
                self.addLink(plan.name, switch)

    def member(self, name: str) -> MemberPlan:
        for plan in self.members:
            if plan.name == name:
                return plan
        raise KeyError(name)

    def host_plans(self) -> list[HostPlan]:
        return [*self.clients, *self.servers]
