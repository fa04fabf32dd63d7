"""AF_PACKET ports (fgcp.ring): layouts and checks that need no root.

The frames crossing a veth pair between two namespaces are tested in
tests/mininet/test_ring_netns.py (root).
"""

from __future__ import annotations

import pytest

from fgcp import ring


def test_open_port_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown port kind"):
        ring.open_port("lo", 0, kind="dpdk")


def test_interface_mac_of_missing_interface_is_a_port_error() -> None:
    with pytest.raises(ring.PortError, match="no such interface"):
        ring.interface_mac("nonexistent-if0")


def test_tpacket2_header_layout_matches_the_kernel() -> None:
    # struct tpacket2_hdr: 4+4+4+2+2+4+4+2+2 (+4 padding) bytes
    assert ring._HDR.size == 28
    assert ring._TP2_HDRLEN == 52  # TPACKET_ALIGN(32) + sizeof(sockaddr_ll)
    assert ring._TX_DATA_OFF == 32


def test_vlan_tag_is_reinserted_after_the_macs() -> None:
    frame = bytearray(bytes(6) + b"\x02" * 6 + b"\x08\x00" + b"payload")
    tagged = ring._reinsert_vlan(frame, 0x2064, 0x8100)
    assert tagged[12:16] == b"\x81\x00\x20\x64"
    assert tagged[16:18] == b"\x08\x00"
    assert len(tagged) == len(frame) + 4
