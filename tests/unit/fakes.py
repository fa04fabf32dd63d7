"""Fakes for the fast tests: an in-memory lossy link, a simulated sync network, a lab.

``LossyLink`` drops, delays, duplicates and reorders frames with a seeded RNG;
``SyncNet`` moves the frames of one SyncSender and its SyncReceivers over such links;
``FakeLab`` is what tests/evidence.py reads of a LabNetwork, without Mininet or root.
"""

from __future__ import annotations

import heapq
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
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


# --------------------------------------------------------------------------- lab

# a stand-in for tcpdump: writes the file named after -w, then waits to be stopped
_FAKE_TCPDUMP = "import sys, time; open(sys.argv[1], 'wb').write(b'fake pcap'); time.sleep(120)"


@dataclass
class FakeProc:
    """A member daemon's Popen as the lab keeps it: alive (None) or its exit code."""

    returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


@dataclass
class FakeMember:
    name: str


@dataclass
class FakeTopo:
    members: list[FakeMember]


class FakeHost:
    """``popen`` runs a fake tcpdump (this process's namespace) and records it."""

    def __init__(self, lab: FakeLab) -> None:
        self.lab = lab

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        pcap = cmd[list(cmd).index("-w") + 1]
        proc = subprocess.Popen([sys.executable, "-c", _FAKE_TCPDUMP, pcap], **kwargs)
        self.lab.captures.append(proc)
        with open(self.lab.rundir / "capture.pids", "a") as f:
            f.write(f"{proc.pid}\n")
        return proc


class FakeLab:
    """Members with logs in ``rundir``: ``answering`` ones reply to every diag command,
    ``hung`` ones run but never answer (an OSError, as a CtlError), ``dead`` ones exited."""

    member_mode = "fgcpd"

    def __init__(self, rundir: Path, answering: Sequence[str] = ("fgt1",),
                 hung: Sequence[str] = (), dead: Sequence[str] = ()) -> None:
        self.rundir = rundir
        names = [*answering, *hung, *dead]
        self.topo = FakeTopo([FakeMember(n) for n in names])
        self.daemons = {n: FakeProc(-9 if n in dead else None) for n in names}
        self.hung = set(hung)
        self.captures: list[subprocess.Popen[bytes]] = []
        self.queries: list[tuple[str, str]] = []
        rundir.mkdir(parents=True, exist_ok=True)
        (rundir / "controller.log").write_text("reroute t=1.0 dpid=1\n")
        for n in names:
            (rundir / f"{n}.log").write_text(f"{n} started\n")

    def host(self, name: str) -> FakeHost:
        return FakeHost(self)

    def diag(self, member: str, command: str) -> str:
        self.queries.append((member, command))
        if member in self.hung:
            raise OSError(f"{member}: no answer within 5 s")
        return f"{member} answers {command}\n"

    def log_files(self) -> list[Path]:
        return sorted(self.rundir.glob("*.log"))
