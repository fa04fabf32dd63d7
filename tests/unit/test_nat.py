"""Source-NAT port allocation: preservation, next free, exhaustion, release."""

from __future__ import annotations

import pytest

from fgcp.nat import NatAllocator

NAT_IP = 0xCB007101  # 203.0.113.1


def test_original_port_preserved_when_free() -> None:
    nat = NatAllocator()
    assert nat.allocate(NAT_IP, 17, 40000) == 40000
    assert nat.allocate(NAT_IP, 6, 40000) == 40000  # separate pool per protocol
    assert nat.allocate(NAT_IP + 1, 17, 40000) == 40000  # and per NAT IP


def test_taken_port_gets_another_free_port() -> None:
    nat = NatAllocator()
    assert nat.allocate(NAT_IP, 17, 40000) == 40000
    other = nat.allocate(NAT_IP, 17, 40000)
    assert other is not None and other != 40000 and 1024 <= other <= 65535


def test_port_outside_range_is_mapped_into_range() -> None:
    nat = NatAllocator(lo=5000, hi=5009)
    got = nat.allocate(NAT_IP, 17, 53)
    assert got is not None and 5000 <= got <= 5009


def test_exhaustion_returns_none_and_release_frees() -> None:
    nat = NatAllocator(lo=2000, hi=2003)
    got = [nat.allocate(NAT_IP, 6, 3000 + i) for i in range(4)]
    assert sorted(got) == [2000, 2001, 2002, 2003]  # type: ignore[type-var]
    assert nat.allocate(NAT_IP, 6, 2001) is None
    assert nat.in_use(NAT_IP, 6) == 4
    nat.release(NAT_IP, 6, 2002)
    assert nat.allocate(NAT_IP, 6, 9999) == 2002
    assert nat.allocate(NAT_IP, 6, 9999) is None


def test_reserve_for_synced_sessions() -> None:
    nat = NatAllocator()
    assert nat.reserve(NAT_IP, 17, 30000)
    assert not nat.reserve(NAT_IP, 17, 30000)
    assert nat.allocate(NAT_IP, 17, 30000) != 30000


def test_icmp_identifiers_use_full_range() -> None:
    nat = NatAllocator()
    assert nat.allocate(NAT_IP, 1, 100) == 100
    assert nat.allocate(NAT_IP, 17, 100) != 100


def test_bad_range_rejected() -> None:
    with pytest.raises(ValueError):
        NatAllocator(lo=100, hi=50)
