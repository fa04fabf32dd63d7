"""The ICCP probe in a failover result (no lab): its flow rows, the expectations a
scenario puts on them (lab.analysis), the report's "inspected after failover" column
(lab.report) and the scenario keys (lab.scenario)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lab.analysis import analyze, check_expectations
from lab.report import iccp_table_rows, print_summary, write_reports
from lab.scenario import ScenarioError, parse_scenario

T0 = 1_700_000_000.0
KILL = T0 + 3.0
ANOMALY = ('t=1700000004.100 attack_id=9101 name="ICCP.Breaker.Oper.Write" action=reset '
           'proto=6 198.51.100.10:40002->203.0.113.11:102 dir=from_client service=iccp')


def iccp_probe(failed_after: int = 0, outcome: str = "reset", ips: str | None = "on",
               second_half_on: str = "fault") -> dict[str, Any]:
    """The iccp merge report: 5 ops/s for 8 s, ``failed_after`` failed after the kill;
    the attack's second half released by the kill with ``outcome``."""
    ops = []
    for i in range(40):
        t = T0 + i * 0.2 + (0.4 if T0 + i * 0.2 >= KILL else 0.0)
        ok = not (t >= KILL and i < 15 + failed_after + 1 and failed_after and i > 15)
        ops.append([t, "write" if i % 3 == 2 else "read", ok, 2.0 if t < KILL else 9.0])
    failed = sum(1 for op in ops if not op[2])
    ok_times = [op[0] for op in ops if op[2]]
    client = {"associated": True, "ended": "completed", "ops_attempted": 40,
              "ops_ok": 40 - failed, "ops_failed": failed, "reads_ok": 26, "writes_ok": 13,
              "first_error": "read x: timeout" if failed else None, "ops": ops,
              "max_gap_ms": 600.0, "gaps": [{"start": KILL - 0.2, "end": KILL + 0.4,
                                             "resumed": True, "duration_ms": 600.0}],
              "first_ok": ok_times[0], "last_ok": ok_times[-1], "association_attempts": 1,
              "local_port": 40001, "started": T0}
    attack = {"associated": True, "outcome": outcome, "split": 52, "pdu_len": 105,
              "first_half_at": T0 + 0.5, "second_half_at": KILL + 0.6,
              "error": None if outcome == "answered" else "[Errno 104] reset",
              "local_port": 40002, "second_half_on": second_half_on}
    logged = [ANOMALY] if outcome != "answered" else []
    return {"kind": "iccp", "client": client, "attack": attack, "server": {},
            "server_ip": "203.0.113.11", "port": 102, "fault_t": KILL,
            "primary_before": "fgt1", "new_primary": "fgt2",
            "inspection": {"client": {"local_port": 40001, "ips": ips, "anomalies": []},
                           "attack": {"local_port": 40002, "ips": ips, "anomalies": logged}}}


SCENARIO = {"traffic": {"iccp": {"rate": 5}}, "faults": ["kill-primary@3"],
            "expect": {"iccp_association": "survived", "iccp_attack": "blocked"}}


def result(probe: dict[str, Any], expect: dict[str, Any] | None = None) -> dict[str, Any]:
    sc = parse_scenario({**SCENARIO, **({"expect": expect} if expect else {})}, "ips.yaml")
    applied = [{"index": 0, "kind": "kill-primary", "member": "fgt1", "t": KILL,
                "port": None, "restored_at": None, "primary_before": "fgt1", "detail": "",
                "extra": {}}]
    info = {"member_logs": {"fgt1": "", "fgt2": ""}, "controller_log": "",
            "members": {m: {"config": "", "config_source": f"{m}.conf", "ha_history": "",
                            "ha_status": "", "errors": []} for m in ("fgt1", "fgt2")},
            "roles_end": {"fgt2": "work"}, "settings": {"session_pickup": True}}
    return analyze(sc, "fgcp", T0, T0 + 9.0, applied, {"iccp": probe}, info)


def test_rows_count_ops_after_the_fault_and_name_the_inspection() -> None:
    r = result(iccp_probe())
    assoc, attack = r["flows"]
    assert (assoc["id"], assoc["kind"], assoc["survived"]) == ("iccp-assoc", "iccp", True)
    assert assoc["ops_after_fault"] == 25 and assoc["failed_after_fault"] == 0
    assert assoc["latency_ms"]["max"] == 9.0 and assoc["inspected_after_failover"] == "on"
    assert attack["attack_blocked"] and not attack["reached_server"]
    assert attack["split_across_fault"] and attack["logged_by"] == "fgt2"
    assert attack["logged"] == [ANOMALY]
    assert r["expect_failures"] == []
    assert r["faults"][0]["traffic"]["iccp"]["max_gap_ms"] == 600.0


def test_expectations_fail_when_the_attack_passes_or_the_association_breaks() -> None:
    r = result(iccp_probe(outcome="answered"))
    assert r["expect_failures"] == [
        "iccp_attack: expected blocked, got answered (outcome answered)"]
    r = result(iccp_probe(failed_after=3))
    assert len(r["expect_failures"]) == 1
    assert r["expect_failures"][0].startswith(
        "iccp_association: expected survived, got broken (ended completed, 3 of 40 ops "
        "failed, 3 after the fault)")
    r = result(iccp_probe(second_half_on="stop"))
    assert r["expect_failures"] == [("iccp_attack: expected blocked, but the attack was not "
                                    "split across a fault (no fault released its second half)")]
    assert check_expectations({"iccp_attack": "answered"},
                              result(iccp_probe(outcome="answered"))) == []
    r = result(iccp_probe(ips="uninspected"))
    assert check_expectations({"iccp_inspected_after_failover": "on"}, r) == [
        ("iccp_inspected_after_failover: expected on, got "
        "{'iccp-assoc': 'uninspected', 'iccp-attack': 'uninspected'}")]


def test_report_shows_inspected_after_failover(tmp_path: Path) -> None:
    r = result(iccp_probe())
    assert iccp_table_rows(r) == [
        ["iccp-assoc", "completed", "40/40", "25/25", "600", "on", "-", "-"],
        ["iccp-attack", "reset", "-", "-", "-", "on", "yes", "fgt2"]]
    assert iccp_table_rows(result(iccp_probe(ips=None)))[0][5] == "-"  # field absent
    console = Console(record=True, width=200)
    print_summary(r, console)
    text = console.export_text()
    assert "inspected after failover" in text
    assert "ICCP association: survived (completed), 40/40 reads+writes ok (25 after the " \
           "fault, 0 failed)" in text
    assert "ICCP split attack: blocked (reset), split across the fault" in text
    page = write_reports(r, tmp_path)["html"].read_text()
    assert "<th>inspected after failover</th>" in page and "<td>fgt2</td>" in page


@pytest.mark.parametrize(("data", "key", "msg"), [
    ({"expect": {"iccp_attack": "blocked"}}, "expect.iccp_attack", "needs traffic.iccp"),
    ({"traffic": {"iccp": {"attack": False}}, "expect": {"iccp_attack": "blocked"}},
     "expect.iccp_attack", "needs traffic.iccp.attack: true"),
    ({"traffic": {"iccp": True}, "expect": {"iccp_association": "kept"}},
     "expect.iccp_association", "expected one of survived, broken"),
    ({"traffic": {"iccp": {"split": 0}}}, "traffic.iccp.split", "expected item or a byte"),
    ({"traffic": {"iccp": {"attack": "yes"}}}, "traffic.iccp.attack", "expected true or"),
    ({"traffic": {"iccp": {"rate": 0}}}, "traffic.iccp.rate", "out of range"),
])
def test_scenario_rejects_bad_iccp_keys(data: dict[str, Any], key: str, msg: str) -> None:
    with pytest.raises(ScenarioError, match=msg) as e:
        parse_scenario(data, "bad.yaml")
    assert e.value.key == key


def test_scenario_iccp_defaults() -> None:
    sc = parse_scenario({"traffic": {"iccp": True}}, "x.yaml")
    assert sc.traffic["iccp"] == {"rate": 5.0, "attack": True, "split": "item",
                                  "client": "c1", "server": "sv1", "port": 102}


def test_shipped_ips_iccp_scenario_loads() -> None:
    """lab/scenarios/ips-iccp.yaml: the IPS members, the ICCP probe with the attack, and
    the expectations that make `fgcp-lab run ips-iccp` exit non-zero."""
    from lab.scenario import load_scenario

    sc = load_scenario("ips-iccp")
    assert [m.source.rsplit("/", 1)[-1] for m in sc.members] == ["ips-fgt1.conf",
                                                                  "ips-fgt2.conf"]
    assert all('set ips-sensor "iccp-ot"' in m.text for m in sc.members) and sc.pickup
    assert sc.traffic["iccp"]["attack"] is True and sc.traffic["iccp"]["port"] == 102
    assert [f.kind for f in sc.faults] == ["kill-primary"]
    assert sc.expect["iccp_association"] == "survived"
    assert sc.expect["iccp_attack"] == "blocked"
