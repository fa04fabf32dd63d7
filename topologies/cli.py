"""``fgcp-lab topo``: build the lab and open the Mininet CLI, or run the demo.

``main(argv)`` is also behind ``scripts/lab-topo`` and ``python -m topologies.cli``;
every member starts by default (a cluster); the CLI is topologies.labcli.LabCLI
(Mininet's plus diag, kill, restart, links, failover, watch). The demo sends
ping, UDP and TCP from c1 to sv1 through the primary and prints a table.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from topologies.lab import LabError, LabNetwork, cleanup_leftovers
from topologies.topo import MAX_HOSTS, MAX_MEMBERS, TopologyError
from topologies.traffic import iperf3, ping


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="fgcp-lab topo",
        description="Build the FGCP lab (Mininet + os-ken controller + members).",
    )
    ap.add_argument("--clients", type=int, default=1, help=f"client hosts c1..cN (1-{MAX_HOSTS})")
    ap.add_argument("--servers", type=int, default=1, help=f"server hosts sv1..svN (1-{MAX_HOSTS})")
    ap.add_argument("--members", type=int, default=2, help=f"cluster members (1-{MAX_MEMBERS})")
    ap.add_argument("--member-mode", choices=("fgcpd", "kernel"), default="fgcpd",
                    help="fgcpd: run the member daemon; kernel: Linux router reference")
    ap.add_argument("--active", default=None,
                    help="comma-separated members to start (default: every member with "
                         "fgcpd, so they form the cluster; fgt1 with --member-mode kernel)")
    ap.add_argument("--rundir",
                    help="run directory for sockets and logs (default: fresh under /run)")
    ap.add_argument("--demo", action="store_true",
                    help="run ping/UDP/TCP c1 -> sv1 through fgt1, print results, tear down")
    ap.add_argument("--cleanup", action="store_true",
                    help="remove a crashed lab's bridges and veths "
                         "(s1, s2, hb1, hb2, sync1) and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="Mininet info logging")
    return ap


class Terminated(BaseException):
    """SIGTERM: a BaseException so that the Mininet CLI does not swallow it."""


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def forwarding_member(lab: LabNetwork) -> str:
    """The member that forwards: the HA primary, else the first active member."""
    work = lab.primaries() if lab.member_mode == "fgcpd" else []
    return work[0] if work else lab.active_members[0]


def run_demo(lab: LabNetwork, console: Console) -> bool:
    """Traffic c1 -> sv1 through the forwarding member; prints a table; True if all passed."""
    c1, sv1 = lab.host("c1"), lab.host("sv1")
    sv1_ip = str(lab.topo.servers[0].address.ip)
    member = forwarding_member(lab)
    table = Table(title=escape(f"c1 -> sv1 ({sv1_ip}) through {member} "
                               f"[{lab.member_mode}]"))
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    ok = True

    def row(name: str, passed: bool, detail: str) -> None:
        nonlocal ok
        ok = ok and passed
        table.add_row(name, "[green]PASS[/]" if passed else "[red]FAIL[/]", escape(detail))

    p = ping(c1, sv1_ip, count=5)
    avg = f", avg rtt {p.avg_ms:.2f} ms" if p.avg_ms is not None else ""
    row("ping", p.ok, f"{p.received}/{p.sent} replies{avg}")
    u = iperf3(c1, sv1, sv1_ip, seconds=2, udp=True, bitrate="10M")
    row("UDP iperf3 10 Mbit/s", u.ok,
        u.error or f"{u.mbps:.1f} Mbit/s, {u.lost_percent:.1f} % lost")
    t = iperf3(c1, sv1, sv1_ip, seconds=3)
    row("TCP iperf3", t.ok, t.error or f"{t.mbps:.0f} Mbit/s, {t.retransmits} retransmits")
    console.print(table)

    if lab.member_mode == "fgcpd":
        console.print(f"[bold]{member} # diagnose sys session list[/]")
        try:
            console.print(lab.diag(member, "diagnose sys session list"), markup=False,
                          highlight=False)
        except OSError as exc:  # fgcp.ctl.CtlError is an OSError
            row("diag", False, str(exc))
            console.print(f"[red]diag failed: {exc}[/]")
            ok = False
    else:
        console.print(f"[bold]{member} (kernel mode) # nft list ruleset[/]")
        console.print(lab.host(member).cmd("nft list ruleset"), markup=False, highlight=False)
    return ok


def lab_from_args(args: argparse.Namespace) -> LabNetwork:
    """The (not yet started) LabNetwork the command line asks for; without
    ``--active`` LabNetwork starts every member (fgcpd) or fgt1 (kernel)."""
    active = (tuple(a for a in args.active.split(",") if a)
              if args.active is not None else None)
    return LabNetwork(
        clients=args.clients, servers=args.servers, members=args.members,
        member_mode=args.member_mode, active_members=active, rundir=args.rundir,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    console = Console()
    from mininet.log import setLogLevel

    # "output" is the level of the Mininet CLI's command output.
    setLogLevel("info" if args.verbose else "warning" if args.demo else "output")
    if args.cleanup:
        removed = cleanup_leftovers()
        console.print(f"removed: {', '.join(removed) if removed else 'nothing'}")
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    t0 = time.monotonic()
    try:
        lab = lab_from_args(args)
        with lab:
            console.print(escape(
                f"lab up in {time.monotonic() - t0:.1f} s: {args.clients} client(s), "
                f"{args.servers} server(s), {args.members} member(s) "
                f"[{args.member_mode}, running {', '.join(lab.active_members)}]; "
                f"controller 127.0.0.1:{lab.controller_port}; rundir {lab.rundir}"
            ))
            if args.demo:
                ok = run_demo(lab, console)
            else:
                from topologies.labcli import LAB_HELP, LabCLI

                console.print(LAB_HELP, markup=False, highlight=False)
                LabCLI(lab)
                ok = True
        console.print(f"lab down after {time.monotonic() - t0:.1f} s; logs kept in {lab.rundir}")
    except (LabError, TopologyError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; lab torn down")
        return 130
    except Terminated:
        console.print("terminated; lab torn down")
        return 143
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
