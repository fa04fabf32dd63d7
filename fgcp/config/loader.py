"""Loading a member's configuration: text -> blocks -> every table's model objects.

``TABLES`` lists the ``config <path>`` plug-ins in file order of FortiOS; ``SCHEMA`` is
their sections by path; ``parse_config``/``load_config`` return a validated MemberConfig.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fgcp.config.firewall import ADDRESS_TABLE, POLICY_TABLE, SERVICE_TABLE
from fgcp.config.ips import CUSTOM_TABLE, SENSOR_TABLE
from fgcp.config.reader import Fields, Reader, Table
from fgcp.config.router import STATIC_TABLE
from fgcp.config.schema import Section
from fgcp.config.system import GLOBAL_TABLE, HA_TABLE, INTERFACE_TABLE, SESSION_TTL_TABLE
from fgcp.config.ztna import (
    ACCESS_PROXY_TABLE,
    CA_CERT_TABLE,
    FCTEMS_TABLE,
    LOCAL_CERT_TABLE,
    PROXY_POLICY_TABLE,
    VIP_TABLE,
)
from fgcp.confparse import Block, ConfigError, decode, parse
from fgcp.model import SERIAL_LEN, MemberConfig

__all__ = ["SCHEMA", "TABLES", "load_config", "parse_config"]

# Every supported ``config <path>``, in this order (the order of the error message listing
# them); a new table is one module with its Section + builder, added here.
TABLES: tuple[Table, ...] = (
    GLOBAL_TABLE,
    INTERFACE_TABLE,
    STATIC_TABLE,
    CA_CERT_TABLE,
    LOCAL_CERT_TABLE,
    FCTEMS_TABLE,
    ADDRESS_TABLE,
    SERVICE_TABLE,
    VIP_TABLE,
    ACCESS_PROXY_TABLE,
    CUSTOM_TABLE,
    SENSOR_TABLE,
    POLICY_TABLE,
    PROXY_POLICY_TABLE,
    HA_TABLE,
    SESSION_TTL_TABLE,
)
SCHEMA: Mapping[str, Section] = MappingProxyType({t.path: t.section for t in TABLES})


def _load(text: str, source: str) -> MemberConfig:
    reader = Reader(source)
    by_path: dict[str, list[Block]] = {t.path: [] for t in TABLES}
    for block in parse(text, source):
        if block.name not in by_path:
            supported = ", ".join(f"'{n}'" for n in by_path)
            raise reader.error(
                block.line,
                None,
                f"unknown section 'config {block.name}' (supported: {supported})",
            )
        by_path[block.name].append(block)
    # Each section is checked on its own so that, when several hold an
    # error, the one reported is the first in the file.
    errors: list[ConfigError] = []
    fields: Fields = {}
    for table in TABLES:
        try:
            fields.update(table.build(reader, by_path[table.path]))
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise min(errors, key=lambda e: e.line)
    reader.check_refs()
    cfg = _fold(MemberConfig(source=source), fields)
    assert isinstance(cfg, MemberConfig)
    _check_serial(reader, cfg, by_path)
    return cfg


def _fold(base: Any, fields: Fields) -> Any:
    """``base`` (a frozen dataclass) with ``fields`` replaced; a dotted name such as
    ``"ztna.certificates.ca"`` replaces one attribute of a sub-object, so that several
    tables fill one object (MemberConfig.ztna)."""
    direct: Fields = {k: v for k, v in fields.items() if "." not in k}
    nested: dict[str, Fields] = {}
    for key, value in fields.items():
        if "." in key:
            top, _, rest = key.partition(".")
            nested.setdefault(top, {})[rest] = value
    for top, sub in nested.items():
        direct[top] = _fold(getattr(base, top), sub)
    return dataclasses.replace(base, **direct)


def _last_set(blocks: list[Block], key: str) -> int:
    return max((s.line for b in blocks for s in b.settings if s.key == key), default=0)


def _check_serial(reader: Reader, cfg: MemberConfig, by_path: dict[str, list[Block]]) -> None:
    """HA needs a serial: ``lab-serial``, or a hostname short enough to be one."""
    ha = cfg.ha
    if ha.mode == "standalone" or cfg.member_serial:
        return
    line = (_last_set(by_path["system global"], "hostname")
            or _last_set(by_path["system ha"], "mode"))
    raise reader.error(
        line, "lab-serial",
        f"HA mode {ha.mode} needs the member's serial number (at most {SERIAL_LEN} "
        f"characters) and the hostname {cfg.hostname!r} is too long to stand for "
        "it: set lab-serial in config system global")


def parse_config(text: str, source: str = "<string>") -> MemberConfig:
    """Parse and validate configuration text; raise ``ConfigError`` on the first error."""
    return _load(text, source)


def load_config(path: str | Path) -> MemberConfig:
    """Read and validate a configuration file; errors name the path as given.

    The bytes are decoded by ``confparse.decode`` (UTF-8, a byte-order mark accepted;
    other bytes are an error with the line and column), never by the locale or with
    universal newlines: only ``\\n`` (or ``\\r\\n``) ends a line.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, 0, None, f"cannot read file: {exc}") from None
    return parse_config(decode(data, source), source)
