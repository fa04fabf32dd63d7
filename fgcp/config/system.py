"""``config system global|interface|ha|session-ttl``: their schema and model builders.

Each ``Section`` declares keys, types and FortiOS defaults; each builder turns the
validated values into fgcp.model objects (the tables are listed in fgcp/config/loader.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Interface

from fgcp.config.reader import Fields, Reader, Table
from fgcp.config.schema import IFNAME, OFF, Key, Section, keys
from fgcp.config.values import (
    Choice,
    Choices,
    HbdevPairs,
    Int,
    InterfaceIP,
    Names,
    Password,
    Text,
)
from fgcp.confparse import Block
from fgcp.model import SERIAL_LEN, HAConfig, Interface, SessionTTL

__all__ = [
    "ALLOWACCESS",
    "GLOBAL",
    "GLOBAL_TABLE",
    "HA",
    "HA_TABLE",
    "INTERFACE",
    "INTERFACE_TABLE",
    "SESSION_TTL",
    "SESSION_TTL_TABLE",
]

ALLOWACCESS = (
    "ping", "https", "ssh", "http", "telnet", "fgfm", "snmp",
    "radius-acct", "probe-response", "fabric", "ftm", "speed-test",
)  # fmt: skip
_IP_NAME = Text(35, r"[A-Za-z0-9_.-]+", "letters, digits, '_', '.', '-'")

# fmt: off
GLOBAL = Section("system global", keys(
    hostname=Key(_IP_NAME, "FortiGate"),
    lab_serial=Key(Text(SERIAL_LEN, r"[!-~]+", "printable ASCII, no spaces"), "",
                   help="lab extension: the member's serial number (default: the hostname"
                        " when it has at most 16 characters)"),
    lab_session_max=Key(Int(1, 10_000_000), 65536,
                        help="lab extension: session table size"),
))
INTERFACE = Section("system interface", keys(
    ip=Key(InterfaceIP(), None),
    allowaccess=Key(Choices(ALLOWACCESS), ()),
    alias=Key(Text(25), ""),
    status=Key(Choice(("up", "down")), "up"),
    description=Key(Text(255), ""),
    vdom=Key(Choice(("root",)), "root", help="accepted; only root exists"),
    type=Key(Choice(("physical",)), "physical", help="accepted; ports only"),
), entry=IFNAME, what="interface")
HA = Section("system ha", keys(
    group_name=Key(Text(32, r"[ -~]*", "printable ASCII: it is sent in every heartbeat"), ""),
    group_id=Key(Int(0, 255), 0),
    mode=Key(Choice(("standalone", "a-p", "a-a")), "standalone"),
    password=Key(Password(128), ""),
    hbdev=Key(HbdevPairs(), (), ref="interface"),
    session_sync_dev=Key(Names(15), (), ref="interface"),
    session_pickup=OFF,
    session_pickup_connectionless=OFF,
    session_pickup_delay=OFF,
    override=OFF,
    priority=Key(Int(0, 255), 128),
    monitor=Key(Names(15), (), ref="interface"),
    hb_interval=Key(Int(1, 20), 2, help="units of hb-interval-in-milliseconds"),
    hb_interval_in_milliseconds=Key(Choice(("100ms", "10ms")), "100ms",
                                    help="the unit of hb-interval"),
    hb_lost_threshold=Key(Int(1, 60), 6),
    hello_holddown=Key(Int(5, 300), 20, help="seconds"),
    ha_uptime_diff_margin=Key(Int(1, 65535), 300, help="seconds"),
    arps=Key(Int(1, 60), 5),
    arps_interval=Key(Int(1, 20), 8, help="seconds"),
    ips_session_sync=Key(Choice(("iccp", "all")), "iccp",
                         help="emulator extension (not FortiOS): IPS state synced for ICCP "
                         "sessions only, or for every flow-inspected session"),
))
SESSION_TTL = Section("system session-ttl", keys(
    default=Key(Int(300, 2_764_800), 3600, help="seconds"),
))
# fmt: on


def _global(r: Reader, blocks: Sequence[Block]) -> Fields:
    v = r.settings(GLOBAL, blocks)
    return {
        "hostname": str(v["hostname"]),
        "serial": str(v["lab-serial"]),
        "session_table_max": v.integer("lab-session-max"),
    }


def _interfaces(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: dict[str, Interface] = {}
    for ident, edit, v in r.table(INTERFACE, blocks):
        name = str(ident)
        if name == "any":
            raise r.error(
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
                    raise r.error(
                        v.line("ip", edit.line),
                        "ip",
                        f"{iface.ip} overlaps {other.name} ({other.ip})",
                    )
        out[name] = iface
    r.define("interface", out)
    return {"interfaces": out}


def _ha(r: Reader, blocks: Sequence[Block]) -> Fields:
    v = r.settings(HA, blocks)
    first = blocks[0].line if blocks else 0
    for key in ("session-pickup-connectionless", "session-pickup-delay"):
        if v[key] and not v["session-pickup"]:
            raise r.error(v.lines[key], key, "needs 'set session-pickup enable'")
    if v["mode"] == "a-a":
        raise r.error(
            v.lines["mode"],
            "mode",
            "a-a (active-active load balancing) is not implemented by the emulator: "
            "it would run as a-p; use 'set mode a-p'",
        )
    if v["mode"] != "standalone" and not v["hbdev"]:
        raise r.error(
            v.line("mode", first),
            "hbdev",
            f"mode {v['mode']} needs at least one heartbeat interface",
        )
    hb_names = {name for name, _prio in v.typed("hbdev", tuple)}
    for name in v.names("monitor"):
        if name in hb_names:
            raise r.error(
                v.lines["monitor"],
                "monitor",
                f"{name!r} is a heartbeat interface (hbdev) and cannot be monitored",
            )
    return {"ha": HAConfig(
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
        hb_interval_in_milliseconds=v.text("hb-interval-in-milliseconds"),
        hb_lost_threshold=v.integer("hb-lost-threshold"),
        hello_holddown=v.integer("hello-holddown"),
        ha_uptime_diff_margin=v.integer("ha-uptime-diff-margin"),
        arps=v.integer("arps"),
        arps_interval=v.integer("arps-interval"),
        ips_session_sync=v.text("ips-session-sync"),
    )}


def _session_ttl(r: Reader, blocks: Sequence[Block]) -> Fields:
    v = r.settings(SESSION_TTL, blocks)
    return {"session_ttl": SessionTTL(default=v.integer("default"))}


GLOBAL_TABLE = Table(GLOBAL, _global)
INTERFACE_TABLE = Table(INTERFACE, _interfaces)
HA_TABLE = Table(HA, _ha)
SESSION_TTL_TABLE = Table(SESSION_TTL, _session_ttl)
