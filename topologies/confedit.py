"""Structured edits of FortiOS configuration text on the tree of fgcp.confparse:
read a section's key, set keys of a section; every other line is kept as written.
"""

from __future__ import annotations

from collections.abc import Mapping

from fgcp.confparse import Block, ConfigError, parse

INDENT = "    "


class SectionMissing(ConfigError):
    """The configuration has no ``config <section>`` block to edit."""


def find_section(blocks: list[Block], name: str) -> Block | None:
    """The first top-level ``config <name>`` block, None when there is none."""
    return next((b for b in blocks if b.name == name), None)


def section_values(text: str, section: str, key: str,
                   source: str = "<string>") -> list[str] | None:
    """The words of the last ``set <key>`` of ``config <section>`` (FortiOS: the
    last one wins); None when the section or the key is absent. Raises
    ConfigError on a syntax error."""
    block = find_section(parse(text, source), section)
    if block is None:
        return None
    found = [s for s in block.settings if s.key == key and not s.unset]
    return [w.text for w in found[-1].values] if found else None


def set_keys(text: str, section: str, settings: Mapping[str, object],
             source: str = "<string>") -> str:
    """``text`` with ``set <key> <value>`` for each of ``settings`` in ``config
    <section>``: every ``set`` of a key already there is rewritten, the other
    keys are added before the section's ``end``. Values are written as given
    (``str(value)``: several words or quotes are the caller's). Raises
    ConfigError on a syntax error, SectionMissing when the section is absent."""
    block = find_section(parse(text, source), section)
    if block is None:
        raise SectionMissing(source, 0, None,
                             f"the configuration has no `config {section}` block")
    lines = text.splitlines()
    head = lines[block.line - 1]
    indent = head[: len(head) - len(head.lstrip())] + INDENT
    todo = {k: str(v) for k, v in settings.items()}
    present = set()
    for s in block.settings:
        if s.key in todo and not s.unset:
            lines[s.line - 1] = f"{indent}set {s.key} {todo[s.key]}"
            present.add(s.key)
    end = block.end_line - 1
    lines[end:end] = [f"{indent}set {k} {v}" for k, v in todo.items() if k not in present]
    return "\n".join(lines) + "\n"
