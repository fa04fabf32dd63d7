"""TokenBucket: burst, refill at the rate, time passed in."""

from __future__ import annotations

import pytest

from fgcp.ratelimit import TokenBucket


def test_burst_then_refill_at_rate() -> None:
    b = TokenBucket(rate=10.0, burst=3)
    assert [b.take(1.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(1.05)  # half a token
    assert b.take(1.1)
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_clock_going_back_gives_no_tokens() -> None:
    b = TokenBucket(rate=1.0, burst=1)
    assert b.take(10.0)
    assert not b.take(5.0) and not b.take(10.5)
    assert b.take(11.0)


@pytest.mark.parametrize("rate, burst", [(0.0, 1), (1.0, 0)])
def test_bad_parameters_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
