"""Schema vocabulary: a ``Key`` (type, FortiOS default, reference) and a ``Section``.

Each ``config <path>`` module (system.py, router.py, firewall.py, ...) declares its
sections with these; FortiOS defaults live in those declarations and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fgcp.config.values import Flag, Text, ValueType

__all__ = ["IFNAME", "OBJNAME", "OFF", "Key", "Section", "keys"]


@dataclass(frozen=True)
class Key:
    """One key of a section: its type, FortiOS default and what it refers to."""

    type: ValueType
    default: object
    ref: str = (
        ""  # "interface" | "address" | "service" | "ips-sensor": names must exist
    )
    ref_extra: tuple[str, ...] = ()  # names accepted besides defined objects ("any")
    help: str = ""


@dataclass(frozen=True)
class Section:
    """A ``config <path>`` section: plain settings, or a table of ``edit`` entries."""

    path: str  # "firewall policy": what follows ``config``
    keys: Mapping[str, Key]
    entry: ValueType | None = None  # type of the edit name; None for a settings section
    what: str = ""  # what one entry is called in messages ("policy", ...)
    required: tuple[str, ...] = ()  # keys every entry must set
    ident: str = "name"  # what the edit argument is called ("id" of a policy, ...)


def keys(**table: Key) -> Mapping[str, Key]:
    """Key table of a section; ``session_pickup=`` declares ``session-pickup``."""
    return MappingProxyType({name.replace("_", "-"): key for name, key in table.items()})


IFNAME = Text(15, r"[A-Za-z0-9][A-Za-z0-9_.-]*", "letters, digits, '_', '.', '-'")
OBJNAME = Text(79, r"[^\x00-\x1f]+", "no control characters")
OFF = Key(Flag(), False)  # enable|disable, default disable
