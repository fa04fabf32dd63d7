"""Pure decision core of the OpenFlow fabric controller (no os-ken, no I/O).

`LearningFabric` takes packet-in facts and ``now`` and returns the actions to
send (flow installs, flow deletes, packet-outs); `topologies.controller` is
the os-ken shim that turns them into OpenFlow 1.3 messages (faucet style).

Behaviour: an L2 learning switch per datapath.  Flows match ``eth_dst`` only
and expire after ``idle_timeout``.  A MAC seen on a new port deletes the flows
towards its old port.  FortiGate virtual MACs (00:09:0f:09:xx:yy) are
*steered*: a gratuitous ARP from a virtual MAC pins it to the port it came in
on (higher-priority flow, old flows deleted): that is how traffic follows a new
primary, which announces itself with gratuitous ARPs (`LearningFabric.on_garp` / `steer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLOOD = -1  # PacketOut.out_port: flood to all ports but the input port
VIRTUAL_MAC_PREFIX = "00:09:0f:09:"


def is_multicast(mac: str) -> bool:
    """Group (broadcast/multicast) MAC: low bit of the first octet set."""
    return bool(int(mac[:2], 16) & 1)


def is_virtual_mac(mac: str) -> bool:
    """A FortiGate HA virtual MAC (00:09:0f:09:<group-id>:<vcluster/idx>)."""
    return mac.lower().startswith(VIRTUAL_MAC_PREFIX)


@dataclass(frozen=True)
class TableMiss:
    """Install the table-miss entry (priority 0, send to controller)."""

    dpid: int


@dataclass(frozen=True)
class FlowMod:
    """Install (or replace) ``eth_dst == mac -> output out_port``."""

    dpid: int
    eth_dst: str
    out_port: int
    priority: int
    idle_timeout: int
    reason: str


@dataclass(frozen=True)
class FlowDelete:
    """Delete every flow matching ``eth_dst == mac`` (any priority)."""

    dpid: int
    eth_dst: str
    reason: str


@dataclass(frozen=True)
class PacketOut:
    """Send the packet-in's frame out of ``out_port`` (or FLOOD)."""

    dpid: int
    in_port: int
    out_port: int


Action = TableMiss | FlowMod | FlowDelete | PacketOut


@dataclass(frozen=True)
class Reroute:
    """A virtual MAC moved by ``steer`` (``old_port`` None: it was unknown)."""

    dpid: int
    mac: str
    old_port: int | None
    new_port: int
    now: float


@dataclass
class MacEntry:
    port: int
    last_seen: float
    steered: bool = False


@dataclass
class LearningFabric:
    """MAC tables of all datapaths and the learning / steering decisions."""

    idle_timeout: int = 60  # seconds, on installed flows
    mac_ttl: float = 300.0  # seconds a learned (not steered) MAC is trusted
    learn_priority: int = 10
    steer_priority: int = 20
    tables: dict[int, dict[str, MacEntry]] = field(default_factory=dict)
    reroutes: list[Reroute] = field(default_factory=list)  # drained by the shim (log)

    def switch_up(self, dpid: int) -> list[Action]:
        """A datapath connected: forget what we knew, install the table miss."""
        self.tables[dpid] = {}
        return [TableMiss(dpid)]

    def switch_down(self, dpid: int) -> None:
        self.tables.pop(dpid, None)

    def lookup(self, dpid: int, mac: str, now: float) -> int | None:
        """Port of ``mac`` on ``dpid`` or None (unknown or aged out)."""
        entry = self.tables.get(dpid, {}).get(mac.lower())
        if entry is None:
            return None
        if not entry.steered and now - entry.last_seen > self.mac_ttl:
            del self.tables[dpid][mac.lower()]
            return None
        return entry.port

    def packet_in(
        self,
        dpid: int,
        in_port: int,
        eth_src: str,
        eth_dst: str,
        now: float,
        garp_ip: str | None = None,
    ) -> list[Action]:
        """Decide what to do with a table-miss packet.

        ``garp_ip`` is the announced address when the shim recognised the
        frame as a gratuitous ARP (sender IP == target IP), else None.
        """
        src, dst = eth_src.lower(), eth_dst.lower()
        actions: list[Action] = []
        if garp_ip is not None:
            actions += self.on_garp(dpid, in_port, src, garp_ip, now)
        if not is_multicast(src):
            actions += self._learn(dpid, in_port, src, now)
        out = None if is_multicast(dst) else self.lookup(dpid, dst, now)
        if out is None:
            actions.append(PacketOut(dpid, in_port, FLOOD))
        elif out != in_port:
            entry = self.tables[dpid][dst]
            prio = self.steer_priority if entry.steered else self.learn_priority
            actions.append(FlowMod(dpid, dst, out, prio, self.idle_timeout, "learn"))
            actions.append(PacketOut(dpid, in_port, out))
        return actions

    def on_garp(
        self, dpid: int, in_port: int, mac: str, ip: str, now: float
    ) -> list[Action]:
        """Gratuitous-ARP hook: steer FortiGate virtual MACs to their new port."""
        del ip  # the decision needs only the MAC (the os-ken shim logs the IP)
        if not is_virtual_mac(mac):
            return []
        return self.steer(dpid, mac, in_port, now)

    def steer(self, dpid: int, mac: str, port: int, now: float) -> list[Action]:
        """Pin ``mac`` to ``port``: delete its old flows, install the new one."""
        mac = mac.lower()
        table = self.tables.setdefault(dpid, {})
        old = table.get(mac)
        if old is not None and old.steered and old.port == port:
            old.last_seen = now
            return []
        table[mac] = MacEntry(port, now, steered=True)
        self.reroutes.append(Reroute(dpid, mac, old.port if old else None, port, now))
        del self.reroutes[:-256]
        return [
            FlowDelete(dpid, mac, "steer"),
            FlowMod(dpid, mac, port, self.steer_priority, self.idle_timeout, "steer"),
        ]

    def _learn(self, dpid: int, in_port: int, src: str, now: float) -> list[Action]:
        table = self.tables.setdefault(dpid, {})
        entry = table.get(src)
        if entry is None:
            table[src] = MacEntry(in_port, now)
            return []
        if entry.steered:  # only a new gratuitous ARP (steer) moves it
            if entry.port == in_port:
                entry.last_seen = now
            return []
        entry.last_seen = now
        if entry.port == in_port:
            return []
        entry.port = in_port
        return [FlowDelete(dpid, src, "move")]
