"""fgcp.packetsock without root: carrier from a fake sysfs, MAC of the loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgcp import packetsock


def test_link_up_reads_the_carrier(tmp_path: Path) -> None:
    for name, text in (("up0", "1\n"), ("down0", "0\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "carrier").write_text(text)
    (tmp_path / "admindown0").mkdir()  # the kernel refuses to read carrier (EINVAL): no file
    assert packetsock.link_up("up0", tmp_path) is True
    assert packetsock.link_up("down0", tmp_path) is False
    assert packetsock.link_up("admindown0", tmp_path) is False
    assert packetsock.link_up("missing0", tmp_path) is False


def test_interface_mac_and_existence() -> None:
    links = packetsock.SystemLinks()
    assert packetsock.interface_mac("lo") == bytes(6) and links.exists("lo")
    assert not links.exists("nosuchif0") and links.mac("nosuchif0") == bytes(6)
    with pytest.raises(packetsock.PortError):
        packetsock.interface_mac("nosuchif0")
