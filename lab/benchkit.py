"""What the namespace benchmarks share: their error, a checked command runner, a percentile.

lab.bench, lab.vethlab, lab.sync_bench, lab.conntrackd_bench and lab.failover_bench raise
``BenchError`` for a failed step; ``run`` runs one command (no shell) and raises it when
the command fails; ``nearest_rank`` is the percentile the sync benchmarks report (a value
that was measured, not an interpolation: lab.gaps.percentile interpolates).
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence

__all__ = ["BenchError", "nearest_rank", "run"]


class BenchError(RuntimeError):
    """A step of a benchmark failed (topology set-up, a tool, a worker, a timeout)."""


def run(cmd: Sequence[str], check: bool = True,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, capture its text output; BenchError when ``check`` and it fails."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed (exit {p.returncode}): "
                         f"{p.stderr.strip() or p.stdout.strip()}")
    return p


def nearest_rank(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in 0..100); ValueError when empty."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")
    k = max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))
    return v[k]
