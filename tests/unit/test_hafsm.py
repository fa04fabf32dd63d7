"""HA state machine: 2-4 members on an in-memory heartbeat bus with simulated time.

Frames really are encoded, authenticated, sent, dropped or delivered between the
machines; nothing sleeps and no socket is opened.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable

import pytest

from fgcp.hadiag import fmt_duration, render_ha_history, render_ha_status
from fgcp.hafsm import (
    HELLO,
    STANDBY,
    TRANSITIONS,
    WORK,
    Announce,
    BecomePrimary,
    BecomeSecondary,
    FrameDropped,
    HAStateMachine,
    PeerLost,
    SendHeartbeat,
)
from fgcp.hbframe import STATE_HELLO, decode_heartbeat, encode_heartbeat
from fgcp.model import HAConfig

T0 = 1_790_000_000.0  # simulated wall clock
LATENCY = 0.0005
SERIALS = {f"fgt{i}": f"FGVM01TM0000000{i}" for i in range(1, 5)}


def ha(priority: int, **kw) -> HAConfig:
    base = {
        "group_name": "lab",
        "group_id": 10,
        "mode": "a-p",
        "password": "secret",
        "hbdev": (("port3", 50), ("port4", 50)),
        "priority": priority,
        "monitor": ("port1", "port2"),
        "hb_interval": 2,
        "hb_lost_threshold": 6,
        "hello_holddown": 1,
        "session_pickup": True,
    }
    base.update(kw)
    return HAConfig(**base)


class Bus:
    """Heartbeat segments (one per hbdev name, like a switch) between members."""

    def __init__(self, cfgs: dict[str, HAConfig]) -> None:
        self.t = T0
        self.cfgs = cfgs
        self.members: dict[str, HAStateMachine] = {}
        self.port_up: dict[tuple[str, str], bool] = {}
        self.silent_drop: set[tuple[str, str]] = set()  # (member, port): frames lost, carrier up
        self.queue: list[tuple[float, str, str, bytes]] = []
        self.events: list[tuple[float, str, object]] = []
        self.sent: list[tuple[float, str, str, bytes]] = []
        self.tap: Callable[[str, str, bytes], bytes | None] | None = None
        for name in cfgs:
            self.start(name)

    def start(self, name: str) -> None:
        cfg = self.cfgs[name]
        m = HAStateMachine(cfg, SERIALS[name], self.t, hostname=name.upper())
        self.members[name] = m
        for port, _ in cfg.hbdev:
            self.port_up.setdefault((name, port), True)
        self.handle(name, m.on_tick(self.t))

    def kill(self, name: str) -> None:
        del self.members[name]

    def handle(self, name: str, actions: list) -> None:
        for a in actions:
            if isinstance(a, SendHeartbeat):
                self.sent.append((self.t, name, a.port, a.frame))
                if not self.port_up[(name, a.port)] or (name, a.port) in self.silent_drop:
                    continue
                for other in self.members:
                    key = (other, a.port)
                    if other != name and self.port_up.get(key) and key not in self.silent_drop:
                        self.queue.append((self.t + LATENCY, other, a.port, a.frame))
            else:
                self.events.append((self.t, name, a))

    def set_port(self, name: str, port: str, up: bool) -> None:
        """Carrier change on one member's heartbeat port (the cable to the switch)."""
        self.port_up[(name, port)] = up
        if name in self.members:
            self.handle(name, self.members[name].on_hbdev_change(self.t, port, up))

    def inject(self, name: str, port: str, frame: bytes) -> list:
        actions = self.members[name].on_frame(self.t, port, frame)
        self.handle(name, actions)
        return actions

    def run(self, duration: float) -> None:
        end = self.t + duration
        for _ in range(1_000_000):
            nt = min(
                [q[0] for q in self.queue] + [m.next_deadline() for m in self.members.values()]
            )
            if nt > end:
                break
            self.t = max(self.t, nt)
            due = [q for q in self.queue if q[0] <= self.t]
            self.queue = [q for q in self.queue if q[0] > self.t]
            for _, dst, port, frame in sorted(due, key=lambda q: q[0]):
                if dst in self.members:
                    self.handle(dst, self.members[dst].on_frame(self.t, port, frame))
            for name, m in list(self.members.items()):
                if m.next_deadline() <= self.t:
                    self.handle(name, m.on_tick(self.t))
        else:
            raise AssertionError("simulation does not advance")
        self.t = end

    def roles(self) -> dict[str, str]:
        return {n: m.state for n, m in self.members.items()}

    def events_of(
        self, kind: type, name: str | None = None, since: float = 0.0
    ) -> list[tuple[float, str, object]]:
        return [
            e
            for e in self.events
            if isinstance(e[2], kind) and (name is None or e[1] == name) and e[0] >= since
        ]

    def history(self, name: str, event: str) -> list[str]:
        return [h.text for h in self.members[name].history if h.event == event]


def pair(**kw) -> Bus:
    return Bus({"fgt1": ha(200, **kw), "fgt2": ha(100, **kw)})


# ----------------------------------------------------------------------------- table


def test_transition_table_is_data() -> None:
    pairs = {(t.state, t.event): t.target for t in TRANSITIONS}
    assert pairs == {
        (HELLO, "elected-primary"): WORK,
        (HELLO, "elected-secondary"): STANDBY,
        (STANDBY, "elected-primary"): WORK,
        (WORK, "elected-secondary"): STANDBY,
    }
    assert all(t.guard == "holddown_over" for t in TRANSITIONS if t.state == HELLO)


# ----------------------------------------------------------------------------- scenarios


def test_initial_election_priority_decides_after_hello_holddown() -> None:
    bus = pair()
    bus.run(0.5)
    assert bus.roles() == {"fgt1": HELLO, "fgt2": HELLO}  # hello-holddown 1 s
    bus.run(1.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}
    st = bus.members["fgt2"].status(bus.t)
    assert st.primary == SERIALS["fgt1"]
    assert [m.serial for m in st.members] == [SERIALS["fgt1"], SERIALS["fgt2"]]
    # heartbeats go out on both hbdevs every hb-interval (200 ms)
    bus.run(2.0)
    sent = [s for s in bus.sent if s[1] == "fgt1" and s[2] == "port3" and s[0] > T0 + 1.1]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert len(gaps) >= 10 and max(gaps) <= 0.2 + 1e-6
    assert decode_heartbeat(sent[-1][3], "secret", 10).priority == 200


def test_primary_lost_after_threshold_times_interval() -> None:
    bus = pair()
    bus.run(3.0)
    kill_at = bus.t
    last_hb = max(s[0] for s in bus.sent if s[1] == "fgt1")
    bus.kill("fgt1")
    bus.run(3.0)
    assert bus.roles() == {"fgt2": WORK}
    (t_up, _, action) = bus.events_of(BecomePrimary, "fgt2", since=kill_at)[0]
    timeout = 6 * 0.2
    # detected exactly hb-lost-threshold x hb-interval after the last heartbeat received
    assert last_hb + LATENCY + timeout - 1e-6 <= t_up <= last_hb + LATENCY + timeout + 1e-6
    assert t_up - kill_at <= timeout + 1e-6
    assert "only member" in action.reason
    assert bus.events_of(PeerLost, "fgt2")
    assert any("is lost" in h for h in bus.history("fgt2", "member-lost"))


def test_monitored_port_down_fails_over_at_once_and_resets_uptime() -> None:
    bus = pair()
    bus.run(5.0)
    t_fail = bus.t
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", False))
    bus.run(0.01)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}
    (t_up, _, _) = bus.events_of(BecomePrimary, "fgt2", since=t_fail)[0]
    assert t_up - t_fail <= 2 * LATENCY  # the primary advertises the failure at once
    assert bus.members["fgt1"].uptime_resets == 1
    assert bus.history("fgt1", "uptime-reset")
    # port back 10 s later, margin 300 s: uptimes "equal", priority decides (FortiOS behaviour)
    bus.run(10.0)
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", True))
    bus.run(0.05)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}


def test_monitored_port_back_beyond_uptime_margin_keeps_new_primary() -> None:
    bus = pair(ha_uptime_diff_margin=2)
    bus.run(5.0)
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", False))
    bus.run(10.0)
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", True))
    bus.run(2.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}  # fgt2's uptime is 5 s > 2 s larger


def test_uptime_difference_at_the_margin_never_leaves_two_primaries() -> None:
    # uptimes differ by exactly the margin: each side's estimate of the other's
    # uptime is short by the network delay, so both would elect themselves
    bus = pair(ha_uptime_diff_margin=5)
    bus.run(5.0)
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", False))
    bus.run(10.0)
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", True))
    bus.run(0.1)
    bus.run(1.0)  # resolved within a few heartbeat intervals
    assert sorted(bus.roles().values()) == [STANDBY, WORK]
    bus.run(10.0)
    assert sorted(bus.roles().values()) == [STANDBY, WORK]
    flips = bus.events_of(BecomePrimary, since=bus.t - 10.0) + bus.events_of(
        BecomeSecondary, since=bus.t - 10.0
    )
    assert not flips  # and it stays that way


def test_force_failover_set_and_unset() -> None:
    bus = pair()
    bus.run(3.0)
    bus.handle("fgt1", bus.members["fgt1"].force_failover(bus.t, True))
    bus.run(0.01)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}
    bus.run(5.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}  # stays failed over
    st = bus.members["fgt2"].status(bus.t)
    assert "EXE_FAIL_OVER" in st.selections[-1][1]
    bus.handle("fgt1", bus.members["fgt1"].force_failover(bus.t, False))
    bus.run(0.01)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}


@pytest.mark.parametrize("silent", [False, True], ids=["carrier-down", "frames-dropped"])
def test_one_of_two_heartbeat_links_cut_changes_nothing(silent: bool) -> None:
    bus = pair()
    bus.run(3.0)
    n_events = len(bus.events)
    if silent:
        bus.silent_drop.add(("fgt1", "port3"))
    else:
        bus.set_port("fgt1", "port3", False)
    bus.run(10.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}
    assert not [
        e
        for e in bus.events[n_events:]
        if isinstance(e[2], BecomePrimary | BecomeSecondary | PeerLost)
    ]


@pytest.mark.parametrize("silent", [False, True], ids=["carrier-down", "frames-dropped"])
def test_both_links_cut_split_brain_then_resolved(silent: bool) -> None:
    bus = pair()
    bus.run(3.0)
    for port in ("port3", "port4"):
        if silent:
            bus.silent_drop.add(("fgt1", port))
        else:
            bus.set_port("fgt1", port, False)
    bus.run(3.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": WORK}  # split brain, as FortiOS does
    assert bus.events_of(BecomePrimary, "fgt2")
    if not silent:
        assert bus.history("fgt1", "split-brain")  # it knows all its hbdevs are down
    t_restore = bus.t
    if silent:
        bus.silent_drop.discard(("fgt1", "port3"))
    else:
        bus.set_port("fgt1", "port3", True)
    bus.run(1.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}
    (t_down, _, _) = bus.events_of(BecomeSecondary, "fgt2", since=t_restore)[0]
    assert t_down - t_restore <= 0.2 + 0.01  # within one heartbeat interval
    # the member that steps down saw the other primary come back and says so
    assert any("is also primary" in h for h in bus.history("fgt2", "split-brain"))
    assert any("resolved" in h for h in bus.history("fgt2", "split-brain-resolved"))


def test_primary_announces_again_when_a_peer_joins_or_leaves_the_work_state() -> None:
    bus = pair()
    bus.run(3.0)
    t_cut = bus.t
    for port in ("port3", "port4"):
        bus.set_port("fgt1", port, False)
    bus.run(3.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": WORK}
    assert not bus.events_of(Announce, since=t_cut)  # nobody joined or left the primaries
    t_restore = bus.t
    bus.set_port("fgt1", "port3", True)
    bus.run(1.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}
    # each primary re-announces when the other joins (the fabric follows the real one)
    for name in ("fgt1", "fgt2"):
        (_, _, act) = bus.events_of(Announce, name, since=t_restore)[0]
        assert "joined" in act.reason
    t_fail = bus.t
    bus.handle("fgt1", bus.members["fgt1"].on_monitor_change(bus.t, "port1", False))
    bus.run(1.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}
    reasons = [a.reason for _, _, a in bus.events_of(Announce, "fgt2", since=t_fail)]
    assert reasons == [f"peer {SERIALS['fgt1']} left the work state"]
    assert not bus.events_of(Announce, "fgt1", since=t_fail)  # a secondary never does


def test_failed_takeover_goes_back_and_retries_on_the_next_tick() -> None:
    m = HAStateMachine(ha(100), SERIALS["fgt1"], T0)
    (become,) = [a for a in m.on_tick(T0 + 1.0) if isinstance(a, BecomePrimary)]
    assert m.state == WORK and become.previous == HELLO
    acts = m.takeover_failed(T0 + 1.0, "a takeover hook failed")
    # back to the state it left, and the peers are told at once
    assert m.state == HELLO and m.counters["takeover-failed"] == 1
    hbs = [a for a in acts if isinstance(a, SendHeartbeat)]
    assert {a.port for a in hbs} == {"port3", "port4"}
    assert all(decode_heartbeat(a.frame, "secret", 10).state == STATE_HELLO for a in hbs)
    assert "takeover failed" in m.history[-1].text
    assert m.takeover_failed(T0 + 1.01, "again") == []  # not primary: nothing to undo
    # the next tick elects again: a new takeover
    assert [a for a in m.on_tick(T0 + 1.05) if isinstance(a, BecomePrimary)]
    assert m.state == WORK


def test_returning_member_override_disabled_no_preemption() -> None:
    bus = pair(ha_uptime_diff_margin=10)
    bus.run(3.0)
    bus.kill("fgt1")
    bus.run(30.0)
    assert bus.roles() == {"fgt2": WORK}
    t_back = bus.t
    bus.start("fgt1")  # restarted: fresh HA uptime, higher priority
    bus.run(5.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}
    assert not bus.events_of(BecomeSecondary, "fgt2", since=t_back)
    assert "uptime is larger" in bus.members["fgt1"].status(bus.t).selections[-1][1]


def test_returning_member_within_uptime_margin_takes_over_like_fortios() -> None:
    # KB 197460: rebooted within 5 minutes of the other's uptime, priority decides
    bus = pair()
    bus.run(3.0)
    bus.kill("fgt1")
    bus.run(30.0)
    bus.start("fgt1")
    bus.run(5.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}


def test_returning_member_override_enabled_preempts() -> None:
    bus = pair(ha_uptime_diff_margin=10, override=True)
    bus.run(3.0)
    bus.kill("fgt1")
    bus.run(30.0)
    t_back = bus.t
    bus.start("fgt1")
    bus.run(0.5)
    assert bus.roles() == {"fgt1": HELLO, "fgt2": WORK}  # no gap while it says hello
    bus.run(2.0)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}
    assert bus.events_of(BecomeSecondary, "fgt2", since=t_back)


def test_joining_member_with_pending_bulk_sync_does_not_take_over() -> None:
    bus = pair(override=True)
    bus.run(3.0)
    bus.kill("fgt1")
    bus.run(5.0)
    bus.start("fgt1")
    bus.handle("fgt1", bus.members["fgt1"].set_sync_complete(bus.t, False))
    bus.run(3.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK}
    bus.handle("fgt1", bus.members["fgt1"].set_sync_complete(bus.t, True))
    bus.run(0.05)
    assert bus.roles() == {"fgt1": WORK, "fgt2": STANDBY}


def test_four_members() -> None:
    prios = {"fgt1": 100, "fgt2": 200, "fgt3": 150, "fgt4": 50}
    bus = Bus({n: ha(p) for n, p in prios.items()})
    bus.run(3.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt2": WORK, "fgt3": STANDBY, "fgt4": STANDBY}
    st = bus.members["fgt4"].status(bus.t)
    assert [m.serial for m in st.members] == [SERIALS[n] for n in ("fgt2", "fgt3", "fgt1", "fgt4")]
    assert [m.cluster_index for m in st.members] == [2, 1, 3, 0]  # highest serial = index 0
    bus.kill("fgt2")
    bus.run(2.0)
    assert bus.roles() == {"fgt1": STANDBY, "fgt3": WORK, "fgt4": STANDBY}


def test_bad_frames_are_dropped_and_counted_roles_unchanged() -> None:
    bus = pair()
    bus.run(3.0)
    roles = bus.roles()
    m2 = bus.members["fgt2"]
    real = [s[3] for s in bus.sent if s[1] == "fgt1" and s[2] == "port3"]
    bus.run(0.5)
    # 1. spoofed: a "primary" with priority 255 and a wrong password
    info = dataclasses.replace(
        decode_heartbeat(real[-1], "secret", 10), priority=255, seq=2**63, serial="FGVM01TM00000009"
    )
    spoof = encode_heartbeat(info, "guess")
    # 2. replayed: a real frame of fgt1 captured earlier
    replay = real[-3]
    # 3. another group-id, right password
    other = encode_heartbeat(dataclasses.replace(info, group_id=11), "secret")
    # 4. truncated and 5. random
    trunc = real[-1][:60]
    rnd = bytes(random.Random(1).getrandbits(8) for _ in range(200))
    results = [bus.inject("fgt2", "port3", f) for f in (spoof, replay, other, trunc, rnd)]
    reasons = [r[0].reason for r in results]
    assert reasons == ["auth", "replay", "wrong-group", "malformed", "malformed"]
    assert all(isinstance(r[0], FrameDropped) for r in results)
    for key in ("drop-auth", "drop-replay", "drop-wrong-group"):
        assert m2.counters[key] == 1
    assert m2.counters["drop-malformed"] == 2
    bus.run(5.0)
    assert bus.roles() == roles
    assert SERIALS["fgt1"] in m2.peers and "FGVM01TM00000009" not in m2.peers
    assert m2.status(bus.t).hbdevs[0].dropped == 5


def test_diagnostics_render_fortios_layout() -> None:
    bus = pair()
    bus.run(3.0)
    st = bus.members["fgt1"].status(bus.t)
    text = render_ha_status(st)
    lines = text.splitlines()
    assert lines[0] == "HA Health Status: OK"
    assert "Model: FortiGate-VM64" in lines
    assert "Mode: HA A-P" in lines
    assert "Group Name: lab" in lines and "Group ID: 10" in lines
    assert "ses_pickup: enable, ses_pickup_delay=disable" in lines
    assert "override: disable" in lines
    assert any(
        line.strip().endswith(
            f"{SERIALS['fgt1']} is selected as the primary because it has the largest value of override priority."
        )
        for line in lines
    )
    assert f"Primary     : FGT1            , {SERIALS['fgt1']}, HA cluster index = 1" in lines
    assert f"Secondary   : FGT2            , {SERIALS['fgt2']}, HA cluster index = 0" in lines
    assert "number of vcluster: 1" in lines
    assert any(line.strip().startswith("port3: physical/10000full, up") for line in lines)
    bus.kill("fgt2")
    bus.run(2.0)
    st = bus.members["fgt1"].status(bus.t)
    assert render_ha_status(st).startswith(f"HA Health Status: ERROR: {SERIALS['fgt2']} is lost @ ")
    hist = render_ha_history(bus.members["fgt1"].history)
    assert hist.splitlines()[1].startswith("<")
    assert f"member '{SERIALS['fgt2']}' is lost" in hist
    assert "is elected as the cluster primary of 2 members" in hist
    assert fmt_duration(3 * 86400 + 3723) == "3 days 1:02:03"
