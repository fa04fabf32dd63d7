"""Fakes for the fast tests: an in-memory lossy link and a simulated sync network.

``LossyLink`` drops, delays, duplicates and reorders frames with a seeded RNG;
``SyncNet`` moves the frames of one SyncSender and its SyncReceivers over such links.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from typing import Any


class LossyLink:
    """One direction of a link: ``send`` now, ``deliver`` what has arrived by ``now``.

    loss/dup are probabilities per frame; every frame takes ``delay`` plus a
    uniform jitter in [0, ``jitter``]; with probability ``reorder`` a frame
    takes an extra ``reorder_delay`` so later frames overtake it.
    """

    def __init__(self, rng: random.Random, *, loss: float = 0.0, dup: float = 0.0,
                 reorder: float = 0.0, delay: float = 0.0005, jitter: float = 0.0,
                 reorder_delay: float = 0.005) -> None:
        self.rng = rng
        self.loss = loss
        self.dup = dup
        self.reorder = reorder
        self.delay = delay
        self.jitter = jitter
        self.reorder_delay = reorder_delay
        self.up = True
        self.counters: Counter[str] = Counter()
        self._q: list[tuple[float, int, bytes]] = []
        self._n = 0

    def _one(self, payload: bytes, now: float) -> None:
        t = now + self.delay + (self.rng.random() * self.jitter if self.jitter else 0.0)
        if self.reorder and self.rng.random() < self.reorder:
            t += self.reorder_delay * (0.5 + self.rng.random())
            self.counters["reordered"] += 1
        self._n += 1
        heapq.heappush(self._q, (t, self._n, payload))

    def send(self, payload: bytes, now: float) -> None:
        self.counters["sent"] += 1
        if not self.up:
            self.counters["down"] += 1
            return
        if self.loss and self.rng.random() < self.loss:
            self.counters["lost"] += 1
            return
        self._one(payload, now)
        if self.dup and self.rng.random() < self.dup:
            self.counters["duplicated"] += 1
            self._one(payload, now)

    def deliver(self, now: float) -> list[bytes]:
        out = []
        q = self._q
        while q and q[0][0] <= now:
            out.append(heapq.heappop(q)[2])
        return out

    def __len__(self) -> int:
        return len(self._q)


class SyncNet:
    """A sender and receivers (by serial) joined by LossyLinks in both directions.

    ``link_names`` counts the frames per Tx.link name (to check load sharing /
    fallback).  ``run`` advances simulated time in ``step`` increments, calling
    ``on_tick(now)`` first at each step (the load generator).
    """

    def __init__(self, sender: Any, receivers: dict[str, Any],
                 link_factory: Callable[[], LossyLink]) -> None:
        self.sender = sender
        self.receivers = receivers
        self.down = {r: link_factory() for r in receivers}  # sender -> receiver
        self.up = {r: link_factory() for r in receivers}  # receiver -> sender
        self.link_names: Counter[str] = Counter()
        self.now = 0.0

    def _route_from_sender(self, txs: list[Any], now: float) -> None:
        for tx in txs:
            self.link_names[tx.link] += 1
            targets = self.receivers if tx.peer == "" else [tx.peer]
            for r in targets:
                if r in self.down:
                    self.down[r].send(tx.payload, now)

    def _route_from_receiver(self, serial: str, txs: list[Any], now: float) -> None:
        for tx in txs:
            self.link_names[tx.link] += 1
            self.up[serial].send(tx.payload, now)

    def step(self, now: float) -> None:
        self.now = now
        for serial, rx in self.receivers.items():
            for payload in self.down[serial].deliver(now):
                self._route_from_receiver(serial, rx.receive(payload, now), now)
            self._route_from_receiver(serial, rx.poll(now), now)
        for serial in self.receivers:
            for payload in self.up[serial].deliver(now):
                self._route_from_sender(self.sender.receive(payload, now), now)
        self._route_from_sender(self.sender.poll(now), now)

    def run(self, until: float, step: float = 0.001,
            on_tick: Callable[[float], None] | None = None,
            stop: Callable[[], bool] | None = None) -> float:
        now = self.now
        while now < until:
            now = round(now + step, 9)
            if on_tick is not None:
                on_tick(now)
            self.step(now)
            if stop is not None and stop():
                break
        return now
