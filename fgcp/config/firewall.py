"""``config firewall address|service custom|policy``: schema, predefined objects, builders.

Addresses of type dynamic / sub-type ems-tag are the ZTNA tags (``MemberConfig.ztna.tags``).

The objects every FortiGate has before any configuration (address "all", the predefined
services and IPS sensors) are declared here too; the tables plug into fgcp/config/loader.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from fgcp.config.reader import Fields, Reader, Table, Values, as_int
from fgcp.config.schema import OBJNAME, OFF, Key, Section, keys
from fgcp.config.values import Choice, Int, IPAddress, Names, PortRanges, Subnet, Text
from fgcp.confparse import Block, Edit
from fgcp.model import ANY_NET, Address, EmsTag, Policy, Service
from inspection.ips.predefined import SENSORS as PREDEFINED_SENSORS

__all__ = [
    "ADDRESS",
    "ADDRESS_TABLE",
    "IPS_SENSORS",
    "POLICY",
    "POLICY_TABLE",
    "SERVICE",
    "SERVICE_TABLE",
    "predefined_addresses",
    "predefined_services",
]

# Predefined IPS sensors of FortiOS: policies may name them (their signatures: the small
# stand-in set of inspection/ips/predefined.py); configured sensors: fgcp/config/ips.py.
IPS_SENSORS = tuple(PREDEFINED_SENSORS)

# fmt: off
ADDRESS = Section("firewall address", keys(
    type=Key(Choice(("ipmask", "iprange", "dynamic")), "ipmask"),
    subnet=Key(Subnet(), ANY_NET),
    start_ip=Key(IPAddress(), None),
    end_ip=Key(IPAddress(), None),
    sub_type=Key(Choice(("sdn", "ems-tag")), "sdn", help="type dynamic: only ems-tag"),
    obj_tag=Key(Text(255), "", help="type dynamic, sub-type ems-tag: the EMS tag"),
    comment=Key(Text(255), ""),
), entry=OBJNAME, what="address")
SERVICE = Section("firewall service custom", keys(
    protocol=Key(Choice(("TCP/UDP/SCTP", "ICMP", "IP")), "TCP/UDP/SCTP"),
    tcp_portrange=Key(PortRanges(), ()),
    udp_portrange=Key(PortRanges(), ()),
    icmptype=Key(Int(0, 255), None, help="unset: any ICMP type"),
    protocol_number=Key(Int(0, 255), 0, help="0: any IP protocol"),
    comment=Key(Text(255), ""),
), entry=OBJNAME, what="service")
POLICY = Section("firewall policy", keys(
    name=Key(Text(35), ""),
    srcintf=Key(Names(15), (), ref="interface", ref_extra=("any",)),
    dstintf=Key(Names(15), (), ref="interface", ref_extra=("any",)),
    srcaddr=Key(Names(), (), ref="address"),
    dstaddr=Key(Names(), (), ref="address"),
    service=Key(Names(), (), ref="service"),
    action=Key(Choice(("accept", "deny")), "deny"),
    nat=OFF,
    status=Key(Choice(("enable", "disable")), "enable"),
    schedule=Key(Choice(("always",)), "always"),
    inspection_mode=Key(Choice(("flow", "proxy")), "flow"),
    utm_status=OFF,
    ips_sensor=Key(Text(35), "", ref="ips-sensor"),
    logtraffic=Key(Choice(("all", "utm", "disable")), "utm"),
    comments=Key(Text(1023), ""),
), entry=Int(1, 4_294_967_294), what="policy", ident="id",
   required=("srcintf", "dstintf", "srcaddr", "dstaddr", "service"))
# fmt: on


def predefined_addresses() -> dict[str, Address]:
    """Address objects every FortiGate has before any configuration."""
    return {"all": Address("all", subnet=ANY_NET)}


def predefined_services() -> dict[str, Service]:
    """Predefined ``firewall service custom`` objects of FortiOS used by the lab."""
    full = ((1, 65535),)
    services = (
        Service("ALL", protocol="IP", protocol_number=0),
        Service("ALL_TCP", tcp_portrange=full),
        Service("ALL_UDP", udp_portrange=full),
        Service("ALL_ICMP", protocol="ICMP"),
        Service("PING", protocol="ICMP", icmptype=8),
        Service("HTTP", tcp_portrange=((80, 80),)),
        Service("HTTPS", tcp_portrange=((443, 443),)),
        Service("SSH", tcp_portrange=((22, 22),)),
        Service("TELNET", tcp_portrange=((23, 23),)),
        Service("DNS", tcp_portrange=((53, 53),), udp_portrange=((53, 53),)),
    )
    return {s.name: s for s in services}


def _ems_tag(r: Reader, name: str, edit: Edit, v: Values) -> EmsTag:
    """A ZTNA tag: ``set type dynamic`` / ``set sub-type ems-tag`` / ``set obj-tag``."""
    for key in ("subnet", "start-ip", "end-ip"):
        if key in v.lines:
            raise r.error(v.lines[key], key, "not used with type dynamic")
    if v["sub-type"] != "ems-tag":
        raise r.error(
            v.line("sub-type", edit.line),
            "sub-type",
            f"address {name!r}: only dynamic addresses of sub-type ems-tag are emulated",
        )
    if not v.text("obj-tag"):
        raise r.error(edit.line, "obj-tag", f"EMS tag address {name!r} needs 'set obj-tag'")
    return EmsTag(name, v.text("obj-tag"))


def _addresses(r: Reader, blocks: Sequence[Block]) -> Fields:
    out = predefined_addresses()
    tags: dict[str, EmsTag] = {}
    for ident, edit, v in r.table(ADDRESS, blocks):
        name = str(ident)
        if v["type"] != "dynamic":
            for key in ("sub-type", "obj-tag"):
                if key in v.lines:
                    raise r.error(v.lines[key], key, "only used with type dynamic")
        if v["type"] == "dynamic":
            tags[name] = _ems_tag(r, name, edit, v)
            out.pop(name, None)  # an EMS tag may replace a predefined address name
        elif v["type"] == "iprange":
            if "subnet" in v.lines:
                raise r.error(
                    v.lines["subnet"], "subnet", "not used with type iprange"
                )
            for key in ("start-ip", "end-ip"):
                if v[key] is None:
                    raise r.error(
                        edit.line,
                        key,
                        f"address {name!r} of type iprange needs 'set {key}'",
                    )
            start, end = v["start-ip"], v["end-ip"]
            assert isinstance(start, IPv4Address) and isinstance(end, IPv4Address)
            if start > end:
                raise r.error(
                    v.line("end-ip", edit.line),
                    "end-ip",
                    f"{end} is below start-ip {start}",
                )
            out[name] = Address(name, subnet=None, start_ip=start, end_ip=end)
        else:
            for key in ("start-ip", "end-ip"):
                if key in v.lines:
                    raise r.error(
                        v.lines[key], key, "only used with type iprange"
                    )
            out[name] = Address(name, subnet=v.typed("subnet", IPv4Network))
    r.define("address", out)
    r.define("ems-tag", tags)
    return {"addresses": out, "ztna.tags": tags}


def _services(r: Reader, blocks: Sequence[Block]) -> Fields:
    out = predefined_services()
    for ident, edit, v in r.table(SERVICE, blocks):
        name = str(ident)
        proto = v.text("protocol")
        allowed = {
            "TCP/UDP/SCTP": ("tcp-portrange", "udp-portrange"),
            "ICMP": ("icmptype",),
            "IP": ("protocol-number",),
        }[proto]
        for key in (
            "tcp-portrange",
            "udp-portrange",
            "icmptype",
            "protocol-number",
        ):
            if key in v.lines and key not in allowed:
                raise r.error(
                    v.lines[key], key, f"not used with protocol {proto}"
                )
        if proto == "TCP/UDP/SCTP" and not (
            v["tcp-portrange"] or v["udp-portrange"]
        ):
            raise r.error(
                edit.line,
                "tcp-portrange",
                f"service {name!r} needs 'set tcp-portrange' or 'set udp-portrange'",
            )
        out[name] = Service(
            name,
            protocol=proto,
            tcp_portrange=v.typed("tcp-portrange", tuple),
            udp_portrange=v.typed("udp-portrange", tuple),
            icmptype=v.typed("icmptype", int),
            protocol_number=v.integer("protocol-number"),
        )
    r.define("service", out)
    return {"services": out}


def _policies(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: list[Policy] = []
    for ident, edit, v in r.table(POLICY, blocks):
        for key in ("srcintf", "dstintf"):
            names = v[key]
            assert isinstance(names, tuple)
            if "any" in names and len(names) > 1:
                raise r.error(
                    v.lines[key],
                    key,
                    "'any' cannot be combined with other interfaces",
                )
        if v["action"] == "deny":
            for key in ("nat", "utm-status", "ips-sensor"):
                if key in v.lines:
                    raise r.error(
                        v.lines[key], key, "not available with action deny"
                    )
        if "ips-sensor" in v.lines and not v["utm-status"]:
            raise r.error(
                v.lines["ips-sensor"], "ips-sensor", "needs 'set utm-status enable'"
            )
        out.append(
            Policy(
                policyid=as_int(ident),
                name=v.text("name"),
                srcintf=v.names("srcintf"),
                dstintf=v.names("dstintf"),
                srcaddr=v.names("srcaddr"),
                dstaddr=v.names("dstaddr"),
                service=v.names("service"),
                action=v.text("action"),
                nat=v.flag("nat"),
                status=v.text("status"),
                schedule=v.text("schedule"),
                inspection_mode=v.text("inspection-mode"),
                ips_sensor=v.text("ips-sensor") if v["utm-status"] else "",
                logtraffic=v.text("logtraffic"),
                comments=v.text("comments"),
            )
        )
    r.define("ips-sensor", IPS_SENSORS)
    return {"policies": tuple(out)}


ADDRESS_TABLE = Table(ADDRESS, _addresses)
SERVICE_TABLE = Table(SERVICE, _services)
POLICY_TABLE = Table(POLICY, _policies)
