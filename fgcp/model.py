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
    hb_interval: int = 2  # units of hb_unit_ms (100 ms, or 10 ms)
    hb_interval_in_milliseconds: str = "100ms"  # the unit of hb_interval: 100ms | 10ms
    hb_lost_threshold: int = 6
    hello_holddown: int = 20  # seconds
    ha_uptime_diff_margin: int = 300  # seconds
    arps: int = 5
    arps_interval: int = 8  # seconds
    ips_session_sync: str = "iccp"  # emulator extension: iccp | all (IPS state of which sessions)

    @property
    def hb_unit_ms(self) -> int:
        """The unit of ``hb_interval`` in ms (100, or 10 with hb-interval-in-milliseconds 10ms)."""
        return 10 if self.hb_interval_in_milliseconds == "10ms" else 100


@dataclass(frozen=True)
class IpsCustom:
    """``config ips custom`` / ``edit "<tag>"``: one custom F-SBID signature.

    ``signature`` is the F-SBID text, checked by ``inspection.ips.parse_signature``
    when the configuration is loaded; ``name`` and ``attack_id`` come from it.
    """

    tag: str
    signature: str
    name: str = ""
    attack_id: int | None = None
    action: str = "pass"  # pass | block: what an entry with action "default" does
    status: bool = True
    log: bool = True
    severity: str = "medium"  # info | low | medium | high | critical


@dataclass(frozen=True)
class IpsSensorEntry:
    """``config ips sensor`` / ``edit`` / ``config entries`` / ``edit <id>``."""

    entry_id: int
    rules: tuple[str, ...] = ()  # custom signature tags (a numeric attack id is resolved)
    action: str = "default"  # default (the signature's) | pass | monitor | block | reset
    status: str = "default"  # default (the signature's) | enable | disable
    log: str = "default"  # default | enable | disable


@dataclass(frozen=True)
class IpsSensor:
    """``config ips sensor`` / ``edit "<name>"``; entries in order (first match wins)."""

    name: str
    entries: tuple[IpsSensorEntry, ...] = ()
    comment: str = ""


@dataclass(frozen=True)
class SessionTTL:
    """``config system session-ttl``: default idle timeout of established sessions."""

    default: int = 3600


# -- ZTNA access proxy (issue 11; fgcp/config/ztna.py reads them, docs/ztna.md) --------


@dataclass(frozen=True)
class AccessProxyVip:
    """``config firewall vip`` / ``set type access-proxy``: where the access proxy listens."""

    name: str
    extip: str  # "198.51.100.100"
    extintf: str = "any"  # interface name or "any"
    extport: int = 0
    server_cert: str = ""  # set ssl-certificate: a ``config vpn certificate local`` name
    server_type: str = "https"


@dataclass(frozen=True)
class RealServer:
    """``config realservers`` / ``edit <id>`` inside an api-gateway: one backend."""

    id: int
    ip: str
    port: int = 443


@dataclass(frozen=True)
class ApiGateway:
    """``config api-gateway`` / ``edit <id>`` of an access-proxy (service tcp-forwarding)."""

    id: int
    service: str = "tcp-forwarding"
    realservers: tuple[RealServer, ...] = ()


@dataclass(frozen=True)
class AccessProxy:
    """``config firewall access-proxy`` / ``edit "<name>"``."""

    name: str
    vip: str  # an AccessProxyVip name
    client_cert: bool = True
    empty_cert_action: str = "block"  # accept | block | accept-unmanageable
    apis: tuple[ApiGateway, ...] = ()


@dataclass(frozen=True)
class EmsTag:
    """``config firewall address`` / ``set type dynamic`` / ``set sub-type ems-tag``."""

    name: str  # the address name ("ZTNA_compliant"), what proxy-policies refer to
    tag: str  # set obj-tag: the EMS tag ("compliant")


@dataclass(frozen=True)
class ProxyPolicy:
    """``config firewall proxy-policy`` / ``edit <id>`` (``set proxy access-proxy``)."""

    id: int
    name: str = ""
    proxy: str = "access-proxy"
    access_proxy: tuple[str, ...] = ()  # AccessProxy names
    srcintf: tuple[str, ...] = ()
    srcaddr: tuple[str, ...] = ()
    dstaddr: tuple[str, ...] = ()
    ztna_ems_tag: tuple[str, ...] = ()  # EmsTag (address) names; empty = any verified device
    ztna_tags_match_logic: str = "or"  # or | and
    action: str = "deny"  # accept | deny
    status: str = "enable"


@dataclass(frozen=True)
class EmsServer:
    """``config endpoint-control fctems`` / ``edit "<name>"`` (the lab's EMS stand-in)."""

    name: str
    socket: str  # set lab-socket: unix socket path (relative: to fgcpd's --rundir)
    ca_cert: str = ""  # set lab-ca-cert: the ``config vpn certificate ca`` of the EMS CA


@dataclass(frozen=True)
class LocalCertificate:
    """``config vpn certificate local`` / ``edit "<name>"``: a certificate with its key."""

    name: str
    cert_file: str  # PEM; relative paths: to fgcpd's --rundir
    key_file: str


@dataclass(frozen=True)
class CaCertificate:
    """``config vpn certificate ca`` / ``edit "<name>"``: a trusted CA (and its CRL file)."""

    name: str
    file: str  # PEM; relative paths: to fgcpd's --rundir
    crl_file: str = ""  # set lab-crl-file; empty: revocation from the EMS only


@dataclass(frozen=True)
class Certificates:
    """The certificate store: local certificates and CAs, by name."""

    local: dict[str, LocalCertificate] = field(default_factory=dict)
    ca: dict[str, CaCertificate] = field(default_factory=dict)


@dataclass(frozen=True)
class ZtnaConfig:
    """Everything the ZTNA access proxy needs (empty when nothing is configured)."""

    vips: dict[str, AccessProxyVip] = field(default_factory=dict)
    proxies: dict[str, AccessProxy] = field(default_factory=dict)
    tags: dict[str, EmsTag] = field(default_factory=dict)
    policies: tuple[ProxyPolicy, ...] = ()
    ems: EmsServer | None = None
    certificates: Certificates = field(default_factory=Certificates)

    @property
    def enabled(self) -> bool:
        """At least one access proxy is configured."""
        return bool(self.proxies)

    def policies_for(self, proxy: str) -> tuple[ProxyPolicy, ...]:
        """The enabled proxy-policies naming access-proxy ``proxy``, in evaluation order."""
        return tuple(
            p for p in self.policies if p.status == "enable" and proxy in p.access_proxy
        )

    def ems_tags(self, policy: ProxyPolicy) -> tuple[str, ...]:
        """The EMS tags (``obj-tag`` values) a policy's ``ztna-ems-tag`` addresses stand for."""
        return tuple(self.tags[name].tag for name in policy.ztna_ems_tag)

    def ems_ca(self) -> CaCertificate | None:
        """The CA the EMS issues device certificates with (None: no EMS or no CA named)."""
        if self.ems is None or not self.ems.ca_cert:
            return None
        return self.certificates.ca[self.ems.ca_cert]


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
    ztna: ZtnaConfig = field(default_factory=ZtnaConfig)  # fgcp/config/ztna.py
    ips_custom: dict[str, IpsCustom] = field(default_factory=dict)
    ips_sensors: dict[str, IpsSensor] = field(default_factory=dict)

    @property
    def member_serial(self) -> str:
        """The serial this member uses in HA and sync frames: ``lab-serial``, else the
        hostname when it fits (at most ``SERIAL_LEN`` characters), else "" (the
        configuration loader refuses that in HA mode)."""
        if self.serial:
            return self.serial
        return self.hostname if len(self.hostname) <= SERIAL_LEN else ""
