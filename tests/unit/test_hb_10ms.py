"""``set hb-interval-in-milliseconds 10ms``: hb-interval counted in 10 ms units (config,
heartbeat TLV, FSM timers, ``get system ha status``) and the heartbeats queued on a socket
read before a peer is declared lost (HaMember)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from fgcp.config import parse_config
from fgcp.hadiag import render_ha_status
from fgcp.hafsm import HAStateMachine
from fgcp.hbframe import HB_UNIT_10MS, TLV_TIMERS, HeartbeatInfo, decode_heartbeat, encode_heartbeat
from fgcp.model import HAConfig
from lab.cli import _overrides, build_parser
from lab.failover_bench import bench_settings, parse_timers
from lab.scenario import ScenarioError, load_scenario, parse_scenario
from tests.unit.test_hamember import FAST, Member, _pairs, run

HA_TEXT = """config system interface
    edit "port3"
        set ip 169.254.0.1 255.255.255.0
    next
end
config system ha
    set mode a-p
    set hbdev "port3" 50
    set hb-interval 1
    {unit}
end
"""


def test_config_unit_default_is_100ms_and_10ms_is_accepted() -> None:
    assert parse_config(HA_TEXT.format(unit=""), "a.conf").ha.hb_unit_ms == 100
    ha = parse_config(HA_TEXT.format(unit="set hb-interval-in-milliseconds 10ms"), "a.conf").ha
    assert (ha.hb_interval, ha.hb_unit_ms) == (1, 10)


def _timers_value(frame: bytes) -> bytes:
    """The 4-byte value of TLV_TIMERS in a frame (TLV: u16 type, u16 length, LE)."""
    at = frame.index(struct.pack("<HH", TLV_TIMERS, 4))
    return frame[at + 4: at + 8]


@pytest.mark.parametrize(("unit", "byte"), [(100, 3), (10, 3 | HB_UNIT_10MS)])
def test_heartbeat_carries_the_unit_in_bit_7_of_hb_interval(unit: int, byte: int) -> None:
    info = HeartbeatInfo(serial="FGVM01TM00000001", port="port3", hb_interval=3,
                         hb_unit_ms=unit)
    frame = encode_heartbeat(info, "")
    assert _timers_value(frame)[0] == byte
    back = decode_heartbeat(frame, "", 0, "")
    assert (back.hb_interval, back.hb_unit_ms) == (3, unit)


def _cfg(unit: int) -> HAConfig:
    return HAConfig(mode="a-p", hbdev=(("port3", 50),), hb_interval=1,
                    hb_interval_in_milliseconds=f"{unit}ms",
                    hb_lost_threshold=3, hello_holddown=5)


@pytest.mark.parametrize(("unit", "interval"), [(100, 0.1), (10, 0.01)])
def test_fsm_timers_follow_the_unit(unit: int, interval: float) -> None:
    fsm = HAStateMachine(_cfg(unit), "FGVM01TM00000001", 1000.0)
    assert fsm.interval == pytest.approx(interval)
    assert fsm.lost_timeout == pytest.approx(3 * interval)
    sent = [a for a in fsm.on_tick(1000.0) if hasattr(a, "frame")]
    assert sent and fsm.next_hb == pytest.approx(1000.0 + interval)
    assert decode_heartbeat(sent[0].frame, "", 0, "").hb_unit_ms == unit


def test_ha_status_shows_the_heartbeat_unit() -> None:
    fsm = HAStateMachine(_cfg(10), "FGVM01TM00000001", 1000.0)
    text = render_ha_status(fsm.status(1001.0))
    assert ("hb-interval: 1 x 10ms (hb-interval-in-milliseconds 10ms), hb-lost-threshold: 3"
            " (a peer is lost after 30 ms)") in text.splitlines()


MS10 = {**FAST, "hb-interval-in-milliseconds": "10ms"}


@pytest.fixture
def cluster10(tmp_path: Path):  # type: ignore[no-untyped-def]
    sa, sb = _pairs()
    m1, m2 = Member("fgt1", tmp_path, sa, MS10), Member("fgt2", tmp_path, sb, MS10)
    for m in (m1, m2):
        m.ha.open(m.daemon)
    yield m1, m2
    for m in (m1, m2):
        m.ha.close()


def test_10ms_cluster_detects_a_dead_primary_in_30ms(cluster10) -> None:  # type: ignore[no-untyped-def]
    m1, m2 = cluster10
    t = run(cluster10, time.time(), time.time() + 6.0, step=0.002)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    assert m2.lab()["lost"] == ""  # no false peer-lost while both ran
    m1.alive = False
    killed = t
    run(cluster10, t, t + 0.5, step=0.002)
    when = next(w for role, w in m2.daemon.changes if role == "primary")
    # hb-lost-threshold 3 x 10 ms after the last heartbeat heard (sent <= 10 ms before the kill)
    assert 0.02 <= when - killed <= 0.03 + 0.004


def test_queued_heartbeat_is_read_before_its_sender_is_lost(cluster10) -> None:  # type: ignore[no-untyped-def]
    """The poll loop runs fgt2's timers before it reads its sockets (a late read): the
    heartbeats waiting there keep fgt1 alive, and the reads are counted."""
    m1, m2 = cluster10
    t = run(cluster10, time.time(), time.time() + 6.0, step=0.002)
    assert (m1.daemon.role, m2.daemon.role) == ("primary", "secondary")
    end = t + 0.2
    while t < end:  # fgt1 keeps sending; fgt2 only ticks, 40 ms apart (> the 30 ms timeout)
        for _ in range(20):
            m1.ha.on_tick(t)
            t += 0.002
        m2.ha.on_tick(t)
    lab = m2.lab()
    assert (m2.daemon.role, lab["lost"]) == ("secondary", "")
    assert int(lab["counter.io-rx_read_before_expiry"]) >= 4


def test_scenario_key_reaches_every_member_and_sets_the_budget() -> None:
    sc = parse_scenario({"ha": {"hb-interval-in-milliseconds": "10ms"}}, "s.yaml")
    assert sc.hb_detect_s() == pytest.approx(0.03)
    assert all("set hb-interval-in-milliseconds 10ms" in m.text for m in sc.members)
    assert parse_scenario({}, "s.yaml").hb_detect_s() == pytest.approx(0.3)
    with pytest.raises(ScenarioError, match="hb-interval-in-milliseconds: expected 100ms or 10ms"):
        parse_scenario({"ha": {"hb-interval-in-milliseconds": "1ms"}}, "s.yaml")


def test_run_option_overrides_the_scenario() -> None:
    args = build_parser("run").parse_args(["default", "--hb-interval-in-milliseconds", "10ms"])
    sc = load_scenario(args.scenario, _overrides(args))
    assert sc.hb_detect_s() == pytest.approx(0.03)
    with pytest.raises(SystemExit):
        build_parser("run").parse_args(["--hb-interval-in-milliseconds", "5ms"])


def test_failover_bench_timer_sets() -> None:
    assert parse_timers("1/3") == (1, 3, 100)
    assert parse_timers("1/3/10ms") == (1, 3, 10)
    assert bench_settings(*parse_timers("1/3/10ms"))["hb-interval-in-milliseconds"] == "10ms"
    for bad_set in ("1/3/5ms", "0/3", "1", "a/b"):
        with pytest.raises(ValueError):
            parse_timers(bad_set)


def test_scapy_layer_shows_the_unit_and_rebuilds_the_same_bytes() -> None:
    from scapy.layers.l2 import Ether

    from fgcp.hblayer import FGCPTLVTimers

    frame = encode_heartbeat(HeartbeatInfo(serial="FGVM01TM00000001", port="port3",
                                           hb_interval=1, hb_unit_ms=10), "")
    pkt = Ether(frame)
    assert (pkt[FGCPTLVTimers].hb_unit_10ms, pkt[FGCPTLVTimers].hb_interval) == (1, 1)
    assert bytes(pkt) == frame
