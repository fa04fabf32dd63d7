"""Typed configuration objects of one cluster member (the result of parsing).

Produced by ``fgcp.config.load_config``; consumed by the forwarding plane, the
HA state machine and the sync engine.  FortiOS defaults live in the schema of
``fgcp.config`` and are mirrored here only as dataclass defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

ANY_NET = IPv4Network("0.0.0.0/0")
SERIAL_LEN = 16  # serial numbers: the 16-byte serial field of the heartbeat and sync headers
"""The default destination / subnet: every IPv4 address."""


@dataclass(frozen=True)
class Interface:
    """``config system interface`` / ``edit "port1"``."""

    name: str
    ip: IPv4Interface | None = None  # "set ip 198.51.100.1 255.255.255.0"
    allowaccess: tuple[str, ...] = ()  # ping https ssh ...
    alias: str = ""
    status: str = "up"  # up | down
    description: str = ""


@dataclass(frozen=True)
class StaticRoute:
    """``config router static`` / ``edit <seq>``."""

    seq: int
    dst: IPv4Network = ANY_NET
    gateway: IPv4Address | None = None
    device: str = ""
    distance: int = 10


@dataclass(frozen=True)
class Address:
    """``config firewall address``: a subnet or an IP range (type iprange)."""

    name: str
    subnet: IPv4Network | None = ANY_NET
    start_ip: IPv4Address | None = None  # type iprange
    end_ip: IPv4Address | None = None

    def contains(self, ip: int) -> bool:
        """``ip`` is an IPv4 address as an int (host byte order)."""
        if self.subnet is not None:
            net = self.subnet
            return (ip & int(net.netmask)) == int(net.network_address)
        assert self.start_ip is not None and self.end_ip is not None
        return int(self.start_ip) <= ip <= int(self.end_ip)


@dataclass(frozen=True)
class Service:
    """``config firewall service custom``.

    protocol: "TCP/UDP/SCTP", "ICMP" or "IP".  Port ranges are (lo, hi)
    inclusive destination port ranges.  icmptype None means any type.
    protocol_number is used with protocol "IP" (0 = any).
    """

    name: str
    protocol: str = "TCP/UDP/SCTP"
    tcp_portrange: tuple[tuple[int, int], ...] = ()
    udp_portrange: tuple[tuple[int, int], ...] = ()
    icmptype: int | None = None
    protocol_number: int = 0


@dataclass(frozen=True)
class Policy:
    """``config firewall policy`` / ``edit <id>``; evaluated in list order."""

    policyid: int
    name: str = ""
    srcintf: tuple[str, ...] = ()
    dstintf: tuple[str, ...] = ()
    srcaddr: tuple[str, ...] = ()
    dstaddr: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    action: str = "deny"  # accept | deny
    nat: bool = False  # source NAT to the outgoing interface address
    status: str = "enable"
    schedule: str = "always"
    inspection_mode: str = "flow"  # flow | proxy
    ips_sensor: str = ""  # empty = no IPS
    logtraffic: str = "utm"
    comments: str = ""


@dataclass(frozen=True)
class HAConfig:
    """``config system ha`` with FortiOS defaults."""

    group_name: str = ""
    group_id: int = 0
    mode: str = "standalone"  # standalone | a-p | a-a
    password: str = ""
    hbdev: tuple[tuple[str, int], ...] = ()  # ((port, priority), ...)
    session_sync_dev: tuple[str, ...] = ()
    session_pickup: bool = False
    session_pickup_connectionless: bool = False
    session_pickup_delay: bool = False
    override: bool = False
    priority: int = 128
    monitor: tuple[str, ...] = ()
    hb_interval: int = 2  # units of 100 ms
    hb_lost_threshold: int = 6
    hello_holddown: int = 20  # seconds
    ha_uptime_diff_margin: int = 300  # seconds
    arps: int = 5
    arps_interval: int = 8  # seconds


@dataclass(frozen=True)
class SessionTTL:
    """``config system session-ttl``: default idle timeout of established sessions."""

    default: int = 3600


@dataclass(frozen=True)
class MemberConfig:
    """One member's whole configuration."""

    source: str  # file name the configuration came from
    hostname: str = "FortiGate"
    serial: str = ""  # lab extension: config system global / set lab-serial (as set)
    session_table_max: int = 65536  # lab extension: set lab-session-max
    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: tuple[StaticRoute, ...] = ()
    addresses: dict[str, Address] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    policies: tuple[Policy, ...] = ()
    ha: HAConfig = field(default_factory=HAConfig)
    session_ttl: SessionTTL = field(default_factory=SessionTTL)

    @property
    def member_serial(self) -> str:
        """The serial this member uses in HA and sync frames: ``lab-serial``, else the
        hostname when it fits (at most ``SERIAL_LEN`` characters), else "" (the
        configuration loader refuses that in HA mode)."""
        if self.serial:
            return self.serial
        return self.hostname if len(self.hostname) <= SERIAL_LEN else ""
