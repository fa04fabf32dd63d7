"""The config tables' contract: each `config <path>` plug-in fills its own MemberConfig fields."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from fgcp.config import SCHEMA, TABLES, ConfigError, parse_config
from fgcp.config.reader import Reader
from fgcp.model import Certificates, MemberConfig, ZtnaConfig


def test_schema_is_the_tables_sections_in_order() -> None:
    assert list(SCHEMA) == [t.path for t in TABLES]
    assert all(SCHEMA[t.path] is t.section for t in TABLES)


def _leaves(cls: type, prefix: str = "") -> set[str]:
    """Dotted names of the attributes of a config dataclass, sub-objects expanded."""
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind) and kind in (ZtnaConfig, Certificates):
            out |= _leaves(kind, f"{prefix}{f.name}.")  # filled by several tables
        else:
            out.add(prefix + f.name)
    return out


def test_every_member_config_field_is_built_by_exactly_one_table() -> None:
    owner: dict[str, str] = {}
    for t in TABLES:
        for name in t.build(Reader("<empty>"), []):
            assert name not in owner, f"{name} built by {owner.get(name)} and {t.path}"
            owner[name] = t.path
    assert set(owner) == _leaves(MemberConfig) - {"source"}


def test_empty_configuration_gives_the_fortios_defaults() -> None:
    assert parse_config("", "empty.conf") == dataclasses.replace(
        MemberConfig("empty.conf"),
        addresses=parse_config("").addresses,  # predefined objects
        services=parse_config("").services,
    )


def test_unknown_section_lists_every_table() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config("config user local\nend\n")
    assert "'config user local'" in str(err.value)
    for t in TABLES:
        assert f"'{t.path}'" in str(err.value)
