"""check-config and fgcpd agree (issue 13 items 6, 7): every file check-config accepts starts
HA (heartbeats built and sent, session sync on), every file it refuses fgcpd refuses with
the same file:line: reason, and neither ever prints a traceback."""

from __future__ import annotations

import random
import re
import socket
import time
from pathlib import Path

import pytest

from fgcp.config import cli as check_config
from fgcp.config import load_config
from fgcp.daemon import main as fgcpd_main
from fgcp.hamember import HaMember
from fgcp.hbframe import decode_heartbeat
from fgcp.syncmember import SyncMember
from tests.unit.test_hamember import FakeDaemon, FakeLinks
from tests.unit.test_syncmember import FakeLink, Wire
from topologies.lab import CONFIG_DIR

BASE = (CONFIG_DIR / "fgt1.conf").read_text()
PORTS = ("port1", "port2", "port3", "port4", "port5")


def variant(*edits: tuple[str, str]) -> str:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


NO_SERIAL = ('    set lab-serial "FGVM01TM00000001"\n', "")

# (case, file text, key named in the error, reason)
BAD = [
    ("5000-digit-priority", variant(("set priority 200", "set priority 1" + "0" * 5000)),
     "priority", "5001 digits is out of range 0-255"),
    ("5000-digit-hbdev-priority",
     variant(('set hbdev "port3" 50 "port4" 50', 'set hbdev "port3" ' + "9" * 5000)),
     "hbdev", "out of range 0-512"),
    ("5000-digit-policy-id", variant(("    edit 2\n", "    edit " + "2" * 5000 + "\n")),
     "edit", "out of range"),
    ("non-ascii-group-name", variant(('set group-name "lab"', 'set group-name "läb"')),
     "group-name", "printable ASCII"),
    ("nul-in-group-name", variant(('set group-name "lab"', 'set group-name "la\x00b"')),
     "group-name", "printable ASCII"),
    ("long-hostname-without-lab-serial",
     variant(NO_SERIAL, ('set hostname "FGT1"', 'set hostname "FGT1-BRANCH-OFFICE-A"')),
     "lab-serial", "set lab-serial"),
    ("non-ascii-lab-serial",
     variant(('set lab-serial "FGVM01TM00000001"', 'set lab-serial "FGVM01TM0000000é"')),
     "lab-serial", "printable ASCII"),
]

GOOD = [
    ("hostname-stands-for-the-serial",
     variant(NO_SERIAL, ('set hostname "FGT1"', 'set hostname "FGT1-BRANCH-OFF1"')),
     "FGT1-BRANCH-OFF1"),
    ("35-char-hostname-with-lab-serial",
     variant(('set hostname "FGT1"', 'set hostname "' + "F" * 35 + '"')), "FGVM01TM00000001"),
    ("32-char-group-name-with-spaces",
     variant(('set group-name "lab"', 'set group-name "lab cluster ~ branch-office 1234"')),
     "FGVM01TM00000001"),
    ("non-ascii-description",
     variant(('set description "HA heartbeat 1"', 'set description "Herzschlag über port3"')),
     "FGVM01TM00000001"),
]


@pytest.mark.parametrize(("case", "text", "key", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_file_is_refused_alike_by_check_config_and_fgcpd(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, text: str, key: str,
        reason: str) -> None:
    path = tmp_path / f"{case}.conf"
    path.write_text(text, encoding="utf-8")
    assert check_config.main([str(path)]) == 1
    checked = capsys.readouterr().err
    assert fgcpd_main(["--config", str(path), "--rundir", str(tmp_path)]) == 2
    daemon = capsys.readouterr().err
    for out in (checked, daemon):
        assert "Traceback" not in out
        assert re.search(rf"{re.escape(str(path))}:[1-9][0-9]*: key '{key}': .*{reason}", out), out
    assert checked.removeprefix("error: ") == daemon.removeprefix("fgcpd: ")


def _start_ha(path: Path) -> tuple[list[bytes], SyncMember]:
    """fgcpd's start of HA and sync with fakes: returns the first heartbeats sent."""
    cfg = load_config(path)
    socks: dict[str, socket.socket] = {}
    peers: list[socket.socket] = []
    for port in PORTS:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        socks[port] = a
        peers.append(b)
        b.setblocking(False)
    links = FakeLinks({p: bytes([2, 0, 0, 0, 1, i]) for i, p in enumerate(PORTS)})
    daemon = FakeDaemon(cfg)
    ha = HaMember(links=links, opener=lambda ifn: socks[ifn], bring_up=False)
    ha.open(daemon)  # type: ignore[arg-type]
    ha.on_tick(time.time())
    wires = {p: Wire(random.Random(1)) for p in PORTS}
    sync = SyncMember(link_factory=lambda n: FakeLink(n, links.mac(n), wires[n]), tune_gc=False)
    sync.open(daemon)  # type: ignore[arg-type]
    frames = []
    for b in peers:
        try:
            while True:
                frames.append(b.recv(65535))
        except BlockingIOError:
            pass
    ha.close()
    sync.close()
    for s in peers:
        s.close()
    return frames, sync


@pytest.mark.parametrize(("case", "text", "serial"), GOOD, ids=[g[0] for g in GOOD])
def test_accepted_file_starts_ha_with_its_serial(tmp_path: Path, case: str, text: str,
                                                  serial: str) -> None:
    path = tmp_path / f"{case}.conf"
    path.write_text(text, encoding="utf-8")
    assert check_config.main([str(path)]) == 0
    cfg = load_config(path)
    assert cfg.member_serial == serial  # no lab-serial: the hostname, never "" in HA mode
    frames, sync = _start_ha(path)
    assert frames, "HA sent no heartbeat"
    assert sync.enabled and sync.serial == serial, "session sync is off"
    info = decode_heartbeat(frames[0], cfg.ha.password, cfg.ha.group_id, cfg.ha.group_name)
    assert info.serial == serial and info.group_name == cfg.ha.group_name


@pytest.mark.parametrize("serial", ["FGVM01TM000000012", "FGVM01TM0000000é", "FG VM"])
def test_bad_serial_on_the_command_line_is_refused(tmp_path: Path, serial: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fgt1.conf"
    path.write_text(BASE)
    assert fgcpd_main(["--config", str(path), "--rundir", str(tmp_path), "--serial", serial]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgcpd: --serial: ") and "Traceback" not in err


# -- issue 13 item 8: the file's bytes (load_config decodes them itself) -----------------------

def test_non_utf8_file_is_refused_with_file_and_line_by_check_config_and_fgcpd(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Latin-1 'ü' (0xfc) in a description: the error names file, line and column."""
    text = variant(('set description "HA heartbeat 1"', 'set description "Herzschlag \x00"'))
    line = text[:text.index("\x00")].count("\n") + 1
    col = len(text[:text.index("\x00")].rsplit("\n", 1)[-1]) + 1
    path = tmp_path / "latin1.conf"
    path.write_bytes(text.encode().replace(b"\x00", b"\xfc"))
    assert check_config.main([str(path)]) == 1
    checked = capsys.readouterr().err
    assert fgcpd_main(["--config", str(path), "--rundir", str(tmp_path)]) == 2
    daemon = capsys.readouterr().err
    for out in (checked, daemon):
        assert "Traceback" not in out
        assert f"{path}:{line}: not UTF-8: byte 0xfc at column {col}" in out, out
    assert checked.removeprefix("error: ") == daemon.removeprefix("fgcpd: ")


def test_bom_and_crlf_file_is_accepted_and_starts_ha(tmp_path: Path) -> None:
    path = tmp_path / "bom.conf"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.replace("\n", "\r\n").encode())
    assert check_config.main([str(path)]) == 0
    cfg = load_config(path)
    assert cfg.hostname == "FGT1" and cfg.member_serial == "FGVM01TM00000001"
    frames, sync = _start_ha(path)
    assert frames and sync.enabled
    assert decode_heartbeat(frames[0], cfg.ha.password, cfg.ha.group_id,
                            cfg.ha.group_name).serial == "FGVM01TM00000001"


def test_lone_carriage_return_in_a_comment_does_not_end_the_line(tmp_path: Path) -> None:
    """Only \\n ends a line: the file is not read with universal newlines."""
    path = tmp_path / "cr.conf"
    path.write_bytes(variant(("set hostname \"FGT1\"",
                              "set hostname \"FGT1\"  # old\rset hostname \"x\"")).encode())
    assert load_config(path).hostname == "FGT1"
