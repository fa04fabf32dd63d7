"""ZTNA configuration (issue 11): the shipped ztna-fgtN.conf and one test per invalid input."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from fgcp.config import ConfigError, check_config, load_config, parse_config
from fgcp.config.ztna import lab_path
from fgcp.model import (
    AccessProxy,
    AccessProxyVip,
    ApiGateway,
    CaCertificate,
    EmsServer,
    EmsTag,
    LocalCertificate,
    MemberConfig,
    ProxyPolicy,
    RealServer,
    ZtnaConfig,
)
from tests.unit.test_config import IFACES, _marked_line, address, edit

CONFIGS = Path(__file__).resolve().parents[2] / "topologies" / "configs"


@pytest.fixture(scope="module")
def ztna1() -> MemberConfig:
    return load_config(CONFIGS / "ztna-fgt1.conf")


def test_shipped_access_proxy(ztna1: MemberConfig) -> None:
    z = ztna1.ztna
    assert z.enabled
    assert z.vips == {
        "ztna-vip": AccessProxyVip(
            "ztna-vip", extip="198.51.100.100", extintf="port1", extport=8443,
            server_cert="ztna-server",
        )
    }
    assert z.proxies == {
        "ztna-proxy": AccessProxy(
            "ztna-proxy", vip="ztna-vip", client_cert=True, empty_cert_action="block",
            apis=(ApiGateway(1, "tcp-forwarding", (RealServer(1, "203.0.113.11", 8080),)),),
        )
    }
    # the VIP is in the inside segment, served on the interface facing the clients
    port1 = ztna1.interfaces["port1"].ip
    assert port1 is not None and IPv4Address(z.vips["ztna-vip"].extip) in port1.network


def test_shipped_trust_material_tags_and_policy(ztna1: MemberConfig) -> None:
    z = ztna1.ztna
    assert z.tags == {
        "ZTNA_compliant": EmsTag("ZTNA_compliant", "compliant"),
        "ZTNA_managed": EmsTag("ZTNA_managed", "managed"),
    }
    # EMS tags are not IP addresses: the firewall policies cannot match on them
    assert "ZTNA_compliant" not in ztna1.addresses
    assert z.policies == (
        ProxyPolicy(
            id=1, name="ztna-compliant", access_proxy=("ztna-proxy",), srcintf=("port1",),
            srcaddr=("all",), dstaddr=("all",), ztna_ems_tag=("ZTNA_compliant",),
            action="accept",
        ),
    )
    assert z.policies_for("ztna-proxy") == z.policies
    assert z.policies_for("other") == ()
    assert z.ems_tags(z.policies[0]) == ("compliant",)
    assert z.ems == EmsServer("ems", "ztna-ems.sock", "EMS_CA")
    assert z.ems_ca() == CaCertificate("EMS_CA", "ztna-pki/ca.pem", "ztna-pki/crl.pem")
    assert z.certificates.local == {
        "ztna-server": LocalCertificate(
            "ztna-server", "ztna-pki/devices/ztna-server.pem", "ztna-pki/devices/ztna-server.key"
        )
    }


def test_shipped_ztna_configs_are_the_sync_configs_plus_ztna() -> None:
    for n in (1, 2):
        sync = load_config(CONFIGS / f"sync-fgt{n}.conf")
        ztna = load_config(CONFIGS / f"ztna-fgt{n}.conf")
        assert dataclasses.replace(ztna, source=sync.source, ztna=ZtnaConfig()) == sync
    assert load_config(CONFIGS / "ztna-fgt2.conf").ztna == load_config(
        CONFIGS / "ztna-fgt1.conf"
    ).ztna


def test_without_ztna_sections_the_ztna_config_is_empty() -> None:
    cfg = load_config(CONFIGS / "sync-fgt1.conf")
    assert cfg.ztna == ZtnaConfig() and not cfg.ztna.enabled and cfg.ztna.ems_ca() is None


def test_check_config_counts_the_ztna_objects() -> None:
    summary = check_config(CONFIGS / "ztna-fgt1.conf")
    assert (
        "; ZTNA 1 access-proxy (ztna-proxy 198.51.100.100:8443 -> 203.0.113.11:8080), "
        "1 proxy-policy, 2 EMS tags, EMS 'ems'; HA a-p" in summary
    )
    assert "ZTNA" not in check_config(CONFIGS / "sync-fgt1.conf")


def test_lab_paths_are_relative_to_the_run_directory() -> None:
    assert lab_path("ztna-ems.sock", "/run/x") == Path("/run/x/ztna-ems.sock")
    assert lab_path("/tmp/ems.sock", "/run/x") == Path("/tmp/ems.sock")


def test_match_logic_and_disabled_policies() -> None:
    text = _full(policy_lines=("set ztna-tags-match-logic and",)) + edit(
        "firewall proxy-policy", "2", *_POLICY, "set status disable"
    )
    z = parse_config(text).ztna
    assert [p.ztna_tags_match_logic for p in z.policies] == ["and", "or"]
    assert [p.id for p in z.policies_for("p")] == [1]


# --------------------------------------------------------------------------
# Invalid input: the offending line is marked "# <-" (see tests/unit/test_config.py).

_CA = ('set lab-file "pki/ca.pem"',)
_LOCAL = ('set lab-cert-file "s.pem"', 'set lab-key-file "s.key"')
_EMS = ('set lab-socket "ems.sock"', 'set lab-ca-cert "ca"')
_VIP = ("set type access-proxy", "set extip 198.51.100.100", 'set extintf "port1"',
        "set extport 8443", 'set ssl-certificate "srv"')  # fmt: skip
_POLICY = ("set proxy access-proxy", 'set access-proxy "p"', 'set srcintf "port1"',
           'set ztna-ems-tag "T"', "set action accept")  # fmt: skip
_TAG = ("set type dynamic", "set sub-type ems-tag", 'set obj-tag "compliant"')


def _gateway(*lines: str, realserver: tuple[str, ...] = ("set ip 203.0.113.11",)) -> str:
    """An access-proxy ``p`` body: ``lines``, then one api-gateway with one realserver."""
    rs = "".join(f"                        {line}\n" for line in realserver)
    body = "".join(f"        {line}\n" for line in lines)
    return (
        f'config firewall access-proxy\n    edit "p"\n{body}'
        "        config api-gateway\n            edit 1\n"
        "                set service tcp-forwarding\n"
        "                config realservers\n                    edit 1\n"
        f"{rs}                    next\n                end\n"
        "            next\n        end\n    next\nend\n"
    )


def _full(
    *,
    ca: tuple[str, ...] = _CA,
    local: tuple[str, ...] = _LOCAL,
    ems: tuple[str, ...] = _EMS,
    tag: tuple[str, ...] = _TAG,
    vip: tuple[str, ...] = _VIP,
    proxy: str = "",
    policy_lines: tuple[str, ...] = (),
) -> str:
    """A valid ZTNA configuration; each part may be replaced (a marked line inside)."""
    return (
        IFACES
        + edit("vpn certificate ca", '"ca"', *ca)
        + edit("vpn certificate local", '"srv"', *local)
        + edit("endpoint-control fctems", '"ems"', *ems)
        + address(*tag, name='"T"')
        + edit("firewall vip", '"v"', *vip)
        + (proxy or _gateway('set vip "v"'))
        + edit("firewall proxy-policy", "1", *_POLICY, *policy_lines)
    )


def test_the_valid_base_loads() -> None:
    z = parse_config(_full()).ztna
    assert z.proxies["p"].apis[0].realservers == (RealServer(1, "203.0.113.11", 443),)
    assert z.ems_tags(z.policies[0]) == ("compliant",)


INVALID: list[tuple[str, str, str | None, str]] = [
    # vip
    ("vip-static-nat", _full(vip=("set type static-nat  # <-",) + _VIP[1:]), "type",
     "vip 'v': only type access-proxy is emulated"),
    ("vip-without-type", _full(vip=_VIP[1:])
     .replace('edit "v"', 'edit "v"  # <-'), "type", "vip 'v' needs 'set type'"),
    ("vip-undefined-certificate",
     _full(vip=_VIP[:4] + ('set ssl-certificate "nope"  # <-',)), "ssl-certificate",
     "local certificate 'nope' is not defined"),
    ("vip-undefined-extintf", _full(vip=_VIP[:2] + ('set extintf "port9"  # <-',) + _VIP[3:]),
     "extintf", "interface 'port9' is not configured"),
    ("vip-bad-extport", _full(vip=_VIP[:3] + ("set extport 70000  # <-",) + _VIP[4:]),
     "extport", "70000 is out of range 1-65535"),
    ("vip-zero-extip", _full(vip=_VIP[:1] + ("set extip 0.0.0.0  # <-",) + _VIP[2:]),
     "extip", "0.0.0.0 is not an address"),
    ("vip-server-type-http", _full(vip=_VIP + ("set server-type http  # <-",)),
     "server-type", "'http' is not one of https"),
    ("vip-endpoint-twice", _full() + edit("firewall vip", '"w"', *_VIP[:3],
                                          "set extport 8443  # <-", _VIP[4]),
     "extport", "198.51.100.100:8443 is already used by vip 'v'"),
    # access-proxy
    ("proxy-undefined-vip", _full(proxy=_gateway('set vip "nope"  # <-')), "vip",
     "vip 'nope' is not defined"),
    ("proxy-without-vip", _full(proxy=_gateway().replace('edit "p"', 'edit "p"  # <-')),
     "vip", "access-proxy 'p' needs 'set vip'"),
    ("proxy-bad-service",
     _full(proxy=_gateway('set vip "v"').replace("set service tcp-forwarding",
                                                 "set service https  # <-")),
     "service", "'https' is not one of tcp-forwarding"),
    ("proxy-without-api-gateway",
     _full(proxy=edit("firewall access-proxy", '"p"  # <-', 'set vip "v"')), "api-gateway",
     "access-proxy 'p' needs an api-gateway"),
    ("api-gateway-without-realserver",
     _full(proxy=edit("firewall access-proxy", '"p"', 'set vip "v"', "config api-gateway",
                      "    edit 1  # <-", "        set service tcp-forwarding", "    next",
                      "end")),
     "realservers", "api-gateway '1' needs a realserver"),
    ("realserver-without-ip",
     _full(proxy=_gateway('set vip "v"', realserver=("set port 8080",)).replace(
         "                    edit 1\n", "                    edit 1  # <-\n")),
     "ip", "realserver '1' needs 'set ip'"),
    ("realserver-bad-port",
     _full(proxy=_gateway('set vip "v"', realserver=("set ip 203.0.113.11",
                                                      "set port 0  # <-"))),
     "port", "0 is out of range 1-65535"),
    ("proxy-unknown-nested-section",
     _full(proxy=_gateway('set vip "v"', "config realservers  # <-", "end")), None,
     "unknown section 'config realservers' inside 'edit p' of 'config firewall access-proxy'"),
    ("realserver-unknown-key",
     _full(proxy=_gateway('set vip "v"', realserver=("set ip 203.0.113.11",
                                                      "set weight 5  # <-"))),
     "weight", "unknown key in 'config realservers'"),
    ("vip-used-twice",
     _full(proxy=_gateway('set vip "v"') + _gateway('set vip "v"  # <-').replace(
         'edit "p"', 'edit "q"')),
     "vip", "vip 'v' is already used by access-proxy 'p'"),
    ("client-cert-without-ems",
     IFACES + edit("vpn certificate local", '"srv"', *_LOCAL) + edit("firewall vip", '"v"', *_VIP)
     + _gateway('set vip "v"', "set client-cert enable  # <-"), "client-cert",
     "access-proxy 'p' checks client certificates: it needs an enabled EMS"),
    ("bad-empty-cert-action", _full(proxy=_gateway('set vip "v"',
                                                    "set empty-cert-action allow  # <-")),
     "empty-cert-action", "'allow' is not one of accept, block, accept-unmanageable"),
    # EMS tags (config firewall address)
    ("tag-sub-type-sdn", _full(tag=("set type dynamic", "set sub-type sdn  # <-",
                                    'set obj-tag "x"')),
     "sub-type", "only dynamic addresses of sub-type ems-tag are emulated"),
    ("tag-without-obj-tag", _full(tag=_TAG[:2]).replace('edit "T"', 'edit "T"  # <-'),
     "obj-tag", "EMS tag address 'T' needs 'set obj-tag'"),
    ("tag-with-subnet", _full(tag=_TAG + ("set subnet 198.51.100.0/24  # <-",)), "subnet",
     "not used with type dynamic"),
    ("obj-tag-on-ipmask", address('set obj-tag "x"  # <-'), "obj-tag",
     "only used with type dynamic"),
    # proxy-policy
    ("policy-undefined-tag", _full(policy_lines=('set ztna-ems-tag "nope"  # <-',)),
     "ztna-ems-tag", "ems-tag 'nope' is not defined"),
    ("policy-ip-address-as-tag", _full(policy_lines=('set ztna-ems-tag "all"  # <-',)),
     "ztna-ems-tag", "ems-tag 'all' is not defined"),
    ("policy-undefined-access-proxy", _full(policy_lines=('set access-proxy "q"  # <-',)),
     "access-proxy", "access-proxy 'q' is not defined"),
    ("policy-tag-as-srcaddr", _full(policy_lines=('set srcaddr "T"  # <-',)), "srcaddr",
     "address 'T' is not defined"),
    ("policy-explicit-web", _full(policy_lines=("set proxy explicit-web  # <-",)), "proxy",
     "'explicit-web' is not one of access-proxy"),
    ("policy-without-proxy",
     IFACES + edit("firewall proxy-policy", "1  # <-", *_POLICY[1:]), "proxy",
     "proxy-policy '1' needs 'set proxy'"),
    ("policy-bad-match-logic", _full(policy_lines=("set ztna-tags-match-logic xor  # <-",)),
     "ztna-tags-match-logic", "'xor' is not one of or, and"),
    ("policy-any-combined", _full(policy_lines=('set srcintf "any" "port1"  # <-',)), "srcintf",
     "'any' cannot be combined"),
    ("policy-undefined-srcintf", _full(policy_lines=('set srcintf "port7"  # <-',)), "srcintf",
     "interface 'port7' is not configured"),
    # certificates and EMS
    ("ca-without-file", _full(ca=("set comments x",)).replace('edit "ca"', 'edit "ca"  # <-'),
     "lab-file", "CA certificate 'ca' needs 'set lab-file'"),
    ("local-without-key", _full(local=_LOCAL[:1]).replace('edit "srv"', 'edit "srv"  # <-'),
     "lab-key-file", "local certificate 'srv' needs 'set lab-key-file'"),
    ("ems-undefined-ca", _full(ems=(_EMS[0], 'set lab-ca-cert "other"  # <-')), "lab-ca-cert",
     "CA certificate 'other' is not defined"),
    ("ems-without-socket", _full(ems=_EMS[1:]).replace('edit "ems"', 'edit "ems"  # <-'),
     "lab-socket", "EMS 'ems' needs 'set lab-socket'"),
    ("two-ems", _full() + edit("endpoint-control fctems", '"ems2"  # <-', *_EMS), "edit",
     "only one EMS is emulated ('ems' is enabled)"),
]  # fmt: skip


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


def test_a_disabled_second_ems_is_accepted() -> None:
    text = _full() + edit("endpoint-control fctems", '"ems2"', *_EMS, "set status disable")
    assert parse_config(text).ztna.ems == EmsServer("ems", "ems.sock", "ca")


def test_invalid_case_ids_are_unique() -> None:
    ids = [c[0] for c in INVALID]
    assert len(ids) == len(set(ids))
