"""Predefined IPS sensors (inspection/ips/predefined.py): what each one selects, and a
policy naming one through fgcpd's adapter (no configured sensor of that name)."""

from __future__ import annotations

from fgcp.config import IPS_SENSORS, parse_config
from fgcp.ipsinspector import IpsInspector
from inspection.ips import IpsEngine, RuleSet
from inspection.ips.predefined import SENSORS, SIGNATURES, sensor_rules
from tests.unit.ips_fakes import Tcp
from tests.unit.test_ips_config import GOOD, custom, policies, sensor


def names(sensor_name: str) -> dict[str, str]:
    rules = sensor_rules(sensor_name)
    assert rules is not None
    return {r.signature.name: r.action for r in rules}


def test_every_predefined_sensor_compiles_and_the_config_accepts_its_name() -> None:
    assert tuple(SENSORS) == IPS_SENSORS
    for name in SENSORS:
        RuleSet.compile(sensor_rules(name) or [])
    assert sensor_rules("ot-strict") is None
    assert len({parse_sig_id(p.text) for p in SIGNATURES}) == len(SIGNATURES)


def parse_sig_id(text: str) -> int:
    from inspection.ips import parse_signature
    aid = parse_signature(text).attack_id
    assert aid is not None and 9901 <= aid <= 9999
    return aid


def test_what_each_sensor_selects() -> None:
    every = {p.text for p in SIGNATURES}
    assert len(names("all_default")) == len(every)
    assert "HTTP.Scanner.Nikto.User.Agent" not in names("default")  # low severity
    assert set(names("default")) == set(names("all_default")) - {"HTTP.Scanner.Nikto.User.Agent"}
    assert names("wifi-default") == names("default")
    assert set(names("all_default_pass").values()) == {"pass"}
    assert set(names("high_security").values()) == {"block"}
    assert names("all_default")["ICCP.MMS.Control.Point.Write"] == "pass"  # logged only
    assert names("high_security")["ICCP.MMS.Control.Point.Write"] == "block"
    assert set(names("protect_client")) == {"HTTP.Client.EICAR.Test.File",
                                            "ICCP.MMS.Malformed.PDU", "ICCP.TASE2.Oversized.PDU"}
    assert "HTTP.Client.EICAR.Test.File" not in names("protect_http_server")
    assert all(n.startswith("HTTP.") for n in names("protect_http_server"))
    assert names("protect_email_server") == {}


def test_predefined_sensor_blocks_an_attack_split_across_segments() -> None:
    eng = IpsEngine(RuleSet.compile(sensor_rules("protect_http_server") or []), iccp=None)
    tcp = Tcp(eng)
    verdicts = tcp.chunks([b"GET /scripts/CMD", b".EXE?/c+dir HTTP/1.0\r\n\r\n"])
    assert [v.action for v in verdicts] == ["pass", "block"]
    assert [e.name for e in verdicts[1].events] == ["HTTP.Windows.Cmd.Exe.Access"]
    client = IpsEngine(RuleSet.compile(sensor_rules("protect_client") or []), iccp=None)
    tcp = Tcp(client)
    assert tcp.send(b"GET /scripts/cmd.exe HTTP/1.0\r\n\r\n").action == "pass"  # not its job
    assert tcp.send(b"HTTP/1.0 200 OK\r\n\r\nX5O...EICAR-STANDARD-ANTIVIRUS-TEST-FILE!",
                    "server").action == "block"


def test_a_policy_naming_a_predefined_sensor_gets_its_signatures() -> None:
    cfg = parse_config(policies("high_security"))
    insp = IpsInspector(cfg)
    assert insp.enabled
    eng = insp.by_policy[1]
    assert {r.signature.name for r in eng.ruleset.rules} == set(names("high_security"))


def test_a_configured_sensor_replaces_the_predefined_one_of_that_name() -> None:
    text = custom(("a", GOOD, ())) + sensor("default", (1, '"a"', "block")) + policies("default")
    insp = IpsInspector(parse_config(text))
    assert [r.signature.name for r in insp.by_policy[1].ruleset.rules] != list(names("default"))
    assert len(insp.by_policy[1].ruleset.rules) == 1
