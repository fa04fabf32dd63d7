"""Routing (connected + static, longest prefix then distance) and the ARP cache.

Pure tables used by the forwarder: ``RouteTable.lookup`` gives the egress port
and next hop; ``ArpCache`` holds resolved neighbours as ready L2 headers and
queues a few packets per unresolved next hop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Interface

from fgcp.model import MemberConfig

__all__ = ["ArpCache", "Route", "RouteTable"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """One route; gateway 0 means directly connected (next hop = destination)."""

    net: int
    prefixlen: int
    port: int
    gateway: int = 0
    distance: int = 0
    kind: str = "connected"  # connected | static

    @property
    def mask(self) -> int:
        return (0xFFFFFFFF << (32 - self.prefixlen)) & 0xFFFFFFFF


class RouteTable:
    """Connected networks of the interface addresses plus static routes.

    Static routes through ports this forwarder does not own, or whose gateway
    is on no connected network, are inactive (skipped), as on FortiOS.
    """

    def __init__(self, cfg: MemberConfig, ports: dict[str, int]) -> None:
        self._cfg = cfg
        self._ports = ports
        self._addresses: dict[int, list[IPv4Interface]] = {}
        for name, intf in cfg.interfaces.items():
            if intf.ip is not None and name in ports and intf.status == "up":
                self._addresses.setdefault(ports[name], []).append(intf.ip)
        self._down: set[int] = {ports[n] for n, i in cfg.interfaces.items()
                                if i.status != "up" and n in ports}
        self.routes: list[Route] = []
        self._cache: dict[int, tuple[int, int] | None] = {}
        self.rebuild()

    # -- addresses -------------------------------------------------------
    def addresses(self, port: int) -> list[IPv4Interface]:
        return list(self._addresses.get(port, ()))

    def all_addresses(self) -> dict[int, list[IPv4Interface]]:
        return {p: list(a) for p, a in self._addresses.items()}

    def add_address(self, port: int, addr: IPv4Interface) -> None:
        lst = self._addresses.setdefault(port, [])
        if addr not in lst:
            lst.append(addr)
            self.rebuild()

    def remove_address(self, port: int, addr: IPv4Interface) -> bool:
        lst = self._addresses.get(port, [])
        if addr in lst:
            lst.remove(addr)
            self.rebuild()
            return True
        return False

    def source_for(self, port: int, nexthop: int) -> int:
        """Our address on ``port`` to use towards ``nexthop`` (same subnet first)."""
        addrs = self._addresses.get(port, ())
        for a in addrs:
            net = a.network
            if (nexthop & int(net.netmask)) == int(net.network_address):
                return int(a.ip)
        return int(addrs[0].ip) if addrs else 0

    # -- routes ----------------------------------------------------------
    def rebuild(self) -> None:
        routes: list[Route] = []
        for port, addrs in self._addresses.items():
            if port in self._down:
                continue
            for a in addrs:
                net = a.network
                routes.append(Route(int(net.network_address), net.prefixlen, port))
        connected = list(routes)
        for sr in self._cfg.routes:
            gw = int(sr.gateway) if sr.gateway is not None else 0
            if sr.device:
                if sr.device not in self._ports:
                    # a port this forwarder does not own (HA links): not a data route
                    log.debug("static route %d: device %s not forwarded here", sr.seq, sr.device)
                    continue
                port = self._ports[sr.device]
            else:
                found = [r.port for r in connected if (gw & r.mask) == r.net] if gw else []
                if not found:
                    log.debug("static route %d: gateway not on a connected network", sr.seq)
                    continue
                port = found[0]
            if port in self._down:
                continue
            routes.append(Route(int(sr.dst.network_address), sr.dst.prefixlen, port, gw,
                                sr.distance, "static"))
        routes.sort(key=lambda r: (-r.prefixlen, r.distance))
        self.routes = routes
        self._cache.clear()

    def lookup(self, dst: int) -> tuple[int, int] | None:
        """(egress port, next-hop IP) for ``dst``; None when unroutable."""
        try:
            return self._cache[dst]
        except KeyError:
            pass
        res = None
        for r in self.routes:
            if (dst & r.mask) == r.net:
                res = (r.port, r.gateway or dst)
                break
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[dst] = res
        return res


@dataclass(slots=True)
class _Pending:
    frames: list[bytearray] = field(default_factory=list)
    first: float = 0.0
    last_request: float = 0.0
    requests: int = 1


class ArpCache:
    """Neighbours as 12-byte L2 headers (dst MAC + our src MAC) keyed by (port, ip)."""

    QUEUE_LEN = 100  # frames per unresolved next hop (Linux unres_qlen: 101)
    FIRST_RETRY = 0.1  # s before the first ARP request is repeated; doubles up to RETRY
    RETRY = 1.0  # s between ARP requests for one next hop (at most)
    GIVE_UP = 3.0  # s before queued packets are dropped

    def __init__(self) -> None:
        self.macs: dict[tuple[int, int], tuple[bytes, float]] = {}
        self.hdr: dict[tuple[int, int], bytes] = {}
        self.pending: dict[tuple[int, int], _Pending] = {}

    def learn(self, port: int, ip: int, mac: bytes, port_mac: bytes, now: float) -> list[bytearray]:
        """Record ip -> mac; returns the queued frames, L2 header filled in."""
        key = (port, ip)
        self.macs[key] = (mac, now)
        hdr = mac + port_mac
        self.hdr[key] = hdr
        pend = self.pending.pop(key, None)
        if pend is None:
            return []
        for f in pend.frames:
            f[0:12] = hdr
        return pend.frames

    def known(self, port: int, ip: int) -> bool:
        return (port, ip) in self.macs

    def queue(self, port: int, ip: int, frame: bytearray, now: float) -> tuple[bool, bool]:
        """Queue a frame for an unresolved next hop: (queued, send ARP request now)."""
        key = (port, ip)
        pend = self.pending.get(key)
        if pend is None:
            pend = self.pending[key] = _Pending(first=now, last_request=now)
            pend.frames.append(frame)
            return True, True
        queued = False
        if len(pend.frames) < self.QUEUE_LEN:
            pend.frames.append(frame)
            queued = True
        # a first reply can be lost while the fabric still steers our MAC
        # elsewhere (just after a takeover): retry soon, then back off
        if now - pend.last_request >= min(self.RETRY, self.FIRST_RETRY * 2 ** (pend.requests - 1)):
            pend.last_request = now
            pend.requests += 1
            return queued, True
        return queued, False

    def set_port_mac(self, port: int, port_mac: bytes) -> None:
        for (p, ip), (mac, _) in self.macs.items():
            if p == port:
                self.hdr[(p, ip)] = mac + port_mac

    def purge(self, now: float) -> int:
        """Drop queues waiting longer than GIVE_UP; returns frames dropped."""
        dropped = 0
        for key in [k for k, p in self.pending.items()
                    if now - p.first >= self.GIVE_UP]:
            dropped += len(self.pending.pop(key).frames)
        return dropped

    def flush(self, port: int | None = None) -> None:
        """Forget neighbours (of one port or all)."""
        for key in [k for k in self.macs if port is None or k[0] == port]:
            del self.macs[key]
            self.hdr.pop(key, None)
