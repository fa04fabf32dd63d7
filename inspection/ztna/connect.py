"""ZTNA connect request and response: the two messages sent inside TLS after the mutual
handshake (client: which backend; proxy: OK or the refusal reason). Layout in docs/ztna.md.

Pure codec, big-endian; decoders return None on incomplete input and raise ConnectError
on malformed input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ST_BACKEND_FAILED",
    "ST_BAD_REQUEST",
    "ST_OK",
    "ST_REFUSED",
    "ConnectError",
    "ConnectRequest",
    "ConnectResponse",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

REQ_MAGIC = b"ZQ"
RESP_MAGIC = b"ZR"
VERSION = 1
ST_OK = 0
ST_REFUSED = 1  # device verification or proxy-policy refused the client
ST_BACKEND_FAILED = 2  # the backend did not accept the connection
ST_BAD_REQUEST = 3  # malformed request or a destination the access-proxy does not serve
STATUS_NAMES = {ST_OK: "ok", ST_REFUSED: "refused", ST_BACKEND_FAILED: "backend failed",
                ST_BAD_REQUEST: "bad request"}
_REQ = struct.Struct("!2sBB")  # magic, version, host length; then host, port u16
_RESP = struct.Struct("!2sBBB")  # magic, version, status, reason length; then reason


class ConnectError(Exception):
    """A malformed connect request or response (says what is wrong)."""


@dataclass(frozen=True)
class ConnectRequest:
    host: str
    port: int


@dataclass(frozen=True)
class ConnectResponse:
    status: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == ST_OK


def encode_request(req: ConnectRequest) -> bytes:
    host = req.host.encode()
    if not 0 < len(host) < 256 or not 0 < req.port < 65536:
        raise ConnectError(f"bad destination {req.host!r}:{req.port}")
    return _REQ.pack(REQ_MAGIC, VERSION, len(host)) + host + struct.pack("!H", req.port)


def decode_request(data: bytes) -> tuple[ConnectRequest, int] | None:
    """(request, bytes used), or None when ``data`` holds only a prefix of one."""
    if len(data) < _REQ.size:
        return None
    magic, ver, hlen = _REQ.unpack_from(data)
    if magic != REQ_MAGIC or ver != VERSION:
        raise ConnectError("not a ZTNA connect request")
    end = _REQ.size + hlen + 2
    if len(data) < end:
        return None
    try:
        host = bytes(data[_REQ.size:end - 2]).decode("ascii")
    except UnicodeDecodeError as e:
        raise ConnectError("connect request host is not ASCII") from e
    (port,) = struct.unpack_from("!H", data, end - 2)
    if not host or port == 0:
        raise ConnectError("connect request without host or port")
    return ConnectRequest(host, port), end


def encode_response(resp: ConnectResponse) -> bytes:
    reason = resp.reason.encode()[:255]
    return _RESP.pack(RESP_MAGIC, VERSION, resp.status, len(reason)) + reason


def decode_response(data: bytes) -> tuple[ConnectResponse, int] | None:
    """(response, bytes used), or None when ``data`` holds only a prefix of one."""
    if len(data) < _RESP.size:
        return None
    magic, ver, status, rlen = _RESP.unpack_from(data)
    if magic != RESP_MAGIC or ver != VERSION or status not in STATUS_NAMES:
        raise ConnectError("not a ZTNA connect response")
    end = _RESP.size + rlen
    if len(data) < end:
        return None
    return ConnectResponse(status, bytes(data[_RESP.size:end]).decode("utf-8", "replace")), end
