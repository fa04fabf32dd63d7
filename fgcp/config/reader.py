"""Reading one section: its blocks checked against its ``Section`` into ``Values``.

``Reader`` validates keys and values, collects name references and checks them once all
sections are read; ``Table`` pairs a ``Section`` with the builder of its model objects.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fgcp.config.schema import Section
from fgcp.config.values import Invalid
from fgcp.confparse import Block, ConfigError, Edit, Setting

__all__ = ["Entry", "Fields", "Reader", "Ref", "Table", "Values", "as_int"]

_T = TypeVar("_T")
Fields = dict[str, Any]  # MemberConfig fields built by one table (name -> value)


def as_int(value: object) -> int:
    """An ``edit`` ident parsed by an ``Int`` entry type."""
    assert isinstance(value, int)
    return value


@dataclass(frozen=True)
class Ref:
    """A name one key refers to, checked after every section is read."""

    kind: str
    name: str
    line: int
    key: str
    extra: tuple[str, ...]


class Values:
    """The validated values of one settings section or one ``edit`` entry."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.values: dict[str, object] = {
            k: spec.default for k, spec in section.keys.items()
        }
        self.lines: dict[str, int] = {}  # key -> line of the `set` in force

    def __getitem__(self, key: str) -> object:
        return self.values[key]

    def integer(self, key: str) -> int:
        value = self.values[key]
        assert isinstance(value, int)
        return value

    def text(self, key: str) -> str:
        return str(self.values[key])

    def flag(self, key: str) -> bool:
        return bool(self.values[key])

    def names(self, key: str) -> tuple[str, ...]:
        value = self.values[key]
        assert isinstance(value, tuple)
        return value

    def typed(self, key: str, kind: type[_T] | tuple[type, ...]) -> _T:
        """The value, checked to be of ``kind`` (None passes when the default is None)."""
        value = self.values[key]
        assert value is None or isinstance(value, kind), (key, value)
        return value  # type: ignore[return-value]

    def line(self, key: str, fallback: int) -> int:
        return self.lines.get(key, fallback)


Entry = tuple[object, Edit, Values]  # one edit: parsed ident, the edit, its values


class Reader:
    """Reads the sections of one source (file name in every ``ConfigError``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.refs: list[Ref] = []
        self.defined: dict[str, set[str]] = {}
        self.needs: list[tuple[str, int, str, str]] = []  # (kind, line, key, reason)

    def error(self, line: int, key: str | None, reason: str) -> ConfigError:
        """The error to raise: ``reason`` at ``line`` / ``key`` of this source."""
        return ConfigError(self.source, line, key, reason)

    def define(self, kind: str, names: Iterable[str]) -> None:
        """``names`` exist as ``kind`` objects ("interface", "address", ...) for references."""
        self.defined.setdefault(kind, set()).update(names)

    def need(self, kind: str, line: int, key: str, reason: str) -> None:
        """At least one ``kind`` object must exist (checked with the references)."""
        self.needs.append((kind, line, key, reason))

    def check_refs(self) -> None:
        """Every name a key refers to is defined (the first missing one, by line, raises)."""
        missing: list[tuple[int, str, str]] = [
            (line, key, reason)
            for kind, line, key, reason in self.needs
            if not self.defined.get(kind)
        ]
        for ref in self.refs:
            if ref.name in ref.extra or ref.name in self.defined.get(ref.kind, ()):
                continue
            what = "is not configured" if ref.kind == "interface" else "is not defined"
            missing.append((ref.line, ref.key, f"{ref.kind} {ref.name!r} {what}"))
        if missing:
            line, key, reason = min(missing, key=lambda m: m[0])
            raise self.error(line, key, reason)

    # -- generic ----------------------------------------------------------

    def collect(self, name: str, settings: Iterable[Setting], into: Values) -> Values:
        section = into.section
        for s in settings:
            spec = section.keys.get(s.key)
            if spec is None:
                close = difflib.get_close_matches(s.key, list(section.keys), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(s.line, s.key, f"unknown key in 'config {name}'{hint}")
            if s.unset:
                into.values[s.key] = spec.default
                into.lines.pop(s.key, None)
                continue
            try:
                value = spec.type.parse(s.values)
            except Invalid as exc:
                raise self.error(s.line, s.key, exc.reason) from None
            into.values[s.key] = value
            into.lines[s.key] = s.line
        return into

    def add_refs(self, values: Values) -> None:
        """Remember the names ``values`` refer to; checked once everything is loaded."""
        for key, line in values.lines.items():
            spec = values.section.keys[key]
            if spec.ref:
                for ref_name in spec.type.names(values[key]):
                    self.refs.append(
                        Ref(spec.ref, ref_name, line, key, spec.ref_extra)
                    )

    def no_nested(self, where: str, blocks: Sequence[Block]) -> None:
        """Reject nested ``config`` blocks (none of the supported sections has any)."""
        if blocks:
            b = blocks[0]
            raise self.error(
                b.line, None, f"unknown section 'config {b.name}' inside {where}"
            )

    def settings(self, section: Section, blocks: Sequence[Block]) -> Values:
        """The validated values of a settings section (its blocks merged in order)."""
        name = section.path
        values = Values(section)
        for block in blocks:
            if block.edits:
                e = block.edits[0]
                raise self.error(
                    e.line, None, f"'edit' is not allowed in 'config {name}'"
                )
            self.no_nested(f"'config {name}'", block.blocks)
            self.collect(name, block.settings, values)
        self.add_refs(values)
        return values

    def table(
        self, section: Section, blocks: Sequence[Block], nested: bool = False
    ) -> list[Entry]:
        """The validated ``edit`` entries of a table section: (ident, edit, values).

        ``nested``: the caller reads the ``config`` blocks inside each edit
        (``edit.blocks``; e.g. ``config api-gateway`` of an access-proxy).
        """
        name = section.path
        assert section.entry is not None
        entries: list[Entry] = []
        seen: dict[object, int] = {}
        for block in blocks:
            if block.settings:
                s = block.settings[0]
                raise self.error(
                    s.line, s.key, f"'set' must be inside 'edit' in 'config {name}'"
                )
            self.no_nested(f"'config {name}'", block.blocks)
            for edit in block.edits:
                try:
                    ident = section.entry.parse((edit.name,))
                except Invalid as exc:
                    raise self.error(
                        edit.line,
                        "edit",
                        f"{section.what} {section.ident}: {exc.reason}",
                    ) from None
                if ident in seen:
                    raise self.error(
                        edit.line,
                        "edit",
                        f"{section.what} {edit.name.text!r} is already defined at line {seen[ident]}",
                    )
                seen[ident] = edit.line
                if not nested:
                    self.no_nested(
                        f"'edit {edit.name.text}' of 'config {name}'", edit.blocks
                    )
                values = self.collect(name, edit.settings, Values(section))
                self.add_refs(values)
                for key in section.required:
                    if key not in values.lines:
                        raise self.error(
                            edit.line,
                            key,
                            f"{section.what} {edit.name.text!r} needs 'set {key}'",
                        )
                entries.append((ident, edit, values))
        return entries


@dataclass(frozen=True)
class Table:
    """One ``config <path>`` plug-in: its schema and the builder of its model objects.

    ``build(reader, blocks)`` reads the blocks (``reader.settings`` / ``reader.table``),
    calls ``reader.define`` for the names it makes referable, and returns the
    MemberConfig fields it fills (fgcp/config/loader.py lists the tables).
    """

    section: Section
    build: Callable[[Reader, Sequence[Block]], Fields]

    @property
    def path(self) -> str:
        return self.section.path
