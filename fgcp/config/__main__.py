"""``python -m fgcp.config FILE ...``: the ``check-config`` command.

Thin entry point; the command is fgcp/config/cli.py ``main``.
"""

import sys

from fgcp.config.cli import main

raise SystemExit(main(sys.argv[1:]))
