"""The shipped scenarios no other test runs (forced-failover, link-faults, monitor-link,
override), each run end to end with a small TCP workload and shortened fault
durations: their own expectations must pass, and each shows what it is about
(which member is primary after the fault, whether a failover happened at all).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lab.scenario import Fault, Scenario
from tests.mininet import test_experiment as exp

out_dir = exp.out_dir  # the same fixture: the run's files kept when a test fails


def shortened(name: str, durations: dict[str, float], **changes: Any) -> Scenario:
    """``name`` (small workload) with the faults' ``duration`` shortened by kind."""
    sc = exp.small(name, **changes)
    faults = tuple(dataclasses.replace(f, duration=durations.get(f.kind, f.duration))
                   for f in sc.faults)
    return dataclasses.replace(sc, faults=faults)


def by_kind(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["kind"]: f for f in data["faults"]}


def primary_at_end(data: dict[str, Any]) -> list[str]:
    return [m for m, r in data["cluster"]["roles_end"].items() if r == "work"]


def check_expectations(data: dict[str, Any], sc: Scenario) -> None:
    assert sc.expect, "a shipped scenario states what it expects"
    assert data["expect_failures"] == [], data["expect_failures"]
    tcp = data["summary"]["tcp"]
    assert tcp["survived"] == tcp["flows"] == exp.SMALL_TRAFFIC["conns"], data["flows"]
    assert tcp["lost_bytes"] == 0 and tcp["dup_bytes"] == 0, tcp


def primaries_over_time(data: dict[str, Any]) -> list[tuple[float, list[str]]]:
    """(t, primary) whenever the sampled primary changed. Samples with no or two
    primaries are skipped: the runner asks the members one after the other, so
    it can catch a handover's few milliseconds in between."""
    out: list[tuple[float, list[str]]] = []
    for r in data["cluster"]["roles"]:
        work = sorted(m for m, st in r["roles"].items() if st == "work")
        if len(work) == 1 and (not out or out[-1][1] != work):
            out.append((r["t"], work))
    return out


def test_forced_failover_moves_the_primary_until_the_flag_is_unset(out_dir: Any) -> None:
    sc = shortened("forced-failover", {"failover-set": 2.0})
    data = exp.run(sc, out_dir)
    check_expectations(data, sc)
    (f,) = data["faults"]
    assert (f["member"], f["new_primary"]) == ("fgt1", "fgt2"), f
    assert f["restored_at"] > f["t"]
    # unset: both HA uptimes within ha-uptime-diff-margin, so priority decides and
    # fgt1 (200) is primary again, after the unset and not before
    changes = primaries_over_time(data)
    assert [p for _, p in changes] == [["fgt1"], ["fgt2"], ["fgt1"]], changes
    # (the runner samples the roles every 0.25 s, its time taken just before a restore)
    assert f["t"] <= changes[1][0] < f["t"] + 0.5, (f, changes)
    assert abs(changes[2][0] - f["restored_at"]) < 0.5, (f, changes)
    assert changes[2][0] - changes[1][0] > 1.5, (f, changes)  # fgt2 held it for the 2 s
    assert primary_at_end(data) == ["fgt1"]


def test_monitor_link_down_moves_the_primary_for_good(out_dir: Any) -> None:
    sc = shortened("monitor-link", {"monitor-link-down": 2.0})
    data = exp.run(sc, out_dir)
    check_expectations(data, sc)
    (f,) = data["faults"]
    assert (f["member"], f["port"], f["new_primary"]) == ("fgt1", "port1", "fgt2"), f
    assert f["restored_at"] > f["t"]
    # port1 back: fgt1's HA uptime was reset by the monitor failure, it stays secondary
    assert [p for _, p in primaries_over_time(data)] == [["fgt1"], ["fgt2"]]
    assert primary_at_end(data) == ["fgt2"]


def test_link_faults_cost_no_session_and_only_the_kill_fails_over(out_dir: Any) -> None:
    sc = shortened("link-faults", {"hb-link-cut": 1.0})
    sc = dataclasses.replace(sc, faults=tuple(
        dataclasses.replace(f, at={"hb-link-cut": 2.0, "sync-link-down": 3.5,
                                   "kill-primary": 5.0}[f.kind]) for f in sc.faults))
    data = exp.run(sc, out_dir)
    check_expectations(data, sc)
    f = by_kind(data)
    assert f["hb-link-cut"]["new_primary"] is None  # port4 keeps the cluster together
    assert f["sync-link-down"]["new_primary"] is None
    assert f["kill-primary"]["member"] == "fgt1" and f["kill-primary"]["new_primary"] == "fgt2"
    # every stream survived the kill on state synced over the heartbeat links
    assert data["members"]["fgt2"]["ha_status"], "fgt2 answered at the end"
    assert primary_at_end(data) == ["fgt2"]


def test_override_gives_the_primary_role_back_to_the_old_primary(out_dir: Any) -> None:
    sc = exp.small("override", settle=8.0)
    sc = dataclasses.replace(sc, faults=(Fault("kill-primary", 2.0),
                                         Fault("old-primary-back", 3.5)))
    data = exp.run(sc, out_dir)
    check_expectations(data, sc)
    f = by_kind(data)
    assert f["kill-primary"]["member"] == "fgt1" and f["kill-primary"]["new_primary"] == "fgt2"
    # preemption: fgt1 (priority 200, override enable) is primary again
    assert f["old-primary-back"]["new_primary"] == "fgt1", f["old-primary-back"]
    assert primary_at_end(data) == ["fgt1"], data["cluster"]["roles"]
