"""Scenario files (lab/scenario.py): the shipped examples load; every invalid
input fails with a ScenarioError that names the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.scenario import (
    DEFAULTS,
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenarios,
)
from lab.soak import soak_scenario


def bad(data: Any, key: str, *words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "scenario.yaml")
    msg = str(info.value)
    assert msg.startswith(f"scenario.yaml: {key}: "), msg
    for w in words:
        assert w in msg, msg


def test_shipped_scenarios_load() -> None:
    names = {p.stem for p in shipped_scenarios()}
    assert {"default", "pickup-off", "split-brain", "compare", "soak"} <= names
    for p in shipped_scenarios():
        sc = load_scenario(p)
        assert sc.members and sc.duration > sc.warmup


def test_default_scenario_is_kill_primary_with_pickup() -> None:
    sc = load_scenario("default")
    assert [f.kind for f in sc.faults] == ["kill-primary"]
    assert sc.pickup
    assert "set session-pickup enable" in sc.members[0].text
    assert "set hb-interval 1" in sc.members[1].text  # ha: settings reach every member


def test_pickup_off_scenario_disables_pickup() -> None:
    sc = load_scenario("pickup-off")
    assert not sc.pickup
    assert all("set session-pickup disable" in m.text for m in sc.members)


def test_defaults_fill_an_empty_scenario() -> None:
    sc = parse_scenario({}, "empty.yaml")
    assert sc.name == "empty"
    assert sc.member_names() == ["fgt1", "fgt2"]
    assert set(sc.traffic) == set(DEFAULTS["traffic"]) - {"iccp"}  # ICCP is opt-in
    assert sc.faults == ()
    assert sc.hb_detect_s() == pytest.approx(0.3)
    assert sc.advert_int() == pytest.approx(0.1)  # 3 x advert = hb budget


def test_fault_shorthand_and_default_times() -> None:
    sc = parse_scenario({"faults": ["kill-primary@2.5", "old-primary-back"]}, "s.yaml")
    assert [(f.kind, f.at) for f in sc.faults] == [("kill-primary", 2.5),
                                                   ("old-primary-back", 6.5)]


def test_inline_member_config(tmp_path: Path) -> None:
    text = Path("topologies/configs/sync-fgt2.conf").read_text()
    sc = parse_scenario({"members": {"fgt2": {"text": text}}}, "s.yaml")
    assert sc.members[1].source == "inline"


def test_soak_alternates_kill_and_back() -> None:
    sc = soak_scenario(load_scenario("soak"), failovers=3, interval=6)
    assert [f.kind for f in sc.faults] == ["kill-primary", "old-primary-back", "kill-primary",
                                           "old-primary-back", "kill-primary"]


# -- one test per invalid input -----------------------------------------------------
def test_unknown_fault_kind() -> None:
    bad({"faults": [{"kind": "kill-primary", "at": 2}, {"kind": "explode", "at": 4}]},
        "faults[1].kind", "unknown fault 'explode'", "expected one of", "split-brain")


def test_unknown_top_level_key() -> None:
    bad({"trafic": {}}, "trafic", "unknown key")


def test_unknown_traffic_key() -> None:
    bad({"traffic": {"tcp": {"conns": 2, "rtae": 5}}}, "traffic.tcp.rtae", "unknown key")


def test_unknown_traffic_kind() -> None:
    bad({"traffic": {"sctp": {}}}, "traffic.sctp", "unknown key")


def test_traffic_number_out_of_range() -> None:
    bad({"traffic": {"tcp": {"conns": 0}}}, "traffic.tcp.conns", "out of range")


def test_traffic_number_wrong_type() -> None:
    bad({"traffic": {"udp": {"interval": "fast"}}}, "traffic.udp.interval", "expected a number")


def test_traffic_unknown_host() -> None:
    bad({"traffic": {"ping": {"client": "c7"}}}, "traffic.ping.client", "unknown host 'c7'")


def test_fault_missing_kind() -> None:
    bad({"faults": [{"at": 2}]}, "faults[0].kind", "missing")


def test_fault_unknown_key() -> None:
    bad({"faults": [{"kind": "kill-primary", "when": 2}]}, "faults[0].when", "unknown key")


def test_faults_out_of_order() -> None:
    bad({"faults": [{"kind": "kill-primary", "at": 5}, {"kind": "old-primary-back", "at": 3}]},
        "faults[1].at", "before the previous fault")


def test_fault_unknown_member() -> None:
    bad({"faults": [{"kind": "monitor-link-down", "member": "fgt9"}]}, "faults[0].member",
        "unknown member 'fgt9'")


def test_fault_port_where_none_is_taken() -> None:
    bad({"faults": [{"kind": "kill-primary", "port": "port1"}]}, "faults[0].port", "no port")


def test_fault_unknown_port() -> None:
    bad({"faults": [{"kind": "monitor-link-down", "port": "eth0"}]}, "faults[0].port",
        "unknown port")


def test_duration_on_a_fault_that_is_not_restored() -> None:
    bad({"faults": [{"kind": "kill-primary", "duration": 3}]}, "faults[0].duration",
        "not restored")


def test_old_primary_back_without_a_kill() -> None:
    bad({"faults": [{"kind": "old-primary-back"}]}, "faults[0].kind", "needs an earlier")


def test_faults_not_a_list() -> None:
    bad({"faults": {"kind": "kill-primary"}}, "faults", "expected a list")


def test_topology_members_out_of_range() -> None:
    bad({"topology": {"members": 9}}, "topology.members", "out of range")


def test_topology_unknown_key() -> None:
    bad({"topology": {"switches": 2}}, "topology.switches", "unknown key")


def test_member_not_in_topology() -> None:
    bad({"members": {"fgt3": {"file": "x.conf"}}}, "members.fgt3", "no such member")


def test_member_config_file_missing() -> None:
    bad({"members": {"fgt1": {"file": "nowhere/fgt1.conf"}}}, "members.fgt1.file",
        "no such file")


def test_member_without_shipped_config() -> None:
    bad({"topology": {"members": 3}}, "members.fgt3.file", "no shipped default")


def test_member_both_file_and_text() -> None:
    bad({"members": {"fgt1": {"file": "a", "text": "b"}}}, "members.fgt1", "not both")


def test_member_inline_config_invalid() -> None:
    bad({"members": {"fgt1": {"text": "config system ha\n    set priority 999\nend\n"}}},
        "members.fgt1.text", "priority")


def test_ha_setting_rejected_by_fortios_schema() -> None:
    bad({"ha": {"hb-lost-threshold": 0}}, "members.fgt1.file", "hb-lost-threshold")


def test_ha_value_wrong_type() -> None:
    bad({"ha": {"priority": [1, 2]}}, "ha.priority", "expected a value")


def test_reference_unknown_key() -> None:
    bad({"reference": {"advert": 1}}, "reference.advert", "unknown key")


def test_warmup_too_short() -> None:
    bad({"warmup": 0.1}, "warmup", "out of range")


def test_soak_failovers_wrong_type() -> None:
    bad({"soak": {"failovers": 2.5}}, "soak.failovers", "integer")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nfaults: [kill-primary\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert str(info.value).startswith("broken.yaml: ")
    assert "invalid YAML" in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("no-such-scenario.yaml")


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    p = tmp_path / "list.yaml"
    p.write_text("- kill-primary\n")
    with pytest.raises(ScenarioError, match="list.yaml: expected a mapping"):
        load_scenario(p)


def test_expect_unknown_key() -> None:
    bad({"expect": {"survivors": "all"}}, "expect.survivors", "unknown key")


def test_expect_bad_tcp_survived() -> None:
    bad({"expect": {"tcp_survived": "most"}}, "expect.tcp_survived", "all, none or a count")
