"""FortiOS session-pickup filter: which sessions are synced to the secondaries, and when.

One rule (``pickup_wait``) answers both questions the sync component asks: ``should_sync``
(now?) and ``sync_eligible_at`` (from when?); pure, on fgcp.session.Session + HAConfig.
"""

from __future__ import annotations

from fgcp.model import HAConfig
from fgcp.packet import IPPROTO_TCP
from fgcp.session import PROXY, Session
from fgcp.syncrecord import EXT_ZTNA

__all__ = ["PICKUP_DELAY_S", "pickup_wait", "should_sync", "sync_eligible_at"]

PICKUP_DELAY_S = 30.0  # FortiOS session-pickup-delay: TCP sessions older than this


def _is_ztna(session: Session) -> bool:
    return session.inspection == "ztna" or EXT_ZTNA in (session.ext or {})


def pickup_wait(session: Session, ha_cfg: HAConfig,
                delay_s: float = PICKUP_DELAY_S) -> float | None:
    """Seconds after its creation from which ``session`` is synced; None: never by itself.

    FortiOS session-pickup rules.  session-pickup off: nothing.  On: TCP (at creation
    and every state change: the caller asks again on each change).  Connectionless:
    UDP, ICMP and every other non-TCP protocol too.  session-pickup-delay: TCP sessions
    only once older than ``delay_s`` (30 s in FortiOS; a smaller value is a test-only
    time-scale knob, not a different rule).  Sessions of proxy-inspected policies are
    never synced; ZTNA access-proxy sessions (inspection "ztna" or an EXT_ZTNA record) are.
    """
    if not ha_cfg.session_pickup:
        return None
    if (session.inspection == "proxy" or session.flags & PROXY) and not _is_ztna(session):
        return None
    if session.proto == IPPROTO_TCP:
        return delay_s if ha_cfg.session_pickup_delay else 0.0
    return 0.0 if ha_cfg.session_pickup_connectionless else None


def should_sync(session: Session, ha_cfg: HAConfig, now: float,
                delay_s: float = PICKUP_DELAY_S) -> bool:
    """Is ``session`` synced to the secondaries now (``pickup_wait`` has elapsed)?"""
    wait = pickup_wait(session, ha_cfg, delay_s)
    return wait is not None and (not wait or now - session.created >= wait)


def sync_eligible_at(session: Session, ha_cfg: HAConfig,
                     delay_s: float = PICKUP_DELAY_S) -> float | None:
    """When ``should_sync`` turns True for this session (None: never by itself)."""
    wait = pickup_wait(session, ha_cfg, delay_s)
    return None if wait is None else session.created + wait
