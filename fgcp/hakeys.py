"""Keys of the HA frames: HKDF-SHA256 of the HA password and the HMAC-SHA256 trailer.

One derivation per frame kind (heartbeat 0x8890, session sync 0x8892), each with its
own salt so a heartbeat MAC never validates a sync frame; both use ``cryptography``.
"""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MAC_LEN", "derive_hb_key", "derive_sync_key", "mac", "mac_ok"]

MAC_LEN = 32  # HMAC-SHA256 trailer
HB_SALT = b"fgcp-lab heartbeat v1"
SYNC_SALT = b"fgcp-lab session-sync v1"


def _hkdf(password: str, salt: bytes, info: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info)
    return hkdf.derive(password.encode("utf-8"))


def derive_hb_key(password: str, group_id: int) -> bytes:
    """The 32-byte heartbeat HMAC key for ``password`` in HA group ``group_id``.

    info = group-id u16 little-endian (the byte order of the heartbeat header).
    """
    return _hkdf(password, HB_SALT, struct.pack("<H", group_id & 0xFFFF))


def derive_sync_key(password: str, group_id: int) -> bytes | None:
    """32-byte session-sync HMAC key of the HA ``password``; None without password.

    info = group-id u16 big-endian (the byte order of the sync header).
    """
    if not password:
        return None
    return _hkdf(password, SYNC_SALT, struct.pack("!H", group_id & 0xFFFF))


def mac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 trailer of ``data``."""
    return hmac.digest(key, data, "sha256")


def mac_ok(key: bytes, data: bytes, trailer: bytes) -> bool:
    """``trailer`` is the HMAC-SHA256 of ``data`` (constant-time comparison)."""
    return hmac.compare_digest(mac(key, data), trailer)
