"""FortiOS-style text of the session-sync statistics (pure: snapshot dicts -> text).

Renders ``SyncSender.snapshot`` / ``SyncReceiver.snapshot`` for the diag command
``diagnose sys ha session-sync`` (frames, records, resends, stale, dropped, lag).
"""

from __future__ import annotations

from typing import Any

from fgcp.model import HAConfig

__all__ = ["render_sync_stats"]


def _short(name: str) -> str:
    return name.replace("dropped_", "").replace("_", "-")


_STAT_LINES = (
    ("frames", ("frames_tx", "frames_rx")),
    ("records", ("records_tx", "records_rx", "applied")),
    ("reliability", ("resends", "resent_records", "acked", "acked_records", "acks_tx",
                     "nacks_tx")),
    ("rejected", ("stale", "dup_frames", "dup_records", "oversize")),
    ("dropped", ("dropped_auth", "dropped_malformed", "dropped_foreign", "no_link")),
    ("freshness", ("dropped_replay", "dropped_unverified", "peers_refused", "table_full")),
    ("links", ("fallback_frames", "bulks", "streams")),
)


def _ctx_line(ha: HAConfig, running: bool) -> str:
    """FortiOS ``diagnose sys session sync`` first line."""
    return (f"sync_ctx: sync_started={int(running)}, sync_tcp={int(bool(ha.session_pickup))}, "
            f"sync_others={int(bool(ha.session_pickup and ha.session_pickup_connectionless))}, "
            f"sync_nat={int(bool(ha.session_pickup))}, "
            f"sync_delay={int(bool(ha.session_pickup_delay))}, "
            f"session_sync_dev={','.join(ha.session_sync_dev) or '(hbdev)'}")


def render_sync_stats(sender: dict[str, Any] | None, receiver: dict[str, Any] | None,
                      ha: HAConfig | None = None) -> str:
    """Text of ``diagnose sys ha session-sync`` from ``SyncSender/SyncReceiver.snapshot``.

    ``ha`` (optional) adds the FortiOS ``sync_ctx`` line.
    The ``sync:``/``recv:`` lines follow ``diagnose sys session sync``; the
    indented lines are the lab's reliability details.
    """
    lines: list[str] = []
    if ha is not None:
        lines.append(_ctx_line(ha, bool(sender or receiver)))
    for snap in (sender, receiver):
        if not snap:
            continue
        st = snap["stats"]
        is_tx = snap["role"] == "sender"
        role = "primary (sender)" if is_tx else "secondary (receiver)"
        links = ",".join(snap["links"]) or "none"
        lines.append(f"{'sync' if is_tx else 'recv'}: create={st.get('creates', 0)}, "
                     f"update={st.get('updates', 0)}, delete={st.get('deletes', 0)}")
        lines.append(f"  role: {role} serial={snap['serial']} epoch={snap.get('epoch', 0):016x} "
                     f"sessions={snap['sessions']}")
        lines.append(f"  links: {links}{' (fallback to heartbeat links)' if snap['fallback'] else ''}")
        if is_tx:
            lines.append(f"  lag: unacked_records={snap['unacked_records']} "
                         f"oldest_unacked={snap['oldest_unacked_s'] * 1000:.1f}ms")
            for p in snap["peers"]:
                lines.append(f"  peer {p['serial']}: stream={p['stream']:#010x} seq={p['seq']} "
                             f"acked={p['acked']} inflight={p['inflight']} "
                             f"unacked_records={p['unacked_records']} queued={p['queued']} "
                             f"bulk={p['bulk']}")
        else:
            lines.append(f"  from {snap['sender'] or '-'}: "
                         f"epoch={snap.get('sender_epoch', 0):016x} "
                         f"stream={snap['stream']:#010x} "
                         f"acked_seq={snap['cum_seq']} highest_seq={snap['highest_seq']} "
                         f"gaps={len(snap['gaps'])} "
                         f"bulk={'complete' if snap['bulk_complete'] else 'pending'}"
                         f" ({snap['bulk_total']} sessions)")
        for title, names in _STAT_LINES:
            lines.append(f"  {title}: " + ", ".join(f"{_short(n)}={st.get(n, 0)}" for n in names))
    if not (sender or receiver):
        lines.append("session sync: not running")
    return "\n".join(lines) + "\n"
