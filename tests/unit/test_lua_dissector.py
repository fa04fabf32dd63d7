"""wireshark/fgcp.lua decodes heartbeats written to a pcap by scapy (needs tshark)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from fgcp.hafsm import HAStateMachine, SendHeartbeat
from fgcp.model import HAConfig

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "wireshark" / "fgcp.lua"
GOLDEN = ROOT / "tests" / "golden"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def tshark(pcap: Path, *args: str) -> list[list[str]]:
    proc = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{LUA}", "-r", str(pcap), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Lua" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


def fsm_frames() -> list[bytes]:
    cfg = HAConfig(
        group_name="lab",
        group_id=10,
        mode="a-p",
        password="secret",
        hbdev=(("port3", 50),),
        priority=77,
    )
    m = HAStateMachine(cfg, "FGVM01TM00000002", now=1_790_000_000.0, hostname="FGT2")
    return [a.frame for a in m.on_tick(1_790_000_000.0) if isinstance(a, SendHeartbeat)]


def test_fields_group_serial_priority(tmp_path: Path) -> None:
    frames = [
        (GOLDEN / "heartbeat_plain.bin").read_bytes(),
        (GOLDEN / "heartbeat_auth.bin").read_bytes(),
        *fsm_frames(),
    ]
    pcap = tmp_path / "hb.pcap"
    wrpcap(str(pcap), [Ether(f) for f in frames])
    rows = tshark(
        pcap,
        "-T",
        "fields",
        "-e",
        "fgcp.group",
        "-e",
        "fgcp.serial",
        "-e",
        "fgcp.priority",
        "-e",
        "fgcp.group_id",
        "-e",
        "fgcp.state",
        "-e",
        "fgcp.hostname",
        "-e",
        "fgcp.flags.authenticated",
    )
    assert rows == [
        ["lab", "FGVM01TM00000001", "200", "10", "2", "FGT1", "0"],
        ["lab", "FGVM01TM00000001", "200", "10", "2", "FGT1", "1"],
        ["lab", "FGVM01TM00000002", "77", "10", "1", "FGT2", "1"],
    ]
    # interface inventory (zlib) and a display filter on a decoded field
    names = tshark(pcap, "-Y", "fgcp.priority == 200", "-T", "fields", "-e", "fgcp.iface.name")
    assert names == [["port1,port2,port3"], ["port1,port2,port3"]]
    # freshness TLVs: epoch, challenge (serial, epoch, nonce), response (serial, nonce)
    fresh = tshark(pcap, "-Y", "fgcp.priority == 200", "-T", "fields", "-e", "fgcp.epoch",
                   "-e", "fgcp.challenge.serial", "-e", "fgcp.challenge.epoch",
                   "-e", "fgcp.challenge.nonce", "-e", "fgcp.response.serial",
                   "-e", "fgcp.response.nonce")
    assert fresh == [["0x1122334455667788", "FGVM01TM00000002", "0x0102030405060708",
                      "0xa1a2a3a4a5a6a7a8", "FGVM01TM00000002", "0xb1b2b3b4b5b6b7b8"]] * 2


def test_truncated_and_odd_frames_do_not_break_the_dissector(tmp_path: Path) -> None:
    good = (GOLDEN / "heartbeat_plain.bin").read_bytes()
    bad_len = bytearray(good)
    bad_len[14 + 88 + 2] = 0xFF  # first TLV claims 255 bytes
    frames = [good[:60], good[: 14 + 100], bytes(bad_len), good]
    pcap = tmp_path / "odd.pcap"
    wrpcap(str(pcap), [Ether(f) for f in frames])
    rows = tshark(
        pcap, "-T", "fields", "-e", "frame.number", "-e", "fgcp.serial", "-e", "_ws.expert.message"
    )
    assert len(rows) == 4
    assert rows[3][1] == "FGVM01TM00000001"
    assert "TLV runs past the end" in "\t".join(rows[2])
