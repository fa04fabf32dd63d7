"""AF_PACKET ports (fgcp.ring): frames cross a veth pair between two netns.

Root only (netns, veth, AF_PACKET): it lives with the Mininet tests, which skip
with "needs root" otherwise.
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from fgcp import ring

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that entered netns ``name`` (sockets stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def run() -> T:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            return fn()
        finally:
            os.close(fd)

    # a fresh thread per call: the namespace switch dies with the thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def veth_netns() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair named ``p`` in both (offloads off)."""
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"fgcpt-a-{tag}", f"fgcpt-b-{tag}"
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            _sh("ip", "netns", "add", ns)
            made.append(ns)
        _sh("ip", "link", "add", f"ra{tag}", "type", "veth", "peer", "name", f"rb{tag}")
        _sh("ip", "link", "set", f"ra{tag}", "netns", ns_a)
        _sh("ip", "link", "set", f"rb{tag}", "netns", ns_b)
        for ns, dev in ((ns_a, f"ra{tag}"), (ns_b, f"rb{tag}")):
            _sh("ip", "-n", ns, "link", "set", dev, "name", "p")
            _sh("ip", "-n", ns, "link", "set", "p", "up")
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.p.disable_ipv6=1")
            _sh("ip", "netns", "exec", ns, "ethtool", "-K", "p", "tx", "off", "rx", "off",
                "tso", "off", "gso", "off", "gro", "off")
        yield ns_a, ns_b
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def _frame(seq: int, size: int = 64) -> bytes:
    eth = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5"  # local experimental
    body = struct.pack("!I", seq)
    return eth + body + bytes(size - len(eth) - len(body))


def _recv_until(port: ring.RingPort | ring.PlainPort, n: int, timeout: float = 2.0) -> list[bytearray]:
    got: list[bytearray] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        batch = port.recv_batch(256)
        if not batch:
            time.sleep(0.005)
        got.extend(batch)
    return got


@pytest.mark.parametrize("kind", ["ring", "plain"])
def test_frames_cross_the_veth_both_ways_in_order(veth_netns: tuple[str, str], kind: str) -> None:
    ns_a, ns_b = veth_netns
    a = _in_netns(ns_a, lambda: ring.open_port("p", 0, kind))
    b = _in_netns(ns_b, lambda: ring.open_port("p", 1, kind))
    try:
        n = 300  # more than one tx batch, fewer than the tx ring
        for i in range(n):
            assert a.send(_frame(i))
            if i % 50 == 49:
                a.flush()
        a.flush()
        got = _recv_until(b, n)
        assert [struct.unpack_from("!I", f, 14)[0] for f in got] == list(range(n))
        assert bytes(got[7]) == _frame(7)
        # the other direction, large frame
        big = _frame(99, 1514)
        b.send(big)
        b.flush()
        back = _recv_until(a, 1)
        assert [bytes(f) for f in back] == [big]
        # the sender does not see its own frames (PACKET_IGNORE_OUTGOING)
        assert a.recv_batch(10) == []
        ca, cb = a.counters(), b.counters()
        assert ca["tx"] == n and ca["rx"] == 1
        assert cb["rx"] == n and cb["tx"] == 1
        assert cb["rx_ring_drops"] == 0
    finally:
        a.close()
        b.close()


def test_ring_gives_back_vlan_tags_the_kernel_stripped(veth_netns: tuple[str, str]) -> None:
    # The receive path untags 802.1Q frames before AF_PACKET sees them (tp_vlan_tci).
    ns_a, ns_b = veth_netns
    a = _in_netns(ns_a, lambda: ring.RingPort("p", 0))
    b = _in_netns(ns_b, lambda: ring.RingPort("p", 1))
    try:
        plain = _frame(5)
        tagged = plain[:12] + b"\x81\x00\x00\x64" + plain[12:]  # VLAN 100
        a.send(tagged)
        a.send(plain)
        a.flush()
        got = [bytes(f) for f in _recv_until(b, 2)]
        assert got == [tagged, plain]
    finally:
        a.close()
        b.close()


def test_ring_wraps_around_many_times(veth_netns: tuple[str, str]) -> None:
    ns_a, ns_b = veth_netns
    a = _in_netns(ns_a, lambda: ring.RingPort("p", 0))
    b = _in_netns(ns_b, lambda: ring.RingPort("p", 1))
    try:
        total = 0
        seqs: list[int] = []
        for _ in range(12):  # 12 x 400 > rx ring (2048) and tx ring (512) slots
            for _ in range(400):
                a.send(_frame(total))
                total += 1
            a.flush()
            seqs.extend(struct.unpack_from("!I", f, 14)[0] for f in _recv_until(b, 400))
        assert seqs == list(range(total))
        assert a.counters()["tx_ring_full"] == 0
    finally:
        a.close()
        b.close()
