"""ZTNA tables: ``config vpn certificate ca|local``, ``endpoint-control fctems``,
``firewall vip`` (type access-proxy), ``firewall access-proxy`` and ``firewall proxy-policy``.

Each builder fills one attribute of ``MemberConfig.ztna`` (fields named ``"ztna.<attr>"``,
folded into one ZtnaConfig by fgcp/config/loader.py); the EMS tag addresses (``config firewall address`` /
``set type dynamic``) are read by fgcp/config/firewall.py.  docs/ztna.md lists the subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

from fgcp.config.reader import Fields, Reader, Table, Values, as_int
from fgcp.config.schema import IFNAME, OBJNAME, Key, Section, keys
from fgcp.config.values import Choice, Flag, Int, IPAddress, Names, Text
from fgcp.confparse import Block, Edit
from fgcp.model import (
    AccessProxy,
    AccessProxyVip,
    ApiGateway,
    CaCertificate,
    EmsServer,
    LocalCertificate,
    ProxyPolicy,
    RealServer,
)

__all__ = [
    "ACCESS_PROXY",
    "ACCESS_PROXY_TABLE",
    "API_GATEWAY",
    "CA_CERT",
    "CA_CERT_TABLE",
    "FCTEMS",
    "FCTEMS_TABLE",
    "LOCAL_CERT",
    "LOCAL_CERT_TABLE",
    "PROXY_POLICY",
    "PROXY_POLICY_TABLE",
    "REALSERVER",
    "VIP",
    "VIP_TABLE",
    "lab_path",
]

_PATH = Text(255, r"[^\x00-\x1f]+", "no control characters")
_ID = Int(1, 4_294_967_295)

# fmt: off
CA_CERT = Section("vpn certificate ca", keys(
    lab_file=Key(_PATH, "", help="lab extension: the CA certificate (PEM file)"),
    lab_crl_file=Key(_PATH, "", help="lab extension: its CRL (PEM file), optional"),
    comments=Key(Text(511), ""),
), entry=OBJNAME, what="CA certificate", required=("lab-file",))
LOCAL_CERT = Section("vpn certificate local", keys(
    lab_cert_file=Key(_PATH, "", help="lab extension: the certificate (PEM file)"),
    lab_key_file=Key(_PATH, "", help="lab extension: its private key (PEM file)"),
    comments=Key(Text(511), ""),
), entry=OBJNAME, what="local certificate", required=("lab-cert-file", "lab-key-file"))
FCTEMS = Section("endpoint-control fctems", keys(
    status=Key(Choice(("enable", "disable")), "enable"),
    lab_socket=Key(_PATH, "", help="lab extension: the EMS stand-in's unix socket"),
    lab_ca_cert=Key(OBJNAME, "", ref="CA certificate",
                    help="lab extension: the CA that issues the device certificates"),
), entry=OBJNAME, what="EMS", required=("lab-socket", "lab-ca-cert"))
VIP = Section("firewall vip", keys(
    type=Key(Choice(("static-nat", "access-proxy")), "static-nat"),
    extip=Key(IPAddress(), None),
    extintf=Key(IFNAME, "any", ref="interface", ref_extra=("any",)),
    extport=Key(Int(1, 65535), 0),
    server_type=Key(Choice(("https",)), "https"),
    ssl_certificate=Key(OBJNAME, "", ref="local certificate"),
    comment=Key(Text(255), ""),
), entry=OBJNAME, what="vip", required=("type", "extip", "extport", "ssl-certificate"))
ACCESS_PROXY = Section("firewall access-proxy", keys(
    vip=Key(OBJNAME, "", ref="vip"),
    client_cert=Key(Flag(), True),
    empty_cert_action=Key(Choice(("accept", "block", "accept-unmanageable")), "block"),
), entry=OBJNAME, what="access-proxy", required=("vip",))
API_GATEWAY = Section("api-gateway", keys(
    service=Key(Choice(("tcp-forwarding",)), "", help="only tcp-forwarding is emulated"),
), entry=_ID, what="api-gateway", ident="id", required=("service",))
REALSERVER = Section("realservers", keys(
    ip=Key(IPAddress(), None),
    port=Key(Int(1, 65535), 443),
), entry=_ID, what="realserver", ident="id", required=("ip",))
PROXY_POLICY = Section("firewall proxy-policy", keys(
    name=Key(Text(35), ""),
    proxy=Key(Choice(("access-proxy",)), "", help="only access-proxy is emulated"),
    access_proxy=Key(Names(), (), ref="access-proxy"),
    srcintf=Key(Names(15), (), ref="interface", ref_extra=("any",)),
    srcaddr=Key(Names(), (), ref="address"),
    dstaddr=Key(Names(), (), ref="address"),
    ztna_ems_tag=Key(Names(), (), ref="ems-tag"),
    ztna_tags_match_logic=Key(Choice(("or", "and")), "or"),
    action=Key(Choice(("accept", "deny")), "deny"),
    status=Key(Choice(("enable", "disable")), "enable"),
    schedule=Key(Choice(("always",)), "always"),
    logtraffic=Key(Choice(("all", "utm", "disable")), "utm"),
    comments=Key(Text(1023), ""),
), entry=Int(1, 4_294_967_294), what="proxy-policy", ident="id",
   required=("proxy", "access-proxy", "srcintf"))
# fmt: on


def lab_path(path: str, rundir: str | Path) -> Path:
    """A ``lab-*`` file or socket path of the configuration: relative ones are in ``rundir``."""
    p = Path(path)
    return p if p.is_absolute() else Path(rundir) / p


def _ip(v: Values, key: str) -> str:
    return str(v.typed(key, IPv4Address))


def _ca_certs(r: Reader, blocks: Sequence[Block]) -> Fields:
    out = {
        str(ident): CaCertificate(str(ident), v.text("lab-file"), v.text("lab-crl-file"))
        for ident, _edit, v in r.table(CA_CERT, blocks)
    }
    r.define("CA certificate", out)
    return {"ztna.certificates.ca": out}


def _local_certs(r: Reader, blocks: Sequence[Block]) -> Fields:
    out = {
        str(ident): LocalCertificate(
            str(ident), v.text("lab-cert-file"), v.text("lab-key-file")
        )
        for ident, _edit, v in r.table(LOCAL_CERT, blocks)
    }
    r.define("local certificate", out)
    return {"ztna.certificates.local": out}


def _fctems(r: Reader, blocks: Sequence[Block]) -> Fields:
    ems: EmsServer | None = None
    for ident, edit, v in r.table(FCTEMS, blocks):
        if v["status"] != "enable":
            continue
        if ems is not None:
            raise r.error(
                edit.line, "edit", f"only one EMS is emulated ({ems.name!r} is enabled)"
            )
        ems = EmsServer(str(ident), v.text("lab-socket"), v.text("lab-ca-cert"))
    r.define("ems", [ems.name] if ems else [])
    return {"ztna.ems": ems}


def _vips(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: dict[str, AccessProxyVip] = {}
    where: dict[tuple[str, int], str] = {}
    for ident, edit, v in r.table(VIP, blocks):
        name = str(ident)
        if v["type"] != "access-proxy":
            raise r.error(
                v.line("type", edit.line),
                "type",
                f"vip {name!r}: only type access-proxy is emulated",
            )
        if v["extip"] is None:
            raise r.error(v.line("extip", edit.line), "extip", "0.0.0.0 is not an address")
        vip = AccessProxyVip(
            name,
            extip=_ip(v, "extip"),
            extintf=v.text("extintf"),
            extport=v.integer("extport"),
            server_cert=v.text("ssl-certificate"),
            server_type=v.text("server-type"),
        )
        endpoint = (vip.extip, vip.extport)
        if endpoint in where:
            raise r.error(
                v.line("extport", edit.line),
                "extport",
                f"{vip.extip}:{vip.extport} is already used by vip {where[endpoint]!r}",
            )
        where[endpoint] = name
        out[name] = vip
    r.define("vip", out)
    return {"ztna.vips": out}


def _blocks_named(r: Reader, edit: Edit, name: str, where: str) -> list[Block]:
    for b in edit.blocks:
        if b.name != name:
            raise r.error(
                b.line, None, f"unknown section 'config {b.name}' inside 'edit {edit.name.text}'"
                f" of '{where}'",
            )
    return list(edit.blocks)


def _apis(r: Reader, proxy: Edit) -> tuple[ApiGateway, ...]:
    apis: list[ApiGateway] = []
    blocks = _blocks_named(r, proxy, "api-gateway", "config firewall access-proxy")
    for ident, edit, v in r.table(API_GATEWAY, blocks, nested=True):
        rs_blocks = _blocks_named(r, edit, "realservers", "config api-gateway")
        servers = tuple(
            RealServer(as_int(rs_id), _ip(rv, "ip"), rv.integer("port"))
            for rs_id, _rs_edit, rv in r.table(REALSERVER, rs_blocks)
        )
        if not servers:
            raise r.error(
                edit.line,
                "realservers",
                f"api-gateway {edit.name.text!r} needs a realserver ('config realservers')",
            )
        apis.append(ApiGateway(as_int(ident), v.text("service"), servers))
    return tuple(apis)


def _access_proxies(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: dict[str, AccessProxy] = {}
    by_vip: dict[str, str] = {}
    for ident, edit, v in r.table(ACCESS_PROXY, blocks, nested=True):
        name = str(ident)
        apis = _apis(r, edit)
        if not apis:
            raise r.error(
                edit.line,
                "api-gateway",
                f"access-proxy {name!r} needs an api-gateway ('config api-gateway')",
            )
        vip = v.text("vip")
        if vip in by_vip:
            raise r.error(
                v.line("vip", edit.line),
                "vip",
                f"vip {vip!r} is already used by access-proxy {by_vip[vip]!r}",
            )
        by_vip[vip] = name
        if v.flag("client-cert"):
            r.need(
                "ems",
                v.line("client-cert", edit.line),
                "client-cert",
                f"access-proxy {name!r} checks client certificates: it needs an enabled"
                " EMS ('config endpoint-control fctems')",
            )
        out[name] = AccessProxy(
            name,
            vip=vip,
            client_cert=v.flag("client-cert"),
            empty_cert_action=v.text("empty-cert-action"),
            apis=apis,
        )
    r.define("access-proxy", out)
    return {"ztna.proxies": out}


def _proxy_policies(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: list[ProxyPolicy] = []
    for ident, edit, v in r.table(PROXY_POLICY, blocks):
        srcintf = v.names("srcintf")
        if "any" in srcintf and len(srcintf) > 1:
            raise r.error(
                v.lines["srcintf"], "srcintf", "'any' cannot be combined with other interfaces"
            )
        out.append(
            ProxyPolicy(
                id=as_int(ident),
                name=v.text("name"),
                proxy=v.text("proxy"),
                access_proxy=v.names("access-proxy"),
                srcintf=srcintf,
                srcaddr=v.names("srcaddr"),
                dstaddr=v.names("dstaddr"),
                ztna_ems_tag=v.names("ztna-ems-tag"),
                ztna_tags_match_logic=v.text("ztna-tags-match-logic"),
                action=v.text("action"),
                status=v.text("status"),
            )
        )
    return {"ztna.policies": tuple(out)}


CA_CERT_TABLE = Table(CA_CERT, _ca_certs)
LOCAL_CERT_TABLE = Table(LOCAL_CERT, _local_certs)
FCTEMS_TABLE = Table(FCTEMS, _fctems)
VIP_TABLE = Table(VIP, _vips)
ACCESS_PROXY_TABLE = Table(ACCESS_PROXY, _access_proxies)
PROXY_POLICY_TABLE = Table(PROXY_POLICY, _proxy_policies)
