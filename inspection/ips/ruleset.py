"""Rule set compilation: sensor rules (signature + action) into ONE hyperscan database.

Every --pattern and --pcre of every enabled signature becomes one hyperscan
expression (identical expressions shared); ``RuleSet.scan`` runs a block scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import hyperscan

from inspection.ips.signature import Content, Signature

ACTIONS = ("pass", "monitor", "block", "reset")
ACTION_RANK = {"pass": 0, "monitor": 1, "drop": 2, "block": 3, "reset": 4}
SEVERITIES = ("info", "low", "medium", "high", "critical")
MIN_RETAIN = 32  # inspected bytes kept at least, to compare retransmitted data with
MAX_CARRY = 1024  # cap of the carry-over tail (longest pattern - 1)


class RuleSetError(ValueError):
    """A rule that cannot be compiled (bad action, or an expression hyperscan rejects)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One sensor entry bound to one signature (config ips sensor / entries / rule)."""

    signature: Signature
    action: str = "block"  # pass | monitor | block | reset
    status: bool = True
    log: bool = True
    severity: str = "medium"
    entry_id: int = 0


def hs_expression(content: Content) -> tuple[bytes, int]:
    """The hyperscan expression and flags for one content (literals byte-escaped)."""
    if content.kind == "pattern":
        expr = b"".join(b"\\x%02x" % b for b in content.data)
        return expr, hyperscan.HS_FLAG_CASELESS if content.no_case else 0
    flags = hyperscan.HS_FLAG_SOM_LEFTMOST
    if "i" in content.regex_flags:
        flags |= hyperscan.HS_FLAG_CASELESS
    if "s" in content.regex_flags:
        flags |= hyperscan.HS_FLAG_DOTALL
    if "m" in content.regex_flags:
        flags |= hyperscan.HS_FLAG_MULTILINE
    return content.data, flags


class RuleSet:
    """Enabled rules, their compiled hyperscan database and the expression map."""

    def __init__(self, rules: list[Rule], db: hyperscan.Database | None,
                 targets: list[tuple[tuple[int, int], ...]], literal_len: list[int | None],
                 anomaly_action: str) -> None:
        self.rules = rules
        self.db = db
        self.targets = targets  # hs id -> ((rule index, content index), ...)
        self.literal_len = literal_len  # hs id -> literal length (None: pcre, SOM reported)
        self.anomaly_action = anomaly_action
        longest = max((c.max_width for r in rules for c in r.signature.contents), default=1)
        self.carry = min(max(longest - 1, 0), MAX_CARRY)
        self.retain = max(self.carry, MIN_RETAIN)
        digest = hashlib.sha256()
        for r in rules:
            digest.update(repr((r.signature.text, r.action, r.entry_id)).encode())
        self.fingerprint = int.from_bytes(digest.digest()[:4], "big")
        self.has_iccp = any(r.signature.iccp for r in rules)
        self.iccp_rules = tuple(i for i, r in enumerate(rules) if r.signature.iccp)
        self.header_only = tuple(i for i, r in enumerate(rules)
                                 if not r.signature.contents and r.signature.iccp is None)

    @classmethod
    def compile(cls, rules: Iterable[Rule], anomaly_action: str = "block") -> RuleSet:
        """Compile the enabled rules; ``anomaly_action`` applies to stream anomalies."""
        enabled = []
        for rule in rules:
            if rule.action not in ACTIONS:
                raise RuleSetError(f"{rule.signature.name}: action {rule.action!r} "
                                   f"not in {ACTIONS}")
            if rule.severity not in SEVERITIES:
                raise RuleSetError(f"{rule.signature.name}: severity {rule.severity!r} "
                                   f"not in {SEVERITIES}")
            if rule.status:
                enabled.append(rule)
        if anomaly_action not in ACTIONS:
            raise RuleSetError(f"anomaly action {anomaly_action!r} not in {ACTIONS}")
        exprs: dict[tuple[bytes, int], int] = {}
        targets: list[list[tuple[int, int]]] = []
        literal_len: list[int | None] = []
        for ri, rule in enumerate(enabled):
            for ci, content in enumerate(rule.signature.contents):
                key = hs_expression(content)
                if key not in exprs:
                    exprs[key] = len(targets)
                    targets.append([])
                    literal_len.append(len(content.data) if content.kind == "pattern" else None)
                targets[exprs[key]].append((ri, ci))
        db = None
        if exprs:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            keys = list(exprs)
            try:
                db.compile(expressions=[k[0] for k in keys], ids=list(range(len(keys))),
                           elements=len(keys), flags=[k[1] for k in keys])
            except hyperscan.error as exc:
                raise RuleSetError(f"hyperscan rejected an expression: {exc}") from None
        return cls(enabled, db, [tuple(t) for t in targets], literal_len, anomaly_action)

    def scan(self, data: bytes) -> list[tuple[int, int, int]]:
        """All (hs id, start, end) matches in ``data``, sorted by end then start."""
        if self.db is None or not data:
            return []
        out: list[tuple[int, int, int]] = []
        literal_len = self.literal_len

        def on_match(hs_id: int, start: int, end: int, flags: int, ctx: object) -> None:
            n = literal_len[hs_id]
            out.append((hs_id, end - n if n is not None else start, end))

        self.db.scan(data, match_event_handler=on_match)
        out.sort(key=lambda m: (m[2], m[1]))
        return out
