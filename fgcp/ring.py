"""AF_PACKET ports of a member: PACKET_MMAP (TPACKET_V2) rx/tx rings, batched.

The only per-packet I/O of the emulator; ``PlainPort`` (recv_into/send) is a
fallback with the same API, kept for comparison benchmarks.
"""

from __future__ import annotations

import mmap
import socket
import struct
from typing import Self

from fgcp.packetsock import (
    ETH_P_ALL,
    PACKET_OUTGOING,
    SO_RCVBUFFORCE,
    SOL_PACKET,
    PortError,
    interface_mac,
    open_packet_socket,
)

__all__ = ["PlainPort", "PortError", "RingPort", "interface_mac", "open_port"]

# <linux/if_packet.h>: the ring options (the shared constants are in fgcp.packetsock).
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_QDISC_BYPASS = 20
TPACKET_V2 = 1

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 0x01
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 0x01
TP_STATUS_WRONG_FORMAT = 0x04

# struct tpacket2_hdr is 32 bytes (TPACKET_ALIGN'ed); struct sockaddr_ll follows.
_HDR = struct.Struct("<IIIHHIIHH")  # status len snaplen mac net sec nsec vlan_tci vlan_tpid
_TP2_HDRLEN = 32 + 20  # TPACKET2_HDRLEN
_TX_DATA_OFF = _TP2_HDRLEN - 20  # kernel: tp_hdrlen - sizeof(struct sockaddr_ll)
_SLL_PKTTYPE_OFF = 32 + 10
_STATUS_LEN = struct.Struct("<II")  # tp_status, tp_len
_LEN_SNAP_MAC = struct.Struct("<IIH")  # tp_len, tp_snaplen, tp_mac (at offset 4)
_VLAN = struct.Struct("<HH")  # tp_vlan_tci, tp_vlan_tpid (at offset 24)
_ZERO32 = b"\0\0\0\0"
_ETH_P_8021Q = 0x8100


def _open_socket(ifname: str) -> tuple[socket.socket, int, bytes]:
    """An unbound AF_PACKET socket for ``ifname`` (own frames ignored), its ifindex and MAC."""
    # Protocol 0 until bind: the socket receives nothing before the rings exist.
    sock = open_packet_socket(ifname, 0, bind=False)
    try:
        ifindex = socket.if_nametoindex(ifname)
    except OSError as exc:
        sock.close()
        raise PortError(f"no such interface {ifname!r}") from exc
    try:
        mac = interface_mac(ifname, sock)
    except PortError:
        sock.close()
        raise
    return sock, ifindex, mac


def _common_options(sock: socket.socket, ifindex: int) -> None:
    sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)


def _reinsert_vlan(frame: bytearray, tci: int, tpid: int) -> bytearray:
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


class _Stats:
    """Counters shared by both port kinds (per-instance, not global)."""

    def __init__(self) -> None:
        self.rx = 0
        self.tx = 0
        self.tx_ring_full = 0
        self.tx_errors = 0
        self.rx_truncated = 0
        self.rx_ring_drops = 0
        self.rx_kernel_packets = 0


class RingPort:
    """One interface on a TPACKET_V2 rx ring + tx ring (non-blocking).

    ``recv_batch`` copies user-owned frames out of the rx ring and returns the
    slots to the kernel; ``send`` writes a frame into the next tx slot and
    ``flush`` kicks the kernel once for all frames queued since the last flush.
    """

    kind = "ring"

    def __init__(
        self,
        ifname: str,
        index: int,
        *,
        frame_size: int = 2048,
        block_size: int = 1 << 16,
        rx_blocks: int = 64,
        tx_blocks: int = 16,
    ) -> None:
        self.ifname = ifname
        self.index = index
        self._stats = _Stats()
        sock, ifindex, self.mac = _open_socket(ifname)
        self._sock = sock
        self._mm: mmap.mmap | None = None
        self._mv: memoryview | None = None
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
            # Malformed tx frames are marked and skipped instead of stalling the
            # ring (must precede the rings, like the version).
            sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
            per_block = block_size // frame_size
            self._rx_n = per_block * rx_blocks
            self._tx_n = per_block * tx_blocks
            sock.setsockopt(
                SOL_PACKET,
                PACKET_RX_RING,
                struct.pack("IIII", block_size, rx_blocks, frame_size, self._rx_n),
            )
            sock.setsockopt(
                SOL_PACKET,
                PACKET_TX_RING,
                struct.pack("IIII", block_size, tx_blocks, frame_size, self._tx_n),
            )
            rx_bytes = block_size * rx_blocks
            size = rx_bytes + block_size * tx_blocks
            self._mm = mmap.mmap(
                sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            self._mv = memoryview(self._mm)
            # Frames never straddle blocks: offsets per slot, computed once.
            self._rx_off = [
                b * block_size + f * frame_size
                for b in range(rx_blocks)
                for f in range(per_block)
            ]
            self._tx_off = [
                rx_bytes + b * block_size + f * frame_size
                for b in range(tx_blocks)
                for f in range(per_block)
            ]
            self._tx_max = frame_size - _TX_DATA_OFF
            self._rx_i = 0
            self._tx_i = 0
            self._tx_pending = 0
            _common_options(sock, ifindex)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
        except OSError as exc:
            self.close()
            raise PortError(f"{ifname}: cannot set up PACKET_MMAP rings: {exc}") from exc

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_batch(self, max_n: int) -> list[bytearray]:
        """Up to ``max_n`` received frames (copies), oldest first; [] if none."""
        mv = self._mv
        assert mv is not None, "port closed"
        out: list[bytearray] = []
        offs = self._rx_off
        n = self._rx_n
        i = self._rx_i
        unpack = _LEN_SNAP_MAC.unpack_from
        append = out.append
        st = self._stats
        while len(out) < max_n:
            off = offs[i]
            status = mv[off]  # the status flags used here are all in the low byte
            if not status & TP_STATUS_USER:
                break
            length, snaplen, mac = unpack(mv, off + 4)
            if mv[off + _SLL_PKTTYPE_OFF] != PACKET_OUTGOING:
                if snaplen < length:
                    st.rx_truncated += 1
                else:
                    start = off + mac
                    frame = bytearray(mv[start : start + snaplen])
                    if status & TP_STATUS_VLAN_VALID:
                        tci, tpid = _VLAN.unpack_from(mv, off + 24)
                        if tci or tpid:
                            if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
                                tpid = _ETH_P_8021Q
                            frame = _reinsert_vlan(frame, tci, tpid)
                    append(frame)
            mv[off : off + 4] = _ZERO32  # back to TP_STATUS_KERNEL
            i += 1
            if i == n:
                i = 0
        self._rx_i = i
        st.rx += len(out)
        return out

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Queue ``frame`` in the tx ring; False (counted) if the ring is full."""
        mv = self._mv
        assert mv is not None, "port closed"
        length = len(frame)
        if length > self._tx_max:
            self._stats.tx_errors += 1
            return False
        i = self._tx_i
        off = self._tx_off[i]
        status = mv[off]  # every tx status value fits the low byte
        if status != TP_STATUS_AVAILABLE:
            if status != TP_STATUS_WRONG_FORMAT and self._tx_pending:
                self.flush()
                status = mv[off]
            if status == TP_STATUS_WRONG_FORMAT:
                self._stats.tx_errors += 1
            elif status != TP_STATUS_AVAILABLE:
                self._stats.tx_ring_full += 1
                return False
        data = off + _TX_DATA_OFF
        mv[data : data + length] = frame
        # tp_status and tp_len in one store: the kernel reads the slot only
        # when flush() calls send(), never concurrently with this write.
        _STATUS_LEN.pack_into(mv, off, TP_STATUS_SEND_REQUEST, length)
        i += 1
        self._tx_i = 0 if i == self._tx_n else i
        self._tx_pending += 1
        return True

    def flush(self) -> None:
        """Ask the kernel to transmit every queued tx slot (one syscall)."""
        if not self._tx_pending:
            return
        pending = self._tx_pending
        self._tx_pending = 0
        try:
            self._sock.send(b"", socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass  # the kernel keeps the slots; they go out on the next kick
        except OSError:
            # often an earlier error reported now (ENETDOWN after a link flap),
            # which reading it cleared: the slots are still queued, kick again
            try:
                self._sock.send(b"", socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError:
                self._stats.tx_errors += pending
                return
        self._stats.tx += pending

    def counters(self) -> dict[str, int]:
        """rx, tx, tx_ring_full, tx_errors, rx_truncated, rx_ring_drops (cumulative)."""
        _read_kernel_stats(self._sock, self._stats)
        return _counters(self._stats)

    def close(self) -> None:
        if self._mv is not None:
            self._mv.release()
            self._mv = None
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PlainPort:
    """Same API as ``RingPort`` with one recv_into/send syscall per frame."""

    kind = "plain"

    def __init__(
        self, ifname: str, index: int, *, bufsize: int = 65536, rcvbuf: int = 4 << 20
    ) -> None:
        self.ifname = ifname
        self.index = index
        self._stats = _Stats()
        sock, ifindex, self.mac = _open_socket(ifname)
        self._sock = sock
        try:
            _common_options(sock, ifindex)
            try:  # as big as the rx ring (root may exceed net.core.rmem_max)
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise PortError(f"{ifname}: cannot set up AF_PACKET socket: {exc}") from exc
        self._buf = bytearray(bufsize)
        self._bufmv = memoryview(self._buf)

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_batch(self, max_n: int) -> list[bytearray]:
        out: list[bytearray] = []
        recv_into = self._sock.recv_into
        buf = self._bufmv
        while len(out) < max_n:
            try:
                n = recv_into(buf)
            except BlockingIOError:
                break
            out.append(bytearray(buf[:n]))
        self._stats.rx += len(out)
        return out

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        try:
            self._sock.send(frame)
        except BlockingIOError:
            self._stats.tx_ring_full += 1
            return False
        except OSError:
            self._stats.tx_errors += 1
            return False
        self._stats.tx += 1
        return True

    def flush(self) -> None:
        """Nothing to do: every send is a syscall."""

    def counters(self) -> dict[str, int]:
        _read_kernel_stats(self._sock, self._stats)
        return _counters(self._stats)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_kernel_stats(sock: socket.socket, st: _Stats) -> None:
    # struct tpacket_stats {tp_packets, tp_drops}; reading resets the kernel's copy.
    if sock.fileno() < 0:
        return
    try:
        raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    except OSError:
        return
    packets, drops = struct.unpack("II", raw)
    st.rx_kernel_packets += packets
    st.rx_ring_drops += drops


def _counters(st: _Stats) -> dict[str, int]:
    return {
        "rx": st.rx,
        "tx": st.tx,
        "tx_ring_full": st.tx_ring_full,
        "tx_errors": st.tx_errors,
        "rx_truncated": st.rx_truncated,
        "rx_ring_drops": st.rx_ring_drops,
    }


def open_port(ifname: str, index: int, kind: str = "ring") -> RingPort | PlainPort:
    """Open ``ifname`` as a ``RingPort`` (kind "ring") or ``PlainPort`` ("plain")."""
    if kind == "ring":
        return RingPort(ifname, index)
    if kind == "plain":
        return PlainPort(ifname, index)
    raise ValueError(f"unknown port kind {kind!r} (ring | plain)")
