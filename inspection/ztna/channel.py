"""ZTNA data channel: AEAD frames keyed by the mutual-TLS exporter, nonce = stream offset,
so the whole channel state (keys, two offsets, a bounded partial frame) syncs in 109+ bytes.

Pure: ``seal`` bytes -> frames, ``open`` frames (fed in any pieces) -> bytes; never raises on
bad input (``Opened.error``). The frame layout is in docs/ztna.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "EXPORTER_LABEL",
    "EXPORT_LEN",
    "MAX_PAYLOAD",
    "Channel",
    "ChannelKeys",
    "ChannelStateError",
    "Opened",
]

EXPORTER_LABEL = b"EXPORTER-fgcp-lab-ztna"  # RFC 8446 section 7.5 exporter label
KEY_LEN = 32  # AES-256-GCM
IV_LEN = 12
TAG_LEN = 16
EXPORT_LEN = 2 * (KEY_LEN + IV_LEN)  # c2s key, s2c key, c2s iv, s2c iv
MAX_PAYLOAD = 16384  # payload bytes per frame
T_DATA = 0
T_CLOSE = 1
_HDR = struct.Struct("!H")  # sealed length: 1 type byte + payload + 16 tag bytes
MIN_SEALED = 1 + TAG_LEN
MAX_SEALED = 1 + MAX_PAYLOAD + TAG_LEN
ROLES = ("client", "server")
STATE_VERSION = 1
_STATE = struct.Struct(f"!BBB{KEY_LEN}s{IV_LEN}s{KEY_LEN}s{IV_LEN}sQQH")


class ChannelStateError(Exception):
    """Serialized channel state that cannot be restored (sync input)."""


@dataclass(frozen=True)
class ChannelKeys:
    """Per-direction AES-256-GCM keys and IVs (client->server, server->client)."""

    c2s_key: bytes
    c2s_iv: bytes
    s2c_key: bytes
    s2c_iv: bytes

    @classmethod
    def from_exporter(cls, material: bytes) -> ChannelKeys:
        """Split ``EXPORT_LEN`` bytes of TLS exporter output into the four values."""
        if len(material) != EXPORT_LEN:
            raise ValueError(f"exporter material must be {EXPORT_LEN} bytes")
        k = KEY_LEN
        return cls(material[:k], material[2 * k:2 * k + IV_LEN], material[k:2 * k],
                   material[2 * k + IV_LEN:])


@dataclass(frozen=True)
class Opened:
    """What ``Channel.open`` produced: plaintext, peer end of stream, or the error."""

    data: bytes = b""
    closed: bool = False
    error: str | None = None


def _nonce(iv: bytes, offset: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ offset).to_bytes(IV_LEN, "big")


class Channel:
    """One end of the data channel. ``role`` is "client" or "server" (which keys send)."""

    def __init__(self, keys: ChannelKeys, role: str, tx_offset: int = 0, rx_offset: int = 0,
                 partial: bytes = b"", tx_closed: bool = False, rx_closed: bool = False) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.keys = keys
        self.role = role
        client = role == "client"
        self._tx = AESGCM(keys.c2s_key if client else keys.s2c_key)
        self._tx_iv = keys.c2s_iv if client else keys.s2c_iv
        self._rx = AESGCM(keys.s2c_key if client else keys.c2s_key)
        self._rx_iv = keys.s2c_iv if client else keys.c2s_iv
        self.tx_offset = tx_offset  # payload bytes sealed so far (the next frame's nonce)
        self.rx_offset = rx_offset  # payload bytes opened so far
        self.tx_closed = tx_closed
        self.rx_closed = rx_closed
        self.error: str | None = None
        self._buf = bytearray(partial)
        self.frames_in = 0
        self.frames_out = 0

    # --- sending -----------------------------------------------------------------------
    def _frame(self, ftype: int, payload: bytes | memoryview) -> bytes:
        hdr = _HDR.pack(1 + len(payload) + TAG_LEN)
        sealed = self._tx.encrypt(_nonce(self._tx_iv, self.tx_offset),
                                  bytes([ftype]) + bytes(payload), hdr)
        self.tx_offset += len(payload)
        self.frames_out += 1
        return hdr + sealed

    def seal(self, data: bytes) -> bytes:
        """Frames carrying ``data`` (empty in, empty out). Raises ValueError after close."""
        if self.tx_closed:
            raise ValueError("channel closed for sending")
        view = memoryview(data)
        return b"".join(self._frame(T_DATA, view[i:i + MAX_PAYLOAD])
                        for i in range(0, len(view), MAX_PAYLOAD))

    def seal_close(self) -> bytes:
        """The end-of-stream frame (the tunnel's FIN); nothing can be sealed after it."""
        if self.tx_closed:
            return b""
        frame = self._frame(T_CLOSE, b"")
        self.tx_closed = True
        return frame

    # --- receiving ---------------------------------------------------------------------
    def _fail(self, why: str) -> Opened:
        self.error = why
        self._buf.clear()
        return Opened(error=why)

    def open(self, data: bytes) -> Opened:
        """Feed received bytes (any split); returns the plaintext of every complete frame."""
        if self.error:
            return Opened(error=self.error)
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        closed = False
        while len(buf) - pos >= 2:
            if self.rx_closed:
                return self._fail(f"data after end of stream at offset {self.rx_offset}")
            (n,) = _HDR.unpack_from(buf, pos)
            if n < MIN_SEALED or n > MAX_SEALED:
                return self._fail(f"bad frame length {n} at offset {self.rx_offset}")
            if len(buf) - pos - 2 < n:
                break
            try:
                plain = self._rx.decrypt(_nonce(self._rx_iv, self.rx_offset),
                                         bytes(buf[pos + 2:pos + 2 + n]),
                                         bytes(buf[pos:pos + 2]))
            except InvalidTag:
                return self._fail(f"frame authentication failed at offset {self.rx_offset}")
            pos += 2 + n
            self.frames_in += 1
            if plain[0] == T_DATA and len(plain) > 1:
                out.append(plain[1:])
                self.rx_offset += len(plain) - 1
            elif plain[0] == T_CLOSE and len(plain) == 1:
                self.rx_closed = closed = True
            else:
                return self._fail(f"bad frame type {plain[0]} at offset {self.rx_offset}")
        del buf[:pos]
        return Opened(b"".join(out), closed)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held (at most 2 + MAX_SEALED)."""
        return len(self._buf)

    # --- session sync ------------------------------------------------------------------
    def export_state(self) -> bytes:
        """version, role, flags, keys and IVs, tx/rx offsets (u64), partial frame (u16 len)."""
        if self.error:
            raise ChannelStateError(f"a failed channel is not synced ({self.error})")
        k = self.keys
        flags = (1 if self.tx_closed else 0) | (2 if self.rx_closed else 0)
        return _STATE.pack(STATE_VERSION, ROLES.index(self.role), flags, k.c2s_key, k.c2s_iv,
                           k.s2c_key, k.s2c_iv, self.tx_offset, self.rx_offset,
                           len(self._buf)) + bytes(self._buf)

    @classmethod
    def from_state(cls, data: bytes) -> Channel:
        """Restore a channel from ``export_state`` bytes; ChannelStateError when malformed."""
        if len(data) < _STATE.size:
            raise ChannelStateError(f"channel state too short ({len(data)} bytes)")
        ver, role, flags, ck, civ, sk, siv, tx, rx, plen = _STATE.unpack_from(data)
        if ver != STATE_VERSION:
            raise ChannelStateError(f"unknown channel state version {ver}")
        if role >= len(ROLES) or flags & ~3:
            raise ChannelStateError("bad role or flags in channel state")
        if plen > 2 + MAX_SEALED or len(data) != _STATE.size + plen:
            raise ChannelStateError("bad partial-frame length in channel state")
        return cls(ChannelKeys(ck, civ, sk, siv), ROLES[role], tx, rx,
                   data[_STATE.size:], bool(flags & 1), bool(flags & 2))
