"""ZTNA client playing FortiClient's TCP forwarding: applications connect to a local port,
each connection is tunnelled to the access proxy (mTLS with the device certificate, connect
request, then the AEAD data channel). ``ClientSession`` is the pure core; ``ZtnaClient`` the
threaded socket shell; CLI ``python -m lab.ztna.client --cert C --key K --ca CA --listen
127.0.0.1:PORT --to HOST:PORT --proxy VIP:PORT``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from OpenSSL import SSL

from inspection.ztna.channel import Channel
from inspection.ztna.connect import (
    STATUS_NAMES,
    ConnectError,
    ConnectRequest,
    decode_response,
    encode_request,
)
from inspection.ztna.tlsend import TlsEndpoint, client_context
from lab.ztna.ems import parse_hostport

__all__ = ["ClientOutput", "ClientSession", "ZtnaClient", "main"]

HANDSHAKE_TIMEOUT = 10.0
_RECV = 65536


@dataclass
class ClientOutput:
    """What the shell must do after bytes from the proxy."""

    to_proxy: bytes = b""
    to_app: bytes = b""
    opened: bool = False  # the proxy said OK: start relaying the application's bytes
    app_eof: bool = False  # the proxy's side ended its stream: FIN to the application
    error: str | None = None  # refused (the proxy's reason) or broken tunnel: close all


class ClientSession:
    """Client side of one tunnelled connection (pure: bytes in, bytes out)."""

    def __init__(self, ctx: SSL.Context, target: ConnectRequest) -> None:
        self.tls = TlsEndpoint(ctx, server=False)
        self.target = target
        self.channel: Channel | None = None
        self.sent_request = False
        self._resp = bytearray()

    def start(self) -> bytes:
        return self.tls.start()

    def _response_complete(self, app: bytes) -> bool:
        try:
            return decode_response(bytes(self._resp) + app) is not None
        except ConnectError:
            return True

    def from_proxy(self, data: bytes) -> ClientOutput:
        if self.channel is not None:
            opened = self.channel.open(data)
            if opened.error:
                return ClientOutput(error=f"data channel: {opened.error}")
            return ClientOutput(to_app=opened.data, app_eof=opened.closed)
        step = self.tls.feed(data, until=self._response_complete)
        out = ClientOutput(to_proxy=step.out)
        if step.error:
            out.error = step.error
            return out
        if step.handshake_done and not self.sent_request:
            out.to_proxy += self.tls.send(encode_request(self.target))
            self.sent_request = True
        self._resp += step.app
        try:
            got = decode_response(bytes(self._resp))
        except ConnectError as e:
            out.error = str(e)
            return out
        if got is None:
            if self.tls.error:
                out.error = self.tls.error
            return out
        resp, _ = got
        if not resp.ok:
            out.error = f"{STATUS_NAMES[resp.status]}: {resp.reason}"
            return out
        self.channel = Channel(self.tls.channel_keys(), "client")
        out.opened = True
        rest = self.tls.take_rest()
        if rest:
            more = self.from_proxy(rest)
            out.to_app, out.app_eof, out.error = more.to_app, more.app_eof, more.error
        return out

    def from_app(self, data: bytes) -> bytes:
        assert self.channel is not None
        return self.channel.seal(data)

    def app_closed(self) -> bytes:
        assert self.channel is not None
        return self.channel.seal_close()


@dataclass
class ClientStats:
    accepted: int = 0
    opened: int = 0
    errors: list[str] = field(default_factory=list)


class ZtnaClient:
    """Listens on ``listen``; tunnels every accepted connection to ``target`` via ``proxy``.
    The proxy leg never times out once open: a failover pause is waited out on the same
    TCP socket, never reconnected."""

    def __init__(self, ctx: SSL.Context, listen: tuple[str, int], target: ConnectRequest,
                 proxy: tuple[str, int]) -> None:
        self.ctx, self.target, self.proxy = ctx, target, proxy
        self.sock = socket.create_server(listen)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.stats = ClientStats()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def _note(self, err: str) -> None:
        with self._lock:
            self.stats.errors.append(err)
        print(f"ztna-client: {err}", file=sys.stderr, flush=True)

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            try:
                app, _ = self.sock.accept()
            except OSError:
                return
            self.stats.accepted += 1
            t = threading.Thread(target=self._serve, args=(app,), daemon=True)
            t.start()
            self._threads.append(t)

    def start(self) -> Self:
        threading.Thread(target=self.serve_forever, name="ztna-client", daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _serve(self, app: socket.socket) -> None:
        try:
            with app, socket.create_connection(self.proxy, timeout=HANDSHAKE_TIMEOUT) as px:
                px.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sess = ClientSession(self.ctx, self.target)
                px.sendall(sess.start())
                out = ClientOutput()
                while not out.opened:
                    data = px.recv(_RECV)
                    out = sess.from_proxy(data) if data else ClientOutput(
                        error="proxy closed the connection during set-up")
                    if out.to_proxy:
                        px.sendall(out.to_proxy)
                    if out.error:
                        self._note(out.error)
                        return
                px.settimeout(None)  # open tunnel: wait out any pause (failover)
                self.stats.opened += 1
                if out.to_app:
                    app.sendall(out.to_app)
                up = threading.Thread(target=self._app_to_proxy, args=(app, px, sess),
                                      daemon=True)
                up.start()
                if not out.app_eof:
                    self._proxy_to_app(app, px, sess)
                _shut(app, socket.SHUT_WR)
                up.join()
        except OSError as e:
            self._note(f"proxy {self.proxy[0]}:{self.proxy[1]}: {e}")

    def _app_to_proxy(self, app: socket.socket, px: socket.socket,
                      sess: ClientSession) -> None:
        try:
            while data := app.recv(_RECV):
                px.sendall(sess.from_app(data))
            px.sendall(sess.app_closed())
        except OSError:
            _shut(px, socket.SHUT_RDWR)

    def _proxy_to_app(self, app: socket.socket, px: socket.socket,
                      sess: ClientSession) -> None:
        while True:
            try:
                data = px.recv(_RECV)
            except OSError as e:
                self._note(f"tunnel broken: {e}")
                _shut(app, socket.SHUT_RDWR)
                return
            if not data:
                self._note("tunnel closed by the proxy without end of stream")
                _shut(app, socket.SHUT_RDWR)
                return
            out = sess.from_proxy(data)
            if out.to_app:
                try:
                    app.sendall(out.to_app)
                except OSError:
                    _shut(px, socket.SHUT_RDWR)
                    return
            if out.error:
                self._note(out.error)
                _shut(app, socket.SHUT_RDWR)
                _shut(px, socket.SHUT_RDWR)
                return
            if out.app_eof:
                return

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shut(s: socket.socket, how: int) -> None:
    try:
        s.shutdown(how)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.ztna.client",
                                description="ZTNA TCP forwarding client (FortiClient-like).")
    p.add_argument("--cert", type=Path, help="device certificate (PEM)")
    p.add_argument("--key", type=Path, help="device key (PEM)")
    p.add_argument("--ca", type=Path, required=True, help="CA of the proxy's certificate")
    p.add_argument("--listen", required=True, help="local HOST:PORT for applications")
    p.add_argument("--to", required=True, help="backend HOST:PORT (the realserver)")
    p.add_argument("--proxy", required=True, help="access proxy VIP:PORT")
    a = p.parse_args(argv)
    try:
        to = parse_hostport(a.to)
        ctx = client_context(a.cert.read_bytes() if a.cert else None,
                             a.key.read_bytes() if a.key else None, a.ca.read_bytes())
        client = ZtnaClient(ctx, parse_hostport(a.listen), ConnectRequest(*to), parse_hostport(a.proxy))
    except (OSError, ValueError, SSL.Error) as e:
        print(f"ztna-client: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: client.close())
    print(f"ztna-client: {client.address[0]}:{client.address[1]} -> {a.to} via {a.proxy}",
          flush=True)
    try:
        client.serve_forever()
    except KeyboardInterrupt:
        client.close()
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
