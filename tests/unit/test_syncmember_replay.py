"""The sync component under replay: address hijack, a dead peer kept alive, fake peers,
the synced table beyond the session limit (issue 13, items 3 and 5).

Frames are recorded off the in-memory wires (tests/unit/test_syncmember.py ``Wire.tap``)
and replayed from another MAC, as an attacker on the HA link would.
"""

from __future__ import annotations

import random

from fgcp.sync import SyncReceiver
from fgcp.syncframe import T_ACK, T_HELLO, decode_frame
from fgcp.syncmember import PEER_SILENCE, SyncMember
from tests.unit.test_sync import make_record
from tests.unit.test_syncmember import SERIALS, Cluster, FakeLink, keys, udp_sessions

EVIL = b"\x02\xee\xee\xee\xee\x05"


def link(m: SyncMember, name: str) -> FakeLink:
    got = m.links[name]
    assert isinstance(got, FakeLink)
    return got


def frames_of(c: Cluster, port: str, src: bytes, ftype: int) -> list[bytes]:
    key = c.all[0].key
    return [p for s, p in c.wires[port].tap if s == src and decode_frame(p, key).type == ftype]


def synced_cluster(password: str = "secret") -> Cluster:
    c = Cluster(password=password)
    c.takeover(0)
    c.run(0.2)
    udp_sessions(c, 60)
    c.run(0.3)
    a, b = c.members
    assert keys(b) == keys(a) and len(keys(a)) == 60
    return c


def test_replayed_ack_from_another_mac_does_not_move_the_peer_address() -> None:
    """One recorded ACK of the secondary, replayed every 4 ms from another MAC."""
    c = synced_cluster()
    a, b = c.members
    b_mac = link(b, "port5").mac
    acks = frames_of(c, "port5", b_mac, T_ACK)
    assert acks
    a5 = link(a, "port5")
    evil_got: list[bytes] = []
    evil = FakeLink("port5", EVIL, c.wires["port5"])  # the attacker's port on the wire
    udp_sessions(c, 60, 1000)
    for _ in range(500):  # 2 s
        a5.q.append((EVIL, acks[-1]))
        c.run(0.004)
        evil_got.extend(p for _, p in evil.q)
        evil.q.clear()
    assert a.macs[(SERIALS[1], "port5")] == b_mac
    assert keys(b) == keys(a) and len(keys(a)) == 120
    assert not [p for p in evil_got if decode_frame(p, a.key).serial == SERIALS[0]
                and decode_frame(p, a.key).type != T_HELLO]  # nothing unicast to the attacker
    assert a.sender is not None
    assert a.sender.stats.dropped_replay >= 400


def test_replays_do_not_keep_a_dead_secondary_alive() -> None:
    c = synced_cluster()
    a, b = c.members
    b_mac = link(b, "port5").mac
    recorded = [p for s, p in c.wires["port5"].tap if s == b_mac]
    assert recorded
    c.members.remove(b)  # the secondary dies
    b.close()
    a5 = link(a, "port5")
    for i in range(int((PEER_SILENCE + 3) / 0.05)):
        a5.q.append((b_mac, recorded[i % len(recorded)]))  # even from its own MAC
        c.run(0.05)
    assert a.sender is not None
    assert SERIALS[1] not in a.sender.peers and SERIALS[1] not in a.peer_seen


def test_fake_serials_do_not_grow_the_peer_tables() -> None:
    """2,000 HELLOs from fake serials and MACs (no password: they need no key)."""
    c = synced_cluster(password="")
    a, b = c.members
    a5 = link(a, "port5")
    for i in range(2000):
        fake = SyncReceiver(f"FAKE{i:05d}", 10, None)
        fake.set_links(["port5"], [])
        for tx in fake.poll(c.now):
            a5.q.append((bytes((2, 0xfa, 0, 0, i >> 8, i & 0xFF)), tx.payload))
        if i % 50 == 49:
            c.run(0.01)
    c.run(1.0)
    assert a.sender is not None
    assert len(a.sender.peers) <= 3 and SERIALS[1] in a.sender.peers
    assert len({serial for serial, _ in a.macs}) <= 3 and len(a.macs) <= 9
    assert len(a.peer_seen) <= 3
    assert a.sender.stats.peers_refused >= 1900
    udp_sessions(c, 10, 500)
    c.run(0.3)
    assert keys(b) == keys(a) and len(keys(a)) == 70
    assert "peers-refused=" in a.stats_text(c.now)


def test_synced_table_bounded_by_lab_session_max_takeover_installs_all() -> None:
    """A primary streams more sessions than the secondary's ``lab-session-max`` (a forged
    primary, no password needed: the real primary's table has the same limit)."""
    c = Cluster(password="", cfg_kw={"session_table_max": 100})
    c.takeover(0)
    c.run(0.2)
    p, s = c.members
    assert p.sender is not None and s.receiver is not None
    assert s.receiver.max_sessions == 100  # from the configuration
    rng = random.Random(3)
    for i in range(150):
        p.sender.upsert(make_record(rng, i, c.now, 17), c.now)
    c.run(1.0)
    assert len(s.receiver.table) == 100 and s.receiver.stats.table_full == 50
    assert "table-full=50" in s.stats_text(c.now)
    c.members.remove(p)
    c.takeover(1)
    assert s.counters["installed"] == 100 and s.counters["install_failed"] == 0
