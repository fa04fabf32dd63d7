"""One-line summary of a loaded configuration (what ``check-config`` prints per file).

Pure: MemberConfig in, text out; counts the configured objects, not the predefined ones.
"""

from __future__ import annotations

from fgcp.config.firewall import predefined_addresses, predefined_services
from fgcp.model import MemberConfig, ZtnaConfig

__all__ = ["summarize"]


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def _ztna(z: ZtnaConfig) -> str:
    """``; ZTNA ...`` when an access proxy, a proxy-policy, a tag or an EMS is configured."""
    if not (z.vips or z.proxies or z.policies or z.tags or z.ems):
        return ""
    proxies = []
    for p in z.proxies.values():
        vip = z.vips[p.vip]
        backends = " ".join(
            f"{rs.ip}:{rs.port}" for api in p.apis for rs in api.realservers
        )
        proxies.append(f"{p.name} {vip.extip}:{vip.extport} -> {backends}")
    parts = [
        _count(len(z.proxies), "access-proxy", "access-proxies")
        + (f" ({', '.join(proxies)})" if proxies else ""),
        _count(len(z.policies), "proxy-policy", "proxy-policies"),
        _count(len(z.tags), "EMS tag"),
        f"EMS {z.ems.name!r}" if z.ems else "no EMS",
    ]
    return "; ZTNA " + ", ".join(parts)


def summarize(cfg: MemberConfig) -> str:
    """One-line summary of a configuration, as ``check-config`` prints it."""
    n_addr = len(cfg.addresses.keys() - predefined_addresses().keys())
    n_svc = len(cfg.services.keys() - predefined_services().keys())
    serial = f" (serial {cfg.serial})" if cfg.serial else ""
    objects = ", ".join(
        (
            _count(len(cfg.interfaces), "interface"),
            _count(len(cfg.routes), "static route"),
            _count(n_addr, "address", "addresses"),
            _count(n_svc, "custom service"),
            _count(len(cfg.policies), "policy", "policies"),
        )
    )
    objects += _ztna(cfg.ztna)
    if cfg.ips_custom or cfg.ips_sensors:  # only when configured (older summaries unchanged)
        objects += (f", {_count(len(cfg.ips_custom), 'IPS signature')}, "
                    f"{_count(len(cfg.ips_sensors), 'IPS sensor')}")
    ha = cfg.ha
    if ha.mode == "standalone":
        return f"{cfg.hostname}{serial}: {objects}; HA standalone"
    details = [
        f"HA {ha.mode} group {ha.group_name!r} id {ha.group_id}",
        f"priority {ha.priority}",
        f"override {'enable' if ha.override else 'disable'}",
        "hbdev " + " ".join(f"{name}/{prio}" for name, prio in ha.hbdev),
    ]
    if ha.session_sync_dev:
        details.append("session-sync-dev " + " ".join(ha.session_sync_dev))
    if ha.monitor:
        details.append("monitor " + " ".join(ha.monitor))
    pickup = "enable" if ha.session_pickup else "disable"
    extras = [
        name
        for name, on in (
            ("connectionless", ha.session_pickup_connectionless),
            ("delay", ha.session_pickup_delay),
        )
        if on
    ]
    if extras:
        pickup += f" ({' '.join(extras)})"
    details.append(f"session-pickup {pickup}")
    if ha.ips_session_sync != "iccp":
        details.append(f"ips-session-sync {ha.ips_session_sync}")
    return f"{cfg.hostname}{serial}: {objects}; " + ", ".join(details)
