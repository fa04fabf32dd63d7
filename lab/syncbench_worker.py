"""The fgcpd half's member process of lab.sync_bench: one SyncMember in a namespace.

``python -m lab.syncbench_worker primary|secondary CONFIG`` (started by lab.sync_bench
inside ``ip netns exec``) runs fgcp.syncmember.SyncMember on a real Forwarder session
table with the daemon's poll-loop pattern and answers line commands on stdin with one
JSON object a line on stdout: ``create N RATE`` (N UDP sessions with source NAT, at RATE/s
or as fast as possible with 0, batches of ``BATCH`` between loop turns), ``status``,
``stats``, ``times A N``, ``wait_count N``, ``wait_bulk``, ``arrivals A N``, ``takeover``,
``quit``.  Session ``i`` has source ``SRC_BASE + i // PORTS``, port ``1024 + i % PORTS``
(``session_index`` inverts it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Any

from fgcp import diag
from fgcp.config import load_config
from fgcp.diag import CommandTable
from fgcp.forward import Forwarder, PortSpec
from fgcp.model import MemberConfig
from fgcp.roles import Role
from fgcp.session import CONNECTIONLESS, Session
from fgcp.syncmember import SyncMember

SRC_BASE = int(IPv4Address("198.51.100.100"))  # session sources: .100, .101, ...
DST = int(IPv4Address("203.0.113.10"))
NAT_BASE = int(IPv4Address("203.0.113.1"))
PORTS = 60000  # sessions per source address / NAT address
BATCH = 512


def session_index(key: tuple[int, int, int, int, int]) -> int:
    """Index of a benchmark session from its key (inverse of the creation layout)."""
    return (key[1] - SRC_BASE) * PORTS + (key[2] - 1024)


class BenchHost:
    """The component host (fgcp.component.Host) of a bench member: cfg, a Forwarder, the
    diag table and the role.  No HA component runs here: the worker sets the role itself
    (``takeover``); the role methods only record the role."""

    def __init__(self, cfg: MemberConfig) -> None:
        self.cfg = cfg
        self.fwd = Forwarder(cfg, [PortSpec(0, "port1", b"\x02\0\0\0\0\x01"),
                                   PortSpec(1, "port2", b"\x02\0\0\0\0\x02")])
        self.table: CommandTable = diag.default_table()
        self.role = Role.HELLO

    def component(self, name: str) -> None:
        return None

    def enter_hello(self, now: float, reason: str = "HA hello") -> None:
        self.role = Role.HELLO

    def become_primary(self, now: float, reason: str) -> bool:
        self.role = Role.PRIMARY
        return True

    def become_secondary(self, now: float, reason: str) -> None:
        self.role = Role.SECONDARY

    def announce(self, now: float) -> None:
        return  # no virtual MACs between two namespaces


class Worker:
    """One member's sync in a namespace, driven by line commands on stdin (JSON replies)."""

    def __init__(self, role: str, config: Path, out: IO[str]) -> None:
        cfg = load_config(config)
        cfg = dataclasses.replace(cfg, session_table_max=1_000_000)
        self.role = role
        self.out = out
        self.daemon = BenchHost(cfg)
        self.member = SyncMember()
        self.member.open(self.daemon)
        if role == "primary":
            self.member.before_takeover(time.time())
            self.daemon.role = Role.PRIMARY
        else:
            assert self.member.receiver is not None
            self.member.receiver.track_changes = True
        self.created_t: list[float] = []
        self.to_create = 0
        self.rate = 0.0
        self.create_t0 = 0.0
        self.create_first = 0
        self.create_end = 0.0
        self.arrivals: dict[int, float] = {}
        self.wait_count: int | None = None
        self.wait_bulk = False
        self.ready_t = time.time()
        self.running = True

    def reply(self, obj: dict[str, Any]) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def _create(self, now: float) -> None:
        fwd = self.daemon.fwd
        table = fwd.sessions
        done = len(self.created_t) - self.create_first
        due = self.to_create if self.rate <= 0 else min(
            self.to_create, int((now - self.create_t0) * self.rate) + 1)
        n = min(due - done, BATCH)
        event = fwd.on_session_event
        for _ in range(n):
            i = len(self.created_t)
            hi, lo = divmod(i, PORTS)
            t = time.time()
            s = Session(sid=table.next_sid(), proto=17, orig=(SRC_BASE + hi, 1024 + lo, DST, 53),
                        reply=(DST, 53, NAT_BASE + hi, 1024 + lo), in_intf="port1",
                        out_intf="port2", policy_id=2, nat=True, nat_ip=NAT_BASE + hi,
                        nat_port=1024 + lo, created=t, last_seen=t, flags=CONNECTIONLESS)
            table.add(s, t)
            if event is not None:
                event("add", s)
            self.created_t.append(t)
        if len(self.created_t) - self.create_first >= self.to_create:
            self.to_create = 0
            self.create_end = time.time()

    def _command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        cmd, args = words[0], [float(w) for w in words[1:]]
        m = self.member
        if cmd == "create":
            self.create_first = len(self.created_t)
            self.to_create, self.rate = int(args[0]), args[1]
            self.create_t0 = time.time()
            self.reply({"t0": self.create_t0, "first": self.create_first})
        elif cmd == "status":
            tx = m.sender
            self.reply({"created": len(self.created_t), "create_end": self.create_end,
                        "records": len(tx.records) if tx else 0,
                        "stats": dataclasses.asdict(tx.stats) if tx else {}})
        elif cmd == "stats":
            self.reply({"text": m.stats_text(time.time())})
        elif cmd == "times":
            a, n = int(args[0]), int(args[1])
            self.reply({"times": self.created_t[a:a + n]})
        elif cmd == "wait_count":
            self.wait_count = int(args[0])
        elif cmd == "wait_bulk":
            self.wait_bulk = True
        elif cmd == "arrivals":
            a, n = int(args[0]), int(args[1])
            self.reply({"arrivals": [self.arrivals.get(i) for i in range(a, a + n)]})
        elif cmd == "takeover":
            n = len(m.receiver.table) if m.receiver else 0
            t0 = time.perf_counter()
            m.before_takeover(time.time())
            self.reply({"records": n, "installed": m.counters["installed"],
                        "failed": m.counters["install_failed"],
                        "s": time.perf_counter() - t0})
        elif cmd == "quit":
            self.running = False
            self.reply({"bye": True})
        else:
            self.reply({"error": f"unknown command {cmd}"})

    def _secondary_checks(self, now: float) -> None:
        rx = self.member.receiver
        if rx is None:
            return
        for op in rx.drain_changes():
            if op.record is not None:
                i = session_index(op.key)
                if i not in self.arrivals:
                    self.arrivals[i] = now
        if self.wait_count is not None and len(rx.table) >= self.wait_count:
            self.reply({"t": now, "count": len(rx.table)})
            self.wait_count = None
        if self.wait_bulk and rx.bulk_complete:
            self.reply({"t": now, "count": len(rx.table), "ready_t": self.ready_t,
                        "total": rx.bulk_total})
            self.wait_bulk = False

    def run(self, stdin: IO[str]) -> None:
        poller = select.poll()
        fd_in = stdin.fileno()
        os.set_blocking(fd_in, False)
        poller.register(fd_in, select.POLLIN)
        for fd in self.member.fds():
            poller.register(fd, select.POLLIN)
        buf = ""
        self.reply({"ready": self.ready_t, "role": self.role})
        while self.running:
            d = self.member.next_deadline()
            if d is None:
                d = time.time() + 0.1
            if self.to_create:  # next creation due (at once when as fast as possible)
                due = self.create_t0
                if self.rate > 0:
                    due += (len(self.created_t) - self.create_first) / self.rate
                d = min(d, due)
            wait = d - time.time()
            events = poller.poll(max(0, int(wait * 1000)) if wait > 0 else 0)
            now = time.time()
            for fd, _ in events:
                if fd == fd_in:
                    chunk = os.read(fd_in, 65536).decode()
                    if not chunk:
                        self.running = False
                        break
                    buf += chunk
                    while "\n" in buf:
                        line, buf = buf.split("\n", 1)
                        self._command(line)
                else:
                    self.member.on_readable(fd, now)
            d = self.member.next_deadline()
            if d is not None and now >= d:
                self.member.on_tick(now)
            if self.to_create:
                self._create(time.time())
            if self.role == "secondary":
                self._secondary_checks(time.time())
        self.member.close()


def worker_main(role: str, config: Path) -> int:
    w = Worker(role, config, sys.stdout)
    w.run(sys.stdin)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("primary", "secondary"):
        raise SystemExit("usage: python -m lab.syncbench_worker primary|secondary CONFIG")
    raise SystemExit(worker_main(sys.argv[1], Path(sys.argv[2])))
