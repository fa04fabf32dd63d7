"""The scenario's traffic mix started in the lab: one probe handle per kind of
the scenario's ``traffic:`` section (lab.probes), always stopped on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab import probes
from lab.scenario import Scenario


@contextlib.contextmanager
def traffic(lab: Any, sc: Scenario, workdir: Path) -> Iterator[dict[str, Any]]:
    """Start the scenario's traffic; yields {kind: handle}; always stops it."""
    handles: dict[str, Any] = {}
    try:
        t = sc.traffic
        if "tcp" in t:
            c = t["tcp"]
            handles["tcp"] = probes.start_tcp_streams(
                lab, c["client"], c["server"], conns=int(c["conns"]), rate=float(c["rate"]),
                port=int(c["port"]), workdir=workdir / "tcp")
        if "udp" in t:
            c = t["udp"]
            handles["udp"] = probes.start_udp_streams(
                lab, c["client"], c["server"], flows=int(c["flows"]),
                interval=float(c["interval"]), port=int(c["port"]), workdir=workdir / "udp")
        if "ping" in t:
            c = t["ping"]
            handles["ping"] = probes.start_ping(lab, c["client"], c["server"],
                                                interval=float(c["interval"]),
                                                workdir=workdir / "ping")
        if "short_tcp" in t:
            c = t["short_tcp"]
            handles["short_tcp"] = probes.start_short_tcp(
                lab, c["client"], c["server"], rate=float(c["rate"]),
                port=int(c["port"]), timeout=float(c["timeout"]),
                workdir=workdir / "short")
        if "iccp" in t:
            c = t["iccp"]
            handles["iccp"] = probes.start_iccp(
                lab, c["client"], c["server"], rate=float(c["rate"]),
                attack=bool(c["attack"]), split=str(c["split"]), port=int(c["port"]),
                workdir=workdir / "iccp")
        yield handles
    finally:
        for h in handles.values():
            if h.result is None:
                with contextlib.suppress(Exception):
                    h.stop(collect=False)
