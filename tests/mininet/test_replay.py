"""Replay of recorded HA traffic into a running cluster (issue 13 acceptance, Mininet).

Two fgcpd members with the sync configurations (password set, fast HA timers) under TCP
and UDP load.  The heartbeat and session-sync links (port3, port4, port5) are recorded
with tcpdump, fgt2's fgcpd is restarted (a new run: new epoch, empty memory), and the
recording is replayed into the cluster with scapy ``sendp`` at its recorded pace, every
frame from the port of the member that sent it (its own MAC, as an attacker spoofing it
would).  Roles, the synced table, the sync stream and every TCP connection must be
unchanged, and the replayed frames counted as replays by both members.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from fgcp.syncframe import ETH_P_FGCP_SYNC
from lab.probes import start_tcp_streams, start_udp_streams
from tests.evidence import Evidence, kept_rundir
from tests.mininet.test_sync import RATE, bulk_complete, session_rows, start_cluster, sync_stats
from topologies.lab import CONFIG_DIR, LabNetwork, wait_until, write_ha_config

HA_PORTS = ("port3", "port4", "port5")
ETH_P_FGCP_HB = 0x8890
RECORD_S = 6.0
CONNS = 60
# the replayer: every frame of the pcap out of one interface at its recorded pace
REPLAYER = (
    "import sys\n"
    "from scapy.sendrecv import sendp\n"
    "from scapy.utils import rdpcap\n"
    "frames = rdpcap(sys.argv[1])\n"
    "sendp(frames, iface=sys.argv[2], realtime=True, verbose=False)\n"
    "print(len(frames))\n"
)


@pytest.fixture(scope="module")
def lab(artefacts_root: Path) -> Iterator[LabNetwork]:
    with kept_rundir("fgcp-test-replay-", artefacts_root / "tests_mininet_test_replay.py") \
            as rundir, LabNetwork(rundir=rundir, active_members=(), wait_ha=False) as net:
        yield net


@pytest.fixture(autouse=True)
def _evidence(lab: LabNetwork, evidence: Evidence) -> None:
    evidence.watch(lab)


def counter(text: str, name: str) -> int:
    """The value of ``name=N`` (sync diag) or ``counter.name=N`` (diagnose lab ha), 0 if absent."""
    m = re.search(rf"(?:^|[\s,.]){re.escape(name)}=(\d+)", text, flags=re.MULTILINE)
    return int(m.group(1)) if m else 0


def sync_replays(lab: LabNetwork, member: str) -> int:
    stats = sync_stats(lab, member)
    return counter(stats, "replay") + counter(stats, "unverified")


def hb_replays(lab: LabNetwork, member: str) -> int:
    ha = lab.diag(member, "diagnose lab ha")
    return counter(ha, "drop-replay") + counter(ha, "drop-unverified")


def stream_ids(lab: LabNetwork) -> tuple[str, str]:
    """(fgt1's stream to fgt2, the stream fgt2 follows) as shown by the sync diag."""
    tx = re.search(r"peer \S+: stream=(0x[0-9a-f]+)", sync_stats(lab, "fgt1"))
    rx = re.search(r"from \S+: epoch=([0-9a-f]+) stream=(0x[0-9a-f]+)", sync_stats(lab, "fgt2"))
    assert tx and rx, (sync_stats(lab, "fgt1"), sync_stats(lab, "fgt2"))
    return tx.group(1), f"{rx.group(1)}/{rx.group(2)}"


class Recording:
    """tcpdump on fgt1's HA ports (it sees both members' frames) until ``stop``."""

    def __init__(self, lab: LabNetwork, dest: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []
        for port in HA_PORTS:
            pcap = dest / f"recorded-{port}.pcap"
            self.procs.append(lab.host("fgt1").popen(
                ["tcpdump", "-n", "-U", "-s", "0", "-i", port, "-w", str(pcap),
                 f"ether proto {ETH_P_FGCP_HB:#x} or ether proto {ETH_P_FGCP_SYNC:#x}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.files.append(pcap)
        wait_until(lambda: all(f.exists() for f in self.files), 3, "tcpdump listening")

    def stop(self) -> list[Path]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # by PID: tcpdump closes its file cleanly
        for proc in self.procs:
            proc.wait(5)
        return self.files


def split_by_sender(lab: LabNetwork, recorded: list[Path], dest: Path
                    ) -> dict[tuple[str, str], tuple[Path, dict[int, int]]]:
    """Per (member, port): a pcap of the frames that member sent there, and how many of
    each ethertype."""
    out: dict[tuple[str, str], tuple[Path, dict[int, int]]] = {}
    for pcap in recorded:
        port = pcap.stem.split("-", 1)[1]
        frames = list(rdpcap(str(pcap)))
        for member in ("fgt1", "fgt2"):
            mac = lab.host(member).intf(port).MAC()
            mine = [f for f in frames if Ether in f and f[Ether].src == mac]
            path = dest / f"replay-{member}-{port}.pcap"
            wrpcap(str(path), mine)
            kinds: dict[int, int] = {}
            for f in mine:
                kinds[f[Ether].type] = kinds.get(f[Ether].type, 0) + 1
            out[(member, port)] = (path, kinds)
    return out


def replay(lab: LabNetwork, plan: dict[tuple[str, str], tuple[Path, dict[int, int]]]) -> None:
    """Every member's recorded frames out of its own ports at once, at the recorded pace."""
    procs = []
    for (member, port), (path, kinds) in plan.items():
        if kinds:
            procs.append(lab.host(member).popen(
                [sys.executable, "-c", REPLAYER, str(path), port],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        _out, err = proc.communicate(timeout=RECORD_S * 4 + 30)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def test_replayed_recording_after_a_restart_changes_nothing(lab: LabNetwork,
                                                             tmp_path: Path) -> None:
    start_cluster(lab)
    # the recording: heartbeats both ways, fgt1's stream to fgt2 (the load's sessions
    # created, their state changes) and fgt2's ACKs
    rec = Recording(lab, tmp_path)
    try:
        tcp = start_tcp_streams(lab, "c1", "sv1", conns=CONNS, rate=RATE, stall_timeout=5.0)
        udp = start_udp_streams(lab, "c1", "sv1", flows=4, interval=0.02)
    except BaseException:
        rec.stop()
        raise
    stopped = False
    try:
        time.sleep(RECORD_S)
        recorded = rec.stop()
        # fgt2's fgcpd restarts: it rejoins, gets a new stream and its bulk sync
        lab.stop_daemon("fgt2")
        conf = write_ha_config("fgt2", lab.rundir / "fgt2-sync.conf", {},
                               base=CONFIG_DIR / "sync-fgt2.conf")
        lab.start_daemon("fgt2", config=conf)
        lab.wait_ha_stable(timeout=20)
        assert lab.primaries() == ["fgt1"]
        wait_until(lambda: bulk_complete(lab, "fgt2"), 10, "fgt2's bulk sync after its restart")
        wait_until(lambda: session_rows(lab.diag("fgt2", "diagnose sys session list"))
                   == session_rows(lab.diag("fgt1", "diagnose sys session list")), 10,
                   "fgt2's synced table == fgt1's table")
        table = session_rows(lab.diag("fgt2", "diagnose sys session list"))
        assert len(table) >= CONNS + 4, table
        streams = stream_ids(lab)
        roles = {m: lab.ha_state(m).get("state") for m in ("fgt1", "fgt2")}
        assert roles == {"fgt1": "work", "fgt2": "standby"}, roles
        before = {m: (sync_replays(lab, m), hb_replays(lab, m)) for m in ("fgt1", "fgt2")}
        plan = split_by_sender(lab, recorded, tmp_path)
        sent = {m: {t: sum(k.get(t, 0) for (mm, _), (_, k) in plan.items() if mm == m)
                    for t in (ETH_P_FGCP_HB, ETH_P_FGCP_SYNC)} for m in ("fgt1", "fgt2")}
        for m in ("fgt1", "fgt2"):  # the recording holds both protocols of both members
            assert sent[m][ETH_P_FGCP_HB] > RECORD_S * 10 and sent[m][ETH_P_FGCP_SYNC] > 5, sent
        replay(lab, plan)
        time.sleep(2.0)
        # nothing moved: roles, the sync stream, the synced table (once live changes
        # settled), and the members agree on the primary
        assert {m: lab.ha_state(m).get("state") for m in ("fgt1", "fgt2")} == roles
        assert lab.ha_stable() and lab.primaries() == ["fgt1"]
        assert stream_ids(lab) == streams
        assert bulk_complete(lab, "fgt2")
        wait_until(lambda: session_rows(lab.diag("fgt2", "diagnose sys session list"))
                   == session_rows(lab.diag("fgt1", "diagnose sys session list")), 10,
                   "fgt2's synced table == fgt1's table after the replay")
        after = {m: (sync_replays(lab, m), hb_replays(lab, m)) for m in ("fgt1", "fgt2")}
        res = tcp.stop()
        udp_res = udp.stop()
        stopped = True
    finally:
        rec.stop()
        if not stopped:
            tcp.stop()
            udp.stop()
    # every replayed frame was counted by the member it reached (the other one)
    for member, other in (("fgt1", "fgt2"), ("fgt2", "fgt1")):
        got_sync = after[member][0] - before[member][0]
        got_hb = after[member][1] - before[member][1]
        assert got_sync >= sent[other][ETH_P_FGCP_SYNC], (member, got_sync, sent[other])
        assert got_hb >= sent[other][ETH_P_FGCP_HB], (member, got_hb, sent[other])
        print(f"{member}: {got_sync} sync and {got_hb} heartbeat replays counted "
              f"({sent[other][ETH_P_FGCP_SYNC]} / {sent[other][ETH_P_FGCP_HB]} replayed)")
    s = res["summary"]
    assert s["connected"] == s["survived"] == CONNS, s
    assert s["reset"] == 0 and s["continuity_failures"] == 0, s
    assert all(f["received"] > 0 and f["duplicates"] == 0 for f in udp_res["flows"])
