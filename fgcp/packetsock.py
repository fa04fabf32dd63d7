"""AF_PACKET sockets and link state of a member's interfaces: the one definition of each.

``open_packet_socket`` opens every AF_PACKET socket of the member (the data-plane
rings of fgcp.ring, the heartbeat sockets of fgcp.hamember, the session-sync links of
fgcp.syncmember); ``link_up`` is the one way to read carrier (IFF_UP and IFF_RUNNING)
and ``interface_mac`` the one way to read a MAC address.  Both use ioctls on a
socket, not sysfs: sysfs shows the namespace it was mounted in, which is not the
calling thread's after setns().
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct

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
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927
IFF_UP = 0x1
IFF_RUNNING = 0x40


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


def _ioctl(ifname: str, request: int, req: bytes, sock: socket.socket | None) -> bytes:
    own = sock is None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if sock is None else sock
    try:
        return fcntl.ioctl(s.fileno(), request, req)
    finally:
        if own:
            s.close()


def interface_mac(ifname: str, sock: socket.socket | None = None) -> bytes:
    """The MAC address of ``ifname`` (6 bytes) in the network namespace of ``sock``."""
    try:
        res = _ioctl(ifname, SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]), sock)
    except OSError as exc:
        raise PortError(f"no such interface {ifname!r}: {exc}") from exc
    return bytes(res[18:24])


def link_up(ifname: str, sock: socket.socket | None = None) -> bool:
    """True when ``ifname`` is administratively up and has carrier (IFF_UP and
    IFF_RUNNING); a missing interface reads as down."""
    try:
        res = _ioctl(ifname, SIOCGIFFLAGS, struct.pack("16sH14x", ifname.encode()[:15], 0), sock)
    except OSError:
        return False
    flags: int = struct.unpack_from("16sH", res)[1]
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


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
