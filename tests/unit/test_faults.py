"""Fault injection (lab/faults.py) against a fake lab: which member each fault hits,
what it does to it, and that restore/cleanup undo it."""

from __future__ import annotations

import pytest

from lab.faults import FaultError, FaultInjector, ReferenceFaultInjector
from lab.scenario import Fault


class FakeLab:
    def __init__(self, primary: str = "fgt1") -> None:
        self.primary = primary
        self.running = ["fgt1", "fgt2"]
        self.calls: list[tuple[object, ...]] = []
        self.down: dict[str, set[str]] = {"fgt1": set(), "fgt2": set()}

    def wait_ha_stable(self, timeout: float = 30) -> str:
        return self.primary

    def running_members(self) -> list[str]:
        return list(self.running)

    def kill_daemon(self, name: str) -> float:
        self.running.remove(name)
        self.calls.append(("kill", name))
        return 100.0

    def start_daemon(self, name: str) -> None:
        self.running.append(name)
        self.calls.append(("start", name))

    def set_links(self, member: str, up: bool, ports: list[str] | None = None) -> float:
        ports = ports or ["port1", "port2", "port3", "port4", "port5"]
        (self.down[member].difference_update if up else self.down[member].update)(ports)
        self.calls.append(("links", member, up, tuple(ports)))
        return 200.0

    def diag(self, member: str, cmd: str) -> str:
        self.calls.append(("diag", member, cmd))
        return ""


def test_kill_primary_then_old_primary_back() -> None:
    lab = FakeLab("fgt2")
    inj = FaultInjector(lab)
    rec = inj.apply(Fault("kill-primary", 2.0))
    assert (rec.member, rec.t, rec.primary_before) == ("fgt2", 100.0, "fgt2")
    back = inj.apply(Fault("old-primary-back", 5.0), 1)
    assert back.member == "fgt2"
    assert lab.calls == [("kill", "fgt2"), ("start", "fgt2")]


def test_power_off_kills_and_downs_every_link_and_comes_back() -> None:
    lab = FakeLab()
    inj = FaultInjector(lab)
    inj.apply(Fault("power-off", 2.0))
    assert lab.down["fgt1"] == {"port1", "port2", "port3", "port4", "port5"}
    assert "fgt1" not in lab.running
    inj.apply(Fault("old-primary-back", 4.0))
    assert lab.down["fgt1"] == set() and "fgt1" in lab.running


def test_split_brain_cuts_both_heartbeat_links_and_restore_brings_them_back() -> None:
    lab = FakeLab()
    inj = FaultInjector(lab)
    rec = inj.apply(Fault("split-brain", 2.0, duration=3.0))
    assert lab.down["fgt1"] == {"port3", "port4"}
    inj.restore(rec)
    assert lab.down["fgt1"] == set() and rec.restored_at == 200.0


def test_link_fault_on_the_secondary_and_cleanup() -> None:
    lab = FakeLab()
    inj = FaultInjector(lab)
    rec = inj.apply(Fault("sync-link-down", 2.0, member="secondary", port="port5"))
    assert rec.member == "fgt2" and lab.down["fgt2"] == {"port5"}
    inj.cleanup()
    assert lab.down["fgt2"] == set()


def test_failover_set_and_unset() -> None:
    lab = FakeLab()
    inj = FaultInjector(lab)
    rec = inj.apply(Fault("failover-set", 2.0, duration=1.0))
    inj.restore(rec)
    assert [c for c in lab.calls if c[0] == "diag"] == [
        ("diag", "fgt1", "execute ha failover set 1"),
        ("diag", "fgt1", "execute ha failover unset 1")]


def test_old_primary_back_without_a_kill_is_an_error() -> None:
    with pytest.raises(FaultError, match="no member was taken down"):
        FaultInjector(FakeLab()).apply(Fault("old-primary-back", 1.0))


def test_reference_has_no_split_brain() -> None:
    assert ReferenceFaultInjector.supports("power-off")
    assert not ReferenceFaultInjector.supports("split-brain")
    with pytest.raises(FaultError, match="no equivalent"):
        ReferenceFaultInjector(object()).apply(Fault("split-brain", 1.0))
