"""topologies.confedit: FortiOS configuration edits on the parsed tree
(fgcp.confparse), and the lab's uses of them (ha_config_text, config_hostnames)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgcp.config import parse_config
from fgcp.confparse import ConfigError
from topologies.confedit import SectionMissing, section_values, set_keys
from topologies.lab import CONFIG_DIR, LabError, config_hostnames, ha_config_text

TEXT = """\
config system global
    set hostname "FGT1"
end
config system ha
    set group-name "lab"
    set priority 200
    config secondary-vcluster
        set priority 50
    end
    set priority 210
    set hb-interval 2
end
config system interface
    edit "port1"
        set priority 5
    next
end
"""


def test_set_keys_rewrites_every_set_of_the_section_and_adds_the_rest() -> None:
    out = set_keys(TEXT, "system ha", {"priority": 250, "override": "enable"})
    lines = out.splitlines()
    # both top-level `set priority` of the section now say 250, nothing else moved
    assert [ln for ln in lines if "priority" in ln] == [
        "    set priority 250", "        set priority 50", "    set priority 250",
        "        set priority 5"]
    # a new key goes before the section's own `end`, not the nested block's
    assert lines[lines.index("    set hb-interval 2") + 1] == "    set override enable"
    assert lines[lines.index("    set override enable") + 1] == "end"
    assert section_values(out, "system ha", "priority") == ["250"]
    assert section_values(out, "system ha", "override") == ["enable"]
    assert len(lines) == len(TEXT.splitlines()) + 1


def test_section_values_reads_words_and_says_none_when_absent() -> None:
    assert section_values(TEXT, "system global", "hostname") == ["FGT1"]
    assert section_values(TEXT, "system ha", "monitor") is None
    assert section_values(TEXT, "router static", "gateway") is None


def test_errors_name_the_source() -> None:
    with pytest.raises(SectionMissing, match="no `config system ha` block"):
        set_keys("config system global\nend\n", "system ha", {"priority": 1})
    with pytest.raises(ConfigError, match=r"fgt9\.conf:2: unterminated quote"):
        set_keys('config system ha\n    set group-name "lab\nend\n', "system ha", {}, "fgt9.conf")


def test_ha_config_text_gives_a_config_the_loader_accepts() -> None:
    text = ha_config_text((CONFIG_DIR / "fgt1.conf").read_text(),
                          {"hb-interval": 1, "hb-lost-threshold": 3, "override": "enable"})
    cfg = parse_config(text, "fgt1.conf")
    assert (cfg.ha.hb_interval, cfg.ha.hb_lost_threshold, cfg.ha.override) == (1, 3, True)
    with pytest.raises(LabError, match="no `config system ha` block"):
        ha_config_text("config system global\nend\n", {"priority": 1})


def test_config_hostnames_reads_system_global_only(tmp_path: Path) -> None:
    conf = tmp_path / "fgt1.conf"
    conf.write_text(TEXT)
    assert config_hostnames(conf) == ["FGT1"]
    conf.write_text('config system ha\n    set hostname "NOT"\nend\n')
    assert config_hostnames(conf) == []
    conf.write_text('config system global\n    set hostname "broken\nend\n')
    assert config_hostnames(conf) == []
