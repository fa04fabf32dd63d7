"""IPS: the split attack at the one point a resume cannot see, and the reset action.

Two fgcpd members with topologies/configs/ips-fgtN.conf, real peers (the libiec61850 MMS
server and the ICCP attacker of lab.iccp.attack; plain sockets of tests/mininet/splitpeer.py).

* The breaker write in three segments: the first passes fgt1 and its IPS state reaches
  fgt2; then fgt1's sync frames are dropped (nftables on its port5 egress: a sync update
  lost, the worst case of the ~2 ms window before a SIGKILL), the middle passes fgt1 (the
  server acknowledges it), fgt1 is SIGKILLed, the rest reaches fgt2.  fgt2 resumed the
  state from before the middle: it must never pass the rest (the server would complete
  the write from bytes no member inspected together); the gap never fills, so after
  gap_timeout the session is reset and logged (docs/ips.md "HA").
* A sensor entry with ``set action reset``: the HTTP attack's second half gets TCP RST
  both ways, seen by the real client and server sockets, and is logged.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspection.iccp import ICCP_PORT
from tests.evidence import Evidence, kept_rundir
from tests.mininet.test_ips import (
    HTTP_FIRST,
    HTTP_SECOND,
    ITEM,
    SV1,
    Peers,
    fail_over,
    read_json,
    session_block,
    start_cluster,
    stats,
)
from topologies.lab import CONFIG_DIR, LabNetwork, wait_until

CUT_TABLE = "ips_gap_test"
CUT_SYNC = (f"nft add table netdev {CUT_TABLE} && nft add chain netdev {CUT_TABLE} out "
            "'{ type filter hook egress device port5 priority 0; }' && "
            f"nft add rule netdev {CUT_TABLE} out ether type 0x8892 drop && echo cut")


@pytest.fixture(scope="module")
def lab(artefacts_root: Path) -> Iterator[LabNetwork]:
    with kept_rundir("fgcp-test-ips-gap-", artefacts_root / "tests_mininet_test_ips_gap.py"
                     ) as rundir, \
            LabNetwork(rundir=rundir, active_members=(), wait_ha=False) as net:
        yield net


@pytest.fixture(autouse=True)
def _evidence(lab: LabNetwork, evidence: Evidence) -> None:
    evidence.watch(lab)


def engine_stats(lab: LabNetwork, member: str) -> dict[str, int]:
    text = lab.diag(member, "diagnose lab stats")
    return {k: int(v) for k, v in re.findall(r"^ips\.(\w+)=(\d+)$", text, flags=re.MULTILINE)}


def segments_out(ready: Path) -> int:
    try:
        return int(ready.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def test_split_attack_whose_middle_only_the_old_primary_saw_is_never_completed(
        lab: LabNetwork, tmp_path: Path) -> None:
    start_cluster(lab, {})
    peers = Peers(lab, tmp_path / "peers")
    fgt1 = lab.host("fgt1")
    try:
        peers.servers()
        out, ready = peers.dir / "attack.json", peers.dir / "attack.ready"
        attacker = peers.start("c1", ["-m", "lab.iccp.attack", "--dst", SV1, "--wait-signal",
                                      "--middle", "6", "--ready-file", str(ready),
                                      "--timeout", "8", "--out", str(out),
                                      "--die-with-parent"])
        wait_until(lambda: segments_out(ready) == 1, 20, "the first segment")
        time.sleep(0.5)  # its state reaches fgt2
        assert fgt1.cmd(CUT_SYNC).strip().endswith("cut")
        before = stats(lab, "fgt1")["ips_bytes"]
        attacker.send_signal(signal.SIGUSR1)
        wait_until(lambda: segments_out(ready) == 2, 10, "the middle")
        wait_until(lambda: stats(lab, "fgt1")["ips_bytes"] >= before + 6, 5,
                   "the middle inspected by fgt1")
        time.sleep(0.3)  # forwarded, acknowledged by the server
        fail_over(lab)
        listing = lab.diag("fgt2", "diagnose sys session list")
        attacker.send_signal(signal.SIGUSR1)
        attack = read_json(out, 20)
    finally:
        fgt1.cmd(f"nft delete table netdev {CUT_TABLE}")
        peers.stop()
    assert attack["associated"] and attack["middle_at"] is not None, attack
    assert attack["outcome"] == "reset", attack  # never "answered": the write never completed
    assert "ips=on" in session_block(listing, ICCP_PORT)
    anomalies = lab.diag("fgt2", "diagnose ips anomaly list")
    hit = [ln for ln in anomalies.splitlines() if "stream gap unrecoverable" in ln]
    assert len(hit) == 1, anomalies
    assert re.fullmatch(rf"t=\d+\.\d{{3}} attack_id=0 name=\"stream gap unrecoverable\" "
                        rf"action=reset proto=6 198\.51\.100\.\d+:\d+->{re.escape(SV1)}:102 "
                        r"dir=from_client service=iccp", hit[0]), hit[0]
    assert hit[0] in lab.ips_log("fgt2").read_text().splitlines()
    st, eng = stats(lab, "fgt2"), engine_stats(lab, "fgt2")
    assert st["ips_resumed"] >= 1 and st["ips_resets"] == 1, st
    assert eng["withheld"] >= 2 and eng["gaps_unrecoverable"] == 1, eng
    assert eng["gaps_skipped"] == 0, eng


def reset_configs(lab: LabNetwork) -> dict[str, Path]:
    """ips-fgtN.conf with the HTTP sensor entry's action ``reset`` (not ``default``)."""
    out = {}
    for name in ("fgt1", "fgt2"):
        text = (CONFIG_DIR / f"ips-{name}.conf").read_text()
        entry = re.search(r'set rule "HTTP\.Breaker\.Oper\.Tunnel"\n(\s*)set action default',
                          text)
        assert entry is not None
        text = text[:entry.start()] + entry.group(0).replace("default", "reset") + \
            text[entry.end():]
        out[name] = lab.rundir / f"ips-reset-{name}-base.conf"
        out[name].write_text(text)
    return out


def test_sensor_action_reset_sends_tcp_rst_both_ways(lab: LabNetwork, tmp_path: Path) -> None:
    bases = reset_configs(lab)
    start_cluster(lab, {}, bases=bases)
    peers = Peers(lab, tmp_path / "peers")
    try:
        peers.servers()
        out = peers.split_client(8080, HTTP_FIRST, HTTP_SECOND)
        wait_until((peers.dir / "8080.ready").exists, 20, "the first half")
        (peers.dir / "go").write_text("go")
        rep = read_json(out)
        end = peers.dir / "8080.end"
        wait_until(end.exists, 5, "the server's end of the connection")
    finally:
        peers.stop()
    assert rep["first_echoed"] and rep["outcome"] == "reset", rep  # ECONNRESET at the client
    assert end.read_text().splitlines() == ["reset"]  # ... and at the server
    assert ITEM not in (peers.dir / "8080.bin").read_text()  # the second half never arrived
    anomalies = lab.diag("fgt1", "diagnose ips anomaly list")
    assert re.search(r'attack_id=9005 name="HTTP.Breaker.Oper.Tunnel" action=reset proto=6 '
                     rf'\S+->{re.escape(SV1)}:8080 dir=from_client service=http', anomalies), \
        anomalies
    assert "HTTP.Breaker.Oper.Tunnel" in lab.ips_log("fgt1").read_text()
    st = stats(lab, "fgt1")
    assert st["ips_resets"] == 1 and st["ips_blocked"] == 0, st
