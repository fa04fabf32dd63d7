"""Token bucket (time passed in): how often the member may originate a kind of frame.

The forwarder limits the ICMP errors it sends as a router does (Linux defaults:
``net.ipv4.icmp_msgs_per_sec`` 1000, ``icmp_msgs_burst`` 50).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; ``take(now)`` spends one."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"bad token bucket rate {rate} burst {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """True (one token spent) when allowed at ``now``; False when the bucket is empty."""
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
