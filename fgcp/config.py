"""Declared schema of a member's FortiOS-style configuration and its loader.

``SCHEMA`` lists every supported section and key with type, FortiOS default and
allowed values; ``load_config``/``parse_config`` turn text into a validated ``MemberConfig``.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from fgcp.confparse import Block, ConfigError, Edit, Setting, Word, parse
from fgcp.model import (
    Address,
    HAConfig,
    Interface,
    MemberConfig,
    Policy,
    Service,
    SessionTTL,
    StaticRoute,
)

__all__ = [
    "IPS_SENSORS",
    "SCHEMA",
    "ConfigError",
    "check_config",
    "load_config",
    "main",
    "parse_config",
    "predefined_addresses",
    "predefined_services",
    "summarize",
]


# --------------------------------------------------------------------------
# Value types: each turns the words of one ``set`` into a Python value or
# raises _Invalid with the reason.


class _Invalid(Exception):
    """Internal: a value failed validation (the caller adds source, line and key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _one(words: Sequence[Word]) -> str:
    if len(words) != 1:
        raise _Invalid(f"expects one value, got {len(words)}")
    return words[0].text


def _int(text: str, lo: int, hi: int) -> int:
    if not re.fullmatch(r"-?[0-9]+", text):
        raise _Invalid(f"{text!r} is not an integer")
    value = int(text)
    if not lo <= value <= hi:
        raise _Invalid(f"{value} is out of range {lo}-{hi}")
    return value


def _ipv4(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise _Invalid(f"{text!r} is not a valid IPv4 address") from None


def _prefixlen(mask: str) -> int:
    """Prefix length of a dotted netmask (``255.255.255.0``) or of ``/24``'s ``24``."""
    if re.fullmatch(r"[0-9]{1,2}", mask):
        length = int(mask)
        if length > 32:
            raise _Invalid(f"/{mask} is not a valid prefix length (0-32)")
        return length
    try:
        bits = int(IPv4Address(mask))
    except AddressValueError:
        raise _Invalid(f"{mask!r} is not a valid netmask") from None
    inverse = ~bits & 0xFFFFFFFF
    if inverse & (inverse + 1):
        raise _Invalid(f"{mask!r} is not a valid netmask")
    return 32 - inverse.bit_length()


def _ip_and_prefix(words: Sequence[Word]) -> tuple[IPv4Address, int]:
    """``a.b.c.d m.m.m.m`` (two words) or ``a.b.c.d/len`` (one word)."""
    if len(words) == 2:
        return _ipv4(words[0].text), _prefixlen(words[1].text)
    if len(words) == 1 and "/" in words[0].text:
        addr, _, length = words[0].text.partition("/")
        return _ipv4(addr), _prefixlen(length)
    if len(words) == 1:
        _ipv4(words[0].text)  # a bad address is the clearer error
        raise _Invalid(
            f"{words[0].text!r} needs a netmask (a.b.c.d m.m.m.m or a.b.c.d/len)"
        )
    raise _Invalid(f"expects an address and a netmask, got {len(words)} values")


class ValueType:
    """Base of the schema's value types."""

    def parse(self, words: Sequence[Word]) -> object:
        raise NotImplementedError

    def names(self, value: object) -> Iterable[str]:
        """Object names this value refers to (for cross-reference checks)."""
        if isinstance(value, str):
            return (value,) if value else ()
        if isinstance(value, tuple):
            return tuple(v for v in value if isinstance(v, str))
        return ()


@dataclass(frozen=True)
class Int(ValueType):
    lo: int
    hi: int

    def parse(self, words: Sequence[Word]) -> int:
        return _int(_one(words), self.lo, self.hi)


@dataclass(frozen=True)
class Choice(ValueType):
    options: tuple[str, ...]

    def parse(self, words: Sequence[Word]) -> str:
        text = _one(words)
        if text not in self.options:
            raise _Invalid(f"{text!r} is not one of {', '.join(self.options)}")
        return text


@dataclass(frozen=True)
class Flag(ValueType):
    """``enable`` / ``disable`` -> bool."""

    def parse(self, words: Sequence[Word]) -> bool:
        return Choice(("enable", "disable")).parse(words) == "enable"


@dataclass(frozen=True)
class Text(ValueType):
    maxlen: int
    pattern: str = ""  # regex every value must fully match (empty: any)
    pattern_help: str = ""

    def check(self, text: str) -> str:
        if len(text) > self.maxlen:
            raise _Invalid(f"{text!r} is longer than {self.maxlen} characters")
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise _Invalid(f"{text!r} is not a valid name ({self.pattern_help})")
        return text

    def parse(self, words: Sequence[Word]) -> str:
        return self.check(_one(words))


@dataclass(frozen=True)
class Password(Text):
    def parse(self, words: Sequence[Word]) -> str:
        if words and words[0].text == "ENC" and not words[0].quoted:
            raise _Invalid(
                "encrypted passwords (ENC ...) are not supported: write it in clear"
            )
        return self.check(_one(words))


@dataclass(frozen=True)
class Names(ValueType):
    """One or more names, each at most ``maxlen`` long, none repeated."""

    maxlen: int = 79

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        seen: list[str] = []
        for w in words:
            Text(self.maxlen).check(w.text)
            if not w.text:
                raise _Invalid("empty name")
            if w.text in seen:
                raise _Invalid(f"{w.text!r} is listed twice")
            seen.append(w.text)
        return tuple(seen)


@dataclass(frozen=True)
class Choices(ValueType):
    """One or more keywords out of ``options``."""

    options: tuple[str, ...]

    def parse(self, words: Sequence[Word]) -> tuple[str, ...]:
        out: list[str] = []
        for w in words:
            if w.text not in self.options:
                raise _Invalid(f"{w.text!r} is not one of {', '.join(self.options)}")
            if w.text not in out:
                out.append(w.text)
        return tuple(out)


@dataclass(frozen=True)
class IPAddress(ValueType):
    """One IPv4 address; ``0.0.0.0`` means unset (None)."""

    def parse(self, words: Sequence[Word]) -> IPv4Address | None:
        addr = _ipv4(_one(words))
        return None if int(addr) == 0 else addr


@dataclass(frozen=True)
class InterfaceIP(ValueType):
    """Interface address with its netmask; ``0.0.0.0 0.0.0.0`` means none."""

    def parse(self, words: Sequence[Word]) -> IPv4Interface | None:
        addr, length = _ip_and_prefix(words)
        if int(addr) == 0 and length == 0:
            return None
        iface = IPv4Interface((addr, length))
        if length <= 30 and addr == iface.network.network_address:
            raise _Invalid(f"{iface} is the network address of its subnet")
        if length <= 30 and addr == iface.network.broadcast_address:
            raise _Invalid(f"{iface} is the broadcast address of its subnet")
        return iface


@dataclass(frozen=True)
class Subnet(ValueType):
    """A network (``a.b.c.d m.m.m.m`` or ``a.b.c.d/len``) without host bits."""

    def parse(self, words: Sequence[Word]) -> IPv4Network:
        addr, length = _ip_and_prefix(words)
        net = IPv4Network((addr, length), strict=False)
        if net.network_address != addr:
            raise _Invalid(f"{addr}/{length} has host bits set (did you mean {net}?)")
        return net


@dataclass(frozen=True)
class HbdevPairs(ValueType):
    """``"port3" 50 "port4" 50``: heartbeat interfaces with their priorities."""

    def parse(self, words: Sequence[Word]) -> tuple[tuple[str, int], ...]:
        if len(words) % 2:
            raise _Invalid(f"expects interface/priority pairs, got {len(words)} values")
        pairs: list[tuple[str, int]] = []
        for name_w, prio_w in zip(words[0::2], words[1::2]):
            name = Text(15).check(name_w.text)
            if any(name == n for n, _ in pairs):
                raise _Invalid(f"{name!r} is listed twice")
            try:
                prio = _int(prio_w.text, 0, 512)
            except _Invalid as exc:
                raise _Invalid(f"priority of {name!r}: {exc.reason}") from None
            pairs.append((name, prio))
        return tuple(pairs)

    def names(self, value: object) -> Iterable[str]:
        assert isinstance(value, tuple)
        return tuple(name for name, _ in value)


@dataclass(frozen=True)
class PortRanges(ValueType):
    """``80``, ``1000-2000`` (destination ports), several allowed."""

    def parse(self, words: Sequence[Word]) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for w in words:
            text = w.text
            if ":" in text:
                raise _Invalid(f"{text!r}: source port ranges (':') are not supported")
            lo_s, dash, hi_s = text.partition("-")
            lo = _int(lo_s, 1, 65535)
            hi = _int(hi_s, 1, 65535) if dash else lo
            if lo > hi:
                raise _Invalid(f"{text!r}: low port is above high port")
            out.append((lo, hi))
        return tuple(out)


# --------------------------------------------------------------------------
# The schema.


@dataclass(frozen=True)
class Key:
    """One key of a section: its type, FortiOS default and what it refers to."""

    type: ValueType
    default: object
    ref: str = (
        ""  # "interface" | "address" | "service" | "ips-sensor": names must exist
    )
    ref_extra: tuple[str, ...] = ()  # names accepted besides defined objects ("any")
    help: str = ""


@dataclass(frozen=True)
class Section:
    """A ``config <name>`` section: plain settings, or a table of ``edit`` entries."""

    keys: Mapping[str, Key]
    entry: ValueType | None = None  # type of the edit name; None for a settings section
    what: str = ""  # what one entry is called in messages ("policy", ...)
    required: tuple[str, ...] = ()  # keys every entry must set
    ident: str = "name"  # what the edit argument is called ("id" of a policy, ...)


_IFNAME = Text(15, r"[A-Za-z0-9][A-Za-z0-9_.-]*", "letters, digits, '_', '.', '-'")
_OBJNAME = Text(79, r"[^\x00-\x1f]+", "no control characters")

ALLOWACCESS = (
    "ping", "https", "ssh", "http", "telnet", "fgfm", "snmp",
    "radius-acct", "probe-response", "fabric", "ftm", "speed-test",
)  # fmt: skip

# Predefined IPS sensors of FortiOS (``config ips sensor`` is not emulated).
IPS_SENSORS = (
    "default", "all_default", "all_default_pass", "high_security",
    "protect_client", "protect_email_server", "protect_http_server", "wifi-default",
)  # fmt: skip

_OFF = Key(Flag(), False)  # enable|disable, default disable
_IP_NAME = Text(35, r"[A-Za-z0-9_.-]+", "letters, digits, '_', '.', '-'")


def _keys(**keys: Key) -> Mapping[str, Key]:
    """Key table of a section; ``session_pickup=`` declares ``session-pickup``."""
    return MappingProxyType({name.replace("_", "-"): key for name, key in keys.items()})


# fmt: off
SCHEMA: Mapping[str, Section] = MappingProxyType({
    "system global": Section(_keys(
        hostname=Key(_IP_NAME, "FortiGate"),
        lab_serial=Key(Text(16, r"[!-~]+", "printable ASCII, no spaces"), "",
                       help="lab extension: the member's serial number"),
        lab_session_max=Key(Int(1, 10_000_000), 65536,
                            help="lab extension: session table size"),
    )),
    "system interface": Section(_keys(
        ip=Key(InterfaceIP(), None),
        allowaccess=Key(Choices(ALLOWACCESS), ()),
        alias=Key(Text(25), ""),
        status=Key(Choice(("up", "down")), "up"),
        description=Key(Text(255), ""),
        vdom=Key(Choice(("root",)), "root", help="accepted; only root exists"),
        type=Key(Choice(("physical",)), "physical", help="accepted; ports only"),
    ), entry=_IFNAME, what="interface"),
    "router static": Section(_keys(
        dst=Key(Subnet(), IPv4Network("0.0.0.0/0")),
        gateway=Key(IPAddress(), None),
        device=Key(_IFNAME, "", ref="interface"),
        distance=Key(Int(1, 255), 10),
    ), entry=Int(1, 4_294_967_295), what="route", ident="seq", required=("device",)),
    "firewall address": Section(_keys(
        type=Key(Choice(("ipmask", "iprange")), "ipmask"),
        subnet=Key(Subnet(), IPv4Network("0.0.0.0/0")),
        start_ip=Key(IPAddress(), None),
        end_ip=Key(IPAddress(), None),
        comment=Key(Text(255), ""),
    ), entry=_OBJNAME, what="address"),
    "firewall service custom": Section(_keys(
        protocol=Key(Choice(("TCP/UDP/SCTP", "ICMP", "IP")), "TCP/UDP/SCTP"),
        tcp_portrange=Key(PortRanges(), ()),
        udp_portrange=Key(PortRanges(), ()),
        icmptype=Key(Int(0, 255), None, help="unset: any ICMP type"),
        protocol_number=Key(Int(0, 255), 0, help="0: any IP protocol"),
        comment=Key(Text(255), ""),
    ), entry=_OBJNAME, what="service"),
    "firewall policy": Section(_keys(
        name=Key(Text(35), ""),
        srcintf=Key(Names(15), (), ref="interface", ref_extra=("any",)),
        dstintf=Key(Names(15), (), ref="interface", ref_extra=("any",)),
        srcaddr=Key(Names(), (), ref="address"),
        dstaddr=Key(Names(), (), ref="address"),
        service=Key(Names(), (), ref="service"),
        action=Key(Choice(("accept", "deny")), "deny"),
        nat=_OFF,
        status=Key(Choice(("enable", "disable")), "enable"),
        schedule=Key(Choice(("always",)), "always"),
        inspection_mode=Key(Choice(("flow", "proxy")), "flow"),
        utm_status=_OFF,
        ips_sensor=Key(Text(35), "", ref="ips-sensor"),
        logtraffic=Key(Choice(("all", "utm", "disable")), "utm"),
        comments=Key(Text(1023), ""),
    ), entry=Int(1, 4_294_967_294), what="policy", ident="id",
       required=("srcintf", "dstintf", "srcaddr", "dstaddr", "service")),
    "system ha": Section(_keys(
        group_name=Key(Text(32), ""),
        group_id=Key(Int(0, 255), 0),
        mode=Key(Choice(("standalone", "a-p", "a-a")), "standalone"),
        password=Key(Password(128), ""),
        hbdev=Key(HbdevPairs(), (), ref="interface"),
        session_sync_dev=Key(Names(15), (), ref="interface"),
        session_pickup=_OFF,
        session_pickup_connectionless=_OFF,
        session_pickup_delay=_OFF,
        override=_OFF,
        priority=Key(Int(0, 255), 128),
        monitor=Key(Names(15), (), ref="interface"),
        hb_interval=Key(Int(1, 20), 2, help="units of 100 ms"),
        hb_lost_threshold=Key(Int(1, 60), 6),
        hello_holddown=Key(Int(5, 300), 20, help="seconds"),
        ha_uptime_diff_margin=Key(Int(1, 65535), 300, help="seconds"),
        arps=Key(Int(1, 60), 5),
        arps_interval=Key(Int(1, 20), 8, help="seconds"),
    )),
    "system session-ttl": Section(_keys(
        default=Key(Int(300, 2_764_800), 3600, help="seconds"),
    )),
})
# fmt: on


def predefined_addresses() -> dict[str, Address]:
    """Address objects every FortiGate has before any configuration."""
    return {"all": Address("all", subnet=IPv4Network("0.0.0.0/0"))}


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


# --------------------------------------------------------------------------
# Loader.


_T = TypeVar("_T")


def _as_int(value: object) -> int:
    assert isinstance(value, int)
    return value


@dataclass(frozen=True)
class _Ref:
    kind: str
    name: str
    line: int
    key: str
    extra: tuple[str, ...]


class _Values:
    """The validated values of one settings section or one ``edit`` entry."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.values: dict[str, object] = {
            k: spec.default for k, spec in section.keys.items()
        }
        self.lines: dict[str, int] = {}  # key -> line of the `set` in force

    def __getitem__(self, key: str) -> object:
        return self.values[key]

    def integer(self, key: str) -> int:
        value = self.values[key]
        assert isinstance(value, int)
        return value

    def text(self, key: str) -> str:
        return str(self.values[key])

    def flag(self, key: str) -> bool:
        return bool(self.values[key])

    def names(self, key: str) -> tuple[str, ...]:
        value = self.values[key]
        assert isinstance(value, tuple)
        return value

    def typed(self, key: str, kind: type[_T] | tuple[type, ...]) -> _T:
        """The value, checked to be of ``kind`` (None passes when the default is None)."""
        value = self.values[key]
        assert value is None or isinstance(value, kind), (key, value)
        return value  # type: ignore[return-value]

    def line(self, key: str, fallback: int) -> int:
        return self.lines.get(key, fallback)


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.refs: list[_Ref] = []

    def error(self, line: int, key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.source, line, key, reason)

    # -- generic ----------------------------------------------------------

    def collect(self, name: str, settings: Iterable[Setting], into: _Values) -> _Values:
        section = into.section
        for s in settings:
            spec = section.keys.get(s.key)
            if spec is None:
                close = difflib.get_close_matches(s.key, list(section.keys), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(s.line, s.key, f"unknown key in 'config {name}'{hint}")
            if s.unset:
                into.values[s.key] = spec.default
                into.lines.pop(s.key, None)
                continue
            try:
                value = spec.type.parse(s.values)
            except _Invalid as exc:
                raise self.error(s.line, s.key, exc.reason) from None
            into.values[s.key] = value
            into.lines[s.key] = s.line
        return into

    def add_refs(self, values: _Values) -> None:
        """Remember the names ``values`` refer to; checked once everything is loaded."""
        for key, line in values.lines.items():
            spec = values.section.keys[key]
            if spec.ref:
                for ref_name in spec.type.names(values[key]):
                    self.refs.append(
                        _Ref(spec.ref, ref_name, line, key, spec.ref_extra)
                    )

    def no_nested(self, where: str, blocks: Sequence[Block]) -> None:
        """Reject nested ``config`` blocks (none of the supported sections has any)."""
        if blocks:
            b = blocks[0]
            raise self.error(
                b.line, None, f"unknown section 'config {b.name}' inside {where}"
            )

    def settings_section(self, name: str, blocks: Sequence[Block]) -> _Values:
        section = SCHEMA[name]
        values = _Values(section)
        for block in blocks:
            if block.edits:
                e = block.edits[0]
                raise self.error(
                    e.line, None, f"'edit' is not allowed in 'config {name}'"
                )
            self.no_nested(f"'config {name}'", block.blocks)
            self.collect(name, block.settings, values)
        self.add_refs(values)
        return values

    def table_section(
        self, name: str, blocks: Sequence[Block]
    ) -> list[tuple[object, Edit, _Values]]:
        section = SCHEMA[name]
        assert section.entry is not None
        entries: list[tuple[object, Edit, _Values]] = []
        seen: dict[object, int] = {}
        for block in blocks:
            if block.settings:
                s = block.settings[0]
                raise self.error(
                    s.line, s.key, f"'set' must be inside 'edit' in 'config {name}'"
                )
            self.no_nested(f"'config {name}'", block.blocks)
            for edit in block.edits:
                try:
                    ident = section.entry.parse((edit.name,))
                except _Invalid as exc:
                    raise self.error(
                        edit.line,
                        "edit",
                        f"{section.what} {section.ident}: {exc.reason}",
                    ) from None
                if ident in seen:
                    raise self.error(
                        edit.line,
                        "edit",
                        f"{section.what} {edit.name.text!r} is already defined at line {seen[ident]}",
                    )
                seen[ident] = edit.line
                self.no_nested(
                    f"'edit {edit.name.text}' of 'config {name}'", edit.blocks
                )
                values = self.collect(name, edit.settings, _Values(section))
                self.add_refs(values)
                for key in section.required:
                    if key not in values.lines:
                        raise self.error(
                            edit.line,
                            key,
                            f"{section.what} {edit.name.text!r} needs 'set {key}'",
                        )
                entries.append((ident, edit, values))
        return entries

    # -- sections ---------------------------------------------------------

    def interfaces(self, blocks: Sequence[Block]) -> dict[str, Interface]:
        out: dict[str, Interface] = {}
        for ident, edit, v in self.table_section("system interface", blocks):
            name = str(ident)
            if name == "any":
                raise self.error(
                    edit.line, "edit", "'any' is reserved and cannot name an interface"
                )
            iface = Interface(
                name=name,
                ip=v.typed("ip", IPv4Interface),
                allowaccess=v.names("allowaccess"),
                alias=v.text("alias"),
                status=v.text("status"),
                description=v.text("description"),
            )
            if iface.ip is not None:
                for other in out.values():
                    if other.ip is not None and other.ip.network.overlaps(
                        iface.ip.network
                    ):
                        raise self.error(
                            v.line("ip", edit.line),
                            "ip",
                            f"{iface.ip} overlaps {other.name} ({other.ip})",
                        )
            out[name] = iface
        return out

    def routes(self, blocks: Sequence[Block]) -> tuple[StaticRoute, ...]:
        return tuple(
            StaticRoute(
                seq=_as_int(ident),
                dst=v.typed("dst", IPv4Network),
                gateway=v.typed("gateway", IPv4Address),
                device=v.text("device"),
                distance=v.integer("distance"),
            )
            for ident, _edit, v in self.table_section("router static", blocks)
        )

    def addresses(self, blocks: Sequence[Block]) -> dict[str, Address]:
        out = predefined_addresses()
        for ident, edit, v in self.table_section("firewall address", blocks):
            name = str(ident)
            if v["type"] == "iprange":
                if "subnet" in v.lines:
                    raise self.error(
                        v.lines["subnet"], "subnet", "not used with type iprange"
                    )
                for key in ("start-ip", "end-ip"):
                    if v[key] is None:
                        raise self.error(
                            edit.line,
                            key,
                            f"address {name!r} of type iprange needs 'set {key}'",
                        )
                start, end = v["start-ip"], v["end-ip"]
                assert isinstance(start, IPv4Address) and isinstance(end, IPv4Address)
                if start > end:
                    raise self.error(
                        v.line("end-ip", edit.line),
                        "end-ip",
                        f"{end} is below start-ip {start}",
                    )
                out[name] = Address(name, subnet=None, start_ip=start, end_ip=end)
            else:
                for key in ("start-ip", "end-ip"):
                    if key in v.lines:
                        raise self.error(
                            v.lines[key], key, "only used with type iprange"
                        )
                out[name] = Address(name, subnet=v.typed("subnet", IPv4Network))
        return out

    def services(self, blocks: Sequence[Block]) -> dict[str, Service]:
        out = predefined_services()
        for ident, edit, v in self.table_section("firewall service custom", blocks):
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
                    raise self.error(
                        v.lines[key], key, f"not used with protocol {proto}"
                    )
            if proto == "TCP/UDP/SCTP" and not (
                v["tcp-portrange"] or v["udp-portrange"]
            ):
                raise self.error(
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
        return out

    def policies(self, blocks: Sequence[Block]) -> tuple[Policy, ...]:
        out: list[Policy] = []
        for ident, edit, v in self.table_section("firewall policy", blocks):
            for key in ("srcintf", "dstintf"):
                names = v[key]
                assert isinstance(names, tuple)
                if "any" in names and len(names) > 1:
                    raise self.error(
                        v.lines[key],
                        key,
                        "'any' cannot be combined with other interfaces",
                    )
            if v["action"] == "deny":
                for key in ("nat", "utm-status", "ips-sensor"):
                    if key in v.lines:
                        raise self.error(
                            v.lines[key], key, "not available with action deny"
                        )
            if "ips-sensor" in v.lines and not v["utm-status"]:
                raise self.error(
                    v.lines["ips-sensor"], "ips-sensor", "needs 'set utm-status enable'"
                )
            out.append(
                Policy(
                    policyid=_as_int(ident),
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
        return tuple(out)

    def ha(self, blocks: Sequence[Block]) -> HAConfig:
        v = self.settings_section("system ha", blocks)
        first = blocks[0].line if blocks else 0
        for key in ("session-pickup-connectionless", "session-pickup-delay"):
            if v[key] and not v["session-pickup"]:
                raise self.error(v.lines[key], key, "needs 'set session-pickup enable'")
        if v["mode"] != "standalone" and not v["hbdev"]:
            raise self.error(
                v.line("mode", first),
                "hbdev",
                f"mode {v['mode']} needs at least one heartbeat interface",
            )
        hb_names = {name for name, _prio in v.typed("hbdev", tuple)}
        for name in v.names("monitor"):
            if name in hb_names:
                raise self.error(
                    v.lines["monitor"],
                    "monitor",
                    f"{name!r} is a heartbeat interface (hbdev) and cannot be monitored",
                )
        return HAConfig(
            group_name=v.text("group-name"),
            group_id=v.integer("group-id"),
            mode=v.text("mode"),
            password=v.text("password"),
            hbdev=v.typed("hbdev", tuple),
            session_sync_dev=v.names("session-sync-dev"),
            session_pickup=v.flag("session-pickup"),
            session_pickup_connectionless=v.flag("session-pickup-connectionless"),
            session_pickup_delay=v.flag("session-pickup-delay"),
            override=v.flag("override"),
            priority=v.integer("priority"),
            monitor=v.names("monitor"),
            hb_interval=v.integer("hb-interval"),
            hb_lost_threshold=v.integer("hb-lost-threshold"),
            hello_holddown=v.integer("hello-holddown"),
            ha_uptime_diff_margin=v.integer("ha-uptime-diff-margin"),
            arps=v.integer("arps"),
            arps_interval=v.integer("arps-interval"),
        )

    # -- whole file -------------------------------------------------------

    def load(self, text: str) -> MemberConfig:
        by_section: dict[str, list[Block]] = {name: [] for name in SCHEMA}
        for block in parse(text, self.source):
            if block.name not in SCHEMA:
                supported = ", ".join(f"'{n}'" for n in SCHEMA)
                raise self.error(
                    block.line,
                    None,
                    f"unknown section 'config {block.name}' (supported: {supported})",
                )
            by_section[block.name].append(block)
        # Each section is checked on its own so that, when several hold an
        # error, the one reported is the first in the file.
        errors: list[ConfigError] = []

        def run(build: Callable[[Sequence[Block]], _T], name: str, empty: _T) -> _T:
            try:
                return build(by_section[name])
            except ConfigError as exc:
                errors.append(exc)
                return empty

        def settings(name: str) -> Callable[[Sequence[Block]], _Values]:
            return lambda blocks: self.settings_section(name, blocks)

        glob = run(
            settings("system global"), "system global", _Values(SCHEMA["system global"])
        )
        interfaces = run(self.interfaces, "system interface", {})
        routes = run(self.routes, "router static", ())
        addresses = run(self.addresses, "firewall address", {})
        services = run(self.services, "firewall service custom", {})
        policies = run(self.policies, "firewall policy", ())
        ha = run(self.ha, "system ha", HAConfig())
        ttl = run(
            settings("system session-ttl"),
            "system session-ttl",
            _Values(SCHEMA["system session-ttl"]),
        )
        if errors:
            raise min(errors, key=lambda e: e.line)
        defined: dict[str, Callable[[str], bool]] = {
            "interface": interfaces.__contains__,
            "address": addresses.__contains__,
            "service": services.__contains__,
            "ips-sensor": IPS_SENSORS.__contains__,
        }
        for ref in sorted(self.refs, key=lambda r: r.line):
            if ref.name in ref.extra or defined[ref.kind](ref.name):
                continue
            what = "is not configured" if ref.kind == "interface" else "is not defined"
            raise self.error(ref.line, ref.key, f"{ref.kind} {ref.name!r} {what}")
        return MemberConfig(
            source=self.source,
            hostname=str(glob["hostname"]),
            serial=str(glob["lab-serial"]),
            session_table_max=glob.integer("lab-session-max"),
            interfaces=interfaces,
            routes=routes,
            addresses=addresses,
            services=services,
            policies=policies,
            ha=ha,
            session_ttl=SessionTTL(default=ttl.integer("default")),
        )


def parse_config(text: str, source: str = "<string>") -> MemberConfig:
    """Parse and validate configuration text; raise ``ConfigError`` on the first error."""
    return _Loader(source).load(text)


def load_config(path: str | Path) -> MemberConfig:
    """Read and validate a configuration file; errors name the path as given."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, 0, None, f"cannot read file: {exc}") from None
    return parse_config(text, source)


# --------------------------------------------------------------------------
# check-config.


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def summarize(cfg: MemberConfig) -> str:
    """One-line summary of a configuration, as ``check-config`` prints it."""
    n_addr = len(cfg.addresses.keys() - predefined_addresses().keys())
    n_svc = len(cfg.services.keys() - predefined_services().keys())
    serial = f" (serial {cfg.serial})" if cfg.serial else ""
    objects = ", ".join(
        (
            _count(len(cfg.interfaces), "interface"),
            _count(len(cfg.routes), "static route"),
            _count(n_addr, "address", "addresses"),
            _count(n_svc, "custom service"),
            _count(len(cfg.policies), "policy", "policies"),
        )
    )
    ha = cfg.ha
    if ha.mode == "standalone":
        return f"{cfg.hostname}{serial}: {objects}; HA standalone"
    details = [
        f"HA {ha.mode} group {ha.group_name!r} id {ha.group_id}",
        f"priority {ha.priority}",
        f"override {'enable' if ha.override else 'disable'}",
        "hbdev " + " ".join(f"{name}/{prio}" for name, prio in ha.hbdev),
    ]
    if ha.session_sync_dev:
        details.append("session-sync-dev " + " ".join(ha.session_sync_dev))
    if ha.monitor:
        details.append("monitor " + " ".join(ha.monitor))
    pickup = "enable" if ha.session_pickup else "disable"
    extras = [
        name
        for name, on in (
            ("connectionless", ha.session_pickup_connectionless),
            ("delay", ha.session_pickup_delay),
        )
        if on
    ]
    if extras:
        pickup += f" ({' '.join(extras)})"
    details.append(f"session-pickup {pickup}")
    return f"{cfg.hostname}{serial}: {objects}; " + ", ".join(details)


def check_config(path: str | Path) -> str:
    """Validate a file; return its summary or raise ``ConfigError``."""
    return summarize(load_config(path))


_USAGE = "usage: fgcp-lab check-config FILE [FILE ...]"


def main(argv: Sequence[str]) -> int:
    """``check-config`` command: print ``OK: <file>: <summary>`` per valid file.

    Errors go to stderr.  Returns 0 when every file is valid, 1 otherwise,
    2 on a usage error.
    """
    args = list(argv)
    if args and args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if not args or any(a.startswith("-") for a in args):
        print(_USAGE, file=sys.stderr)
        return 2
    status = 0
    for path in args:
        try:
            print(f"OK: {path}: {check_config(path)}")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
