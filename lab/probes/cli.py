"""The probe processes' command line (``python -m lab.probes <tool> ...``):
options from the registry, signal handling, one JSON report written at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import lab.probes
from lab.probes.common import ProbeError, stop_on_signals, write_report
from lab.probes.registry import TOOLS, tool
from topologies.util import die_with_parent


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--out", required=True, help="JSON report path")
    sp.add_argument("--die-with-parent", action="store_true",
                    help="stop (and report) when the starting process dies")
    sp.add_argument("--duration", type=float, default=None,
                    help="stop after S seconds (default: until SIGTERM/SIGINT)")


def parser() -> argparse.ArgumentParser:
    """The CLI parser: one subcommand per registered tool."""
    doc = lab.probes.__doc__ or ""
    p = argparse.ArgumentParser(prog="python -m lab.probes", description=doc.split("\n")[0])
    sub = p.add_subparsers(dest="tool", required=True)
    for t in TOOLS:
        sp = sub.add_parser(t.name, help=t.help)
        _common(sp)
        t.add_args(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    should_stop = stop_on_signals()
    if a.die_with_parent:
        die_with_parent()
    try:
        rep = tool(a.tool).run(a, should_stop)
    except (ProbeError, OSError) as e:
        print(f"{a.tool}: {e}", file=sys.stderr)
        return 1
    write_report(a.out, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
