"""``fgcp-lab``: the user's command line (diag, check-config, bench, topo, run, compare, soak).

Only argument handling and dispatch; each subcommand lives in its own module of
fgcp/, topologies/ or lab/, imported when that subcommand runs (so ``diag`` and
``check-config`` work without Mininet, os-ken, rich or matplotlib installed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fgcp import ctl

EPILOG = """\
examples:
  fgcp-lab diag FGT1 "diagnose sys session list"
  fgcp-lab diag FGT1 get system status
  fgcp-lab check-config topologies/configs/fgt1.conf
  sudo .venv/bin/fgcp-lab bench
  sudo .venv/bin/fgcp-lab topo --demo
  sudo .venv/bin/fgcp-lab run lab/scenarios/default.yaml
  sudo .venv/bin/fgcp-lab compare
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fgcp-lab", description="FortiGate HA (FGCP) lab emulator",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    d = sub.add_parser("diag", help="run a FortiOS diag command on a member",
                       description="Send a FortiOS-style command to a member daemon's "
                       "control socket and print the answer.")
    d.add_argument("member", help="member hostname (its socket is <rundir>/<member>.sock)")
    d.add_argument("command", nargs="+", help='e.g. "diagnose sys session list"')
    d.add_argument("--rundir", default=None,
                   help=f"default ${ctl.RUNDIR_ENV} or {ctl.DEFAULT_RUNDIR}")
    d.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    c = sub.add_parser("check-config", help="validate member configuration files",
                       add_help=False)
    c.add_argument("args", nargs=argparse.REMAINDER)
    b = sub.add_parser("bench", help="kernel vs member forwarding benchmark (root)",
                       add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER)
    t = sub.add_parser("topo", help="build the Mininet lab / run the demo (root)",
                       add_help=False)
    t.add_argument("args", nargs=argparse.REMAINDER)
    for name, text in (("run", "failover experiment from a YAML scenario (root)"),
                       ("compare", "same scenario on fgcpd and keepalived + conntrackd (root)"),
                       ("soak", "consecutive failovers alternating the primary (root)")):
        sub.add_parser(name, help=text, add_help=False).add_argument(
            "args", nargs=argparse.REMAINDER)
    return p


def _diag(args: argparse.Namespace) -> int:
    command = " ".join(args.command)
    try:
        answer = ctl.query(args.rundir, args.member, command, timeout=args.timeout)
    except ctl.CtlError as exc:
        print(f"fgcp-lab diag: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(answer)
    return 1 if "Command fail." in answer or answer.startswith("Unknown action") else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fgcp-lab`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Subcommands that own their parsers get the rest of the line verbatim
    # (including -h), so their help is their own.
    if argv and argv[0] in ("check-config", "bench", "topo", "run", "compare", "soak"):
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.cmd == "diag":
        return _diag(args)
    return _delegate(args.cmd, args.args)


def _delegate(cmd: str, rest: list[str]) -> int:
    if cmd == "check-config":
        from fgcp.config import main as check_main

        return check_main(rest)
    if cmd == "bench":
        try:
            from lab.bench import main as bench_main
        except ImportError as exc:
            print(f"fgcp-lab bench: not available ({exc})", file=sys.stderr)
            return 2
        return bench_main(rest)
    if cmd == "topo":
        try:
            from topologies.cli import main as topo_main
        except ImportError as exc:
            print(f"fgcp-lab topo: not available ({exc})", file=sys.stderr)
            return 2
        return topo_main(rest)
    if cmd in ("run", "compare", "soak"):
        from lab.cli import main as lab_main

        return lab_main(cmd, rest)
    raise AssertionError(f"unhandled command {cmd!r}")


if __name__ == "__main__":
    sys.exit(main())
