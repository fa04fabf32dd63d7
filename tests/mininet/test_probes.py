"""Mininet tests of the failover probes: TCP streams, UDP, ping and short TCP
from c1 to sv1 through one member (kernel router, then fgcpd) with no fault:
every session survives, byte-exact, with small gaps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.gaps import Gap, outage_window
from lab.probes import (
    start_ping,
    start_short_tcp,
    start_tcp_streams,
    start_udp_streams,
    stop_all,
)
from topologies.lab import LabNetwork

SV1 = "203.0.113.11"


def run_mix(lab: LabNetwork, seconds: float = 3.0) -> dict[str, dict[str, Any]]:
    assert lab.host("sv1").IP() == SV1
    handles = {}
    try:
        handles["tcp"] = start_tcp_streams(lab, "c1", "sv1", conns=50, rate=50)
        handles["udp"] = start_udp_streams(lab, "c1", "sv1", flows=2, interval=0.01)
        handles["ping"] = start_ping(lab, "c1", "sv1", interval=0.01)
        handles["short"] = start_short_tcp(lab, "c1", "sv1", rate=10)
        time.sleep(seconds)
    finally:
        results = stop_all(handles)  # every handle is stopped, even after an error
    return results


def check_no_fault(res: dict[str, dict[str, Any]], max_gap_ms: float) -> None:
    tcp = res["tcp"]["summary"]
    assert tcp["connected"] == 50, res["tcp"]["connections"][:3]
    assert tcp["survived"] == 50, [c for c in res["tcp"]["connections"] if not c["survived"]][:3]
    assert tcp["reset"] == 0 and tcp["continuity_failures"] == 0
    assert tcp["max_gap_ms"] < max_gap_ms
    for c in res["tcp"]["connections"]:
        assert c["messages_received"] == c["messages_sent"] >= 100  # ~3 s at 50/s
    # NAT: the sink sees the member's outside address, not c1's
    assert {c["peer"].split(":")[0] for c in res["tcp"]["sink"]["connections"]} == {"203.0.113.1"}

    for f in res["udp"]["flows"]:
        assert f["sent"] >= 250 and f["lost"] == 0 and f["duplicates"] == 0, f
        assert f["max_gap_ms"] < max_gap_ms

    ping = res["ping"]
    assert ping["transmitted"] and ping["transmitted"] >= 200, ping["output_tail"]
    assert ping["lost"] <= 1, ping["missing"]  # the last echo may be in flight at SIGINT
    assert ping["max_gap_ms"] < max_gap_ms

    short = res["short"]
    assert short["attempts"] >= 25 and short["failed"] == 0, short["results"][:3]


def test_probes_through_a_kernel_member(make_lab: Callable[..., LabNetwork]) -> None:
    with make_lab(member_mode="kernel", active_members=("fgt1",)) as lab:
        res = run_mix(lab)
    check_no_fault(res, max_gap_ms=300)


@pytest.mark.parametrize("active", [("fgt1",)])
def test_probes_through_fgcpd(make_lab: Callable[..., LabNetwork], active: tuple[str]) -> None:
    with make_lab(member_mode="fgcpd", active_members=active) as lab:
        res = run_mix(lab)
    check_no_fault(res, max_gap_ms=500)


def test_a_400ms_forwarding_cut_shows_as_a_gap_at_the_cut(
    make_lab: Callable[..., LabNetwork],
) -> None:
    """The probes must see a real outage: fgt1 (kernel router) drops every
    forwarded packet for 400 ms; UDP and ping gaps start at the cut and last
    about 400 ms, TCP streams survive it byte-exact (after a retransmission)."""
    cut = ("add table ip probecut; add chain ip probecut cut "
           "{ type filter hook forward priority 0; policy drop; }")
    with make_lab(member_mode="kernel", active_members=("fgt1",)) as lab:
        fgt1 = lab.host("fgt1")
        handles = {}
        try:
            handles["tcp"] = start_tcp_streams(lab, "c1", "sv1", conns=20, rate=50)
            handles["udp"] = start_udp_streams(lab, "c1", "sv1", flows=1, interval=0.01)
            handles["ping"] = start_ping(lab, "c1", "sv1", interval=0.01)
            time.sleep(1.0)
            t_cut = time.time()
            done = fgt1.cmd(f"nft '{cut}' && echo cut-ok")
            time.sleep(0.4)
            fgt1.cmd("nft delete table ip probecut")
            t_restored = time.time()
            time.sleep(1.5)
        finally:
            res = stop_all(handles)
        rt, ru, rp = res["tcp"], res["udp"], res["ping"]

    assert "cut-ok" in done, done
    (flow,) = ru["flows"]
    out = outage_window([Gap.from_dict(g) for g in flow["gaps"]], t_cut, within_s=0.2)
    assert out is not None, flow["gaps"]
    assert t_cut - 0.05 <= out.start <= t_cut + 0.05
    assert t_restored - 0.05 <= out.end <= t_restored + 0.1
    assert 350 <= out.duration_ms <= 550
    assert 30 <= flow["lost"] <= 55 and flow["max_gap_ms"] == pytest.approx(out.duration_ms, abs=0.01)

    pout = outage_window([Gap.from_dict(g) for g in rp["gaps"]], t_cut, within_s=0.2)
    assert pout is not None and 350 <= pout.duration_ms <= 650, rp["gaps"]
    assert rp["lost"] >= 10

    s = rt["summary"]
    assert s["survived"] == 20 and s["reset"] == 0 and s["continuity_failures"] == 0
    for c in rt["connections"]:
        g = outage_window([Gap.from_dict(x) for x in c["gaps"]], t_cut, within_s=0.2)
        assert g is not None and 350 <= g.duration_ms < 2000, c["gaps"]
        assert c["max_stall_s"] >= 0.3  # the source saw its data go unacknowledged
