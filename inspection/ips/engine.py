"""The IPS engine: ``IpsEngine.inspect(state, direction, seq, payload, now, flags)``.

Pure (bytes and ``now`` in, ``Verdict`` out, never raises on network input): TCP
reassembly, service recognition, hyperscan matching, ICCP decoding, actions, counters.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from inspection.ips.matcher import full_mask, iccp_matches, scan_chunk
from inspection.ips.reassembly import (
    GAP_SKIPPED,
    GAP_TIMEOUT,
    GAP_UNRECOVERABLE,
    REASSEMBLY_OVERFLOW,
    accept,
)
from inspection.ips.ruleset import ACTION_RANK, RuleSet
from inspection.ips.services import HEAD_MAX, detect_service
from inspection.ips.state import DIRECTIONS, FlowState, Progress

COUNTERS = ("packets", "bytes", "inspected_packets", "inspected_bytes", "matches", "detections", "monitors",
            "blocks", "resets", "blocked_packets", "dropped_packets", "reassembly_drops",
            "out_of_order", "retransmits", "gaps_skipped", "withheld", "gaps_unrecoverable", "resumed",
            "orphan_bytes", "anomalies", "iccp_events", "iccp_anomalies",
            "state_mismatch", "state_errors")


@dataclass(frozen=True, slots=True)
class AttackEvent:
    """One log line of ``diagnose ips anomaly list``-style output."""

    kind: str  # "signature" | "anomaly"
    name: str  # signature name, or the anomaly ("overlap with different data", ...)
    attack_id: int | None
    severity: str
    direction: str  # "client" | "server"
    offset: int  # stream offset of the direction when detected
    action: str  # pass | monitor | block | reset ("drop" for REASSEMBLY_OVERFLOW)
    entry_id: int = 0  # sensor entry
    now: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with the packet: pass | monitor | drop | block | reset, and why."""

    action: str = "pass"
    events: list[AttackEvent] = field(default_factory=list)

    @property
    def forward(self) -> bool:
        return self.action in ("pass", "monitor")


def _load_iccp() -> Any:
    try:
        return importlib.import_module("inspection.iccp")
    except ImportError:
        return None


class IpsEngine:
    """One member's IPS: a compiled ``RuleSet`` plus counters; per-session state is separate."""

    def __init__(self, ruleset: RuleSet, iccp: Any = "auto", max_segments: int = 64,
                 max_pending_bytes: int = 65536, gap_timeout: float = GAP_TIMEOUT,
                 gap_action: str = "reset") -> None:
        self.ruleset = ruleset
        self.iccp = _load_iccp() if iccp == "auto" else iccp  # the inspection.iccp API
        if self.iccp is not None and ruleset.has_iccp and hasattr(self.iccp, "preload"):
            self.iccp.preload()  # the MMS schema compiled now, not on the first ICCP packet
        self.max_segments = max_segments
        self.max_pending_bytes = max_pending_bytes
        self.gap_timeout = gap_timeout
        if gap_action not in ACTION_RANK:
            raise ValueError(f"gap action {gap_action!r} not in {tuple(ACTION_RANK)}")
        self.gap_action = gap_action  # a resumed stream's gap nobody fills: fail closed
        self._iccp_index: dict[tuple[bool, str | None], tuple[
            list[int], dict[tuple[str, bool], list[int]], list[int]]] = {}
        self.counters: Counter[str] = Counter({k: 0 for k in COUNTERS})

    def new_flow(self, proto: str, sport: int, dport: int) -> FlowState:
        """Fresh state of a session (proto "tcp" | "udp" | "icmp", client/server ports)."""
        return FlowState(proto, sport, dport, self.ruleset.fingerprint)

    def resume(self, blob: bytes) -> FlowState:
        """The state another member synced (``FlowState.to_bytes``), to go on inspecting
        here; raises ``StateError`` on a bad blob.

        Its directions are ``restored`` for the rest of the session (docs/ips.md "HA"):
        the other member may have forwarded bytes after the state it synced, which the
        receiver holds and this member never sees.  So data beyond a gap is never
        passed (a verdict ``drop``: the sender retransmits it after the filler), bytes
        lost in the outage are simply waited for (their retransmission fills the gap
        and the stream is inspected in order), and a gap still open ``gap_timeout``
        after its first withheld segment is unrecoverable: the session gets
        ``gap_action`` (default ``reset``) with the event ``GAP_UNRECOVERABLE``.
        """
        st = FlowState.from_bytes(blob)
        self.counters["resumed"] += 1
        return st

    def _applicable(self, st: FlowState, direction: str) -> frozenset[int]:
        cached = st.applicable.get(direction)
        if cached is not None:
            return cached
        src, dst = (st.sport, st.dport) if direction == "client" else (st.dport, st.sport)
        want = "from_client" if direction == "client" else "from_server"
        out = set()
        for ri, rule in enumerate(self.ruleset.rules):
            sig = rule.signature
            if sig.protocol is not None and sig.protocol != st.proto:
                continue
            if sig.flow not in (want, "bi_direction"):
                continue
            if sig.src_port is not None and src not in sig.src_port:
                continue
            if sig.dst_port is not None and dst not in sig.dst_port:
                continue
            out.add(ri)
        st.applicable[direction] = result = frozenset(out)
        return result

    def _check_fingerprint(self, st: FlowState) -> None:
        if st.fingerprint != self.ruleset.fingerprint:  # restored under another rule set
            self.counters["state_mismatch"] += 1
            st.fingerprint = self.ruleset.fingerprint
            st.fired.clear()
            st.waiting.clear()
            st.applicable.clear()
            for d in st.dirs:
                d.progress.clear()

    def _decoder(self, st: FlowState, direction: str) -> Any:
        d = st.dir(direction)
        if d.decoder is None and st.service == "ICCP" and self.iccp is not None:
            if d.iccp_blob is not None:
                try:
                    d.decoder = self.iccp.IccpDecoder.from_state(d.iccp_blob)
                except ValueError:
                    self.counters["state_errors"] += 1
                    d.decoder = self.iccp.IccpDecoder()
                d.iccp_blob = None
            else:
                d.decoder = self.iccp.IccpDecoder()
        return d.decoder

    def inspect(self, st: FlowState, direction: str, seq: int,
                payload: bytes | bytearray | memoryview, now: float,
                tcp_flags: int = 0) -> Verdict:
        """Inspect one packet of the session; ``seq`` is ignored for UDP/ICMP.

        ``payload`` may be a view into a reused receive buffer: it is copied.
        """
        payload = bytes(payload)
        c = self.counters
        c["packets"] += 1
        c["bytes"] += len(payload)
        if st.blocked:
            c["blocked_packets"] += 1
            return Verdict(st.blocked)
        if direction not in DIRECTIONS:
            return Verdict()
        self._check_fingerprint(st)
        rs = self.ruleset
        d = st.dir(direction)
        applicable = self._applicable(st, direction)
        events: list[AttackEvent] = []
        action = "pass"
        data = payload
        completed_early: list[int] = []
        if st.proto == "tcp":
            acc = accept(d, seq, payload, tcp_flags, self.max_segments, self.max_pending_bytes,
                         now, self.gap_timeout)
            data = acc.data
            c["retransmits"] += acc.retransmit
            c["out_of_order"] += acc.held
            if acc.dropped:
                c["reassembly_drops"] += 1
                events.append(AttackEvent("anomaly", REASSEMBLY_OVERFLOW, None, "low", direction,
                                          d.offset, "drop", 0, now))
                action = "drop"
            if acc.withheld:
                c["withheld"] += 1
                action = "drop"
            if acc.unrecoverable is not None:
                c["gaps_unrecoverable"] += 1
                events.append(AttackEvent("anomaly", GAP_UNRECOVERABLE, None, "high", direction,
                                          acc.unrecoverable[0], self.gap_action, 0, now))
                action = max(action, self.gap_action, key=ACTION_RANK.__getitem__)
            if acc.gap is not None:
                c["gaps_skipped"] += 1
                events.append(AttackEvent("anomaly", GAP_SKIPPED, None, "low", direction,
                                          acc.gap[0], "monitor", 0, now))
            if acc.orphan:
                c["orphan_bytes"] += len(acc.orphan)
                orphan_done, n = scan_chunk(rs, d, acc.orphan, applicable, stream=False)
                completed_early = orphan_done
                c["matches"] += n
            for reason in acc.anomalies:
                c["anomalies"] += 1
                events.append(AttackEvent("anomaly", reason, None, "high", direction,
                                          d.offset, rs.anomaly_action, 0, now))
                action = max(action, rs.anomaly_action, key=ACTION_RANK.__getitem__)
        completed: list[int] = list(completed_early)
        decided = False
        if data:
            c["inspected_packets"] += 1
            c["inspected_bytes"] += len(data)
            head_before = d.head
            if st.service is None and direction == "client":
                d.head = (d.head + data)[:HEAD_MAX]
                st.service = detect_service(d.head, getattr(self.iccp, "looks_like_iccp", None))
                if st.service is not None:
                    decided = True
                    d.head = b""
            completed, n = scan_chunk(rs, d, data, applicable, stream=st.proto == "tcp")
            c["matches"] += n
            if st.service == "ICCP" and rs.has_iccp:
                decoder = self._decoder(st, direction)
                if decoder is not None:
                    feed = (head_before + data) if decided else data
                    completed += self._iccp_events(st, direction, decoder.feed(feed), applicable)
        for ri in rs.header_only:  # header-only signatures: the first packet of their direction
            if ri in applicable and ri not in st.fired:
                completed.append(ri)
        for ri in completed:
            if ri in st.fired:
                continue
            service = rs.rules[ri].signature.service
            if st.service is None:
                st.waiting.add(ri)
            elif st.service == service:
                action = self._fire(st, ri, direction, d.offset, now, events, action)
        if st.service is not None and st.waiting:
            for ri in sorted(st.waiting):
                if rs.rules[ri].signature.service == st.service and ri not in st.fired:
                    action = self._fire(st, ri, direction, d.offset, now, events, action)
            st.waiting.clear()
        if action in ("block", "reset"):
            st.blocked = action
            c["blocks" if action == "block" else "resets"] += 1
        elif action == "drop":
            c["dropped_packets"] += 1
        return Verdict(action, events)

    def _iccp_events(self, st: FlowState, direction: str, iccp_events: list[Any],
                     applicable: frozenset[int]) -> list[int]:
        rs = self.ruleset
        d = st.dir(direction)
        done = []
        for ev in iccp_events:
            self.counters["iccp_events"] += 1
            anomaly = getattr(ev, "kind", None) == "anomaly"
            if anomaly:
                self.counters["iccp_anomalies"] += 1
            for ri in self._iccp_candidates(anomaly, getattr(ev, "service", None),
                                            getattr(ev, "items", ())):
                sig = rs.rules[ri].signature
                if ri not in applicable or not iccp_matches(sig.iccp, ev):  # type: ignore[arg-type]
                    continue
                p = d.progress.setdefault(ri, Progress())
                bit = 1 << len(sig.contents)
                if not p.mask & bit:
                    p.mask |= bit
                    if p.mask == full_mask(rs, ri):
                        done.append(ri)
        return done

    def _iccp_candidates(self, anomaly: bool, service: object, items: object) -> list[int]:
        """The ICCP rules that may match an event: those whose --iccp_anomaly and
        --iccp_service fit (index cached per key), and of those with an --iccp_item only
        the ones whose text occurs in one of the event's items (a substring index), so a
        read or write costs the few rules that can match, not every ICCP rule."""
        key = (anomaly, service if isinstance(service, str) else None)
        hit = self._iccp_index.get(key)
        if hit is None:
            rs = self.ruleset
            plain: list[int] = []
            by_item: dict[tuple[str, bool], list[int]] = {}
            for ri in rs.iccp_rules:
                m = rs.rules[ri].signature.iccp
                if m is None or m.anomaly != anomaly or m.service not in (None, key[1]):
                    continue
                if m.item:
                    needle = m.item.lower() if m.no_case else m.item
                    by_item.setdefault((needle, m.no_case), []).append(ri)
                else:
                    plain.append(ri)
            hit = self._iccp_index[key] = (plain, by_item, sorted({len(n) for n, _ in by_item}))
        plain, by_item, lengths = hit
        if not by_item:
            return plain
        found = set(plain)
        for item in items if isinstance(items, (list, tuple)) else ():
            if not isinstance(item, str):
                continue
            low = item.lower()
            for n in lengths:
                for k in range(len(item) - n + 1):
                    for ri in by_item.get((item[k:k + n], False), ()):
                        found.add(ri)
                    for ri in by_item.get((low[k:k + n], True), ()):
                        found.add(ri)
        return sorted(found)

    def _fire(self, st: FlowState, ri: int, direction: str, offset: int, now: float,
              events: list[AttackEvent], action: str) -> str:
        rule = self.ruleset.rules[ri]
        st.fired.add(ri)
        self.counters["detections"] += 1
        if rule.action == "monitor":
            self.counters["monitors"] += 1
        if rule.log:
            sig = rule.signature
            events.append(AttackEvent("signature", sig.name, sig.attack_id, rule.severity,
                                      direction, offset, rule.action, rule.entry_id, now))
        return max(action, rule.action, key=ACTION_RANK.__getitem__)

    def stats(self) -> dict[str, int]:
        """The counters for ``diagnose lab stats``."""
        return dict(self.counters)
