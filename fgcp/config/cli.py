"""``check-config`` command: validate configuration files and print their summaries.

The command-line layer of fgcp.config (``fgcp-lab check-config``, ``python -m fgcp.config``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from fgcp.config.loader import load_config
from fgcp.config.summary import summarize
from fgcp.confparse import ConfigError

__all__ = ["check_config", "main"]


def check_config(path: str | Path) -> str:
    """Validate a file; return its summary or raise ``ConfigError``."""
    return summarize(load_config(path))


_USAGE = "usage: fgcp-lab check-config FILE [FILE ...]"


def main(argv: Sequence[str]) -> int:
    """``check-config`` command: print ``OK: <file>: <summary>`` per valid file.

    Errors go to stderr.  Returns 0 when every file is valid, 1 otherwise,
    2 on a usage error.
    """
    args = list(argv)
    if args and args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if not args or any(a.startswith("-") for a in args):
        print(_USAGE, file=sys.stderr)
        return 2
    status = 0
    for path in args:
        try:
            print(f"OK: {path}: {check_config(path)}")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status
