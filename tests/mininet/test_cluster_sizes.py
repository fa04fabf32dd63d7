"""Clusters of three and four fgcpd members on shared HA segments (Linux bridges).

The highest priority is elected; after SIGKILL of the primary the next one
takes over, every other member stays secondary, and traffic resumes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lab.probes import start_tcp_streams
from topologies.lab import LabNetwork, wait_until
from topologies.traffic import ping

SV1 = "203.0.113.11"


@pytest.mark.parametrize("members", [3, 4])
def test_bigger_cluster_elects_and_fails_over(
    make_lab: Callable[..., LabNetwork], members: int
) -> None:
    names = [f"fgt{i}" for i in range(1, members + 1)]
    with make_lab(members=members) as lab:
        assert sorted(lab.daemons) == names
        assert lab.wait_ha_stable() == "fgt1"  # priority 200 > 100 > 80 > 60
        assert sorted(lab.roles().values()) == ["standby"] * (members - 1) + ["work"]
        status = lab.diag("fgt1", "get system ha status")
        for i in range(1, members + 1):
            assert f"FGVM01TM0000000{i}" in status, status
        c1 = lab.host("c1")
        wait_until(lambda: ping(c1, SV1, count=1).ok, 10, "traffic through fgt1")
        # synced sessions reach every secondary
        streams = start_tcp_streams(lab, client="c1", server="sv1", conns=10, rate=20)
        try:
            for name in names[1:]:
                wait_until(lambda n=name: lab.diag(n, "diagnose sys session list")
                           .count(f"->{SV1}:5001(") >= 10, 10, f"synced sessions on {name}")
            lab.kill_daemon("fgt1")
            assert lab.wait_ha_stable(timeout=10, members=names[1:]) == "fgt2"
            wait_until(lambda: ping(c1, SV1, count=1).ok, 10, "traffic through fgt2")
        finally:
            report = streams.stop()
        assert report["summary"]["survived"] == 10, report["summary"]
        history = lab.diag("fgt2", "diagnose sys ha history read")
        assert "primary" in history.lower(), history
