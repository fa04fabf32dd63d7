"""Firewall policy lookup: the first enabled policy (in order) matching a new flow.

Compiles ``MemberConfig.policies`` once (names resolved to Address/Service
objects); ``PolicyTable.match`` runs only for packets that may start a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network
from types import MappingProxyType

from fgcp.model import Address, MemberConfig, Policy, Service

__all__ = ["CompiledPolicy", "PolicyError", "PolicyTable"]

_FULL = ((1, 65535),)
_BUILTIN_ADDRESSES = MappingProxyType({"all": Address("all", subnet=IPv4Network("0.0.0.0/0"))})
_BUILTIN_SERVICES = MappingProxyType({
    s.name: s
    for s in (
        Service("ALL", protocol="IP", protocol_number=0),
        Service("ALL_TCP", tcp_portrange=_FULL),
        Service("ALL_UDP", udp_portrange=_FULL),
        Service("ALL_ICMP", protocol="ICMP"),
        Service("PING", protocol="ICMP", icmptype=8),
    )
})


class PolicyError(ValueError):
    """A policy refers to an unknown interface, address or service."""


# compiled service entry: (proto, lo, hi); proto 0 = any protocol;
# for ICMP lo/hi bound the ICMP type (0..255 = any type).
_ServiceEntry = tuple[int, int, int]


def _compile_service(svc: Service) -> list[_ServiceEntry]:
    proto = svc.protocol.upper()
    if proto == "IP":
        return [(svc.protocol_number, 0, 65535)]
    if proto in ("ICMP", "ICMP6"):
        if svc.icmptype is None:
            return [(1, 0, 255)]
        return [(1, svc.icmptype, svc.icmptype)]
    out: list[_ServiceEntry] = []
    for lo, hi in svc.tcp_portrange:
        out.append((6, lo, hi))
    for lo, hi in svc.udp_portrange:
        out.append((17, lo, hi))
    return out


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy with its names resolved; None means "any"."""

    policy: Policy
    srcintf: frozenset[str] | None
    dstintf: frozenset[str] | None
    srcaddr: tuple[Address, ...] | None
    dstaddr: tuple[Address, ...] | None
    services: tuple[_ServiceEntry, ...] | None

    def matches(self, in_intf: str, out_intf: str, proto: int, src: int, dst: int,
                dport: int) -> bool:
        """``dport`` is the ICMP type for ICMP."""
        if self.srcintf is not None and in_intf not in self.srcintf:
            return False
        if self.dstintf is not None and out_intf not in self.dstintf:
            return False
        if self.srcaddr is not None and not any(a.contains(src) for a in self.srcaddr):
            return False
        if self.dstaddr is not None and not any(a.contains(dst) for a in self.dstaddr):
            return False
        if self.services is None:
            return True
        for p, lo, hi in self.services:
            if (p == 0 or p == proto) and lo <= dport <= hi:
                return True
        return False


def _is_any_addr(a: Address) -> bool:
    return a.subnet is not None and a.subnet.prefixlen == 0


class PolicyTable:
    """Ordered, compiled firewall policies of one member."""

    def __init__(self, cfg: MemberConfig) -> None:
        addresses = {**_BUILTIN_ADDRESSES, **cfg.addresses}
        services = {**_BUILTIN_SERVICES, **cfg.services}
        self.policies: list[CompiledPolicy] = []
        for p in cfg.policies:
            if p.status != "enable":
                continue
            self.policies.append(CompiledPolicy(
                policy=p,
                srcintf=self._intfs(p, p.srcintf, cfg),
                dstintf=self._intfs(p, p.dstintf, cfg),
                srcaddr=self._addrs(p, p.srcaddr, addresses),
                dstaddr=self._addrs(p, p.dstaddr, addresses),
                services=self._services(p, services),
            ))

    @staticmethod
    def _intfs(p: Policy, names: tuple[str, ...], cfg: MemberConfig) -> frozenset[str] | None:
        if not names or "any" in names:
            return None
        for n in names:
            if n not in cfg.interfaces:
                raise PolicyError(f"policy {p.policyid}: unknown interface {n!r}")
        return frozenset(names)

    @staticmethod
    def _addrs(p: Policy, names: tuple[str, ...],
               addresses: dict[str, Address]) -> tuple[Address, ...] | None:
        out = []
        for n in names:
            if n not in addresses:
                raise PolicyError(f"policy {p.policyid}: unknown address {n!r}")
            a = addresses[n]
            if _is_any_addr(a):
                return None
            out.append(a)
        return tuple(out)  # empty: matches nothing (FortiOS requires one)

    @staticmethod
    def _services(p: Policy, services: dict[str, Service]) -> tuple[_ServiceEntry, ...] | None:
        out: list[_ServiceEntry] = []
        for n in p.service:
            if n not in services:
                raise PolicyError(f"policy {p.policyid}: unknown service {n!r}")
            out.extend(_compile_service(services[n]))
        if any(e == (0, 0, 65535) for e in out):
            return None
        return tuple(out)

    def match(self, in_intf: str, out_intf: str, proto: int, src: int, dst: int,
              dport: int) -> Policy | None:
        """First enabled policy matching the flow, or None (implicit deny)."""
        for cp in self.policies:
            if cp.matches(in_intf, out_intf, proto, src, dst, dport):
                return cp.policy
        return None
