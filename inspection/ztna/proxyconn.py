"""One proxied ZTNA connection on the access-proxy side, as a pure state machine: client
bytes, backend events and ``now`` in; bytes to send on each leg and the decision out.

Phases: handshake (mTLS) -> request (verify, read the connect request) -> connecting (the
shell opens the backend leg) -> open (AEAD channel) -> closed. The same core serves the
kernel-socket refproxy and fgcpd's userspace TCP; ``export_state`` is the EXT_ZTNA value.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from OpenSSL import SSL

from inspection.ztna.channel import Channel, ChannelStateError
from inspection.ztna.connect import (
    ST_BACKEND_FAILED,
    ST_BAD_REQUEST,
    ST_OK,
    ST_REFUSED,
    ConnectError,
    ConnectRequest,
    ConnectResponse,
    decode_request,
    encode_request,
    encode_response,
)
from inspection.ztna.tlsend import TlsEndpoint
from inspection.ztna.verify import (
    Decision,
    DeviceStatus,
    ProxyPolicy,
    TrustAnchor,
    TrustRecord,
    TrustRecordError,
    check_certificate,
    decode_trust,
    encode_trust,
    verify_client,
)

__all__ = [
    "ConnStateError",
    "ProxyConnection",
    "ProxyOutput",
    "ProxySettings",
]

HANDSHAKE, REQUEST, CONNECTING, OPEN, CLOSED = "handshake", "request", "connecting", "open", \
    "closed"
MAX_EARLY = 65536  # channel bytes a client may send before the proxy's OK
STATE_VERSION = 1
_LEN = struct.Struct("!H")


class ConnStateError(Exception):
    """A synced connection state that cannot be restored."""


@dataclass(frozen=True)
class ProxySettings:
    """The access-proxy configuration the core needs (from config firewall access-proxy and
    proxy-policy): trust anchor, ordered policies, the backends it serves."""

    anchor: TrustAnchor
    policies: tuple[ProxyPolicy, ...]
    realservers: frozenset[tuple[str, int]] | None = None  # None: any destination


@dataclass
class ProxyOutput:
    """What the shell must do after one input."""

    to_client: bytes = b""
    to_backend: bytes = b""
    connect: ConnectRequest | None = None  # open the backend leg, then backend_result()
    close_backend: bool = False  # client ended its stream: FIN to the backend
    close_client: bool = False  # after sending to_client, close the client leg
    decision: Decision | None = None  # the verification outcome, once
    error: str | None = None  # why the connection ended abnormally (for the log)


@dataclass
class _Counters:
    verifications: int = 0
    ems_queries: int = 0
    cache_hits: int = 0


class ProxyConnection:
    """Proxy side of one client connection. ``lookup`` asks the EMS about a device;
    ``trusted`` maps a certificate fingerprint to an already verified record (synced trust:
    a hit skips the verification and the EMS query)."""

    def __init__(self, ctx: SSL.Context | None, settings: ProxySettings,
                 lookup: Callable[[str], DeviceStatus | None],
                 trusted: Mapping[bytes, TrustRecord] | None = None) -> None:
        self.settings = settings
        self.lookup = lookup
        self.trusted = trusted if trusted is not None else {}
        self.tls = TlsEndpoint(ctx, server=True) if ctx is not None else None
        self.phase = HANDSHAKE
        self.record: TrustRecord | None = None
        self.request: ConnectRequest | None = None
        self.channel: Channel | None = None
        self.counters = _Counters()
        self._req = bytearray()
        self._early = bytearray()

    # --- client leg --------------------------------------------------------------------
    def from_client(self, data: bytes, now: float) -> ProxyOutput:
        if self.phase in (HANDSHAKE, REQUEST):
            return self._tls_input(data, now)
        if self.phase == CONNECTING:
            if len(self._early) + len(data) > MAX_EARLY:
                return self._abort("too much data before the connect response")
            self._early += data
            return ProxyOutput()
        if self.phase == OPEN:
            return self._channel_input(data)
        return ProxyOutput()

    def _tls_input(self, data: bytes, now: float) -> ProxyOutput:
        assert self.tls is not None
        step = self.tls.feed(data, until=self._request_complete)
        out = ProxyOutput(to_client=step.out)
        if step.error:
            out.error = f"handshake: {step.error}" if self.phase == HANDSHAKE else step.error
            out.close_client = True
            self.phase = CLOSED
            return out
        if self.phase == HANDSHAKE and step.handshake_done:
            dec = self._verify(now)
            out.decision = dec
            if not dec.accepted:
                out.to_client += self.tls.send(encode_response(ConnectResponse(ST_REFUSED,
                                                                               dec.reason)))
                out.close_client = True
                self.phase = CLOSED
                return out
            self.record = dec.record
            self.phase = REQUEST
        if self.phase == REQUEST:
            self._req += step.app
            try:
                got = decode_request(bytes(self._req))
            except ConnectError as e:
                return self._refuse(out, ST_BAD_REQUEST, str(e))
            if got is None:
                if len(self._req) > 512:
                    return self._refuse(out, ST_BAD_REQUEST, "connect request too long")
                return out
            req, used = got
            if used != len(self._req):
                return self._refuse(out, ST_BAD_REQUEST, "bytes after the connect request")
            rs = self.settings.realservers
            if rs is not None and (req.host, req.port) not in rs:
                return self._refuse(out, ST_BAD_REQUEST,
                                    f"destination {req.host}:{req.port} not served")
            self.request = req
            self._early += self.tls.take_rest()
            self.phase = CONNECTING
            out.connect = req
        return out

    def _request_complete(self, app: bytes) -> bool:
        try:
            return decode_request(bytes(self._req) + app) is not None
        except ConnectError:
            return True

    def _verify(self, now: float) -> Decision:
        assert self.tls is not None
        der = self.tls.peer_cert_der()
        if der is not None:
            cached = self.trusted.get(hashlib.sha256(der).digest())
            if cached is not None and now <= cached.not_after:
                check = check_certificate(der, self.settings.anchor, now)
                if check.ok:  # local checks only (chain, validity, CRL): no EMS query
                    self.counters.cache_hits += 1
                    return Decision(True, f"trusted since {cached.verified_at:.3f} "
                                    f"(proxy-policy {cached.policy_id})", cached.device_id,
                                    cached.fingerprint, cached.policy_id, cached)
        self.counters.verifications += 1

        def ask(device: str) -> DeviceStatus | None:
            self.counters.ems_queries += 1
            return self.lookup(device)

        return verify_client(der, self.settings.anchor, ask, self.settings.policies, now)

    def _refuse(self, out: ProxyOutput, status: int, reason: str) -> ProxyOutput:
        assert self.tls is not None
        out.to_client += self.tls.send(encode_response(ConnectResponse(status, reason)))
        out.close_client = True
        out.error = reason
        self.phase = CLOSED
        return out

    def _abort(self, why: str) -> ProxyOutput:
        self.phase = CLOSED
        return ProxyOutput(close_client=True, close_backend=True, error=why)

    def _channel_input(self, data: bytes) -> ProxyOutput:
        assert self.channel is not None
        opened = self.channel.open(data)
        if opened.error:
            return self._abort(f"data channel: {opened.error}")
        return ProxyOutput(to_backend=opened.data, close_backend=opened.closed)

    # --- backend leg -------------------------------------------------------------------
    def backend_result(self, ok: bool, reason: str = "") -> ProxyOutput:
        """The shell tried the backend connection asked for in ``ProxyOutput.connect``."""
        if self.phase != CONNECTING:
            return ProxyOutput()
        assert self.tls is not None
        if not ok:
            return self._refuse(ProxyOutput(), ST_BACKEND_FAILED, reason or "backend failed")
        out = ProxyOutput(to_client=self.tls.send(encode_response(ConnectResponse(ST_OK))))
        self.channel = Channel(self.tls.channel_keys(), "server")
        self.phase = OPEN
        if self._early:
            early = self._channel_input(bytes(self._early))
            self._early.clear()
            early.to_client = out.to_client + early.to_client
            return early
        return out

    def from_backend(self, data: bytes) -> ProxyOutput:
        if self.phase != OPEN or self.channel is None or self.channel.tx_closed:
            return ProxyOutput()
        return ProxyOutput(to_client=self.channel.seal(data))

    def backend_eof(self) -> ProxyOutput:
        if self.phase != OPEN or self.channel is None:
            return ProxyOutput()
        return ProxyOutput(to_client=self.channel.seal_close())

    @property
    def finished(self) -> bool:
        """Both directions of the tunnel ended (or the connection failed)."""
        ch = self.channel
        return self.phase == CLOSED or (ch is not None and ch.tx_closed and ch.rx_closed)

    # --- session sync ------------------------------------------------------------------
    def export_state(self) -> bytes:
        """EXT_ZTNA value of an open connection: u8 version, then u16-length-prefixed trust
        record, connect request and channel state."""
        if self.phase != OPEN or self.record is None or self.request is None \
                or self.channel is None:
            raise ConnStateError(f"only an open connection is synced (phase {self.phase})")
        parts = [encode_trust(self.record), encode_request(self.request),
                 self.channel.export_state()]
        return bytes([STATE_VERSION]) + b"".join(_LEN.pack(len(p)) + p for p in parts)

    @classmethod
    def restore(cls, state: bytes, settings: ProxySettings,
                lookup: Callable[[str], DeviceStatus | None]) -> ProxyConnection:
        """An open connection from synced state: no TLS, no verification, no EMS query."""
        if not state or state[0] != STATE_VERSION:
            raise ConnStateError("unknown ZTNA connection state version")
        parts, p = [], 1
        for _ in range(3):
            if p + 2 > len(state):
                raise ConnStateError("ZTNA connection state truncated")
            (n,) = _LEN.unpack_from(state, p)
            if p + 2 + n > len(state):
                raise ConnStateError("ZTNA connection state truncated")
            parts.append(state[p + 2:p + 2 + n])
            p += 2 + n
        if p != len(state):
            raise ConnStateError("bytes after the ZTNA connection state")
        try:
            record = decode_trust(parts[0])
            got = decode_request(parts[1])
            channel = Channel.from_state(parts[2])
        except (TrustRecordError, ConnectError, ChannelStateError) as e:
            raise ConnStateError(str(e)) from e
        if got is None or got[1] != len(parts[1]) or channel.role != "server":
            raise ConnStateError("bad connect request or channel role in ZTNA state")
        conn = cls(None, settings, lookup)
        conn.record, conn.request, conn.channel = record, got[0], channel
        conn.phase = OPEN
        return conn
