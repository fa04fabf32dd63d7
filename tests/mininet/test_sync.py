"""Session sync and pickup in Mininet (issue 4 acceptance): two fgcpd members with fast HA
timers, 200 long-lived TCP counter streams + UDP + ping from c1 to sv1, SIGKILL of the primary.

One lab is shared by the module; every test restarts both daemons with the configuration
it needs (topologies/configs/sync-fgtN.conf plus HA overrides) and waits for fgt1 to be
the agreed primary and fgt2's bulk sync to be complete.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from fgcp.config import load_config
from fgcp.syncmember import DELAY_SCALE_ENV
from lab.gaps import Gap, outage_window
from lab.probes import start_ping, start_short_tcp, start_tcp_streams, start_udp_streams
from tests.evidence import Evidence, kept_rundir
from topologies.lab import CONFIG_DIR, LabNetwork, wait_until, write_ha_config

SV1 = "203.0.113.11"
CONNS = 200
RATE = 20  # messages/s per TCP connection
LOSS_TABLE = "fgcpsyncloss"
UDP_INTERVAL = PING_INTERVAL = 0.01  # s between datagrams of one UDP flow / pings
# from the fabric's move to the first datagram through the new primary: one round trip
# plus the queues of this load (the probes see gaps of up to ~0.2 s with no fault at all)
REROUTE_MARGIN = 0.2


def detection_time(member: str = "fgt2") -> tuple[float, float]:
    """(hb-interval x hb-lost-threshold, hb-interval) of ``member``'s configuration in
    seconds (hb-interval is in units of 100 ms): a peer is lost that long after its
    last heartbeat, noticed at the next heartbeat tick at the latest."""
    ha = load_config(CONFIG_DIR / f"sync-{member}.conf").ha
    interval = ha.hb_interval * 0.1
    return interval * ha.hb_lost_threshold, interval


def stream_summary(results: Mapping[str, Any]) -> str:
    """One line per probe result: its summary, or its scalar fields when it has none."""
    lines = []
    for name, r in results.items():
        summary = r.get("summary") or {k: v for k, v in r.items() if not isinstance(v, list)}
        lines.append(f"{name}: {summary}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def lab(artefacts_root: Path) -> Iterator[LabNetwork]:
    with kept_rundir("fgcp-test-sync-", artefacts_root / "tests_mininet_test_sync.py") as rundir, \
            LabNetwork(rundir=rundir, active_members=(), wait_ha=False) as net:
        yield net


@pytest.fixture(autouse=True)
def _evidence(lab: LabNetwork, evidence: Evidence) -> None:
    """Each test captures the HA links and, when it fails, keeps its own diag + logs."""
    evidence.watch(lab)


def sync_stats(lab: LabNetwork, member: str) -> str:
    return lab.diag(member, "diagnose sys session sync")


def bulk_complete(lab: LabNetwork, member: str) -> bool:
    return "bulk=complete" in sync_stats(lab, member)


def start_cluster(lab: LabNetwork, settings: Mapping[str, object] | None = None,
                  env: Mapping[str, str] | None = None,
                  members: tuple[str, ...] = ("fgt1", "fgt2")) -> None:
    """(Re)start the members with sync-fgtN.conf + ``settings``; fgt1 primary, fgt2 synced."""
    for name in list(lab.daemons):
        lab.stop_daemon(name)
    for name in ("fgt1", "fgt2"):  # links back up, no loss rules left by a failed test
        lab.set_links(name, True, ["port3", "port4", "port5"])
        lab.host(name).cmd(f"nft delete table netdev {LOSS_TABLE} 2>/dev/null")
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        for name in members:
            conf = write_ha_config(name, lab.rundir / f"{name}-sync.conf", settings or {},
                                   base=CONFIG_DIR / f"sync-{name}.conf")
            lab.start_daemon(name, config=conf)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    lab.wait_ha_stable(timeout=20, members=list(members))
    assert lab.primaries() == ["fgt1"]
    if len(members) > 1 and (settings or {}).get("session-pickup") != "disable":
        wait_until(lambda: bulk_complete(lab, "fgt2"), 10, "fgt2's bulk sync")
    wait_until(lambda: " 0% packet loss" in lab.host("c1").cmd(f"ping -c 1 -W 1 {SV1}"),
               10, "first ping through the cluster")


def session_rows(text: str) -> set[tuple[str, str]]:
    """(proto + TCP state, original-direction NAT hook) of every session in a session list."""
    rows = set()
    for block in text.split("\n\n"):
        m = re.search(r"session info: proto=(\d+) proto_state=(\d+)", block)
        hook = re.search(r"^hook=\S+ dir=org .*$", block, flags=re.MULTILINE)
        if m and hook:
            state = m.group(2) if m.group(1) == "6" else ""
            rows.add((f"{m.group(1)}/{state}", hook.group(0)))
    return rows


def kill_primary_under_load(lab: LabNetwork, tcp: Any, settle: float = 4.0,
                            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """SIGKILL fgt1, wait for fgt2 to be primary, let traffic run, stop the probes."""
    handles = {"tcp": tcp, **(extra or {})}
    try:
        t_kill = lab.kill_daemon("fgt1")
        wait_until(lambda: lab.ha_state("fgt2").get("state") == "work", 5, "fgt2 primary")
        time.sleep(settle)
    finally:
        results = {name: h.stop() for name, h in handles.items()}
    results["t_kill"] = t_kill
    return results


def broken(tcp: Mapping[str, Any], limit: int = 3) -> list[dict[str, Any]]:
    """Why the first ``limit`` connections that did not survive failed (their end states)."""
    keys = ("id", "source_state", "source_error", "failed_at", "sink_end", "continuity_ok",
            "undelivered_messages", "max_stall_s", "max_gap_ms")
    rows = [c for c in tcp["connections"] if not c["survived"]]
    return [{k: c.get(k) for k in keys} for c in rows[:limit]] + (
        [{"not survived": len(rows)}] if rows else [])


def test_pickup_sessions_survive_sigkill_of_the_primary(lab: LabNetwork) -> None:
    start_cluster(lab)
    tcp = start_tcp_streams(lab, "c1", "sv1", conns=CONNS, rate=RATE, stall_timeout=5.0)
    udp = start_udp_streams(lab, "c1", "sv1", flows=4, interval=UDP_INTERVAL)
    ping = start_ping(lab, "c1", "sv1", interval=PING_INTERVAL)
    time.sleep(2.0)
    # every session is synced: the secondary's table equals the primary's
    wait_until(lambda: session_rows(lab.diag("fgt2", "diagnose sys session list"))
               == session_rows(lab.diag("fgt1", "diagnose sys session list")), 5,
               "fgt2's synced table == fgt1's table")
    listing = lab.diag("fgt2", "diagnose sys session list")
    assert listing.count("synced") >= CONNS + 4, listing[-300:]
    res = kill_primary_under_load(lab, tcp, extra={"udp": udp, "ping": ping})
    s = res["tcp"]["summary"]
    bad = broken(res["tcp"])
    assert s["connected"] == CONNS and s["survived"] == CONNS, bad
    assert s["reset"] == 0 and s["continuity_failures"] == 0, bad
    for c in res["tcp"]["connections"]:
        assert c["lost_messages"] == 0 and c["duplicated_messages"] == 0
        assert c["messages_received"] == c["messages_sent"] > RATE * 4
    print(f"TCP: {CONNS} survived, max gap {s['max_gap_ms']} ms")
    t_kill = res["t_kill"]
    # fgt2 declared fgt1 lost within the configured detection time
    log = lab.member_log("fgt2").read_text()
    m_lost = re.search(r"HA peer lost t=(\d+\.\d+)", log)
    m_role = re.search(r"role \w+ -> primary t=(\d+\.\d+)", log)
    m_inst = re.search(r"takeover, (\d+) synced sessions installed .* in ([\d.]+) ms", log)
    assert m_lost and m_role and m_inst, log[-2000:]
    detect, poll = detection_time()
    t_lost = float(m_lost.group(1))
    assert t_kill < t_lost <= t_kill + detect + poll, (t_lost - t_kill, detect)
    # the fabric moved both virtual MACs (inside s1, outside s2) to fgt2
    moves = {dpid: float(t) for t, dpid in reversed(re.findall(
        r"reroute t=(\d+\.\d+) dpid=0*(\d+) .*to_port=2", lab.controller_log.read_text()))
        if float(t) > t_kill}
    assert set(moves) == {"1", "2"}, moves
    t_moved = max(moves.values())
    print(f"fgt1 lost +{(t_lost - t_kill) * 1000:.0f} ms, fgt2 primary "
          f"+{(float(m_role.group(1)) - t_kill) * 1000:.0f} ms after the SIGKILL "
          f"({m_inst.group(1)} sessions installed in {m_inst.group(2)} ms first), fabric moved "
          f"+{[round((t - t_kill) * 1000) for t in moves.values()]} ms")
    # UDP and ping: nothing duplicated, and the outage of each flow (what it lost)
    # ends within REROUTE_MARGIN of the fabric's move: detection + reroute, no more
    # (UDP: the windows of lost datagrams on the sender's clock, which a receiver
    # starved by this load cannot hide by reading its backlog in one go; ping:
    # iputils' own reply times)
    flows = [(f"udp {f['id']}", f, f["loss_windows"]) for f in res["udp"]["flows"]]
    flows.append(("ping", res["ping"], res["ping"]["gaps"]))
    for name, f, gaps in flows:
        assert f["received"] > 0 and f["duplicates"] == 0, (name, f)
        out = outage_window([Gap.from_dict(g) for g in gaps], t_kill, within_s=1.0)
        why = (f"{name}: outage {out}, windows (ms after the kill, ms) "
               f"{[(round((g['start'] - t_kill) * 1000), round(g['duration_ms'])) for g in gaps]}")
        assert out is not None and out.resumed, why
        assert out.end <= t_moved + REROUTE_MARGIN, why
        print(f"{name}: outage {out.duration_ms:.0f} ms, lost {f['lost']}")
    stats = sync_stats(lab, "fgt2")
    assert "role: primary (sender)" in stats
    m = re.search(r"takeover: count=1 installed=(\d+) install_failed=0", stats)
    assert m and int(m.group(1)) >= CONNS + 4, stats


def test_pickup_disabled_tcp_connections_fail(lab: LabNetwork) -> None:
    start_cluster(lab, {"session-pickup": "disable", "session-pickup-connectionless": "disable"})
    assert "sessions=0" in sync_stats(lab, "fgt2")
    tcp = start_tcp_streams(lab, "c1", "sv1", conns=50, rate=RATE, stall_timeout=2.0)
    time.sleep(1.5)
    assert "total session 0" in lab.diag("fgt2", "diagnose sys session list")
    res = kill_primary_under_load(lab, tcp, settle=4.0)
    s = res["tcp"]["summary"]
    assert s["connected"] == 50
    assert s["survived"] == 0, [c for c in res["tcp"]["connections"] if c["survived"]][:3]
    # the new primary dropped the mid-stream segments of the sessions it did not know
    assert re.search(r"fwd\.no_session=[1-9]", lab.diag("fgt2", "diagnose lab stats"))


def test_pickup_delay_only_tcp_older_than_the_delay_survive(lab: LabNetwork) -> None:
    # FGCP_LAB_PICKUP_DELAY_SCALE=0.1: the 30 s of session-pickup-delay become 3 s
    start_cluster(lab, {"session-pickup-delay": "enable"}, env={DELAY_SCALE_ENV: "0.1"})
    assert "pickup_delay=3.0s" in sync_stats(lab, "fgt1")
    old = start_tcp_streams(lab, "c1", "sv1", conns=50, rate=RATE, port=5001,
                            stall_timeout=3.0)
    time.sleep(4.0)  # older than the (scaled) delay: synced
    young = start_tcp_streams(lab, "c1", "sv1", conns=50, rate=RATE, port=5011,
                              stall_timeout=3.0)
    time.sleep(0.5)  # younger than the delay: not synced
    res = kill_primary_under_load(lab, old, settle=4.5, extra={"young": young})
    assert res["tcp"]["summary"]["survived"] == 50, res["tcp"]["summary"]
    assert res["young"]["summary"]["connected"] == 50
    assert res["young"]["summary"]["survived"] == 0, res["young"]["summary"]


def add_sync_loss(lab: LabNetwork, member: str, percent: int) -> None:
    rule = f"ether type 0x8892 numgen random mod 100 < {percent} counter drop"
    cmd = (f"add table netdev {LOSS_TABLE}; "
           f"add chain netdev {LOSS_TABLE} in {{ type filter hook ingress device \"port5\" "
           "priority 0; policy accept; }; "
           f"add chain netdev {LOSS_TABLE} out {{ type filter hook egress device \"port5\" "
           "priority 0; policy accept; }; "
           f"add rule netdev {LOSS_TABLE} in {rule}; add rule netdev {LOSS_TABLE} out {rule}")
    out = lab.host(member).cmd(f"nft '{cmd}' && echo nft-ok")
    assert "nft-ok" in out, out


def loss_drops(lab: LabNetwork, member: str) -> int:
    text = lab.host(member).cmd(f"nft list table netdev {LOSS_TABLE}")
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", text))


def test_lossy_sync_link_secondary_table_converges(lab: LabNetwork) -> None:
    start_cluster(lab)
    add_sync_loss(lab, "fgt1", 20)
    handles = {"tcp": start_tcp_streams(lab, "c1", "sv1", conns=100, rate=RATE),
               "udp": start_udp_streams(lab, "c1", "sv1", flows=20, interval=0.02),
               "short": start_short_tcp(lab, "c1", "sv1", rate=40)}
    results: dict[str, Any] = {}

    def rows(member: str) -> set[tuple[str, str]]:
        return session_rows(lab.diag(member, "diagnose sys session list"))

    try:
        time.sleep(5.0)
        # counted under load: the 100 TCP streams and 20 UDP flows are sessions now
        loaded = len(rows("fgt1"))
        results["short"] = handles["short"].stop()
        if loaded < 120:
            results.update((n, h.stop()) for n, h in handles.items())
            pytest.fail(f"precondition: {loaded} sessions on fgt1 under load, want >= 120\n"
                        + stream_summary(results))
        # the long streams go on: once the short connections' TIME_WAIT sessions
        # expired, the secondary's table equals the primary's despite the loss
        wait_until(lambda: rows("fgt1") == rows("fgt2"), 10,
                   "fgt2's synced table == fgt1's table under 20% sync loss")
        converged = rows("fgt2")
    finally:
        results.update((n, h.stop()) for n, h in handles.items())
    assert loss_drops(lab, "fgt1") > 50
    assert len(converged) >= 120, (len(converged), stream_summary(results))
    stats = sync_stats(lab, "fgt1")
    resends = int(re.search(r"resends=(\d+)", stats).group(1))  # type: ignore[union-attr]
    assert resends > 0, stats
    s = results["tcp"]["summary"]
    assert s["connected"] == s["survived"] == 100, stream_summary(results)


def test_sync_link_failure_moves_sync_to_heartbeat_links(lab: LabNetwork) -> None:
    start_cluster(lab)
    tcp = start_tcp_streams(lab, "c1", "sv1", conns=100, rate=RATE, port=5001,
                            stall_timeout=5.0)
    time.sleep(1.0)
    lab.set_links("fgt1", False, ["port5"])
    wait_until(lambda: "fallback to heartbeat links" in sync_stats(lab, "fgt1"), 3,
               "sync on the heartbeat links")
    # connections opened after the sync link failed are synced over port3/port4
    late = start_tcp_streams(lab, "c1", "sv1", conns=50, rate=RATE, port=5011,
                             stall_timeout=5.0)
    time.sleep(1.5)
    stats = sync_stats(lab, "fgt1")
    fb = int(re.search(r"fallback-frames=(\d+)", stats).group(1))  # type: ignore[union-attr]
    assert fb > 0, stats
    res = kill_primary_under_load(lab, tcp, extra={"late": late})
    for name in ("tcp", "late"):
        s = res[name]["summary"]
        assert s["survived"] == s["connected"] == s["conns"], (name, s)
        assert s["continuity_failures"] == 0


def test_member_joining_under_load_gets_bulk_then_survives_failover(lab: LabNetwork) -> None:
    start_cluster(lab, members=("fgt1",))
    tcp = start_tcp_streams(lab, "c1", "sv1", conns=CONNS, rate=RATE, stall_timeout=5.0)
    udp = start_udp_streams(lab, "c1", "sv1", flows=20, interval=0.02)
    short = start_short_tcp(lab, "c1", "sv1", rate=20)
    time.sleep(1.0)
    conf = write_ha_config("fgt2", lab.rundir / "fgt2-sync.conf", {},
                           base=CONFIG_DIR / "sync-fgt2.conf")
    t0 = time.time()
    lab.start_daemon("fgt2", config=conf)
    wait_until(lambda: bulk_complete(lab, "fgt2"), 15, "fgt2's bulk sync under load")
    print(f"fgt2 bulk sync complete {time.time() - t0:.2f} s after its start")
    lab.wait_ha_stable(timeout=10)
    assert lab.primaries() == ["fgt1"]  # a member with its bulk pending never took over
    assert "recv:" in sync_stats(lab, "fgt2")
    time.sleep(1.0)
    short.stop()
    res = kill_primary_under_load(lab, tcp, extra={"udp": udp})
    s = res["tcp"]["summary"]
    assert s["connected"] == s["survived"] == CONNS, s
    assert s["reset"] == 0 and s["continuity_failures"] == 0
    assert all(f["received"] > 0 for f in res["udp"]["flows"])
