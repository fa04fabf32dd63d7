"""Unit tests of the keepalived + conntrackd reference: rendered configs, the notify
script, and the conntrackd benchmark's pure helpers (no root, no daemons)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lab.benchkit import nearest_rank
from lab.conntrackd_bench import (
    flow_destination,
    lags_from_samples,
    parse_cache_counts,
)
from topologies.reference import (
    ReferenceError,
    format_advert_int,
    member_conntrackd_spec,
    reference_member,
    render_conntrackd_conf,
    render_keepalived_conf,
    render_nft_ruleset,
    render_notify_script,
)

WORK = Path("/run/fgcp-test-x/reference")


def block(text: str, header: str) -> str:
    """The body of ``header { ... }`` (nested braces included)."""
    start = text.index(header + " {")
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    raise AssertionError(f"unbalanced block {header}")


def test_members_addresses_and_priorities() -> None:
    m1, m2 = reference_member("fgt1", 1, WORK), reference_member("fgt2", 2, WORK)
    assert (str(m1.port1), str(m1.port2)) == ("198.51.100.2/24", "203.0.113.2/24")
    assert (str(m2.port1), str(m2.port2)) == ("198.51.100.3/24", "203.0.113.3/24")
    assert (str(m1.sync_addr), str(m1.peer_sync_addr)) == ("169.254.0.129", "169.254.0.130")
    assert m1.priority > m2.priority
    assert m1.keepalived_conf.parent == WORK
    with pytest.raises(ReferenceError):
        reference_member("fgt3", 3, WORK)


def test_keepalived_conf_two_instances_in_one_sync_group() -> None:
    m = reference_member("fgt1", 1, WORK)
    text = render_keepalived_conf(m, advert_int=1.0)
    assert text.count("{") == text.count("}")
    group = block(text, "vrrp_sync_group FGCP_REF")
    assert re.search(r"group \{\s*VI_INSIDE\s*VI_OUTSIDE\s*\}", group)
    assert f'notify_master "{m.notify_script} primary"' in group
    assert f'notify_backup "{m.notify_script} backup"' in group
    assert f'notify_fault "{m.notify_script} fault"' in group
    inside, outside = block(text, "vrrp_instance VI_INSIDE"), block(text, "vrrp_instance VI_OUTSIDE")
    assert "interface port1" in inside and "198.51.100.1/24 dev port1" in inside
    assert "interface port2" in outside and "203.0.113.1/24 dev port2" in outside
    assert "virtual_router_id 51" in inside and "virtual_router_id 52" in outside
    for inst in (inside, outside):
        assert "priority 150" in inst and "state MASTER" in inst
        assert re.search(r"advert_int 1\n", inst)
    assert "vrrp_version 3" in block(text, "global_defs")
    assert "use_vmac" not in text


def test_keepalived_conf_subsecond_advert_and_backup() -> None:
    m2 = reference_member("fgt2", 2, WORK)
    text = render_keepalived_conf(m2, advert_int=0.1, preempt=False)
    assert text.count("advert_int 0.1\n") == 2
    assert text.count("state BACKUP") == 2 and text.count("priority 100") == 2
    assert text.count("nopreempt") == 2
    assert format_advert_int(0.25) == "0.25"
    for bad in (0.0, 0.001, 41.0):
        with pytest.raises(ReferenceError):
            format_advert_int(bad)


def test_conntrackd_conf_ftfw_udp_on_sync_link_with_private_paths() -> None:
    m = reference_member("fgt2", 2, WORK)
    text = render_conntrackd_conf(member_conntrackd_spec(m))
    assert text.count("{") == text.count("}")
    sync = block(text, "Sync")
    assert "Mode FTFW" in sync
    udp = block(sync, "UDP")
    assert "IPv4_address 169.254.0.130" in udp
    assert "IPv4_Destination_Address 169.254.0.129" in udp
    assert "Interface port5" in udp
    general = block(text, "General")
    assert f"LockFile {WORK}/fgt2-conntrackd.lock" in general
    assert f"Path {WORK}/fgt2-conntrackd.ctl" in block(general, "UNIX")
    assert f"LogFile {WORK}/fgt2-conntrackd.log" in general
    ignore = block(general, "Address Ignore")
    for addr in ("127.0.0.1", "169.254.0.130", "198.51.100.3", "203.0.113.3"):
        assert f"IPv4_address {addr}\n" in ignore
    # the VIPs are not ignored: SNAT to the VIP is what must be synced
    assert "203.0.113.1\n" not in ignore
    accept = block(general, "Protocol Accept")
    assert accept.split() == ["TCP", "UDP", "ICMP"]


def test_conntrackd_conf_rejects_a_socket_path_too_long_for_af_unix() -> None:
    m = reference_member("fgt1", 1, Path("/run/" + "x" * 100))
    with pytest.raises(ReferenceError, match="too long"):
        render_conntrackd_conf(member_conntrackd_spec(m))


def test_notify_script_runs_primary_backup_steps_in_order(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake = tmp_path / "conntrackd"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    conf, log = tmp_path / "ct.conf", tmp_path / "notify.log"
    script = tmp_path / "primary-backup.sh"
    script.write_text(render_notify_script(conf, log, conntrackd_bin=str(fake)))
    script.chmod(0o755)
    for state in ("primary", "backup", "fault"):
        assert subprocess.run([str(script), state], check=False).returncode == 0
    flags = [line.split()[-1] for line in calls.read_text().splitlines()]
    assert flags == ["-c", "-f", "-R", "-B", "-t", "-n", "-t"]
    assert all(f"-C {conf}" in line for line in calls.read_text().splitlines())
    assert [ln.split()[1:] for ln in log.read_text().splitlines() if " notify " in ln] == [
        ["notify", "primary"], ["notify", "backup"], ["notify", "fault"]]
    assert subprocess.run([str(script), "bogus"], check=False,
                          capture_output=True).returncode == 1
    steps = [ln.split()[1:] for ln in log.read_text().splitlines() if "conntrackd" in ln]
    assert steps[:4] == [["conntrackd", f, "rc=0"] for f in ("-c", "-f", "-R", "-B")]


def test_notify_script_logs_a_failing_conntrackd_step(tmp_path: Path) -> None:
    fake = tmp_path / "conntrackd"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    log = tmp_path / "notify.log"
    script = tmp_path / "primary-backup.sh"
    script.write_text(render_notify_script(tmp_path / "ct.conf", log, conntrackd_bin=str(fake)))
    script.chmod(0o755)
    subprocess.run([str(script), "primary"], check=False)
    assert "conntrackd -c rc=1" in log.read_text()


def test_nft_stateful_filter_and_snat_only_inside_hosts_to_the_outside_vip() -> None:
    text = render_nft_ruleset()
    assert text.count("{") == text.count("}")
    post = block(text, "chain nat_post")
    assert 'oifname "port2" ip saddr 198.51.100.0/24 snat to 203.0.113.1' in post
    assert "masquerade" not in text
    fwd = block(text, "chain filter_fwd")
    assert "hook forward" in fwd and "policy drop" in fwd
    assert "ct state established,related accept" in fwd
    # a mid-stream TCP segment of an unknown session is not accepted as new
    assert "ct state new tcp flags & (fin|syn|rst|ack) == syn accept" in fwd
    assert "ct state new accept" not in fwd


def test_parse_cache_counts_of_conntrackd_stats() -> None:
    stats = (
        "cache internal:\ncurrent active connections:\t           7\n"
        "connections created:\t\t          9\tfailed:\t  0\n\n"
        "cache external:\ncurrent active connections:\t       12345\n"
    )
    assert parse_cache_counts(stats) == {"internal": 7, "external": 12345}
    assert parse_cache_counts("connect: No such file") == {}


def test_flow_destinations_are_distinct_and_in_the_outside_range() -> None:
    dests = {flow_destination(i) for i in range(0, 130000, 7)}
    assert len(dests) == len(range(0, 130000, 7))
    assert flow_destination(0) == ("203.0.113.100", 1)
    assert flow_destination(60000) == ("203.0.113.101", 1)
    assert all(1 <= p <= 65535 for _, p in dests)


def test_lags_from_samples_and_percentile() -> None:
    created = [0.0, 0.001, 0.002, 0.010]
    samples = [(0.0005, 0), (0.004, 2), (0.008, 3), (0.012, 3)]
    lags = lags_from_samples(created, samples)
    # flows 0, 1 seen at 0.004, flow 2 at 0.008, flow 3 never
    assert lags == pytest.approx([0.004, 0.003, 0.006])
    assert nearest_rank([5, 1, 3, 2, 4], 50) == 3
    assert nearest_rank([float(i) for i in range(1, 101)], 99) == 99
