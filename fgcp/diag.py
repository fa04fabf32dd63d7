"""FortiOS-style diag commands of a member: a dispatch table of pure renderers.

Each renderer turns a ``DiagState`` snapshot (config, forwarder, ports, times
passed in) into the text FortiOS prints; the daemon's components (HA, session
sync) register their own commands on the same table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Protocol

from fgcp import tcptrack
from fgcp.model import MemberConfig
from fgcp.roles import Role
from fgcp.session import PROXY, SYNCED

VERSION = "FortiGate-VM64 v7.4.3 lab,build2573 (fgcp-lab emulation)"

PROTO_TIMEOUT = {17: 180, 1: 60}  # FortiOS defaults for UDP, ICMP; TCP: session-ttl


class SessionTableLike(Protocol):
    """What the renderers need of ``fgcp.session.SessionTable``."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Any: ...


class ForwarderLike(Protocol):
    """What the renderers need of ``fgcp.forward.Forwarder``."""

    @property
    def sessions(self) -> Any: ...
    @property
    def counters(self) -> Mapping[str, int]: ...


@dataclass(frozen=True)
class PortInfo:
    """An interface of the member as the daemon sees it."""

    name: str
    mac: bytes = b"\0" * 6
    ifindex: int = 0
    up: bool = True
    data_plane: bool = False  # forwarded by the member's rings (port1, port2)


@dataclass
class DiagState:
    """Snapshot handed to a renderer; ``now`` is monotonic, ``wall`` epoch seconds."""

    cfg: MemberConfig
    forwarder: ForwarderLike | None
    now: float
    wall: float = 0.0
    started: float = 0.0
    serial: str = ""
    ports: Mapping[str, PortInfo] = field(default_factory=dict)
    stats: Mapping[str, int] = field(default_factory=dict)  # daemon counters
    ha_role: Role | str = ""  # the daemon's role ("" when no daemon, e.g. in tests)
    extra: dict[str, Any] = field(default_factory=dict)  # for later renderers


Renderer = Callable[[DiagState, Sequence[str]], str]


class DiagError(ValueError):
    """The command line does not name a command (message is FortiOS-like)."""


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]
    render: Renderer
    help: str = ""
    max_args: int = 0


class CommandTable:
    """Commands by keyword path; keywords may be abbreviated when unambiguous
    ("diag sys session list", "get sys status"), as on FortiOS."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: list[Command] = []
        for c in commands:
            self.add(c)

    def add(self, command: Command) -> None:
        if any(c.words == command.words for c in self._commands):
            raise ValueError(f"duplicate command {' '.join(command.words)!r}")
        self._commands.append(command)

    def register(self, words: str, render: Renderer, help: str = "", max_args: int = 0) -> None:
        self.add(Command(tuple(words.split()), render, help, max_args))

    def override(self, words: str, render: Renderer, help: str = "", max_args: int = 0) -> None:
        """Register ``words``, replacing an existing command of the same words (components)."""
        key = tuple(words.split())
        self._commands = [c for c in self._commands if c.words != key]
        self.add(Command(key, render, help, max_args))

    def commands(self) -> list[Command]:
        return sorted(self._commands, key=lambda c: c.words)

    def resolve(self, tokens: Sequence[str]) -> tuple[Command, list[str]]:
        """The command named by ``tokens`` and its arguments, or DiagError."""
        cands = list(self._commands)
        depth = 0
        while True:
            done = [c for c in cands if len(c.words) == depth]
            longer = [c for c in cands if len(c.words) > depth]
            if depth == len(tokens):
                if done:
                    return done[0], []
                raise DiagError("incomplete command in the end\nCommand fail. Return code -160")
            tok = tokens[depth].lower()
            words = {c.words[depth] for c in longer}
            if tok in words:
                match = {tok}
            else:
                match = {w for w in words if w.startswith(tok)}
            if len(match) == 1:
                (w,) = match
                cands = [c for c in longer if c.words[depth] == w]
                depth += 1
                continue
            if done and done[0].max_args >= len(tokens) - depth:
                return done[0], list(tokens[depth:])
            if depth == 0 and not match:
                raise DiagError("Unknown action 0")
            if len(match) > 1:
                raise DiagError(
                    f"ambiguous command before '{tokens[depth]}'\nCommand fail. Return code -61"
                )
            raise DiagError(
                f"command parse error before '{tokens[depth]}'\nCommand fail. Return code -61"
            )

    def run(self, line: str, state: DiagState) -> str:
        """Render ``line``; parse errors come back as FortiOS-like text."""
        tokens = line.split()
        if not tokens:
            return ""
        if tokens[-1] == "?" or tokens == ["help"]:
            return self.help_text(tokens[:-1] if tokens[-1] == "?" else [])
        try:
            command, args = self.resolve(tokens)
        except DiagError as exc:
            return str(exc) + "\n"
        return command.render(state, args)

    def help_text(self, prefix: Sequence[str]) -> str:
        lines = []
        for c in self.commands():
            name = " ".join(c.words)
            if all(i < len(c.words) and c.words[i].startswith(t.lower()) for i, t in enumerate(prefix)):
                lines.append(f"{name:<44}{c.help}")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- helpers


def _ip(value: object) -> str:
    if isinstance(value, int):
        return str(IPv4Address(value))
    return str(value) if value is not None else "0.0.0.0"


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _sessions(table: Any) -> list[Any]:
    return sorted(table, key=lambda s: s.sid) if table is not None else []


def _proto_state(s: Any) -> int:
    return int(s.state)  # the FortiOS proto_state code (fgcp.tcptrack.PS_*)


def _timeout(s: Any, cfg: MemberConfig) -> int:
    return int(s.timeout) or PROTO_TIMEOUT.get(s.proto, cfg.session_ttl.default)


def _connected(cfg: MemberConfig) -> list[tuple[IPv4Network, str]]:
    out = []
    for name, intf in cfg.interfaces.items():
        if intf.ip is not None and intf.status == "up":
            out.append((intf.ip.network, name))
    return out


def next_hop(cfg: MemberConfig, dst: int) -> tuple[int, str]:
    """(gateway, interface) for ``dst`` by longest prefix match; (0, "") if none.

    Connected destinations are their own gateway, as FortiOS prints them.
    """
    best: tuple[int, int, int, str] | None = None  # prefixlen, -distance, gw, dev
    addr = IPv4Address(dst)
    for net, dev in _connected(cfg):
        if addr in net and (best is None or (net.prefixlen, 0) > best[:2]):
            best = (net.prefixlen, 0, dst, dev)
    for r in cfg.routes:
        if addr in r.dst:
            key = (r.dst.prefixlen, -r.distance)
            if best is None or key > best[:2]:
                gw = int(r.gateway) if r.gateway is not None else dst
                best = (r.dst.prefixlen, -r.distance, gw, r.device or _dev_for(cfg, gw))
    if best is None:
        return 0, ""
    return best[2], best[3]


def _dev_for(cfg: MemberConfig, gw: int) -> str:
    for net, dev in _connected(cfg):
        if IPv4Address(gw) in net:
            return dev
    return ""


def _ifindex(state: DiagState, name: str) -> int:
    p = state.ports.get(name)
    return p.ifindex if p is not None else 0


# ---------------------------------------------------------------- renderers


def render_session_list(state: DiagState, args: Sequence[str] = ()) -> str:
    """``diagnose sys session list``."""
    fwd = state.forwarder
    sessions = _sessions(fwd.sessions if fwd is not None else None)
    cfg = state.cfg
    blocks = []
    note = state.extra.get("session_note")  # e.g. the IPS's ips=on (fgcp/ipsmember.py)
    for s in sessions:
        o, r = s.orig, s.reply
        ps = _proto_state(s)
        duration = max(0, int(state.now - s.created))
        expire = max(0, int(s.expires - state.now))
        states = ["may_dirty"]
        if s.flags & PROXY or getattr(s, "inspection", "flow") == "proxy":
            states.append("redir")
        if s.flags & SYNCED:
            states.append("synced")
        gw_org, _ = next_hop(cfg, o[2])
        gw_reply, _ = next_hop(cfg, o[0])
        din, dout = _ifindex(state, s.in_intf), _ifindex(state, s.out_intf)
        org = f"{_ip(o[0])}:{o[1]}->{_ip(o[2])}:{o[3]}"
        rep = f"{_ip(r[0])}:{r[1]}->{_ip(r[2])}:{r[3]}"
        if s.nat:
            hooks = [
                f"hook=post dir=org act=snat {org}({_ip(s.nat_ip)}:{s.nat_port})",
                f"hook=pre dir=reply act=dnat {rep}({_ip(o[0])}:{o[1]})",
            ]
        else:
            hooks = [
                f"hook=pre dir=org act=noop {org}(0.0.0.0:0)",
                f"hook=post dir=reply act=noop {rep}(0.0.0.0:0)",
            ]
        blocks.append(
            "\n".join(
                [
                    (f"session info: proto={s.proto} proto_state={ps:02d} duration={duration} "
                    f"expire={expire} timeout={_timeout(s, cfg)} flags={s.flags:08x} "
                    "socktype=0 sockport=0 av_idx=0 use=3"),
                    "origin-shaper=",
                    "reply-shaper=",
                    "per_ip_shaper=",
                    "class_id=0 ha_id=0 policy_dir=0 tunnel=/ vlan_cos=0/255",
                    "state=" + " ".join(states),
                    *([text] if note is not None and (text := note(s)) else []),
                    ("statistic(bytes/packets/allow_err): "
                    f"org={s.org_bytes}/{s.org_packets}/1 "
                    f"reply={s.reply_bytes}/{s.reply_packets}/1 tuples=2"),
                    "tx speed(Bps/kbps): 0/0 rx speed(Bps/kbps): 0/0",
                    ("orgin->sink: org pre->post, reply pre->post "
                    f"dev={din}->{dout}/{dout}->{din} gwy={_ip(gw_org)}/{_ip(gw_reply)}"),
                    *hooks,
                    (f"misc=0 policy_id={s.policy_id} pol_uuid_idx=0 auth_info=0 "
                    "chk_client_info=0 vd=0"),
                    f"serial={s.sid & 0xFFFFFFFF:08x} tos=ff/ff app_list=0 app=0 url_cat=0",
                    "rpdb_link_id=00000000 ngfwid=n/a",
                    "npu_state=0x000000",
                ]
            )
        )
    blocks.append(f"total session {len(sessions)}")
    return "\n\n".join(blocks) + "\n"


# Forwarder counters that count events, not dropped frames; all others are drops.
EVENT_SUFFIXES = ("_tx", "_rx", "_sent", "_created", "_reply", "_installed")


def _is_drop(key: str) -> bool:
    return not key.endswith(EVENT_SUFFIXES)


def render_session_stat(state: DiagState, args: Sequence[str] = ()) -> str:
    """``diagnose sys session stat`` plus the forwarder's drop counters."""
    fwd = state.forwarder
    table = fwd.sessions if fwd is not None else None
    sessions = _sessions(table)
    counters = dict(fwd.counters) if fwd is not None else {}
    tcounters = dict(getattr(table, "counters", {}))
    setup = sum(1 for s in sessions if state.now - s.created < 1.0)
    by_state: dict[str, int] = {}
    for s in sessions:
        if s.proto == 6:
            name = tcptrack.PROTO_STATE_NAMES.get(_proto_state(s), "UNKNOWN")
            by_state[name] = by_state.get(name, 0) + 1
    limit = state.cfg.session_table_max
    lines = [
        (f"misc info:\tsession_count={len(sessions)} setup_rate={setup} "
        f"exp_count={tcounters.get('session_expired', 0)} "
            f"clash={tcounters.get('session_clash', 0)}"),
        (f"\tmemory_tension_drop={tcounters.get('session_table_full', 0)} "
        f"ephemeral=0/{limit} removeable=0"),
        "delete=0, flush=0, dev_down=0/0 ses_walkers=0",
        "TCP sessions:",
    ]
    lines += [f"\t {n} in {name} state" for name, n in sorted(by_state.items())]
    lines += ["firewall error stat:"]
    lines += [f"{k}=00000000" for k in ("error1", "error2", "error3", "error4", "tt", "cont",
                                        "ids_recv", "url_recv", "av_recv", "fqdn_count",
                                        "fqdn6_count")]
    lines.append("global: ses_limit=0 ses6_limit=0 rt_limit=0 rt6_limit=0")
    drops = {k: v for k, v in counters.items() if _is_drop(k)}
    other = {k: v for k, v in counters.items() if k not in drops}
    lines.append("dropped: " + " ".join(f"{k}={v}" for k, v in sorted(drops.items())))
    if other:
        lines.append("events: " + " ".join(f"{k}={v}" for k, v in sorted(other.items())))
    if state.stats:
        lines.append("daemon: " + " ".join(f"{k}={v}" for k, v in sorted(state.stats.items())))
    return "\n".join(lines) + "\n"


def render_system_interface(state: DiagState, args: Sequence[str] = ()) -> str:
    """``get system interface``."""
    out = []
    for name, intf in sorted(state.cfg.interfaces.items(), key=lambda kv: _port_key(kv[0])):
        ip = f"{intf.ip.ip} {intf.ip.netmask}" if intf.ip is not None else "0.0.0.0 0.0.0.0"
        port = state.ports.get(name)
        up = intf.status == "up" and (port is None or port.up)
        mac = _mac(port.mac) if port is not None else "00:00:00:00:00:00"
        allow = " ".join(intf.allowaccess) if intf.allowaccess else ""
        out.append(f"== [ {name} ]")
        out.append(
            f"name: {name}   mode: static    ip: {ip}   status: {'up' if up else 'down'}    "
            f"netbios-forward: disable    type: physical   allowaccess: {allow}   "
            f"mtu-override: disable    mac: {mac}"
        )
    return "\n".join(out) + "\n"


def _port_key(name: str) -> tuple[str, int]:
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return head, int(tail) if tail else -1


ROUTE_CODES = """\
Codes: K - kernel, C - connected, S - static, R - RIP, B - BGP
       O - OSPF, IA - OSPF inter area
       N1 - OSPF NSSA external type 1, N2 - OSPF NSSA external type 2
       E1 - OSPF external type 1, E2 - OSPF external type 2
       i - IS-IS, L1 - IS-IS level-1, L2 - IS-IS level-2, ia - IS-IS inter area
       V - BGP VPNv4
       * - candidate default
"""


def render_routing_table(state: DiagState, args: Sequence[str] = ()) -> str:
    """``get router info routing-table all``."""
    cfg = state.cfg
    rows: list[tuple[IPv4Network, int, str]] = []
    for net, dev in _connected(cfg):
        rows.append((net, 0, f"C       {net} is directly connected, {dev}"))
    for r in sorted(cfg.routes, key=lambda r: r.seq):
        code = "S*" if r.dst.prefixlen == 0 else "S "
        if r.gateway is not None:
            dev = r.device or _dev_for(cfg, int(r.gateway))
            text = f"{code}      {r.dst} [{r.distance}/0] via {r.gateway}, {dev}"
        else:
            text = f"{code}      {r.dst} [{r.distance}/0] is directly connected, {r.device}"
        rows.append((r.dst, 1, text))
    rows.sort(key=lambda t: (int(t[0].network_address), t[0].prefixlen, t[1]))
    return ROUTE_CODES + "\nRouting table for VRF=0\n" + "".join(t[2] + "\n" for t in rows)


def render_system_status(state: DiagState, args: Sequence[str] = ()) -> str:
    """``get system status``."""
    cfg = state.cfg
    mode = cfg.ha.mode
    ha = "standalone" if mode == "standalone" else (
        f"{mode}, {state.ha_role}" if state.ha_role else mode
    )
    wall = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(state.wall))
    up = max(0, int(state.now - state.started))
    return "\n".join(
        [
            f"Version: {VERSION}",
            "Security Level: 2",
            f"Serial-Number: {state.serial or cfg.serial}",
            "Log hard disk: Not available",
            f"Hostname: {cfg.hostname}",
            "Private Encryption: Disable",
            "Operation Mode: NAT",
            "Current virtual domain: root",
            "Max number of virtual domains: 1",
            "Virtual domains status: 1 in NAT mode, 0 in TP mode",
            "Virtual domain configuration: disable",
            "FIPS-CC mode: disable",
            f"Current HA mode: {ha}",
            "Branch point: 2573",
            "Release Version Information: lab",
            f"System time: {wall} (UTC)",
            f"Uptime: {up // 86400} days {up % 86400 // 3600} hours {up % 3600 // 60} minutes",
        ]
    ) + "\n"


def default_table() -> CommandTable:
    """The member's own commands; the components add theirs with ``register``."""
    t = CommandTable()
    t.register("diagnose sys session list", render_session_list, "list sessions")
    t.register("diagnose sys session stat", render_session_stat, "session statistics")
    t.register("get system interface", render_system_interface, "interfaces")
    t.register(
        "get router info routing-table all", render_routing_table, "routing table"
    )
    t.register("get system status", render_system_status, "system status")
    return t
