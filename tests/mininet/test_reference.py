"""Mininet tests of the reference cluster (keepalived VRRP + conntrackd FT-FW on
fgt1/fgt2): it forms, forwards, fails over on link-down and power-off, and a
long-lived TCP connection survives thanks to conntrackd."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.probes import start_tcp_streams, start_udp_streams
from topologies.lab import LabNetwork
from topologies.reference import ReferenceCluster, setup_reference
from topologies.traffic import ping

SV1 = "203.0.113.11"


@pytest.fixture
def reference_lab(make_lab: Callable[..., LabNetwork], lab_rundir: Path,
                  request: pytest.FixtureRequest) -> Iterator[tuple[LabNetwork, ReferenceCluster]]:
    """A kernel-mode lab with no active member, made a reference pair (advert 0.1 s)."""
    sync = getattr(request, "param", True)
    with make_lab(member_mode="kernel", active_members=()) as lab, \
            setup_reference(lab, advert_int=0.1, conntrack_sync=sync) as ref:
        yield lab, ref
        # keep the reference logs with the lab's artefacts (lab_rundir copies *.log/*.out)
        for p in ref.log_files():
            (lab_rundir / f"reference-{p.name}").write_bytes(p.read_bytes())


def test_reference_forms_forwards_and_fails_over_with_tcp_kept(
        reference_lab: tuple[LabNetwork, ReferenceCluster], lab_rundir: Path) -> None:
    lab, ref = reference_lab
    c1 = lab.host("c1")
    assert ref.master() == "fgt1"
    status = ref.status()
    assert all(s["keepalived"] and s["conntrackd"] for s in status.values()), status
    p = ping(c1, SV1, count=3)
    assert p.ok, p.output
    # c1 reaches sv1 through the master, source-NATed to the outside VIP
    conntrack = lab.host("fgt1").cmd("conntrack -L -p icmp 2>/dev/null")
    assert "src=198.51.100.11" in conntrack and "dst=203.0.113.1 " in conntrack, conntrack

    tcp = start_tcp_streams(lab, conns=4, rate=100, workdir=lab_rundir / "tcp",
                            stall_timeout=5.0)
    udp = start_udp_streams(lab, interval=0.01, workdir=lab_rundir / "udp")
    with tcp, udp:
        time.sleep(1.5)  # streams established and synced to fgt2's external cache
        ext = ref.conntrackd("fgt2", "-e")
        assert "dport=5001" in ext, ext

        ref.fail_master("link-down")
        assert ref.wait_master(timeout=5, not_="fgt1") == "fgt2"
        time.sleep(1.5)
        # the old master comes back and preempts (priority 150), then is powered off
        ref.restore("fgt1")
        assert ref.wait_master(timeout=10, not_="fgt2") == "fgt1"
        time.sleep(1.5)
        ref.fail_master("kill")
        assert ref.wait_master(timeout=5, not_="fgt1") == "fgt2"
        time.sleep(1.5)
        tres, ures = tcp.stop(), udp.stop()
    s = tres["summary"]
    assert s["connected"] == 4, s
    assert s["survived"] == 4 and s["reset"] == 0 and s["continuity_failures"] == 0, s
    # three takeovers at advert 0.1 s: each outage well under the 1 s VRRP would need at 1 s
    assert s["max_gap_ms"] is not None and s["max_gap_ms"] < 2000, s
    assert ures["summary"]["max_gap_ms"] < 2000, ures["summary"]
    assert ures["flows"][0]["received"] > 0.8 * ures["flows"][0]["sent"], ures["summary"]
    assert ping(c1, SV1, count=3).ok
    notes = ref.member("fgt2").notify_log.read_text()
    assert "notify primary" in notes and "conntrackd -c rc=0" in notes, notes


@pytest.mark.parametrize("reference_lab", [False], indirect=True)
def test_without_conntrackd_tcp_does_not_survive(
        reference_lab: tuple[LabNetwork, ReferenceCluster], lab_rundir: Path) -> None:
    lab, ref = reference_lab
    tcp = start_tcp_streams(lab, conns=2, rate=100, workdir=lab_rundir / "tcp",
                            stall_timeout=5.0)
    with tcp:
        time.sleep(1.0)
        ref.fail_master("link-down")
        assert ref.wait_master(timeout=5, not_="fgt1") == "fgt2"
        time.sleep(2.0)
        s = tcp.stop()["summary"]
    assert s["connected"] == 2, s
    assert s["survived"] == 0, s
    assert ping(lab.host("c1"), SV1, count=3).ok  # new traffic flows through fgt2
