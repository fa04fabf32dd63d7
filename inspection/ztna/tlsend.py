"""Mutual-TLS 1.3 endpoints over memory BIOs (pyopenssl): bytes in, bytes out, no socket,
so a userspace-TCP proxy (fgcpd) or a kernel socket (refproxy, client) can drive them.

Whole TLS records only are fed to OpenSSL (``RecordSplitter``), so the bytes after the last
TLS message stay available for the AEAD data channel (``take_rest``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from inspection.ztna.channel import EXPORT_LEN, EXPORTER_LABEL, ChannelKeys
from inspection.ztna.verify import cert_der_of

__all__ = [
    "RecordSplitter",
    "TlsEndpoint",
    "TlsStep",
    "client_context",
    "server_context",
]

_REC = struct.Struct("!BHH")  # content type, legacy version, length
TLS_CONTENT_TYPES = frozenset((20, 21, 22, 23))
MAX_RECORD = 16384 + 256  # TLS 1.3 TLSCiphertext bound (RFC 8446 section 5.2)
_BIO_CHUNK = 65536


class RecordSplitter:
    """Cuts a TLS byte stream into whole records; garbage is an error, never a crash."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_record(self) -> bytes | None:
        """The next complete record, or None (incomplete, or ``error`` set)."""
        if self.error or len(self._buf) < _REC.size:
            return None
        ctype, ver, n = _REC.unpack_from(self._buf)
        if ctype not in TLS_CONTENT_TYPES or ver >> 8 != 3 or n > MAX_RECORD:
            self.error = f"not a TLS record (type {ctype}, version {ver:#06x}, length {n})"
            self._buf.clear()
            return None
        if len(self._buf) < _REC.size + n:
            return None
        rec = bytes(self._buf[:_REC.size + n])
        del self._buf[:_REC.size + n]
        return rec

    def take_rest(self) -> bytes:
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def _load(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, object]:
    return (x509.load_pem_x509_certificate(cert_pem),
            serialization.load_pem_private_key(key_pem, None))


def server_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes) -> SSL.Context:
    """TLS 1.3 only; asks for a client certificate issued by ``client_ca_pem`` but lets the
    handshake finish without one or with a bad one: inspection.ztna.verify decides and the
    proxy answers the reason inside TLS."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    cert, key = _load(cert_pem, key_pem)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)  # type: ignore[arg-type]
    ctx.add_client_ca(x509.load_pem_x509_certificate(client_ca_pem))
    ctx.set_verify(SSL.VERIFY_PEER, lambda conn, c, errno, depth, ok: True)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    return ctx


def client_context(cert_pem: bytes | None, key_pem: bytes | None,
                   server_ca_pem: bytes) -> SSL.Context:
    """TLS 1.3 only; presents the device certificate (if any) and checks that the proxy's
    certificate chains to ``server_ca_pem``."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    if cert_pem and key_pem:
        cert, key = _load(cert_pem, key_pem)
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)  # type: ignore[arg-type]
    store = ctx.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(x509.load_pem_x509_certificate(server_ca_pem)))
    ctx.set_verify(SSL.VERIFY_PEER)
    return ctx


@dataclass
class TlsStep:
    """Result of feeding bytes: TLS bytes to send back, application bytes, state."""

    out: bytes = b""
    app: bytes = b""
    handshake_done: bool = False
    error: str | None = None


class TlsEndpoint:
    """One side of a TLS 1.3 connection on memory BIOs."""

    def __init__(self, ctx: SSL.Context, server: bool) -> None:
        self.conn = SSL.Connection(ctx, None)
        if server:
            self.conn.set_accept_state()
        else:
            self.conn.set_connect_state()
        self.server = server
        self.splitter = RecordSplitter()
        self.handshake_done = False
        self.error: str | None = None
        self._app = bytearray()

    def _drain(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.conn.bio_read(_BIO_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _advance(self) -> None:
        if not self.handshake_done:
            try:
                self.conn.do_handshake()
                self.handshake_done = True
            except SSL.WantReadError:
                return
        while True:
            try:
                data = self.conn.recv(_BIO_CHUNK)
            except SSL.WantReadError:
                return
            if not data:
                return
            self._app += data

    def start(self) -> bytes:
        """The client's first flight (ClientHello); empty for a server."""
        if not self.server:
            self._step()
        return self._drain()

    def _step(self) -> None:
        try:
            self._advance()
        except SSL.ZeroReturnError:
            self.error = "peer closed the TLS connection"
        except SSL.Error as e:
            self.error = f"TLS error: {_ssl_reason(e)}"

    def feed(self, data: bytes, until: Callable[[bytes], bool] | None = None) -> TlsStep:
        """Feed received bytes record by record; stop as soon as ``until(app bytes so far)``
        is true, leaving the later bytes for ``take_rest``."""
        if self.error:
            return TlsStep(error=self.error)
        self.splitter.feed(data)
        while not self.error:
            if until is not None and self._app and until(bytes(self._app)):
                break
            rec = self.splitter.next_record()
            if rec is None:
                if self.splitter.error:
                    self.error = self.splitter.error
                break
            self.conn.bio_write(rec)
            self._step()
        out = b"" if self.error else self._drain()
        app = bytes(self._app)
        self._app.clear()
        return TlsStep(out, app, self.handshake_done, self.error)

    def send(self, app: bytes) -> bytes:
        """TLS records carrying ``app`` (after the handshake; empty after an error)."""
        if self.error:
            return b""
        try:
            self.conn.sendall(app)
        except SSL.Error as e:
            self.error = f"TLS error: {_ssl_reason(e)}"
            return b""
        return self._drain()

    def take_rest(self) -> bytes:
        """Bytes received after the last record fed to OpenSSL (the data channel's start)."""
        return self.splitter.take_rest()

    def peer_cert_der(self) -> bytes | None:
        cert = self.conn.get_peer_certificate(as_cryptography=True)
        return cert_der_of(cert) if cert is not None else None

    def channel_keys(self) -> ChannelKeys:
        """Data-channel keys from the TLS exporter (equal on both sides of one handshake)."""
        return ChannelKeys.from_exporter(
            self.conn.export_keying_material(EXPORTER_LABEL, EXPORT_LEN, None))

    def version(self) -> str:
        return self.conn.get_protocol_version_name()


def _ssl_reason(e: SSL.Error) -> str:
    try:
        return ", ".join(str(x[2]) for x in e.args[0]) or repr(e)
    except (IndexError, TypeError):
        return repr(e)
