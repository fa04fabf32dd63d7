"""Entry point of ``python -m lab.probes <tool> ...`` (the probe processes
the orchestration starts in lab hosts); see lab.probes.cli."""

import sys

from lab.probes.cli import main

sys.exit(main())
