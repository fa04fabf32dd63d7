"""FortiOS-style text of the HA diagnostics: ``get system ha status`` and
``diagnose sys ha history read``; pure renderers of ``fgcp.hafsm`` snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from fgcp.hafsm import HAStatus, HistoryEntry
from fgcp.roles import HaState

__all__ = ["AUTH_HMAC", "AUTH_NONE", "fmt_duration", "render_ha_history", "render_ha_status"]

AUTH_NONE = ("HA authentication: none (password not set): heartbeats and sync frames are "
             "accepted unauthenticated")
AUTH_HMAC = "HA authentication: HMAC-SHA256 (password set), epoch challenge-response"


def _ts(t: float, sep: str = "-") -> str:
    return time.strftime(f"%Y{sep}%m{sep}%d %H:%M:%S", time.localtime(t))


def fmt_duration(seconds: float) -> str:
    """FortiOS "Cluster Uptime" layout: ``0 days 0:05:12``."""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{days} days {h}:{m:02d}:{s:02d}"


def render_ha_status(
    st: HAStatus,
    model: str = "FortiGate-VM64",
    intf_stats: Mapping[str, str] | None = None,
    sessions: int | None = None,
) -> str:
    """``get system ha status`` as FortiOS 7.x prints it, from this member's view.

    ``intf_stats`` may map a port name to a ready-made counter text
    (``physical/10000full, up, rx-bytes/packets/dropped/errors=...``) from the
    forwarding plane; without it the heartbeat counters of the HA engine are shown.
    """
    now = st.now
    lines: list[str] = []
    problems = []
    for serial, when in st.lost:
        problems.append(f"ERROR: {serial} is lost @ {_ts(when, '/')}")
    for m in st.members:
        if m.failed_monitors:
            problems.append(f"WARNING: {m.serial} has mondev down;")
    lines.append("HA Health Status: " + (" ".join(problems) if problems else "OK"))
    lines.append(f"Model: {model}")
    lines.append("Mode: HA " + {"a-p": "A-P", "a-a": "A-A"}.get(st.mode, st.mode.upper()))
    lines.append(f"Group Name: {st.group_name}")
    lines.append(f"Group ID: {st.group_id}")
    lines.append(AUTH_HMAC if st.password_set else AUTH_NONE)
    lines.append("Debug: 0")
    lines.append(f"Cluster Uptime: {fmt_duration(now - st.started)}")
    lines.append(f"Cluster state change time: {_ts(st.state_change_time)}")
    lines.append("Primary selected using:")
    for when, text in reversed(st.selections):
        lines.append(f"    <{_ts(when, '/')}> {text}")
    pickup = "enable" if st.session_pickup else "disable"
    delay = "enable" if st.session_pickup_delay else "disable"
    lines.append(f"ses_pickup: {pickup}, ses_pickup_delay={delay}")
    lines.append(f"override: {'enable' if st.override else 'disable'}")
    lost_ms = st.hb_interval * st.hb_unit_ms * st.hb_lost_threshold
    lines.append(f"hb-interval: {st.hb_interval} x {st.hb_unit_ms}ms"
                 f" (hb-interval-in-milliseconds {st.hb_unit_ms}ms), hb-lost-threshold:"
                 f" {st.hb_lost_threshold} (a peer is lost after {lost_ms} ms)")
    lines.append("Configuration Status:")
    for m in st.members:
        lines.append(f"    {m.serial}(updated {int(m.last_seen_s)} seconds ago): in-sync")
    lines.append("System Usage stats:")
    for m in st.members:
        lines.append(f"    {m.serial}(updated {int(m.last_seen_s)} seconds ago):")
        extra = f"sessions={sessions}, " if (m.is_self and sessions is not None) else ""
        lines.append(
            f"        {extra}ha-state={m.state}, priority={m.priority}, ha-uptime={int(m.uptime_s)}s,"
            f" failed-monitors={m.failed_monitors}, failover-flag={int(m.failover_set)},"
            f" sync={'done' if m.sync_complete else 'pending'}"
        )
    lines.append("HBDEV stats:")
    lines.append(f"    {st.serial}(updated 0 seconds ago):")
    for h in st.hbdevs:
        if intf_stats and h.port in intf_stats:
            lines.append(f"        {h.port}: {intf_stats[h.port]}")
        else:
            lines.append(
                f"        {h.port}: physical/10000full, {'up' if h.up else 'down'}, priority={h.priority},"
                f" rx-bytes/packets/dropped/errors={h.rx_bytes}/{h.rx_packets}/{h.dropped}/0,"
                f" tx={h.tx_bytes}/{h.tx_packets}/0/0"
            )
    if st.monitors:
        lines.append("MONDEV stats:")
        lines.append(f"    {st.serial}(updated 0 seconds ago):")
        for port, up in st.monitors:
            if intf_stats and port in intf_stats:
                lines.append(f"        {port}: {intf_stats[port]}")
            else:
                lines.append(f"        {port}: physical/10000full, {'up' if up else 'down'}")
    for m in st.members:
        role = "Primary" if m.serial == st.primary else "Secondary"
        lines.append(
            f"{role:<12}: {m.hostname:<16}, {m.serial}, HA cluster index = {m.cluster_index}"
        )
    lines.append("number of vcluster: 1")
    me = next(m for m in st.members if m.is_self)
    lines.append(f"vcluster 1: {st.state} 169.254.0.{me.cluster_index + 1}")
    for m in st.members:
        role = "Primary" if m.serial == st.primary and st.state != HaState.HELLO else "Secondary"
        if m.state == HaState.HELLO:
            role = "Hello"
        lines.append(f"{role}: {m.serial}, HA operating index = {m.operating_index}")
    return "\n".join(lines) + "\n"


def render_ha_history(entries: Iterable[HistoryEntry], newest_first: bool = True) -> str:
    """``diagnose sys ha history read``: one ``<time> text`` line per event."""
    items = list(entries)
    if newest_first:
        items.reverse()
    out = [f"HA history ({len(items)} entries):"]
    out += [f"<{_ts(e.ts)}> {e.text}" for e in items]
    return "\n".join(out) + "\n"
