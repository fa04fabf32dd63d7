"""The config tables' contract: each `config <path>` plug-in fills its own MemberConfig fields."""

from __future__ import annotations

import dataclasses

import pytest

from fgcp.config import SCHEMA, TABLES, ConfigError, parse_config
from fgcp.config.reader import Reader
from fgcp.model import MemberConfig


def test_schema_is_the_tables_sections_in_order() -> None:
    assert list(SCHEMA) == [t.path for t in TABLES]
    assert all(SCHEMA[t.path] is t.section for t in TABLES)


def test_every_member_config_field_is_built_by_exactly_one_table() -> None:
    owner: dict[str, str] = {}
    for t in TABLES:
        for name in t.build(Reader("<empty>"), []):
            assert name not in owner, f"{name} built by {owner.get(name)} and {t.path}"
            owner[name] = t.path
    fields = {f.name for f in dataclasses.fields(MemberConfig)} - {"source"}
    assert set(owner) == fields


def test_empty_configuration_gives_the_fortios_defaults() -> None:
    assert parse_config("", "empty.conf") == dataclasses.replace(
        MemberConfig("empty.conf"),
        addresses=parse_config("").addresses,  # predefined objects
        services=parse_config("").services,
    )


def test_unknown_section_lists_every_table() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("config ips custom\nend\n")
    assert "'config ips custom'" in str(err.value)
    for t in TABLES:
        assert f"'{t.path}'" in str(err.value)
