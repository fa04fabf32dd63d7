"""Configuration schema and loader: shipped examples, FortiOS defaults, one test per invalid input."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from fgcp.config import (
    SCHEMA,
    ConfigError,
    check_config,
    load_config,
    main,
    parse_config,
)
from fgcp.model import HAConfig, MemberConfig, Policy, Service, SessionTTL, StaticRoute

CONFIGS = Path(__file__).resolve().parents[2] / "topologies" / "configs"


# --------------------------------------------------------------------------
# The shipped example configurations.


@pytest.fixture(scope="module")
def fgt1() -> MemberConfig:
    return load_config(CONFIGS / "fgt1.conf")


@pytest.fixture(scope="module")
def fgt2() -> MemberConfig:
    return load_config(CONFIGS / "fgt2.conf")


def test_example_identity_and_interfaces(fgt1: MemberConfig) -> None:
    assert fgt1.source == str(CONFIGS / "fgt1.conf")
    assert (fgt1.hostname, fgt1.serial, fgt1.session_table_max) == (
        "FGT1",
        "FGVM01TM00000001",
        65536,
    )
    assert list(fgt1.interfaces) == ["port1", "port2", "port3", "port4", "port5"]
    port1 = fgt1.interfaces["port1"]
    assert port1.ip == IPv4Interface("198.51.100.1/24")
    assert port1.allowaccess == ("ping",)
    assert (port1.alias, port1.status) == ("inside", "up")
    assert fgt1.interfaces["port2"].ip == IPv4Interface("203.0.113.1/24")
    assert fgt1.interfaces["port3"].ip == IPv4Interface("169.254.0.1/26")
    assert fgt1.interfaces["port4"].ip == IPv4Interface("169.254.0.65/26")
    assert fgt1.interfaces["port5"].ip == IPv4Interface("169.254.0.129/26")


def test_example_routes_addresses_services(fgt1: MemberConfig) -> None:
    assert fgt1.routes == (
        StaticRoute(
            seq=1,
            dst=IPv4Network("0.0.0.0/0"),
            gateway=IPv4Address("203.0.113.254"),
            device="port2",
            distance=10,
        ),
    )
    assert fgt1.addresses["inside-net"].subnet == IPv4Network("198.51.100.0/24")
    assert fgt1.addresses["outside-net"].subnet == IPv4Network("203.0.113.0/24")
    blocked = fgt1.addresses["blocked-server"]
    assert blocked.subnet == IPv4Network("203.0.113.66/32")
    assert blocked.contains(int(IPv4Address("203.0.113.66")))
    assert not blocked.contains(int(IPv4Address("203.0.113.67")))
    # Predefined objects are there without being configured.
    assert fgt1.addresses["all"].subnet == IPv4Network("0.0.0.0/0")
    assert fgt1.services["ALL"] == Service("ALL", protocol="IP", protocol_number=0)
    assert fgt1.services["PING"] == Service("PING", protocol="ICMP", icmptype=8)
    assert fgt1.services["HTTPS"].tcp_portrange == ((443, 443),)
    assert fgt1.services["DNS"].udp_portrange == ((53, 53),)
    assert fgt1.services["ALL_TCP"].tcp_portrange == ((1, 65535),)
    assert "iperf3" not in fgt1.services


def test_example_policies_in_file_order(fgt1: MemberConfig) -> None:
    deny, allow = fgt1.policies
    assert deny == Policy(
        policyid=1,
        name="deny-blocked",
        srcintf=("port1",),
        dstintf=("port2",),
        srcaddr=("inside-net",),
        dstaddr=("blocked-server",),
        service=("ALL",),
        action="deny",
        nat=False,
        logtraffic="all",
    )
    assert (allow.policyid, allow.name, allow.action, allow.nat) == (
        2,
        "inside-to-outside",
        "accept",
        True,
    )
    assert (allow.srcaddr, allow.dstaddr, allow.service) == (
        ("inside-net",),
        ("all",),
        ("ALL",),
    )
    assert (allow.inspection_mode, allow.status, allow.ips_sensor) == (
        "flow",
        "enable",
        "",
    )


def test_example_ha(fgt1: MemberConfig) -> None:
    assert fgt1.ha == HAConfig(
        group_name="lab",
        group_id=10,
        mode="a-p",
        password="secret",
        hbdev=(("port3", 50), ("port4", 50)),
        session_sync_dev=("port5",),
        session_pickup=True,
        session_pickup_connectionless=True,
        session_pickup_delay=False,
        override=False,
        priority=200,
        monitor=("port1", "port2"),
        hb_interval=2,
        hb_lost_threshold=6,
        hello_holddown=5,  # the lab's members start in 5 s, not FortiOS's 20
    )
    assert fgt1.session_ttl == SessionTTL(default=3600)


def test_examples_differ_only_in_identity_ha_links_and_priority(
    fgt1: MemberConfig, fgt2: MemberConfig
) -> None:
    assert (fgt2.hostname, fgt2.serial, fgt2.ha.priority) == (
        "FGT2",
        "FGVM01TM00000002",
        100,
    )
    assert fgt2.interfaces["port3"].ip == IPv4Interface("169.254.0.2/26")
    assert fgt2.interfaces["port4"].ip == IPv4Interface("169.254.0.66/26")
    assert fgt2.interfaces["port5"].ip == IPv4Interface("169.254.0.130/26")
    # FGCP synchronizes the configuration: the data ports carry the same addresses.
    for port in ("port1", "port2"):
        assert fgt1.interfaces[port] == fgt2.interfaces[port]
    assert fgt1.policies == fgt2.policies
    assert fgt1.addresses == fgt2.addresses
    assert fgt1.routes == fgt2.routes
    assert dataclasses.replace(fgt1.ha, priority=100) == fgt2.ha


# --------------------------------------------------------------------------
# Defaults and semantics.


def test_no_ha_section_gets_fortios_defaults() -> None:
    cfg = parse_config("config system global\n    set hostname FGT9\nend\n")
    ha = cfg.ha
    assert ha.mode == "standalone"
    assert ha.session_pickup is False
    assert ha.session_pickup_connectionless is False
    assert ha.override is False
    assert ha.priority == 128
    assert ha.hb_interval == 2
    assert ha.hb_lost_threshold == 6
    assert ha.hello_holddown == 20
    assert ha.ha_uptime_diff_margin == 300
    assert (ha.arps, ha.arps_interval) == (5, 8)
    assert (ha.group_id, ha.hbdev, ha.monitor) == (0, (), ())
    assert cfg.session_ttl.default == 3600
    assert cfg.session_table_max == 65536
    assert cfg.serial == ""
    assert cfg.policies == () and cfg.routes == () and cfg.interfaces == {}


def test_empty_text_equals_model_defaults() -> None:
    """The schema's defaults and the model's dataclass defaults agree."""
    cfg = parse_config("", "empty.conf")
    assert cfg == dataclasses.replace(
        MemberConfig(source="empty.conf"),
        addresses=cfg.addresses,  # predefined objects only
        services=cfg.services,
    )
    assert set(cfg.addresses) == {"all"}
    assert {"ALL", "ALL_TCP", "ALL_UDP", "ALL_ICMP", "PING", "HTTP", "HTTPS", "SSH",
            "TELNET", "DNS"} == set(cfg.services)  # fmt: skip


def test_schema_ha_defaults_match_model() -> None:
    model = HAConfig()
    for key, spec in SCHEMA["system ha"].keys.items():
        assert getattr(model, key.replace("-", "_")) == spec.default, key


def test_unset_restores_default_and_later_set_wins() -> None:
    cfg = parse_config(
        "config system ha\n"
        "    set priority 10\n"
        "    set priority 20\n"
        "    set hb-interval 5\n"
        "    unset hb-interval\n"
        "end\n"
        "config system ha\n"
        "    set group-id 7\n"
        "end\n"
    )
    assert (cfg.ha.priority, cfg.ha.hb_interval, cfg.ha.group_id) == (20, 2, 7)


def test_ip_forms_and_lists() -> None:
    cfg = parse_config(
        """
config system interface
    edit "port1"
        set ip 198.51.100.1/24
        set allowaccess ping https ssh
        set status down
    next
    edit "port2"
        set ip 203.0.113.1 255.255.255.128
    next
    edit "port3"
        set ip 0.0.0.0 0.0.0.0
    next
end
config firewall service custom
    edit "iperf3"
        set tcp-portrange 5201 6000-6010
        set udp-portrange 5201
    next
    edit "ICMP-unreach"
        set protocol ICMP
        set icmptype 3
    next
    edit "GRE"
        set protocol IP
        set protocol-number 47
    next
end
config firewall address
    edit "range"
        set type iprange
        set start-ip 203.0.113.10
        set end-ip 203.0.113.20
    next
end
config firewall policy
    edit 5
        set srcintf "any"
        set dstintf "port2" "port1"
        set srcaddr "all"
        set dstaddr "range"
        set service "iperf3" "PING" "GRE"
        set action accept
        set inspection-mode proxy
        set utm-status enable
        set ips-sensor "default"
    next
end
"""
    )
    p1, p2, p3 = (cfg.interfaces[n] for n in ("port1", "port2", "port3"))
    assert p1.ip == IPv4Interface("198.51.100.1/24")
    assert p1.allowaccess == ("ping", "https", "ssh")
    assert p1.status == "down"
    assert p2.ip == IPv4Interface("203.0.113.1/25")
    assert p3.ip is None
    assert cfg.services["iperf3"] == Service(
        "iperf3",
        tcp_portrange=((5201, 5201), (6000, 6010)),
        udp_portrange=((5201, 5201),),
    )
    assert cfg.services["ICMP-unreach"] == Service(
        "ICMP-unreach", protocol="ICMP", icmptype=3
    )
    assert cfg.services["GRE"] == Service("GRE", protocol="IP", protocol_number=47)
    rng = cfg.addresses["range"]
    assert rng.subnet is None
    assert rng.contains(int(IPv4Address("203.0.113.15")))
    assert not rng.contains(int(IPv4Address("203.0.113.21")))
    (pol,) = cfg.policies
    assert pol.srcintf == ("any",)
    assert pol.dstintf == ("port2", "port1")
    assert pol.service == ("iperf3", "PING", "GRE")
    assert (pol.inspection_mode, pol.ips_sensor) == ("proxy", "default")


def test_first_error_in_file_order_is_reported() -> None:
    text = ha("set priority 300") + port1("set ip 198.51.100.300/24")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "two.conf")
    assert (info.value.line, info.value.key) == (12, "priority")


def test_user_may_redefine_a_predefined_object() -> None:
    cfg = parse_config(
        'config firewall service custom\n    edit "HTTP"\n        set tcp-portrange 8080\n'
        "    next\nend\n"
    )
    assert cfg.services["HTTP"].tcp_portrange == ((8080, 8080),)


# --------------------------------------------------------------------------
# check-config.


def test_check_config_summary() -> None:
    summary = check_config(CONFIGS / "fgt1.conf")
    assert summary.startswith(
        "FGT1 (serial FGVM01TM00000001): 5 interfaces, 1 static route,"
    )
    assert "2 policies" in summary
    assert "HA a-p group 'lab' id 10, priority 200" in summary
    assert "hbdev port3/50 port4/50" in summary
    assert "session-pickup enable (connectionless)" in summary


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.conf")), ids=lambda p: p.name)
def test_shipped_configs_load_and_run_a_mode_the_emulator_has(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.ha.mode in ("standalone", "a-p")  # a-a is rejected (not implemented)


def test_main_ok_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(CONFIGS / "fgt1.conf"), str(CONFIGS / "fgt2.conf")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["OK", "OK"]
    assert "FGT2" in out[1]

    bad = tmp_path / "bad.conf"
    bad.write_text("config system ha\n    set priority 300\nend\n")
    assert main([str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}:2: key 'priority': 300 is out of range 0-255" in captured.err

    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert (info.value.line, info.value.key) == (0, None)
    assert str(info.value).startswith(f"{missing}: cannot read file")


# --------------------------------------------------------------------------
# One test per invalid input.  The offending line is marked "# <-"; each case
# asserts that line, the key and a substring of the reason.

IFACES = """\
config system interface
    edit "port1"
        set ip 198.51.100.1 255.255.255.0
    next
    edit "port2"
        set ip 203.0.113.1/24
    next
    edit "port3"
    next
end
"""


def edit(section: str, name: str, *lines: str) -> str:
    """``config <section>`` holding one ``edit <name>`` with ``lines`` inside."""
    body = "".join(f"        {line}\n" for line in lines)
    return f"config {section}\n    edit {name}\n{body}    next\nend\n"


def port1(*lines: str) -> str:
    return edit("system interface", '"port1"', *lines)


def address(*lines: str, name: str = '"a"') -> str:
    return edit("firewall address", name, *lines)


def service(*lines: str, name: str = '"s"') -> str:
    return edit("firewall service custom", name, *lines)


def route(*lines: str, seq: str = "1") -> str:
    return IFACES + edit("router static", seq, *lines)


def settings(section: str, *lines: str) -> str:
    body = "".join(f"    {line}\n" for line in lines)
    return f"config {section}\n{body}end\n"


def ha(*lines: str) -> str:
    """Interfaces plus a ``config system ha`` holding ``lines``."""
    return IFACES + settings("system ha", *lines)


def policy(*lines: str, policyid: str = "1") -> str:
    """Interfaces plus a valid policy with ``lines`` appended inside its edit."""
    return IFACES + edit(
        "firewall policy",
        policyid,
        'set srcintf "port1"',
        'set dstintf "port2"',
        'set srcaddr "all"',
        'set dstaddr "all"',
        'set service "ALL"',
        "set action accept",
        *lines,
    )


NO_SERVICE = (
    'set srcintf "port1"',
    'set dstintf "port2"',
    'set srcaddr "all"',
    'set dstaddr "all"',
)

INVALID: list[tuple[str, str, str | None, str]] = [
    # sections and keys
    ("unknown-section", settings("system dns  # <-", "set primary 1.1.1.1"), None,
     "unknown section 'config system dns'"),
    ("unknown-nested-section", port1("config ipv6  # <-", "end"), None,
     "unknown section 'config ipv6' inside 'edit port1' of 'config system interface'"),
    ("unknown-key", ha("set prioriti 100  # <-"), "prioriti", "did you mean 'priority'"),
    ("unknown-interface-key", port1("set mtu 9000  # <-"), "mtu",
     "unknown key in 'config system interface'"),
    ("edit-in-settings-section", edit("system ha", "1  # <-"), None,
     "'edit' is not allowed in 'config system ha'"),
    ("set-in-table-section", settings("firewall policy", "set name x  # <-"), "name",
     "'set' must be inside 'edit'"),
    ("one-value-expected", ha("set priority 100 200  # <-"), "priority", "expects one value, got 2"),
    # syntax (reported through the loader as well)
    ("unterminated-quote", settings("system global", 'set hostname "FGT1  # <-'), None,
     "unterminated quote"),
    ("missing-end", "config system global  # <-\n    set hostname FGT1\n", None,
     "not closed by 'end'"),
    ("next-outside-edit", settings("system ha", "next  # <-"), None, "'next' outside 'edit'"),
    # interfaces, addresses and masks
    ("bad-ip", port1("set ip 198.51.100.300 255.255.255.0  # <-"), "ip",
     "'198.51.100.300' is not a valid IPv4 address"),
    ("bad-mask", port1("set ip 198.51.100.1 255.0.255.0  # <-"), "ip",
     "'255.0.255.0' is not a valid netmask"),
    ("bad-prefix-length", port1("set ip 198.51.100.1/33  # <-"), "ip", "not a valid prefix length"),
    ("ip-without-mask", port1("set ip 198.51.100.1  # <-"), "ip", "needs a netmask"),
    ("interface-ip-is-network-address", port1("set ip 198.51.100.0/24  # <-"), "ip",
     "is the network address"),
    ("overlapping-interfaces",
     port1("set ip 198.51.100.1/24")
     + edit("system interface", "port2", "set ip 198.51.100.129/25  # <-"), "ip",
     "overlaps port1 (198.51.100.1/24)"),
    ("interface-named-any", edit("system interface", "any  # <-"), "edit", "'any' is reserved"),
    ("interface-name-too-long", edit("system interface", "port1234567890123  # <-"), "edit",
     "interface name: 'port1234567890123' is longer than 15 characters"),
    ("bad-allowaccess", port1("set allowaccess ping smtp  # <-"), "allowaccess",
     "'smtp' is not one of"),
    ("vdom-not-root", port1("set vdom lab  # <-"), "vdom", "'lab' is not one of root"),
    ("address-host-bits", address("set subnet 198.51.100.7 255.255.255.0  # <-"), "subnet",
     "has host bits set (did you mean 198.51.100.0/24?)"),
    ("iprange-missing-end",
     address("set type iprange", "set start-ip 203.0.113.1", name='"r"  # <-'), "end-ip",
     "address 'r' of type iprange needs 'set end-ip'"),
    ("iprange-reversed",
     address("set type iprange", "set start-ip 203.0.113.9", "set end-ip 203.0.113.1  # <-"),
     "end-ip", "is below start-ip"),
    ("iprange-with-subnet", address("set type iprange", "set subnet 203.0.113.0/24  # <-"),
     "subnet", "not used with type iprange"),
    ("start-ip-with-ipmask", address("set start-ip 203.0.113.1  # <-"), "start-ip",
     "only used with type iprange"),
    # integers and enums
    ("group-id-out-of-range", ha("set group-id 256  # <-"), "group-id", "256 is out of range 0-255"),
    ("bad-priority", ha("set priority 300  # <-"), "priority", "300 is out of range 0-255"),
    ("negative-priority", ha("set priority -1  # <-"), "priority", "-1 is out of range 0-255"),
    ("priority-not-a-number", ha("set priority high  # <-"), "priority", "'high' is not an integer"),
    ("hb-interval-zero", ha("set hb-interval 0  # <-"), "hb-interval", "0 is out of range 1-20"),
    ("hb-interval-unit-unknown", ha("set hb-interval-in-milliseconds 50ms  # <-"),
     "hb-interval-in-milliseconds", "'50ms' is not one of 100ms, 10ms"),
    ("hb-lost-threshold-high", ha("set hb-lost-threshold 61  # <-"), "hb-lost-threshold",
     "61 is out of range 1-60"),
    ("hello-holddown-low", ha("set hello-holddown 4  # <-"), "hello-holddown",
     "4 is out of range 5-300"),
    ("uptime-margin-zero", ha("set ha-uptime-diff-margin 0  # <-"), "ha-uptime-diff-margin",
     "0 is out of range 1-65535"),
    ("arps-interval-high", ha("set arps-interval 21  # <-"), "arps-interval",
     "21 is out of range 1-20"),
    ("bad-mode", ha("set mode active-passive  # <-"), "mode",
     "'active-passive' is not one of standalone, a-p, a-a"),
    ("mode-a-a-not-implemented", ha('set hbdev "port3" 50', "set mode a-a  # <-"), "mode",
     ("a-a (active-active load balancing) is not implemented by the emulator: it would run "
      "as a-p; use 'set mode a-p'")),
    ("bad-flag", ha("set session-pickup yes  # <-"), "session-pickup",
     "'yes' is not one of enable, disable"),
    ("session-ttl-too-low", settings("system session-ttl", "set default 100  # <-"), "default",
     "100 is out of range 300-2764800"),
    ("session-max-zero", settings("system global", "set lab-session-max 0  # <-"),
     "lab-session-max", "0 is out of range 1-10000000"),
    ("bad-hostname", settings("system global", 'set hostname "FGT 1"  # <-'), "hostname",
     "is not a valid name"),
    ("serial-too-long", settings("system global", "set lab-serial FGVM01TM000000001  # <-"),
     "lab-serial", "longer than 16 characters"),
    # HA
    ("hbdev-odd-pair-count", ha('set hbdev "port3" 50 "port2"  # <-'), "hbdev",
     "expects interface/priority pairs, got 3 values"),
    ("hbdev-bad-priority", ha('set hbdev "port3" 513  # <-'), "hbdev",
     "priority of 'port3': 513 is out of range 0-512"),
    ("hbdev-listed-twice", ha('set hbdev "port3" 50 "port3" 40  # <-'), "hbdev",
     "'port3' is listed twice"),
    ("hbdev-undefined-interface", ha('set hbdev "port9" 50  # <-'), "hbdev",
     "interface 'port9' is not configured"),
    ("session-sync-dev-undefined", ha('set hbdev "port3" 50', "set session-sync-dev port8  # <-"),
     "session-sync-dev", "interface 'port8' is not configured"),
    ("monitor-undefined", ha('set monitor "port1" "port7"  # <-'), "monitor",
     "interface 'port7' is not configured"),
    ("monitor-heartbeat-interface", ha('set hbdev "port3" 50', 'set monitor "port3"  # <-'),
     "monitor", "'port3' is a heartbeat interface"),
    ("ha-mode-without-hbdev", ha("set mode a-p  # <-"), "hbdev",
     "mode a-p needs at least one heartbeat interface"),
    ("connectionless-without-pickup", ha("set session-pickup-connectionless enable  # <-"),
     "session-pickup-connectionless", "needs 'set session-pickup enable'"),
    ("encrypted-password", ha("set password ENC AAAAbase64==  # <-"), "password",
     "encrypted passwords"),
    ("group-name-too-long", ha(f"set group-name {'g' * 33}  # <-"), "group-name",
     "longer than 32 characters"),
    # routes
    ("route-device-undefined", route("set gateway 203.0.113.254", "set device port6  # <-"),
     "device", "interface 'port6' is not configured"),
    ("route-without-device", route("set gateway 203.0.113.254", seq="1  # <-"), "device",
     "route '1' needs 'set device'"),
    ("route-distance-zero", route("set device port2", "set distance 0  # <-"), "distance",
     "0 is out of range 1-255"),
    ("route-bad-gateway", route("set device port2", "set gateway 203.0.113.x  # <-"), "gateway",
     "is not a valid IPv4 address"),
    ("route-bad-seq", route("set device port2", seq="first  # <-"), "edit",
     "route seq: 'first' is not an integer"),
    # services
    ("portrange-reversed", service("set tcp-portrange 80-70  # <-"), "tcp-portrange",
     "low port is above high port"),
    ("portrange-zero", service("set udp-portrange 0  # <-"), "udp-portrange",
     "0 is out of range 1-65535"),
    ("portrange-source-ports", service("set tcp-portrange 80:1024-2000  # <-"), "tcp-portrange",
     "source port ranges"),
    ("service-without-ports", service("set comment x", name='"s"  # <-'), "tcp-portrange",
     "needs 'set tcp-portrange' or 'set udp-portrange'"),
    ("icmptype-with-tcp", service("set tcp-portrange 80", "set icmptype 8  # <-"), "icmptype",
     "not used with protocol TCP/UDP/SCTP"),
    ("bad-protocol", service("set protocol GRE  # <-"), "protocol", "'GRE' is not one of"),
    # policies
    ("duplicate-policy-id", policy() + edit("firewall policy", "1  # <-", *NO_SERVICE), "edit",
     "policy '1' is already defined at line 12"),
    ("duplicate-interface", IFACES + edit("system interface", '"port2"  # <-'), "edit",
     "interface 'port2' is already defined at line 5"),
    ("policy-id-not-a-number", edit("firewall policy", "first  # <-"), "edit",
     "policy id: 'first' is not an integer"),
    ("policy-id-zero", edit("firewall policy", "0  # <-"), "edit",
     "policy id: 0 is out of range 1-4294967294"),
    ("undefined-srcaddr", policy('set srcaddr "inside-net"  # <-'), "srcaddr",
     "address 'inside-net' is not defined"),
    ("undefined-dstaddr", policy('set dstaddr "all" "nowhere"  # <-'), "dstaddr",
     "address 'nowhere' is not defined"),
    ("undefined-service", policy('set service "iperf3"  # <-'), "service",
     "service 'iperf3' is not defined"),
    ("undefined-srcintf", policy('set srcintf "port9"  # <-'), "srcintf",
     "interface 'port9' is not configured"),
    ("undefined-dstintf", policy('set dstintf "wan1"  # <-'), "dstintf",
     "interface 'wan1' is not configured"),
    ("any-combined", policy('set srcintf "any" "port1"  # <-'), "srcintf",
     "'any' cannot be combined"),
    ("name-listed-twice", policy('set service "ALL" "ALL"  # <-'), "service",
     "'ALL' is listed twice"),
    ("policy-missing-service", IFACES + edit("firewall policy", "4  # <-", *NO_SERVICE),
     "service", "policy '4' needs 'set service'"),
    ("policy-service-unset", policy("unset service", policyid="4  # <-"), "service",
     "policy '4' needs 'set service'"),
    ("bad-action", policy("set action allow  # <-"), "action", "'allow' is not one of accept, deny"),
    ("nat-with-deny", policy("set action deny", "set nat enable  # <-"), "nat",
     "not available with action deny"),
    ("ips-sensor-without-utm-status", policy('set ips-sensor "default"  # <-'), "ips-sensor",
     "needs 'set utm-status enable'"),
    ("undefined-ips-sensor", policy("set utm-status enable", 'set ips-sensor "strict"  # <-'),
     "ips-sensor", "ips-sensor 'strict' is not defined"),
    ("bad-inspection-mode", policy("set inspection-mode deep  # <-"), "inspection-mode",
     "'deep' is not one of flow, proxy"),
    ("bad-schedule", policy('set schedule "weekdays"  # <-'), "schedule",
     "'weekdays' is not one of always"),
    ("policy-name-too-long", policy(f"set name {'n' * 36}  # <-"), "name",
     "longer than 35 characters"),
]  # fmt: skip


def _marked_line(text: str) -> int:
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    assert len(marked) == 1, "each invalid case marks exactly one line"
    return marked[0]


@pytest.mark.parametrize(
    ("text", "key", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_input(text: str, key: str | None, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.conf")
    err = info.value
    line = _marked_line(text)
    assert (err.source, err.line, err.key) == ("bad.conf", line, key), str(err)
    assert reason in err.reason, str(err)
    prefix = f"bad.conf:{line}: " + (f"key {key!r}: " if key else "")
    assert str(err) == prefix + err.reason


def test_invalid_case_ids_are_unique() -> None:
    ids = [c[0] for c in INVALID]
    assert len(ids) == len(set(ids))
