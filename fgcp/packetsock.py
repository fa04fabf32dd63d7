"""AF_PACKET sockets and link state of a member's interfaces: the one definition of each.

``open_packet_socket`` opens every AF_PACKET socket of the member (the data-plane
rings of fgcp.ring, the heartbeat sockets of fgcp.hamember, the session-sync links of
fgcp.syncmember); ``link_up`` is the one way to read carrier and ``interface_mac``
the one way to read a MAC address.

Carrier comes from sysfs (``/sys/class/net/<if>/carrier``, the driver's carrier at
once; an admin-down link reads as down): the ioctl alternative, IFF_RUNNING of
SIOCGIFFLAGS, follows the operstate that linkwatch updates up to a second late,
and IFF_LOWER_UP does not fit the ioctl's 16-bit flags.  sysfs shows the network
namespace it was mounted in: each member runs in a namespace with its own sysfs
(Mininet's mnexec and ``ip netns exec`` mount one).  The MAC is read with an ioctl
on a socket, right in any namespace (also in a thread after setns()).
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
from pathlib import Path

__all__ = [
    "ETH_P_ALL",
    "PACKET_IGNORE_OUTGOING",
    "PACKET_OUTGOING",
    "SOL_PACKET",
    "PortError",
    "SystemLinks",
    "interface_mac",
    "link_up",
    "open_packet_socket",
]

# <linux/if_packet.h> / <linux/if_ether.h> / <linux/sockios.h>: Python's socket module
# lacks these.
SOL_PACKET = 263
ETH_P_ALL = 0x0003
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent
SO_RCVBUFFORCE = 33
SIOCGIFHWADDR = 0x8927
SYSFS_NET = Path("/sys/class/net")


class PortError(OSError):
    """An AF_PACKET socket could not be opened or configured, or no such interface."""


def open_packet_socket(
    ifname: str,
    ethertype: int = 0,
    *,
    bind: bool = True,
    ignore_outgoing: bool = True,
    rcvbuf: int | None = None,
) -> socket.socket:
    """A non-blocking AF_PACKET socket for ``ethertype`` frames of ``ifname``.

    ``ethertype`` 0 receives nothing until the socket is bound (fgcp.ring binds to
    ETH_P_ALL once its rings exist: ``bind=False``).  ``ignore_outgoing``: the host's
    own transmissions are not looped back (best effort: older kernels lack it).
    ``rcvbuf``: receive buffer in bytes (SO_RCVBUFFORCE as root, else SO_RCVBUF).
    """
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    except OSError as exc:
        raise PortError(f"cannot open AF_PACKET socket (root needed?): {exc}") from exc
    try:
        if ignore_outgoing:
            with contextlib.suppress(OSError):
                s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        if rcvbuf is not None:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if bind:
            s.bind((ifname, ethertype))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def interface_mac(ifname: str, sock: socket.socket | None = None) -> bytes:
    """The MAC address of ``ifname`` (6 bytes) in the network namespace of ``sock``
    (SIOCGIFHWADDR; a temporary socket of the caller's namespace when None)."""
    own = sock is None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if sock is None else sock
    try:
        res = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    except OSError as exc:
        raise PortError(f"no such interface {ifname!r}: {exc}") from exc
    finally:
        if own:
            s.close()
    return bytes(res[18:24])


def link_up(ifname: str, sysfs: Path = SYSFS_NET) -> bool:
    """True when ``ifname`` has carrier; admin down or a missing interface reads as down."""
    try:
        return (sysfs / ifname / "carrier").read_bytes().strip() == b"1"
    except OSError:  # EINVAL while admin down, ENOENT when missing
        return False


class SystemLinks:
    """The interfaces of the calling namespace (HaMember's default; tests pass a fake)."""

    def exists(self, ifname: str) -> bool:
        try:
            socket.if_nametoindex(ifname)
        except OSError:
            return False
        return True

    def carrier(self, ifname: str) -> bool:
        return link_up(ifname)

    def mac(self, ifname: str) -> bytes:
        """The MAC address (6 zero bytes when unknown)."""
        try:
            return interface_mac(ifname)
        except PortError:
            return bytes(6)
