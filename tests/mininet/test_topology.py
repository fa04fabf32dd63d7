"""Mininet tests of the lab itself: traffic through userspace OVS + the os-ken
controller + a member, teardown on error, one lab at a time, HA segments."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from topologies.lab import LabBusyError, LabNetwork, wait_until
from topologies.traffic import iperf3, ping

SV1 = "203.0.113.11"


def dump_flows(switch: str) -> str:
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", switch],
        capture_output=True, text=True, check=True,
    ).stdout


def bridge_exists(name: str) -> bool:
    ovs = subprocess.run(["ovs-vsctl", "br-exists", name], check=False).returncode == 0
    return ovs or Path(f"/sys/class/net/{name}").exists()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kernel_member_forwards_ping_and_tcp(make_lab: Callable[..., LabNetwork]) -> None:
    with make_lab(member_mode="kernel") as lab:
        c1, sv1 = lab.host("c1"), lab.host("sv1")
        p = ping(c1, SV1, count=3)
        assert p.ok, p.output
        tcp = iperf3(c1, sv1, SV1, seconds=1)
        assert tcp.ok, tcp.error
        assert tcp.mbps > 10
        # the controller learned c1 and fgt1's port1 and installed flows for them
        flows = dump_flows("s1")
        assert "actions=CONTROLLER" in flows
        for mac in (c1.MAC(), lab.host("fgt1").intf("port1").MAC()):
            assert f"dl_dst={mac} actions=output:" in flows, flows
        log = lab.controller_log.read_text()
        assert "switch-connected dpid=0000000000000001" in log
        assert f"flow-install dpid=0000000000000001 eth_dst={c1.MAC()}" in log

        # a second lab cannot start while this one runs, and does no harm
        with pytest.raises(LabBusyError, match="another lab is running"), \
                LabNetwork(member_mode="kernel"):
            pass
        assert ping(c1, SV1, count=1).ok


def test_lab_tears_down_on_exception(make_lab: Callable[..., LabNetwork]) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), make_lab(member_mode="kernel", members=3) as lab:
        assert lab.controller is not None
        ctl_pid = lab.controller.pid
        host_pids = [h.pid for h in lab.net.hosts]
        assert bridge_exists("s1") and bridge_exists("hb1")
        raise Boom
    assert not pid_alive(ctl_pid)
    assert not any(pid_alive(pid) for pid in host_pids)
    for name in ("s1", "s2", "hb1", "hb2", "sync1", "s1-eth1"):
        assert not bridge_exists(name), name


def test_three_members_share_ha_segments(make_lab: Callable[..., LabNetwork]) -> None:
    with make_lab(member_mode="kernel", members=3) as lab:
        fgt1 = lab.host("fgt1")
        for dst in ("169.254.0.2", "169.254.0.3", "169.254.0.67", "169.254.0.131"):
            p = ping(fgt1, dst, count=1)
            assert p.ok, p.output
        assert ping(lab.host("c1"), SV1, count=2).ok


def test_fgcpd_member_forwards_ping(make_lab: Callable[..., LabNetwork]) -> None:
    with make_lab(member_mode="fgcpd", active_members=("fgt1",)) as lab:
        assert set(lab.daemons) == {"fgt1"}
        p = ping(lab.host("c1"), SV1, count=3)
        assert p.ok, p.output
        sessions = lab.diag("fgt1", "diagnose sys session list")
        assert "proto=1" in sessions, sessions


def test_fgcpd_member_restart(make_lab: Callable[..., LabNetwork]) -> None:
    with make_lab(member_mode="fgcpd", active_members=("fgt1",)) as lab:
        pid = lab.daemons["fgt1"].pid
        assert lab.stop_daemon("fgt1") == 0  # SIGTERM: a clean exit
        assert not pid_alive(pid)
        assert not ping(lab.host("c1"), SV1, count=1).ok  # nobody forwards now
        lab.start_daemon("fgt1")
        # c1's ARP entry for the gateway failed meanwhile: allow re-resolution
        wait_until(lambda: ping(lab.host("c1"), SV1, count=1).ok, 10, "ping after restart")
        assert ping(lab.host("c1"), SV1, count=3).ok
