"""EXT_IPS through the real session-sync component (SyncMember over in-memory HA links):
the IPS state of an ICCP session reaches the secondary with the session's updates, and
the secondary, taking over, resumes at the exact byte."""

from __future__ import annotations

import dataclasses
import random
from ipaddress import IPv4Address

from fgcp import diag
from fgcp.forward import Forwarder
from fgcp.ipsinspector import IpsInspector
from fgcp.ipsmember import IpsMember
from fgcp.model import MemberConfig
from fgcp.syncmember import SyncMember
from fgcp.syncrecord import EXT_IPS
from inspection.ips import FlowState
from tests.unit.test_forward import C1, CLI, P1, P2, SRV, SV, make_fwd
from tests.unit.test_ipsinspector import HTTP, data, handshake, iccp_attack, ips_cfg
from tests.unit.test_syncmember import SERIALS, FakeHa, FakeLink, Wire, ha_cfg


class IpsDaemon:
    """A FakeDaemon of test_syncmember whose forwarder has the IPS (as ips_setup builds it)."""

    def __init__(self, idx: int, cfg: MemberConfig) -> None:
        self.cfg = dataclasses.replace(cfg, serial=SERIALS[idx])
        self.inspector = IpsInspector(self.cfg)
        self.fwd = Forwarder(self.cfg, list(make_fwd(learn=False).ports.values()),
                             inspector=self.inspector)
        self.inspector.attach(self.fwd)
        for p, ip, m in ((P1, C1, CLI), (P2, SV, SRV)):
            self.fwd.arp.learn(p, int(IPv4Address(ip)), bytes.fromhex(m.replace(":", "")),
                               self.fwd.port_macs[p], 0.0)
        self.table = diag.default_table()
        self.table.register("diagnose lab stats", lambda st, a: "")
        self.ha = FakeHa()
        self.role = "hello"

    def component(self, name: str) -> object:
        return self.ha if name == "ha" else None


class Pair:
    def __init__(self, mode: str = "iccp") -> None:
        rng = random.Random(3)
        self.wires = {p: Wire(rng) for p in ("port3", "port4", "port5")}
        cfg = dataclasses.replace(ips_cfg(mode), ha=ha_cfg(ips_session_sync=mode))
        self.now = 1.0
        self.daemons = [IpsDaemon(i, cfg) for i in range(2)]
        self.members: list[SyncMember] = []  # by index
        self.running: list[SyncMember] = []
        for i, d in enumerate(self.daemons):
            def factory(name: str, i: int = i) -> FakeLink:
                return FakeLink(name, bytes((2, 0, 0, 0, i + 1, int(name[-1]))),
                                self.wires[name])
            m = SyncMember(link_factory=factory, delay_s=None, clock=lambda: self.now,
                           tune_gc=False)
            m.open(d)  # type: ignore[arg-type]
            IpsMember(d.inspector).open(d)  # type: ignore[arg-type]
            self.members.append(m)
        self.running = list(self.members)

    def run(self, seconds: float, step: float = 0.002) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for m in self.running:
                for fd in m.fds():
                    m.on_readable(fd, self.now)
                d = m.next_deadline()
                if d is not None and self.now >= d:
                    m.on_tick(self.now)

    def takeover(self, i: int) -> None:
        self.members[i].before_takeover(self.now)
        self.daemons[i].role = "primary"

    def kill(self, i: int) -> None:
        m = self.members[i]
        self.running.remove(m)
        m.close()


def test_iccp_state_reaches_the_secondary_and_the_takeover_resumes_at_the_exact_byte() -> None:
    pair = Pair()
    a, b = pair.daemons
    pair.takeover(0)
    pair.run(0.2)
    stream, cut = iccp_attack()
    s, _ = handshake(a.fwd, 102)
    data(a.fwd, 102, 1001, stream[:cut])
    pair.run(0.05)
    rx = pair.members[1].receiver
    assert rx is not None
    rec = rx.table[s.orig_key]
    assert dict(rec.ext)[EXT_IPS] == s.ext[EXT_IPS]  # the state after the last byte
    assert FlowState.from_bytes(dict(rec.ext)[EXT_IPS]).dirs[0].offset == cut
    assert a.inspector.stats()["ips_state_syncs"] >= 1
    pair.kill(0)
    pair.takeover(1)
    assert data(b.fwd, 102, 1001 + cut, stream[cut:], now=pair.now) == []
    st = b.inspector.stats()
    assert (st["ips_resumed"], st["ips_blocked"], st["ips_uninspected"]) == (1, 1, 0)
    listing = b.table.run("diagnose sys session list",
                          diag.DiagState(cfg=b.cfg, forwarder=b.fwd, now=pair.now))
    assert "\nips=on\n" in listing
    log = b.table.run("diagnose ips anomaly list",
                      diag.DiagState(cfg=b.cfg, forwarder=b.fwd, now=pair.now))
    assert 'name="ICCP.Breaker" action=block' in log and "service=iccp" in log


def test_http_session_synced_without_state_forwarded_uninspected_after_takeover() -> None:
    pair = Pair()
    a, b = pair.daemons
    pair.takeover(0)
    pair.run(0.2)
    s, _ = handshake(a.fwd, 8080)
    cut = HTTP.find(b"SPCSO1")
    data(a.fwd, 8080, 1001, HTTP[:cut])
    pair.run(0.05)
    rx = pair.members[1].receiver
    assert rx is not None and EXT_IPS not in dict(rx.table[s.orig_key].ext)
    pair.kill(0)
    pair.takeover(1)
    assert len(data(b.fwd, 8080, 1001 + cut, HTTP[cut:], now=pair.now)) == 1  # passes
    listing = b.table.run("diagnose sys session list",
                          diag.DiagState(cfg=b.cfg, forwarder=b.fwd, now=pair.now))
    assert "\nips=uninspected\n" in listing
    assert b.inspector.stats()["ips_uninspected"] == 1


def test_iccp_state_leaves_on_the_sync_link_before_the_segment_it_covers() -> None:
    """The old primary forwards the middle of the split write and dies at once (no tick,
    no flush timer): the update with the state after the middle is already on the wire
    (sent before the segment was forwarded), so the new primary resumes after the middle
    and blocks the rest as the continuation: nothing withheld, no gap."""
    pair = Pair()
    a, b = pair.daemons
    pair.takeover(0)
    pair.run(0.2)
    stream, cut = iccp_attack()
    mid = cut + 3
    s, _ = handshake(a.fwd, 102)
    data(a.fwd, 102, 1001, stream[:cut])
    pair.run(0.05)
    assert len(data(a.fwd, 102, 1001 + cut, stream[cut:mid], now=pair.now)) == 1  # forwarded
    pair.kill(0)  # SIGKILL right after forwarding: no on_tick of the old primary
    pair.run(0.05)  # the secondary reads what is on the wire
    rx = pair.members[1].receiver
    assert rx is not None
    assert FlowState.from_bytes(dict(rx.table[s.orig_key].ext)[EXT_IPS]).dirs[0].offset == mid
    pair.takeover(1)
    assert data(b.fwd, 102, 1001 + mid, stream[mid:], now=pair.now) == []
    st = b.inspector.stats()
    assert (st["ips_blocked"], st["ips.withheld"], st["ips.gaps_unrecoverable"]) == (1, 0, 0)
