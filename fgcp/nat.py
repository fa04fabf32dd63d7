"""Source-NAT port allocator: one pool per (NAT IP, protocol), original port kept when free.

Used by the forwarder when a session matches a policy with ``nat enable``;
exhaustion returns None (the caller counts ``nat_exhausted`` and drops).
"""

from __future__ import annotations

__all__ = ["NatAllocator"]


class _Pool:
    __slots__ = ("cursor", "hi", "lo", "used")

    def __init__(self, lo: int, hi: int) -> None:
        self.used: set[int] = set()
        self.lo = lo
        self.hi = hi
        self.cursor = lo


class NatAllocator:
    """Allocates NAT source ports in ``[lo, hi]`` (ICMP identifiers in ``icmp_range``)."""

    def __init__(self, lo: int = 1024, hi: int = 65535,
                 icmp_range: tuple[int, int] = (0, 65535)) -> None:
        for a, b in ((lo, hi), icmp_range):
            if not 0 <= a <= b <= 65535:
                raise ValueError(f"bad NAT port range {a}-{b}")
        self.lo = lo
        self.hi = hi
        self.icmp_range = icmp_range
        self._pools: dict[tuple[int, int], _Pool] = {}

    def _pool(self, nat_ip: int, proto: int) -> _Pool:
        pool = self._pools.get((nat_ip, proto))
        if pool is None:
            lo, hi = self.icmp_range if proto == 1 else (self.lo, self.hi)
            pool = self._pools[(nat_ip, proto)] = _Pool(lo, hi)
        return pool

    def allocate(self, nat_ip: int, proto: int, want: int) -> int | None:
        """Reserve ``want`` if it is in range and free, else the next free port."""
        pool = self._pool(nat_ip, proto)
        used = pool.used
        lo, hi = pool.lo, pool.hi
        if lo <= want <= hi and want not in used:
            used.add(want)
            return want
        if len(used) >= hi - lo + 1:
            return None
        port = pool.cursor
        while port in used:
            port = port + 1 if port < hi else lo
        used.add(port)
        pool.cursor = port + 1 if port < hi else lo
        return port

    def reserve(self, nat_ip: int, proto: int, port: int) -> bool:
        """Mark a specific port used (sessions installed by sync); False if taken."""
        pool = self._pool(nat_ip, proto)
        if port in pool.used:
            return False
        pool.used.add(port)
        return True

    def release(self, nat_ip: int, proto: int, port: int) -> None:
        """Return a port to its pool (no-op when it was not allocated)."""
        pool = self._pools.get((nat_ip, proto))
        if pool is not None:
            pool.used.discard(port)

    def in_use(self, nat_ip: int, proto: int) -> int:
        """Number of ports allocated in one pool."""
        pool = self._pools.get((nat_ip, proto))
        return len(pool.used) if pool is not None else 0
