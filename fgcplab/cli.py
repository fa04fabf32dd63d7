"""``fgcp-lab``: the user's command line (diag, check-config, bench, topo, run, compare, soak).

Only argument handling and dispatch; each subcommand lives in its own module of
fgcp/, topologies/ or lab/, imported when that subcommand runs (so ``diag`` and
``check-config`` work without Mininet, os-ken, rich or matplotlib installed).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

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


# Subcommands that own their parsers (name -> help): their module's ``main`` gets the
# rest of the line verbatim, imported only when the subcommand runs (``_entry``).
DELEGATED: dict[str, str] = {
    "check-config": "validate member configuration files",
    "bench": "kernel vs member forwarding benchmark (root)",
    "topo": "build the Mininet lab / run the demo (root)",
    "run": "failover experiment from a YAML scenario (root)",
    "compare": "same scenario on fgcpd and keepalived + conntrackd (root)",
    "soak": "consecutive failovers alternating the primary (root)",
}


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
    for name, text in DELEGATED.items():
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
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.cmd == "diag":
        return _diag(args)
    return _delegate(args.cmd, args.args)


def _entry(cmd: str) -> Callable[[list[str]], int]:
    """The ``main`` that runs the delegated subcommand ``cmd``, imported only now."""
    if cmd == "check-config":
        from fgcp.config import main as check_main

        return check_main
    if cmd == "bench":
        from lab.bench import main as bench_main

        return bench_main
    if cmd == "topo":
        from topologies.cli import main as topo_main

        return topo_main
    from lab.cli import main as lab_main  # run, compare, soak

    return functools.partial(lab_main, cmd)


def _delegate(cmd: str, rest: list[str]) -> int:
    try:
        entry = _entry(cmd)
    except ImportError as exc:  # e.g. topo without Mininet installed
        print(f"fgcp-lab {cmd}: not available ({exc})", file=sys.stderr)
        return 2
    return entry(rest)


if __name__ == "__main__":
    sys.exit(main())
