"""``config ips custom`` / ``config ips sensor`` / policy sensors (fgcp/config/ips.py)."""

from __future__ import annotations

import pytest

from fgcp.config import ConfigError, load_config, parse_config
from fgcp.config.ips import sensor_rules
from fgcp.config.summary import summarize
from fgcp.model import IpsSensorEntry
from topologies.lab import CONFIG_DIR

GOOD = r'F-SBID( --name \"Breaker\"; --attack_id 9001; --service ICCP; --flow from_client; --iccp_service write; --iccp_item \"$CO$\"; )'
HTTP = r'F-SBID( --name \"Http\"; --attack_id 9005; --service HTTP; --flow from_client; --pattern \"cmd.exe\"; )'


def custom(*edits: tuple[str, str, tuple[str, ...]], mark: str = "") -> str:
    """``config ips custom``; the signature line of tag ``mark`` is marked ``# <-``."""
    out = ["config ips custom"]
    for tag, sig, extra in edits:
        at = "  # <-" if tag == mark else ""
        out += [f'    edit "{tag}"', f'        set signature "{sig}"{at}',
                *(f"        {e}" for e in extra), "    next"]
    return "\n".join(out + ["end", ""])


def sensor(name: str, *entries: tuple[int, str, str]) -> str:
    out = ["config ips sensor", f'    edit "{name}"', "        config entries"]
    for eid, rule, action in entries:
        out += [f"            edit {eid}", f"                set rule {rule}",
                f"                set action {action}", "            next"]
    return "\n".join(out + ["        end", "    next", "end", ""])


def marked(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert len(lines) == 1
    return lines[0]


def test_shipped_ips_configs_load_with_the_iccp_sensor() -> None:
    for name in ("ips-fgt1.conf", "ips-fgt2.conf"):
        cfg = load_config(CONFIG_DIR / name)
        assert cfg.ha.ips_session_sync == "iccp" and cfg.ha.session_pickup
        by_id = {p.policyid: p for p in cfg.policies}
        assert (by_id[10].ips_sensor, by_id[10].inspection_mode) == ("iccp-ot", "flow")
        assert (by_id[11].ips_sensor, by_id[11].inspection_mode) == ("iccp-ot", "flow")
        assert (by_id[12].ips_sensor, by_id[12].inspection_mode) == ("iccp-ot", "proxy")
        rules = sensor_rules(cfg.ips_sensors["iccp-ot"], cfg.ips_custom)
        names = [r.signature.name for r in rules]
        assert "ICCP.Breaker.Oper.Write" in names and "HTTP.Breaker.Oper.Tunnel" in names
        assert {r.signature.service for r in rules} == {"ICCP", "HTTP"}
        assert all(r.action == "block" for r in rules)


def test_rules_by_tag_or_attack_id_with_entry_and_signature_defaults() -> None:
    text = custom(("b", GOOD, ("set action block", "set severity critical")),
                  ("h", HTTP, ("set status disable",))) + \
        sensor("s", (1, '"9001"', "monitor"), (2, '"h" "b"', "default"))
    cfg = parse_config(text)
    assert cfg.ips_sensors["s"].entries[1] == IpsSensorEntry(2, ("h", "b"), "default")
    rules = sensor_rules(cfg.ips_sensors["s"], cfg.ips_custom)
    # 9001 = "b": the first entry's action wins; "h" keeps its own action and status
    assert [(r.signature.name, r.action, r.status, r.severity, r.entry_id) for r in rules] == [
        ("Breaker", "monitor", True, "critical", 1), ("Http", "pass", False, "medium", 2)]


def test_ips_session_sync_extension() -> None:
    cfg = parse_config("config system ha\n    set ips-session-sync all\nend\n")
    assert cfg.ha.ips_session_sync == "all"
    assert parse_config("").ha.ips_session_sync == "iccp"


BAD_SIG = r'F-SBID( --name \"x\"; --service ICCP; --flow from_client; --pattern \"a\"; --within abc; )'
INVALID = [
    ("bad-signature-names-keyword", custom(("x", BAD_SIG, ()), mark="x"), "signature",
     "bad signature: --within: "),
    ("unknown-keyword", custom(("x", r'F-SBID( --name \"x\"; --service HTTP; --flow from_client; --colour red; )', ()), mark="x"),
     "signature", "--colour: "),
    ("missing-service", custom(("x", r'F-SBID( --name \"x\"; --flow from_client; )', ()), mark="x"),
     "signature", "--service: "),
    ("pcre-hyperscan-rejects", custom(("x", r'F-SBID( --name \"x\"; --service HTTP; --flow from_client; --pcre \"/(a)\\1/\"; )', ()), mark="x"),
     "signature", "bad signature: --pcre: hyperscan rejected an expression: Back-references"),
    ("signature-required", 'config ips custom\n    edit "x"  # <-\n        set action block\n    next\nend\n',
     "signature", "custom signature 'x' needs 'set signature'"),
    ("bad-custom-action", custom(("x", GOOD, ("set action reset  # <-",))), "action",
     "'reset' is not one of pass, block"),
    ("duplicate-attack-id", custom(("a", GOOD, ()), ("b", GOOD, ()), mark="b"), "signature",
     "--attack_id: 9001 is already used by custom signature 'a'"),
    ("unknown-rule", custom(("a", GOOD, ())) + sensor("s", (1, '"nope"  # <-', "block")), "rule",
     "ips-rule 'nope' is not defined"),
    ("unknown-attack-id", custom(("a", GOOD, ())) + sensor("s", (1, '"9999"  # <-', "block")),
     "rule", "ips-rule '9999' is not defined"),
    ("bad-entry-action", custom(("a", GOOD, ())) + sensor("s", (1, '"a"', "drop  # <-")),
     "action", "'drop' is not one of default, pass, monitor, block, reset"),
    ("entry-without-rule", ('config ips sensor\n    edit "s"\n        config entries\n'
     '            edit 1  # <-\n                set action block\n            next\n        end\n'
     '    next\nend\n'), "rule", "sensor entry '1' needs 'set rule'"),
    ("unknown-nested-section", ('config ips sensor\n    edit "s"\n        config filter  # <-\n'
     '        end\n    next\nend\n'), None, "unknown section 'config filter'"),
    ("duplicate-sensor", 'config ips sensor\n    edit "s"\n    next\n    edit "s"  # <-\n    next\nend\n',
     "edit", "sensor 's' is already defined at line 2"),
    ("bad-session-sync", "config system ha\n    set ips-session-sync some  # <-\nend\n",
     "ips-session-sync", "'some' is not one of iccp, all"),
]  # fmt: skip

_IFACES = """config system interface
    edit "port1"
        set ip 198.51.100.1/24
    next
    edit "port2"
        set ip 203.0.113.1/24
    next
end
"""


def policies(*sensors: str) -> str:
    """Interfaces and one accept policy per sensor name (the first one's line marked)."""
    out = [_IFACES + "config firewall policy"]
    for n, name in enumerate(sensors, 1):
        out += [f"    edit {n}", '        set srcintf "port1"', '        set dstintf "port2"',
                '        set srcaddr "all"', '        set dstaddr "all"',
                '        set service "ALL"', "        set action accept",
                "        set utm-status enable",
                f'        set ips-sensor "{name}"' + ("  # <-" if n == 1 else ""), "    next"]
    return "\n".join(out + ["end", ""])


INVALID.append(("unknown-sensor", policies("ot-strict"), "ips-sensor",
                "ips-sensor 'ot-strict' is not defined"))


@pytest.mark.parametrize(("text", "key", "reason"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_ips_configuration(text: str, key: str | None, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.conf")
    err = info.value
    assert (err.source, err.line, err.key) == ("bad.conf", marked(text), key), str(err)
    assert reason in err.reason, str(err)


def test_policy_may_name_a_configured_or_predefined_sensor() -> None:
    text = custom(("a", GOOD, ())) + sensor("ot", (1, '"a"', "block")) + policies("ot", "default")
    cfg = parse_config(text)
    assert [p.ips_sensor for p in cfg.policies] == ["ot", "default"]


def test_check_config_summary_counts_ips_objects() -> None:
    cfg = load_config(CONFIG_DIR / "ips-fgt1.conf")
    assert "5 policies, 5 IPS signatures, 1 IPS sensor;" in summarize(cfg)
    assert "IPS" not in summarize(load_config(CONFIG_DIR / "sync-fgt1.conf"))
