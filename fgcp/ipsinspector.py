"""The IPS adapter: ``inspection.ips.IpsEngine`` behind the Forwarder's inspection hook.

``IpsInspector(cfg)`` meets ``fgcp.inspecthook.Inspector``: it claims the sessions of
policies with ``set utm-status enable`` + ``set ips-sensor`` (one engine per sensor,
its rules from fgcp.config.ips.sensor_rules), runs the engine on every segment, maps
its verdict (block -> DROP of this and every later segment, reset -> RESET) and logs
its events (``diagnose ips anomaly list``, the ``--ips-log`` file).

HA (docs/ips.md "HA"): the state of an ICCP session (every flow-inspected session with
the emulator's ``set ips-session-sync all``) rides in ``Session.ext[EXT_IPS]``; each
time it changes (every data segment) the adapter refreshes it and tells the sync engine
through the forwarder's ``on_session_event("state", s)`` (``attach``), so the update
goes out with the session's sync stream.  On the member that installs a synced session
(``SYNCED``), a session with that state resumes at the exact byte (``ips_resumed``,
the engine's ``resume``: segments lost in the outage are waited for, data beyond a
gap nobody fills is never passed, such a gap resets the session);
another flow-inspected one is forwarded uninspected (``ips_uninspected``,
``ips=uninspected`` in ``diagnose sys session list``).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Protocol

from fgcp.component import STATE_NOW
from fgcp.config.ips import sensor_rules
from fgcp.inspecthook import Verdict
from fgcp.model import MemberConfig
from fgcp.packet import int_to_ip
from fgcp.session import ORIG, SYNCED, Session
from fgcp.syncrecord import EXT_IPS
from inspection.ips import (
    GAP_SKIPPED,
    AttackEvent,
    FlowState,
    IpsEngine,
    RuleSet,
    RuleSetError,
    StateError,
)
from inspection.ips.predefined import sensor_rules as predefined_rules

__all__ = ["COUNTERS", "IpsInspector", "IpsSetupError", "SessionEvents", "event_line",
           "ips_policies"]

log = logging.getLogger(__name__)

COUNTERS = ("ips_sessions", "ips_bytes", "ips_events", "ips_blocked", "ips_resets",
            "ips_resumed", "ips_uninspected", "ips_state_syncs", "ips_anomalies")
MAX_EVENTS = 1000  # lines kept for ``diagnose ips anomaly list``
MAX_STATE = 1024  # larger state (held segments, long partial PDU) keeps the last one sent:
# a sync record must fit one 1,500-byte frame; the resume then skips a gap (docs/ips.md)
_PROTOS = {6: "tcp", 17: "udp", 1: "icmp"}
_VERDICTS = {"pass": Verdict.PASS, "monitor": Verdict.PASS, "drop": Verdict.DROP,
             "block": Verdict.DROP, "reset": Verdict.RESET}
_LOGGED = ("pass", "monitor", "block", "reset")  # a one-packet "drop" is counted only


class IpsSetupError(ValueError):
    """A sensor whose rules the engine cannot compile (reported when fgcpd starts)."""


class SessionEvents(Protocol):
    """What ``attach`` needs of the forwarder: its session event callback (sync feed)."""

    on_session_event: Callable[[str, Session], None] | None


def ips_policies(cfg: MemberConfig) -> dict[int, str]:
    """Policy id -> IPS sensor of the accept policies that have one (utm-status enable)."""
    return {p.policyid: p.ips_sensor for p in cfg.policies
            if p.action == "accept" and p.ips_sensor and p.status == "enable"}


def event_line(s: Session, st: FlowState | None, ev: AttackEvent) -> str:
    """One ``diagnose ips anomaly list`` / IPS log line (docs/ips.md)."""
    src, sport, dst, dport = s.orig
    service = (st.service or "other").lower() if st is not None else "other"
    return (f"t={ev.now:.3f} attack_id={ev.attack_id or 0} name=\"{ev.name}\" "
            f"action={ev.action} proto={s.proto} {int_to_ip(src)}:{sport}->"
            f"{int_to_ip(dst)}:{dport} dir=from_{ev.direction} service={service}")


class IpsInspector:
    """One member's IPS: engines by sensor, per-session ``FlowState``, counters, log."""

    def __init__(self, cfg: MemberConfig, log_path: str | Path | None = None,
                 iccp: Any = "auto", max_events: int = MAX_EVENTS) -> None:
        self.sync_all = cfg.ha.ips_session_sync == "all"
        self.engines: dict[str, IpsEngine] = {}
        self.by_policy: dict[int, IpsEngine] = {}
        for pid, name in ips_policies(cfg).items():
            eng = self.engines.get(name)
            if eng is None:
                sensor = cfg.ips_sensors.get(name)  # a configured one replaces a predefined one
                rules = (sensor_rules(sensor, cfg.ips_custom) if sensor is not None
                         else predefined_rules(name) or [])
                try:
                    rs = RuleSet.compile(rules)
                except RuleSetError as exc:
                    raise IpsSetupError(f"{cfg.source}: ips sensor {name!r}: {exc}") from None
                eng = self.engines[name] = IpsEngine(rs, iccp=iccp)
            self.by_policy[pid] = eng
        # sid -> (engine, state); state None: a synced session forwarded uninspected
        self.flows: dict[int, tuple[IpsEngine, FlowState | None]] = {}
        self.counters: Counter[str] = Counter({k: 0 for k in COUNTERS})
        self.events: deque[str] = deque(maxlen=max_events)
        self._fwd: SessionEvents | None = None
        self._log: IO[str] | None = None
        if log_path is not None and self.by_policy:
            self._log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        """Some policy has a sensor (otherwise the daemon need not install the hook)."""
        return bool(self.by_policy)

    def attach(self, fwd: SessionEvents) -> None:
        """State updates are announced through ``fwd.on_session_event`` (read each time:
        the sync component replaces it when it opens)."""
        self._fwd = fwd

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- the Inspector protocol ---------------------------------------------------
    def on_new(self, session: Session) -> bool:
        eng = self.by_policy.get(session.policy_id)
        proto = _PROTOS.get(session.proto)
        if eng is None or proto is None:
            return False
        c = self.counters
        if session.flags & SYNCED:  # installed by session sync at a takeover
            st = self._restore(session, eng)
            self.flows[session.sid] = (eng, st)
            if st is None:
                c["ips_uninspected"] += 1
            else:
                c["ips_resumed"] += 1
                c["ips_sessions"] += 1
            return True
        st = eng.new_flow(proto, session.orig[1], session.orig[3])
        self.flows[session.sid] = (eng, st)
        c["ips_sessions"] += 1
        if self._carried(session, st):
            session.ext[EXT_IPS] = st.to_bytes()  # goes out with the session's "add"
        return True

    def on_payload(self, session: Session, direction: int, seq: int, payload: bytes,
                   tcp_flags: int, now: float) -> int:
        ent = self.flows.get(session.sid)
        if ent is None:
            return Verdict.PASS
        eng, st = ent
        if st is None:  # a synced flow session after the takeover: uninspected
            return Verdict.PASS
        was_blocked = st.blocked
        v = eng.inspect(st, "client" if direction == ORIG else "server", seq, payload, now,
                        tcp_flags)
        c = self.counters
        c["ips_bytes"] += len(payload)
        if v.events:
            self._record(session, st, v.events)
        if was_blocked:
            return _VERDICTS.get(v.action, Verdict.DROP)  # state unchanged: nothing to sync
        if st.blocked == "block":
            c["ips_blocked"] += 1
        elif st.blocked == "reset":
            c["ips_resets"] += 1
        if self._carried(session, st):
            blob = st.to_bytes()
            if len(blob) > MAX_STATE:
                c["ips_state_oversize"] += 1
                return _VERDICTS.get(v.action, Verdict.DROP)
            session.ext[EXT_IPS] = blob
            self._announce(session, STATE_NOW)  # on the sync link before this segment leaves
        elif session.ext.pop(EXT_IPS, None) is not None:
            self._announce(session)  # recognised as not ICCP: the state stops riding
        return _VERDICTS.get(v.action, Verdict.DROP)

    def on_close(self, session: Session) -> None:
        self.flows.pop(session.sid, None)

    # -- HA -------------------------------------------------------------------------
    def _carried(self, s: Session, st: FlowState) -> bool:
        """Does this session's IPS state ride with its sync updates?  ICCP sessions (and
        those not recognised yet); every flow session with ``ips-session-sync all``."""
        if s.inspection != "flow":
            return False  # proxy sessions are never synced
        return self.sync_all or st.service in (None, "ICCP")

    def _restore(self, s: Session, eng: IpsEngine) -> FlowState | None:
        if s.inspection != "flow":
            return None
        blob = s.ext.get(EXT_IPS)
        if blob is None:
            return None
        try:
            st = eng.resume(blob)  # the engine's resume semantics (docs/ips.md "HA")
        except StateError:
            self.counters["ips_anomalies"] += 1
            return None
        if not (self.sync_all or st.service in (None, "ICCP")):
            return None
        return st

    def _announce(self, s: Session, kind: str = "state") -> None:
        fwd = self._fwd
        cb = fwd.on_session_event if fwd is not None else None
        if cb is not None:
            self.counters["ips_state_syncs"] += 1
            cb(kind, s)

    # -- events and diagnostics -------------------------------------------------------
    def _record(self, s: Session, st: FlowState, events: Iterable[AttackEvent]) -> None:
        c = self.counters
        for ev in events:
            if ev.kind == "anomaly":
                c["ips_anomalies"] += 1
            if ev.action not in _LOGGED:
                continue
            line = event_line(s, st, ev)
            if ev.name == GAP_SKIPPED:
                gap = st.dir(ev.direction).skipped
                log.info("ips: %s, stream bytes %s never seen here", line,
                         f"{gap[0]}-{gap[1]}" if gap else "?")
            c["ips_events"] += 1
            self.events.append(line)
            if self._log is not None:
                try:
                    self._log.write(line + "\n")
                except OSError:
                    c["ips_log_errors"] += 1

    def session_note(self, s: Session) -> str:
        """``ips=on`` / ``ips=uninspected`` for a session row, "" when not an IPS session."""
        ent = self.flows.get(s.sid)
        if ent is None:
            return ""
        return "ips=uninspected" if ent[1] is None else "ips=on"

    def stats(self) -> dict[str, int]:
        """Adapter counters plus the engines' (prefixed ``ips.``) for ``diagnose lab stats``."""
        out = dict(self.counters)
        total: Counter[str] = Counter()
        for eng in self.engines.values():
            total.update(eng.stats())
        out.update({f"ips.{k}": v for k, v in total.items()})
        return out

    def render_anomalies(self) -> str:
        """``diagnose ips anomaly list``: one line per event, newest last."""
        return "".join(line + "\n" for line in self.events)
