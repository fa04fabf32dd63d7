"""FortiOS-style diag renderers (fgcp.diag): golden text from small fake state."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

import pytest

from fgcp import diag, tcptrack
from fgcp.model import HAConfig, Interface, MemberConfig, StaticRoute
from fgcp.session import SYNCED, Session, SessionTable

CLIENT = int(IPv4Address("198.51.100.10"))
SERVER = int(IPv4Address("203.0.113.10"))
NAT_IP = int(IPv4Address("203.0.113.1"))


def _cfg(mode: str = "standalone") -> MemberConfig:
    return MemberConfig(
        source="t.conf",
        hostname="fgt1",
        serial="FGVM01TM00000001",
        interfaces={
            "port1": Interface("port1", IPv4Interface("198.51.100.1/24")),
            "port2": Interface("port2", IPv4Interface("203.0.113.1/24")),
            "port3": Interface("port3", IPv4Interface("169.254.0.1/24")),
            "port10": Interface("port10", None, status="down"),
        },
        routes=(StaticRoute(1, IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.254"), "port2"),),
        ha=HAConfig(mode=mode),
    )


def make_session(**kw: Any) -> Session:
    base: dict[str, Any] = {
        "in_intf": "port1", "out_intf": "port2", "policy_id": 2, "nat": True, "nat_ip": NAT_IP,
        "nat_port": 5001, "state": tcptrack.PS_ESTABLISHED, "created": 100.0, "last_seen": 100.0,
        "expires": 3700.0, "org_packets": 10, "org_bytes": 1000, "reply_packets": 8, "reply_bytes": 4000,
    }
    base.update(kw)
    return Session(**base)


@dataclass
class FakeForwarder:
    sessions: SessionTable
    counters: dict[str, int]


def _table(sessions: list[Session]) -> SessionTable:
    t = SessionTable()
    for s in sessions:
        assert t.add(s, s.created)
    return t


def _tcp_established() -> tuple[tcptrack.TcpPeer, tcptrack.TcpPeer]:
    a, b = tcptrack.TcpPeer(), tcptrack.TcpPeer()
    a.state = b.state = tcptrack.ESTABLISHED
    return a, b


def _state(sessions: list[Session], counters: dict[str, int] | None = None, **kw: Any) -> diag.DiagState:
    ports = {
        "port1": diag.PortInfo("port1", bytes.fromhex("020000000101"), ifindex=5, data_plane=True),
        "port2": diag.PortInfo("port2", bytes.fromhex("020000000102"), ifindex=6, data_plane=True),
    }
    return diag.DiagState(
        cfg=kw.pop("cfg", _cfg()),
        forwarder=FakeForwarder(_table(sessions), counters or {}),
        now=112.4,
        wall=0.0,
        started=100.0,
        serial="FGVM01TM00000001",
        ports=ports,
        **kw,
    )


def _nat_session(**kw: Any) -> Session:
    return make_session(
        sid=0x2A,
        proto=6,
        orig=(CLIENT, 5001, SERVER, 5201),
        reply=(SERVER, 5201, NAT_IP, 5001),
        tcp=_tcp_established(),
        **kw,
    )


GOLDEN_SESSION = """\
session info: proto=6 proto_state=01 duration=12 expire=3587 timeout=3600 flags=00000001 socktype=0 sockport=0 av_idx=0 use=3
origin-shaper=
reply-shaper=
per_ip_shaper=
class_id=0 ha_id=0 policy_dir=0 tunnel=/ vlan_cos=0/255
state=may_dirty synced
statistic(bytes/packets/allow_err): org=1000/10/1 reply=4000/8/1 tuples=2
tx speed(Bps/kbps): 0/0 rx speed(Bps/kbps): 0/0
orgin->sink: org pre->post, reply pre->post dev=5->6/6->5 gwy=203.0.113.10/198.51.100.10
hook=post dir=org act=snat 198.51.100.10:5001->203.0.113.10:5201(203.0.113.1:5001)
hook=pre dir=reply act=dnat 203.0.113.10:5201->203.0.113.1:5001(198.51.100.10:5001)
misc=0 policy_id=2 pol_uuid_idx=0 auth_info=0 chk_client_info=0 vd=0
serial=0000002a tos=ff/ff app_list=0 app=0 url_cat=0
rpdb_link_id=00000000 ngfwid=n/a
npu_state=0x000000

total session 1
"""


def test_session_list_golden_nat_session_synced() -> None:
    st = _state([_nat_session(flags=SYNCED)])
    assert diag.render_session_list(st) == GOLDEN_SESSION


def test_session_list_unsynced_has_no_synced_state_and_noop_without_nat() -> None:
    udp = make_session(
        sid=7, proto=17, orig=(CLIENT, 40000, SERVER, 53), reply=(SERVER, 53, CLIENT, 40000),
        nat=False, nat_ip=0, nat_port=0, state=1, expires=280.0,
    )
    out = diag.render_session_list(_state([udp]))
    assert "state=may_dirty\n" in out
    assert "synced" not in out
    assert "session info: proto=17 proto_state=01 duration=12 expire=167 timeout=180 " in out
    assert "hook=pre dir=org act=noop 198.51.100.10:40000->203.0.113.10:53(0.0.0.0:0)" in out
    assert "hook=post dir=reply act=noop 203.0.113.10:53->198.51.100.10:40000(0.0.0.0:0)" in out
    assert out.endswith("total session 1\n")


def test_session_list_via_static_route_shows_the_gateway_and_counts_sorted() -> None:
    far = int(IPv4Address("203.0.113.200")) + 0  # connected: own address is the gwy
    s1 = _nat_session()
    s2 = make_session(sid=3, proto=1, orig=(CLIENT, 9, far, 8), reply=(far, 8, NAT_IP, 9))
    out = diag.render_session_list(_state([s1, s2]))
    assert out.index("serial=00000003") < out.index("serial=0000002a")
    assert out.count("session info:") == 2
    assert out.endswith("total session 2\n")
    cfg = _cfg()
    # off-link destination: the default route's gateway
    assert diag.next_hop(cfg, int(IPv4Address("192.0.2.1"))) == (
        int(IPv4Address("203.0.113.254")), "port2")


def test_empty_session_list() -> None:
    assert diag.render_session_list(_state([])) == "total session 0\n"


def test_session_stat_counts_states_and_drops() -> None:
    syn = _nat_session()
    syn.sid = 2
    syn.state = tcptrack.PS_SYN_SENT
    syn.orig = (CLIENT, 5002, SERVER, 5201)
    syn.reply = (SERVER, 5201, NAT_IP, 5002)
    syn.created = 112.0  # set up within the last second
    st = _state(
        [_nat_session(), syn],
        {"no_session": 3, "policy_deny": 2, "session_created": 99, "arp_rx": 1,
         "session_table_full": 1},
        stats={"loop_errors": 0},
    )
    st.forwarder.sessions.counters["session_expired"] = 4  # type: ignore[union-attr]
    st.forwarder.sessions.counters["session_table_full"] = 1  # type: ignore[union-attr]
    out = diag.render_session_stat(st)
    assert out.startswith("misc info:\tsession_count=2 setup_rate=1 exp_count=4 clash=0\n")
    assert "\tmemory_tension_drop=1 ephemeral=0/65536 removeable=0\n" in out
    assert "\t 1 in ESTABLISHED state\n" in out
    assert "\t 1 in SYN_SENT state\n" in out
    assert "dropped: no_session=3 policy_deny=2 session_table_full=1\n" in out
    assert "events: arp_rx=1 session_created=99\n" in out
    assert "daemon: loop_errors=0\n" in out


def test_system_interface_lists_ports_in_natural_order() -> None:
    out = diag.render_system_interface(_state([]))
    names = [line for line in out.splitlines() if line.startswith("== [")]
    assert names == ["== [ port1 ]", "== [ port2 ]", "== [ port3 ]", "== [ port10 ]"]
    assert (
        "name: port1   mode: static    ip: 198.51.100.1 255.255.255.0   status: up    " in out
    )
    assert "mac: 02:00:00:00:01:01" in out
    assert "name: port10   mode: static    ip: 0.0.0.0 0.0.0.0   status: down" in out


def test_routing_table_golden() -> None:
    out = diag.render_routing_table(_state([]))
    assert out.startswith("Codes: K - kernel, C - connected, S - static")
    tail = out.split("Routing table for VRF=0\n", 1)[1]
    assert tail == (
        "S*      0.0.0.0/0 [10/0] via 203.0.113.254, port2\n"
        "C       169.254.0.0/24 is directly connected, port3\n"
        "C       198.51.100.0/24 is directly connected, port1\n"
        "C       203.0.113.0/24 is directly connected, port2\n"
    )


def test_system_status() -> None:
    out = diag.render_system_status(_state([], cfg=_cfg("a-p"), ha_role="primary"))
    assert "Version: FortiGate-VM64 v7.4.3 lab" in out
    assert "Serial-Number: FGVM01TM00000001\n" in out
    assert "Hostname: fgt1\n" in out
    assert "Current HA mode: a-p, primary\n" in out
    assert "System time: Thu Jan 01 00:00:00 1970 (UTC)\n" in out
    standalone = diag.render_system_status(_state([]))
    assert "Current HA mode: standalone\n" in standalone


@pytest.mark.parametrize(
    "line",
    [
        "diagnose sys session list",
        "diag sys session list",
        "DIAG SYS SESS LIST",
        "  diagnose   sys session list  ",
    ],
)
def test_dispatch_accepts_abbreviations(line: str) -> None:
    st = _state([_nat_session(flags=SYNCED)])
    assert diag.default_table().run(line, st) == GOLDEN_SESSION


def test_dispatch_errors_look_like_fortios() -> None:
    t = diag.default_table()
    st = _state([])
    assert t.run("foo bar", st) == "Unknown action 0\n"
    assert t.run("diagnose sys session lst", st) == (
        "command parse error before 'lst'\nCommand fail. Return code -61\n"
    )
    assert t.run("get system", st).startswith("incomplete command in the end")
    assert t.run("get system status extra", st).startswith("command parse error before 'extra'")
    assert t.run("diagnose sys session s", st).startswith("misc info:")  # only "stat"
    two = diag.CommandTable()
    two.register("show stat", lambda st, args: "stat\n")
    two.register("show status", lambda st, args: "status\n")
    assert two.run("show stat", st) == "stat\n"  # exact keyword wins over a prefix
    assert two.run("show stat", st) == "stat\n"
    assert two.run("show st", st).startswith("ambiguous command before 'st'")
    assert t.run("", st) == ""


def test_table_is_extensible_and_rejects_duplicates() -> None:
    t = diag.default_table()
    t.register("get system ha status", lambda st, args: f"HA Health Status: OK {list(args)}\n")
    st = _state([])
    assert t.run("get sys ha status", st) == "HA Health Status: OK []\n"
    assert t.run("get sys status", st).startswith("Version:")
    with pytest.raises(ValueError, match="duplicate"):
        t.register("get system ha status", lambda st, args: "")
    t.register("diagnose sys ha history read", lambda st, args: "", max_args=1)
    assert "get system ha status" in t.run("help", st)
    assert "get system status" in t.run("get ?", st)
