"""``config ips custom`` and ``config ips sensor``: schema and builders (docs/ips.md).

A custom signature's F-SBID text is parsed by ``inspection.ips.parse_signature`` when
the configuration loads, so a bad signature is a ``ConfigError`` at its ``set
signature`` line whose reason names the keyword (``--pattern: ...``; a ``--pcre``
hyperscan rejects, e.g. a back-reference, too).  A sensor entry's
``set rule`` names custom signatures by tag or attack id (checked once every table is
read, kind "ips-rule"); ``sensor_rules`` turns a sensor into engine rules (compiled by
fgcp/ipsinspector.py).  The policy keys that use a sensor
(``set utm-status``, ``set ips-sensor``) are in fgcp/config/firewall.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from fgcp.config.reader import Fields, Reader, Table, Values, as_int
from fgcp.config.schema import Key, Section, keys
from fgcp.config.values import Choice, Flag, Int, Names, Text
from fgcp.confparse import Block, Edit
from fgcp.model import IpsCustom, IpsSensor, IpsSensorEntry
from inspection.ips import Rule, RuleSet, RuleSetError, SignatureError, parse_signature

__all__ = [
    "CUSTOM",
    "CUSTOM_TABLE",
    "ENTRIES",
    "SENSOR",
    "SENSOR_TABLE",
    "SEVERITIES",
    "sensor_rules",
]

SEVERITIES = ("info", "low", "medium", "high", "critical")
_TAG = Text(63, r"[^\x00-\x1f\"]+", "no control characters or quotes")
_DEFAULT_FLAG = Choice(("default", "enable", "disable"))

# fmt: off
CUSTOM = Section("ips custom", keys(
    signature=Key(Text(4095), ""),
    action=Key(Choice(("pass", "block")), "pass"),
    status=Key(Flag(), True),
    log=Key(Flag(), True),
    severity=Key(Choice(SEVERITIES), "medium"),
    comment=Key(Text(63), ""),
), entry=_TAG, what="custom signature", ident="tag", required=("signature",))
SENSOR = Section("ips sensor", keys(
    comment=Key(Text(255), ""),
), entry=Text(47), what="sensor")
ENTRIES = Section("ips sensor entries", keys(
    rule=Key(Names(63), (), ref="ips-rule"),
    action=Key(Choice(("default", "pass", "monitor", "block", "reset")), "default"),
    status=Key(_DEFAULT_FLAG, "default"),
    log=Key(_DEFAULT_FLAG, "default"),
), entry=Int(1, 65535), what="sensor entry", ident="id", required=("rule",))
# fmt: on


def _customs(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: dict[str, IpsCustom] = {}
    ids: dict[int, str] = {}
    for ident, edit, v in r.table(CUSTOM, blocks):
        tag = str(ident)
        line = v.line("signature", edit.line)
        try:
            sig = parse_signature(v.text("signature"))
        except SignatureError as exc:
            raise r.error(line, "signature", f"bad signature: {exc}") from None
        if any(c.kind == "pcre" for c in sig.contents):  # literals always compile
            try:
                RuleSet.compile([Rule(sig)])
            except RuleSetError as exc:
                raise r.error(line, "signature", f"bad signature: --pcre: {exc}") from None
        if sig.attack_id is not None:
            if sig.attack_id in ids:
                raise r.error(line, "signature", f"--attack_id: {sig.attack_id} is already "
                              f"used by custom signature {ids[sig.attack_id]!r}")
            ids[sig.attack_id] = tag
        out[tag] = IpsCustom(tag=tag, signature=sig.text, name=sig.name,
                             attack_id=sig.attack_id, action=v.text("action"),
                             status=v.flag("status"), log=v.flag("log"),
                             severity=v.text("severity"))
    r.define("ips-rule", list(out) + [str(i) for i in ids])
    return {"ips_custom": out}


def _entries(r: Reader, edit: Edit) -> tuple[IpsSensorEntry, ...]:
    out: list[IpsSensorEntry] = []
    for sub in edit.blocks:
        if sub.path != ("entries",):
            raise r.error(sub.line, None, f"unknown section 'config {sub.name}' inside "
                          f"'edit {edit.name.text}' of 'config ips sensor' (only 'entries')")
    subs = [b for b in edit.blocks if b.path == ("entries",)]
    for ident, _e, v in r.table(ENTRIES, subs):
        out.append(IpsSensorEntry(entry_id=as_int(ident), rules=v.names("rule"),
                                  action=v.text("action"), status=v.text("status"),
                                  log=v.text("log")))
    return tuple(out)


def _sensor_edits(r: Reader, blocks: Sequence[Block]) -> list[tuple[str, Edit, Values]]:
    """Like ``Reader.table`` but each edit may hold one nested ``config entries``."""
    seen: dict[str, int] = {}
    out = []
    for block in blocks:
        if block.settings:
            s = block.settings[0]
            raise r.error(s.line, s.key, "'set' must be inside 'edit' in 'config ips sensor'")
        r.no_nested("'config ips sensor'", block.blocks)
        for edit in block.edits:
            name = edit.name.text
            if not name or len(name) > 47:
                raise r.error(edit.line, "edit", f"sensor name {name!r}: 1 to 47 characters")
            if name in seen:
                raise r.error(edit.line, "edit",
                              f"sensor {name!r} is already defined at line {seen[name]}")
            seen[name] = edit.line
            values = r.collect(SENSOR.path, edit.settings, Values(SENSOR))
            out.append((name, edit, values))
    return out


def sensor_rules(sensor: IpsSensor, customs: dict[str, IpsCustom]) -> list[Rule]:
    """The engine rules of ``sensor``: each entry's signatures with the entry's action,
    status and log (``default``: the custom signature's own); a signature listed by an
    earlier entry keeps that entry's settings (first match wins)."""
    by_id = {str(c.attack_id): c for c in customs.values() if c.attack_id is not None}
    rules: list[Rule] = []
    used: set[str] = set()
    for entry in sensor.entries:
        for ref in entry.rules:
            custom = customs.get(ref) or by_id.get(ref)
            if custom is None or custom.tag in used:
                continue
            used.add(custom.tag)
            action = custom.action if entry.action == "default" else entry.action
            status = custom.status if entry.status == "default" else entry.status == "enable"
            log = custom.log if entry.log == "default" else entry.log == "enable"
            rules.append(Rule(signature=parse_signature(custom.signature), action=action,
                              status=status, log=log, severity=custom.severity,
                              entry_id=entry.entry_id))
    return rules


def _sensors(r: Reader, blocks: Sequence[Block]) -> Fields:
    out: dict[str, IpsSensor] = {}
    for name, edit, v in _sensor_edits(r, blocks):
        entries = _entries(r, edit)
        out[name] = IpsSensor(name=name, entries=entries, comment=v.text("comment"))
    r.define("ips-sensor", out)
    return {"ips_sensors": out}


CUSTOM_TABLE = Table(CUSTOM, _customs)
SENSOR_TABLE = Table(SENSOR, _sensors)
