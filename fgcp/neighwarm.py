"""Warm neighbour cache of a secondary: the next hops of the synced sessions resolved
before a takeover, so the new primary forwards its first packets without an ARP exchange.

Without it a new primary that never talked to a next hop (the server, the client) queues
the first packets behind an ARP request; the reply is addressed to the virtual MAC the
fabric may still steer to the dead primary, and the 100 ms ARP retry
(``fgcp.routing.ArpCache.FIRST_RETRY``) decides the gap.

`NeighWarm` is a `fgcp.component.Component`.  While the member is secondary (or in
hello) it reads, every ``REFRESH`` seconds, the sessions session sync holds
(``SyncMember.table_records``), routes both ends of each (the client: ``orig`` source;
the server: ``reply`` source, after NAT) with the forwarder's route table, and sends an
ARP probe (RFC 5227: sender IP 0.0.0.0, so no neighbour updates its cache from it;
sender MAC the member's own port MAC) for each next hop the cache does not hold, and
for the known ones every ``REFRESH`` (a moved host is learned again).  Linux answers a
probe with a unicast reply to the member's own MAC, which the forwarder learns as
secondary (``fgcp.forward``: ARP replies are learned in every role); at takeover
``set_port_mac`` rewrites the learned headers with the virtual MAC.  At most
``BURST`` probes leave per tick.  Counters: ``diagnose lab neighwarm``.
``FGCP_LAB_NEIGHWARM=off`` in fgcpd's environment leaves it out (measurements of the
gap without it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

from fgcp.component import Host
from fgcp.diag import DiagState
from fgcp.packet import ARP_REQUEST, BROADCAST_MAC, ZERO_MAC, build_arp
from fgcp.roles import Role

log = logging.getLogger("fgcpd.neighwarm")

ENV = "FGCP_LAB_NEIGHWARM"  # "off": the daemon runs without it (before/after measurements)
REFRESH = 1.0  # seconds between two passes over the synced sessions
BURST = 64  # probes per pass at most


def enabled(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether the daemon hosts NeighWarm: ``FGCP_LAB_NEIGHWARM`` unset or ``on``; ``off``
    turns it off; anything else is an error (ValueError)."""
    raw = (os.environ if env is None else env).get(ENV, "on").strip() or "on"
    if raw not in ("on", "off"):
        raise ValueError(f"{ENV}={raw!r}: expected on or off")
    return raw == "on"


def next_hops(records: Iterable[Any], lookup: Any) -> set[tuple[int, int]]:
    """(egress port, next-hop IP) of both ends of each synced session record
    (``orig`` source = the client, ``reply`` source = the server after NAT)."""
    out: set[tuple[int, int]] = set()
    for rec in records:
        for ip in (rec.orig[0], rec.reply[0]):
            hop = lookup(ip)
            if hop is not None:
                out.add(hop)
    return out


class NeighWarm:
    """The component (see the module docstring)."""

    name = "neighwarm"

    def __init__(self, refresh: float = REFRESH, burst: int = BURST) -> None:
        self.refresh = refresh
        self.burst = burst
        self.host: Host | None = None
        self.next_pass = 0.0
        self.counters: dict[str, int] = {"passes": 0, "probes_tx": 0, "hops": 0,
                                         "hops_known": 0}
        self.probed: dict[tuple[int, int], float] = {}  # hop -> last probe

    def open(self, host: Host) -> None:
        self.host = host
        if host.cfg.ha.mode == "standalone":
            return
        host.table.register("diagnose lab neighwarm", self._render,
                            "warm neighbour cache of the secondary (key=value)")

    def fds(self) -> list[int]:
        return []

    def on_readable(self, fd: int, now: float) -> None:
        return

    def next_deadline(self) -> float | None:
        host = self.host
        if host is None or host.cfg.ha.mode == "standalone" or host.role == Role.PRIMARY:
            return None
        return self.next_pass

    def on_tick(self, now: float) -> None:
        host = self.host
        if host is None or host.role == Role.PRIMARY or now < self.next_pass:
            return
        self.next_pass = now + self.refresh
        fwd: Any = host.fwd  # fgcp.forward.ForwardingPlane: routes, arp, port_macs
        records = getattr(host.component("sync"), "table_records", None)
        send = getattr(host, "send_frames", None)
        if fwd is None or records is None or send is None or not hasattr(fwd, "arp"):
            return
        self.counters["passes"] += 1
        hops = next_hops(records().values(), fwd.routes.lookup)
        self.counters["hops"] = len(hops)
        self.counters["hops_known"] = sum(1 for p, ip in hops if fwd.arp.known(p, ip))
        frames: list[tuple[int, bytes | bytearray]] = []
        for port, ip in sorted(hops, key=lambda h: self.probed.get(h, 0.0)):
            if len(frames) >= self.burst:
                break
            if now - self.probed.get((port, ip), -1e9) < self.refresh * 0.5:
                continue
            self.probed[(port, ip)] = now
            mac = fwd.port_macs[port]
            frames.append((port, build_arp(ARP_REQUEST, mac, 0, BROADCAST_MAC, ZERO_MAC, ip)))
        for gone in [h for h in self.probed if h not in hops]:
            del self.probed[gone]
        if frames:
            self.counters["probes_tx"] += int(send(frames))

    def before_takeover(self, now: float) -> None:
        return

    def after_release(self, now: float) -> None:
        self.next_pass = now  # probe again at once as secondary

    def close(self) -> None:
        return

    def _render(self, state: DiagState, args: Sequence[str]) -> str:
        return "".join(f"{k}={v}\n" for k, v in sorted(self.counters.items()))

