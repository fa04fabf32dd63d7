"""The reference cluster: fgt1/fgt2 as Linux routers with keepalived + conntrackd.

Pure renderers (keepalived.conf, conntrackd.conf, the primary-backup notify
script) plus `setup_reference`, which turns a running kernel-mode lab into it.

Layout on each member (``member_mode="kernel"`` lab, ``active_members=()``
preferred; a lab whose fgt1 already holds the gateway addresses is undone):

- port1 198.51.100.(1+i)/24, port2 203.0.113.(1+i)/24, ip_forward=1,
  nftables stateful forward filter (new TCP only on a SYN) and ``snat to
  203.0.113.1`` on port2 (the VIP, so replies reach whichever member is
  master);
- keepalived VRRPv3: instance VI_INSIDE on port1 (VIP 198.51.100.1/24) and
  VI_OUTSIDE on port2 (VIP 203.0.113.1/24) in one sync group, multicast
  adverts on the segment itself (as deployed in practice: a member whose
  port1 and port2 are down stops advertising), no virtual MAC: the VIP
  moves to the backup's own MAC and keepalived's gratuitous ARPs update the
  clients' and servers' ARP caches (the fabric controller learns nothing new:
  each member's MAC stays on its own switch port);
- conntrackd FT-FW over UDP on the port5 sync link (169.254.0.129/.130),
  committed by the notify script (conntrackd's documented primary-backup.sh
  semantics) on every VRRP transition.

Every file (configs, logs, pidfiles, lock files, unix sockets) lives under
``<lab rundir>/reference``; processes are stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from topologies.lab import LabNetwork

INSIDE_VIP = IPv4Interface("198.51.100.1/24")
OUTSIDE_VIP = IPv4Interface("203.0.113.1/24")
VRID_INSIDE = 51
VRID_OUTSIDE = 52
CONNTRACKD_PORT = 3780
FailKind = Literal["link-down", "kill"]


class ReferenceError(RuntimeError):
    """The reference cluster could not be set up, or a step of it failed."""


# -- pure description and renderers ----------------------------------------
@dataclass(frozen=True)
class ReferenceMember:
    """One reference router: its addresses, VRRP priority and file paths."""

    name: str
    index: int
    priority: int
    port1: IPv4Interface
    port2: IPv4Interface
    sync_addr: IPv4Address
    peer_sync_addr: IPv4Address
    workdir: Path

    def path(self, suffix: str) -> Path:
        """``<workdir>/<name>-<suffix>`` (every file of this member)."""
        return self.workdir / f"{self.name}-{suffix}"

    @property
    def keepalived_conf(self) -> Path:
        return self.path("keepalived.conf")

    @property
    def conntrackd_conf(self) -> Path:
        return self.path("conntrackd.conf")

    @property
    def notify_script(self) -> Path:
        return self.path("primary-backup.sh")

    @property
    def notify_log(self) -> Path:
        return self.path("notify.log")

    @property
    def conntrackd_socket(self) -> Path:
        return self.path("conntrackd.ctl")


def reference_member(name: str, index: int, workdir: Path, priority: int | None = None
                     ) -> ReferenceMember:
    """Member ``index`` (1 or 2) of the reference pair: fgt1 is the preferred master."""
    if index not in (1, 2):
        raise ReferenceError(f"the reference cluster has members 1 and 2, not {index}")
    peer = 3 - index
    return ReferenceMember(
        name=name,
        index=index,
        priority=priority if priority is not None else (150 if index == 1 else 100),
        port1=IPv4Interface(f"198.51.100.{1 + index}/24"),
        port2=IPv4Interface(f"203.0.113.{1 + index}/24"),
        sync_addr=IPv4Address(f"169.254.0.{128 + index}"),
        peer_sync_addr=IPv4Address(f"169.254.0.{128 + peer}"),
        workdir=workdir,
    )


def format_advert_int(advert_int: float) -> str:
    """keepalived's advert_int text: seconds, centisecond resolution (VRRPv3)."""
    if not 0.01 <= advert_int <= 40.95:
        raise ReferenceError(f"advert_int must be 0.01..40.95 s (VRRPv3), got {advert_int}")
    return f"{round(advert_int, 2):g}"


def render_keepalived_conf(member: ReferenceMember, advert_int: float = 1.0,
                           preempt: bool = True) -> str:
    """keepalived.conf: two VRRPv3 instances (port1, port2) in one sync group."""
    adv = format_advert_int(advert_int)
    notify = member.notify_script
    state = "MASTER" if member.index == 1 else "BACKUP"
    instances = []
    for inst, port, vrid, vip in (
        ("VI_INSIDE", "port1", VRID_INSIDE, INSIDE_VIP),
        ("VI_OUTSIDE", "port2", VRID_OUTSIDE, OUTSIDE_VIP),
    ):
        instances.append(
            f"vrrp_instance {inst} {{\n"
            f"    state {state}\n"
            f"    interface {port}\n"
            f"    virtual_router_id {vrid}\n"
            f"    priority {member.priority}\n"
            f"    advert_int {adv}\n"
            + ("" if preempt else "    nopreempt\n")
            + f"    virtual_ipaddress {{\n        {vip} dev {port}\n    }}\n"
            "}\n"
        )
    return (
        f"# keepalived.conf of reference router {member.name} (rendered by fgcp-lab)\n"
        "global_defs {\n"
        f"    router_id {member.name}\n"
        "    script_user root\n"
        "    enable_script_security\n"
        "    vrrp_version 3\n"
        "    vrrp_garp_master_repeat 5\n"
        "    vrrp_garp_master_delay 1\n"
        "}\n\n"
        "vrrp_sync_group FGCP_REF {\n"
        "    group {\n        VI_INSIDE\n        VI_OUTSIDE\n    }\n"
        f'    notify_master "{notify} primary"\n'
        f'    notify_backup "{notify} backup"\n'
        f'    notify_fault "{notify} fault"\n'
        "}\n\n" + "\n".join(instances)
    )


@dataclass(frozen=True)
class ConntrackdSpec:
    """What differs between conntrackd instances (lab members, bench namespaces)."""

    name: str
    sync_addr: IPv4Address
    peer_sync_addr: IPv4Address
    interface: str
    lock_file: Path
    socket_path: Path
    log_file: Path
    ignore: tuple[IPv4Address, ...] = ()
    protocols: tuple[str, ...] = ("TCP", "UDP", "ICMP")
    hash_limit: int = 262144
    port: int = CONNTRACKD_PORT


def render_conntrackd_conf(spec: ConntrackdSpec) -> str:
    """conntrackd.conf: FT-FW over unicast UDP on the sync link, private paths."""
    if len(str(spec.socket_path)) >= 108:
        raise ReferenceError(f"unix socket path too long for AF_UNIX: {spec.socket_path}")
    ignores = "".join(
        f"            IPv4_address {a}\n"
        for a in (IPv4Address("127.0.0.1"), spec.sync_addr, *spec.ignore)
    )
    protos = "".join(f"            {p}\n" for p in spec.protocols)
    return (
        f"# conntrackd.conf of {spec.name} (rendered by fgcp-lab)\n"
        "Sync {\n"
        "    Mode FTFW {\n"
        "        DisableExternalCache Off\n"
        "        ResendQueueSize 262144\n"
        "    }\n"
        "    UDP {\n"
        f"        IPv4_address {spec.sync_addr}\n"
        f"        IPv4_Destination_Address {spec.peer_sync_addr}\n"
        f"        Port {spec.port}\n"
        f"        Interface {spec.interface}\n"
        "        SndSocketBuffer 4194304\n"
        "        RcvSocketBuffer 4194304\n"
        "        Checksum on\n"
        "    }\n"
        "}\n"
        "General {\n"
        "    HashSize 65536\n"
        f"    HashLimit {spec.hash_limit}\n"
        f"    LogFile {spec.log_file}\n"
        "    Syslog off\n"
        f"    LockFile {spec.lock_file}\n"
        "    UNIX {\n"
        f"        Path {spec.socket_path}\n"
        "    }\n"
        "    NetlinkBufferSize 8388608\n"
        "    NetlinkBufferSizeMaxGrowth 67108864\n"
        "    NetlinkOverrunResync On\n"
        "    Filter From Userspace {\n"
        "        Protocol Accept {\n" + protos + "        }\n"
        "        Address Ignore {\n" + ignores + "        }\n"
        "    }\n"
        "}\n"
    )


def member_conntrackd_spec(member: ReferenceMember) -> ConntrackdSpec:
    """The conntrackd instance of a lab member (sync over port5)."""
    return ConntrackdSpec(
        name=member.name,
        sync_addr=member.sync_addr,
        peer_sync_addr=member.peer_sync_addr,
        interface="port5",
        lock_file=member.path("conntrackd.lock"),
        socket_path=member.conntrackd_socket,
        log_file=member.path("conntrackd.log"),
        ignore=(member.port1.ip, member.port2.ip),
    )


def render_notify_script(conntrackd_conf: Path, notify_log: Path,
                         conntrackd_bin: str = "/usr/sbin/conntrackd") -> str:
    """keepalived notify script: conntrackd's primary-backup.sh, private paths.

    primary: commit the external cache (-c), flush caches (-f), resync the
    internal cache with the kernel (-R), send a bulk update (-B).  backup:
    shorten kernel timers (-t), request a resync from the master (-n).
    fault: -t.  Each step's time and exit code go to ``notify_log``.
    """
    return f"""#!/bin/sh
# keepalived notify script (conntrackd's primary-backup.sh, rendered by fgcp-lab)
CT="{conntrackd_bin} -C {conntrackd_conf}"
LOG="{notify_log}"
step() {{ $CT "$1" >/dev/null 2>&1; rc=$?; echo "$(date +%s.%N) conntrackd $1 rc=$rc" >> "$LOG"; }}
echo "$(date +%s.%N) notify $1" >> "$LOG"
case "$1" in
  primary)
    step -c   # commit the external cache into the kernel table
    step -f   # flush the internal and the external caches
    step -R   # resynchronize the internal cache with the kernel table
    step -B   # send a bulk update to the backups
    ;;
  backup)
    step -t   # shorten kernel conntrack timers (zombie entries)
    step -n   # request a resynchronization with the master
    ;;
  fault)
    step -t
    ;;
  *)
    echo "usage: $0 primary|backup|fault" >&2
    exit 1
    ;;
esac
echo "$(date +%s.%N) done $1" >> "$LOG"
"""


def render_nft_ruleset() -> str:
    """nftables: a stateful firewall (inside -> outside only, new TCP only on a
    SYN, as the FortiGate drops mid-stream packets of unknown sessions) and
    SNAT of the inside hosts to the outside VIP on port2 (not VRRP adverts).

    Without the SYN rule Linux would pick a mid-stream TCP flow up again
    (``nf_conntrack_tcp_loose``) and the comparison with conntrackd would be moot.
    The input rules drop (rather than answer with a RST) a server's mid-stream
    segment that reaches the new master before ``conntrackd -c`` has committed
    its NAT state, or that conntrack finds invalid: it would otherwise hit the
    VIP itself and reset the stream.
    """
    return (
        "table ip fgcpref {\n"
        "    chain filter_in {\n"
        "        type filter hook input priority filter; policy accept;\n"
        '        iifname { "port1", "port2" } meta l4proto tcp ct state new '
        "tcp flags & (fin|syn|rst|ack) != syn drop\n"
        '        iifname { "port1", "port2" } meta l4proto tcp ct state invalid drop\n'
        "    }\n"
        "    chain filter_fwd {\n"
        "        type filter hook forward priority filter; policy drop;\n"
        "        ct state established,related accept\n"
        '        iifname "port1" oifname "port2" ct state new '
        "tcp flags & (fin|syn|rst|ack) == syn accept\n"
        '        iifname "port1" oifname "port2" ct state new meta l4proto != tcp accept\n'
        "    }\n"
        "    chain nat_post {\n"
        "        type nat hook postrouting priority srcnat; policy accept;\n"
        f'        oifname "port2" ip saddr {INSIDE_VIP.network} snat to {OUTSIDE_VIP.ip}\n'
        "    }\n"
        "}\n"
    )


# -- the running cluster ---------------------------------------------------
@dataclass
class FailureEvent:
    """A fault injected into the master: who, how, when (time.monotonic())."""

    member: str
    kind: FailKind
    at: float


@dataclass
class _Procs:
    keepalived: subprocess.Popen[bytes] | None = None
    conntrackd: subprocess.Popen[bytes] | None = None
    files: list[IO[bytes]] = field(default_factory=list)


class ReferenceCluster:
    """keepalived + conntrackd on a lab's fgt1/fgt2; use `setup_reference`."""

    def __init__(self, lab: LabNetwork, members: list[ReferenceMember],
                 advert_int: float, conntrack_sync: bool) -> None:
        self.lab = lab
        self.members = members
        self.advert_int = advert_int
        self.conntrack_sync = conntrack_sync
        self.procs: dict[str, _Procs] = {m.name: _Procs() for m in members}
        self.failures: list[FailureEvent] = []
        self.powered_off: set[str] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ----------------------------------------------------------
    def member(self, name: str) -> ReferenceMember:
        for m in self.members:
            if m.name == name:
                return m
        raise ReferenceError(f"no reference member {name!r}")

    def holds_vip(self, name: str) -> bool:
        """Whether ``name`` has both VIPs on port1 and port2 (never when powered off)."""
        if name in self.powered_off:
            return False  # its addresses are left behind, on links that are down
        host = self.lab.host(name)
        out = host.cmd("ip -o -4 addr show dev port1; ip -o -4 addr show dev port2")
        return f"inet {INSIDE_VIP} " in out and f"inet {OUTSIDE_VIP} " in out

    def master(self) -> str | None:
        """The member holding the VIPs, or None (no master, or split)."""
        holders = [m.name for m in self.members if self.holds_vip(m.name)]
        return holders[0] if len(holders) == 1 else None

    def wait_master(self, timeout: float = 15.0, not_: str | None = None,
                    interval: float = 0.05) -> str:
        """Poll until one member (other than ``not_``) holds the VIPs; its name."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.master()
            if m is not None and m != not_:
                return m
            if time.monotonic() > deadline:
                raise ReferenceError(
                    f"no reference master (other than {not_}) after {timeout:.0f} s; "
                    f"status {self.status()}"
                )
            time.sleep(interval)

    def conntrackd(self, name: str, *args: str) -> str:
        """Run the conntrackd client (e.g. ``-s``, ``-e``) against ``name``'s daemon."""
        m = self.member(name)
        out: str = self.lab.host(name).cmd(
            f"conntrackd -C {m.conntrackd_conf} {' '.join(args)} 2>&1"
        )
        return out

    def status(self) -> dict[str, dict[str, object]]:
        """Per member: VIP held, processes alive, last notify line."""
        out: dict[str, dict[str, object]] = {}
        for m in self.members:
            p = self.procs[m.name]
            notes = (m.notify_log.read_text().splitlines()
                     if m.notify_log.exists() else [])
            out[m.name] = {
                "vip": self.holds_vip(m.name),
                "keepalived": p.keepalived is not None and p.keepalived.poll() is None,
                "conntrackd": p.conntrackd is not None and p.conntrackd.poll() is None,
                "notify": [ln for ln in notes if " notify " in ln][-1:],
            }
        return out

    def log_files(self) -> list[Path]:
        """Every log of the reference processes (keepalived output, conntrackd, notify)."""
        workdir = self.members[0].workdir
        return sorted(p for p in workdir.glob("*") if p.suffix in (".log", ".out"))

    # -- start / fail / stop ----------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        """Start conntrackd (if enabled) then keepalived on every member; wait for a master."""
        for m in self.members:
            if self.conntrack_sync:
                self._start_conntrackd(m)
        for m in self.members:
            if self.conntrack_sync:
                self._wait_conntrackd(m)
        for m in self.members:
            self._start_keepalived(m)
        self.wait_master(timeout)

    def _popen(self, m: ReferenceMember, what: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        out = open(m.path(f"{what}.out"), "ab")  # noqa: SIM115 - closed in stop()
        self.procs[m.name].files.append(out)
        proc: subprocess.Popen[bytes] = self.lab.host(m.name).popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # no start_new_session: mnexec -d would fork and hide the daemon's PID
        return proc

    def _start_conntrackd(self, m: ReferenceMember) -> None:
        m.path("conntrackd.lock").unlink(missing_ok=True)
        self.procs[m.name].conntrackd = self._popen(
            m, "conntrackd", ["conntrackd", "-C", str(m.conntrackd_conf)])

    def _wait_conntrackd(self, m: ReferenceMember, timeout: float = 10.0) -> None:
        proc = self.procs[m.name].conntrackd
        deadline = time.monotonic() + timeout
        while not m.conntrackd_socket.exists():
            if proc is not None and proc.poll() is not None:
                raise ReferenceError(
                    f"{m.name}: conntrackd exited with {proc.returncode}; see "
                    f"{m.path('conntrackd.out')} and {m.path('conntrackd.log')}"
                )
            if time.monotonic() > deadline:
                raise ReferenceError(f"{m.name}: no conntrackd socket {m.conntrackd_socket}")
            time.sleep(0.05)

    def _start_keepalived(self, m: ReferenceMember) -> None:
        self.procs[m.name].keepalived = self._popen(m, "keepalived", [
            "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
            "--use-file", str(m.keepalived_conf),
            "--pid", str(m.path("keepalived.pid")),
            "--vrrp_pid", str(m.path("vrrp.pid")),
            "--checkers_pid", str(m.path("checkers.pid")),
        ])

    def _vrrp_child(self, m: ReferenceMember) -> int | None:
        try:
            return int(m.path("vrrp.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def fail_master(self, kind: FailKind = "link-down") -> FailureEvent:
        """Fail the current master: ``link-down`` (port1 + port2 down) or ``kill``.

        ``kill`` is a power-off: keepalived and conntrackd SIGKILLed, then every
        link of the member down.  Returns the event (time.monotonic() of the fault).
        """
        if kind not in ("link-down", "kill"):
            raise ReferenceError(f"kind must be 'link-down' or 'kill', not {kind!r}")
        name = self.master()
        if name is None:
            raise ReferenceError(f"no master to fail; status {self.status()}")
        host = self.lab.host(name)
        at = time.monotonic()
        if kind == "link-down":
            host.cmd("ip link set port1 down; ip link set port2 down")
        else:
            m, p = self.member(name), self.procs[name]
            child = self._vrrp_child(m)
            for proc in (p.keepalived, p.conntrackd):
                if proc is not None and proc.poll() is None:
                    proc.kill()
            if child is not None:
                _signal(child, signal.SIGKILL)
            host.cmd("; ".join(f"ip link set {i} down" for i in host.intfNames()
                               if i != "lo"))
            for proc in (p.keepalived, p.conntrackd):
                if proc is not None:
                    proc.wait(5)
            self.powered_off.add(name)
        event = FailureEvent(name, kind, at)
        self.failures.append(event)
        return event

    def restore(self, name: str) -> None:
        """Undo a fault on ``name``: links up; after ``kill`` also a clean boot
        (stale VIPs removed, conntrackd and keepalived started again)."""
        host = self.lab.host(name)
        m = self.member(name)
        if name in self.powered_off:
            host.cmd(f"ip addr del {INSIDE_VIP} dev port1; ip addr del {OUTSIDE_VIP} dev port2")
        host.cmd("; ".join(f"ip link set {i} up" for i in host.intfNames() if i != "lo"))
        if name in self.powered_off:
            self.powered_off.discard(name)
            for f in self.procs[name].files:
                f.close()
            self.procs[name] = _Procs()
            if self.conntrack_sync:
                self._start_conntrackd(m)
                self._wait_conntrackd(m)
            self._start_keepalived(m)

    def stop(self) -> None:
        """Stop keepalived and conntrackd on every member by PID; safe to call twice."""
        for m in self.members:
            p = self.procs[m.name]
            child = self._vrrp_child(m) if p.keepalived is not None else None
            for proc in (p.keepalived, p.conntrackd):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
            if child is not None:
                _signal(child, signal.SIGKILL)  # only if the parent left it behind
            p.keepalived = p.conntrackd = None
            for f in p.files:
                f.close()
            p.files.clear()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _configure_member(lab: LabNetwork, m: ReferenceMember) -> None:
    host = lab.host(m.name)
    # undo what kernel mode may have done on an active member (gateway
    # addresses, its masquerade table), then the reference router's own set-up
    cmds = [
        "ip addr flush dev port1", "ip addr flush dev port2",
        "nft delete table ip fgcplab 2>/dev/null; true",
        "nft delete table ip fgcpref 2>/dev/null; true",
        f"ip addr add {m.port1} dev port1", f"ip addr add {m.port2} dev port2",
        "sysctl -qw net.ipv4.ip_forward=1",
        # as conntrackd set-ups do: a committed entry's TCP window is stale, do
        # not mark the stream's next segments invalid (they would reach the VIP)
        "sysctl -qw net.netfilter.nf_conntrack_tcp_be_liberal=1; true",
        # the VIP must answer ARP only on its own port
        "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2",
    ]
    for c in cmds:
        host.cmd(c)
    m.path("fgcpref.nft").write_text(render_nft_ruleset())
    out = host.cmd(f"nft -f {m.path('fgcpref.nft')} && echo nft-ok")
    if "nft-ok" not in out:
        raise ReferenceError(f"{m.name}: nft ruleset failed: {out.strip()}")
    for port, addr in (("port1", m.port1), ("port2", m.port2)):
        intf = host.intf(port)
        intf.ip, intf.prefixLen = str(addr.ip), addr.network.prefixlen


def setup_reference(lab: LabNetwork, advert_int: float = 1.0, conntrack_sync: bool = True,
                    members: tuple[str, str] = ("fgt1", "fgt2"),
                    timeout: float = 15.0) -> ReferenceCluster:
    """Make ``members`` of a running kernel-mode lab a keepalived + conntrackd pair.

    Writes configs under ``<lab.rundir>/reference``, starts the daemons and
    waits for a master (fgt1, the higher priority).  The caller stops the
    cluster (``with setup_reference(lab) as ref:`` or ``ref.stop()``) before
    the lab.
    """
    if lab.member_mode != "kernel":
        raise ReferenceError("setup_reference needs a lab with member_mode='kernel'")
    workdir = lab.rundir / "reference"
    workdir.mkdir(parents=True, exist_ok=True)
    refs = [reference_member(name, i + 1, workdir) for i, name in enumerate(members)]
    for m in refs:
        m.keepalived_conf.write_text(render_keepalived_conf(m, advert_int))
        m.conntrackd_conf.write_text(render_conntrackd_conf(member_conntrackd_spec(m)))
        m.notify_script.write_text(render_notify_script(m.conntrackd_conf, m.notify_log))
        m.notify_script.chmod(0o755)
        _configure_member(lab, m)
    cluster = ReferenceCluster(lab, refs, advert_int, conntrack_sync)
    try:
        cluster.start(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
