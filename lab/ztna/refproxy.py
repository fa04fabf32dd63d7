"""Reference ZTNA access proxy on kernel sockets: the proxy side of the protocol without the
cluster (``inspection.ztna.proxyconn`` driven by threads), to test client, PKI, EMS and
verifier end to end on loopback. The cluster's proxy runs the same core in fgcpd.

CLI: ``python -m lab.ztna.refproxy --pki DIR --listen HOST:PORT --ems ADDR
--policy ID:TAG[,TAG][:accept|deny] --realserver HOST:PORT``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from OpenSSL import SSL

from inspection.ztna.proxyconn import ProxyConnection, ProxyOutput, ProxySettings
from inspection.ztna.tlsend import server_context
from inspection.ztna.verify import DeviceStatus, ProxyPolicy, TrustAnchor, VerifyConfigError
from lab.ztna.ems import EmsClient, EmsError, parse_address, parse_hostport

__all__ = ["RefProxy", "RefProxyStats", "main", "parse_policy"]

HANDSHAKE_TIMEOUT = 10.0
BACKEND_TIMEOUT = 5.0
_RECV = 65536


@dataclass
class RefProxyStats:
    accepted: int = 0
    verified: int = 0
    refused: list[str] = field(default_factory=list)  # reasons, in order
    errors: list[str] = field(default_factory=list)  # malformed handshakes, broken channels
    verifications: int = 0
    ems_queries: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class RefProxy:
    """Accepts TLS clients on ``listen``; each connection in its own threads.
    ``crl_path`` is re-read when it changes (a revocation is seen by the next connection).
    Clearing ``running`` (an Event) freezes relaying, as a failover pause would."""

    def __init__(self, ctx: SSL.Context, listen: tuple[str, int], ca_pem: bytes,
                 crl_path: Path | None, policies: Sequence[ProxyPolicy],
                 lookup: Callable[[str], DeviceStatus | None],
                 realservers: frozenset[tuple[str, int]] | None = None) -> None:
        self.ctx, self.ca_pem, self.crl_path = ctx, ca_pem, crl_path
        self.policies = tuple(policies)
        self.lookup = lookup
        self.realservers = realservers
        self.sock = socket.create_server(listen)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.stats = RefProxyStats()
        self.running = threading.Event()
        self.running.set()
        self._lock = threading.Lock()
        self._crl_key: tuple[float, int] | None = None
        self._settings = self._load_settings()

    def _load_settings(self) -> ProxySettings:
        crl = None
        if self.crl_path is not None and self.crl_path.exists():
            crl = self.crl_path.read_bytes()
            st = self.crl_path.stat()
            self._crl_key = (st.st_mtime, st.st_size)
        return ProxySettings(TrustAnchor.from_pem(self.ca_pem, crl), self.policies,
                             self.realservers)

    def settings(self) -> ProxySettings:
        """Current settings, with crl.pem reloaded when it changed."""
        if self.crl_path is not None and self.crl_path.exists():
            st = self.crl_path.stat()
            if (st.st_mtime, st.st_size) != self._crl_key:
                try:
                    self._settings = self._load_settings()
                except VerifyConfigError as e:
                    self._log(f"CRL not reloaded: {e}")
        return self._settings

    def _log(self, msg: str) -> None:
        print(f"refproxy: {msg}", file=sys.stderr, flush=True)

    def serve_forever(self) -> None:
        while True:
            try:
                cl, peer = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.stats.accepted += 1
            threading.Thread(target=self._serve, args=(cl, peer), daemon=True).start()

    def start(self) -> Self:
        threading.Thread(target=self.serve_forever, name="refproxy", daemon=True).start()
        return self

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one connection ----------------------------------------------------------------
    def _serve(self, cl: socket.socket, peer: tuple[str, int]) -> None:
        who = f"{peer[0]}:{peer[1]}"
        conn = ProxyConnection(self.ctx, self.settings(), self.lookup)
        backend: socket.socket | None = None
        try:
            with cl:
                cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                cl.settimeout(HANDSHAKE_TIMEOUT)
                out = ProxyOutput()
                while conn.phase in ("handshake", "request"):
                    data = cl.recv(_RECV)
                    if not data:
                        self._error(who, "client closed during set-up")
                        return
                    out = conn.from_client(data, time.time())
                    self._account(conn, out, who)
                    if out.to_client:
                        cl.sendall(out.to_client)
                    if out.close_client:
                        return
                target = out.connect
                assert target is not None
                try:
                    backend = socket.create_connection((target.host, target.port),
                                                       timeout=BACKEND_TIMEOUT)
                    out = conn.backend_result(True)
                except OSError as e:
                    out = conn.backend_result(False, f"{target.host}:{target.port}: "
                                              f"{e.strerror or e}")
                    self._error(who, out.error or "backend failed")
                if out.to_client:
                    cl.sendall(out.to_client)
                if backend is None:
                    return
                with backend:
                    backend.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    backend.settimeout(None)
                    cl.settimeout(None)
                    if out.to_backend:
                        backend.sendall(out.to_backend)
                    down = threading.Thread(target=self._down, args=(cl, backend, conn),
                                            daemon=True)
                    down.start()
                    self._up(cl, backend, conn, who)
                    down.join()
        except OSError as e:
            self._error(who, f"socket: {e}")

    def _account(self, conn: ProxyConnection, out: ProxyOutput, who: str) -> None:
        with self._lock:
            if out.decision is not None:
                self.stats.verifications += conn.counters.verifications
                self.stats.ems_queries += conn.counters.ems_queries
                if out.decision.accepted:
                    self.stats.verified += 1
                else:
                    self.stats.refused.append(out.decision.reason)
            elif out.error:
                self.stats.errors.append(out.error)
        if out.decision is not None:
            d = out.decision
            verdict = "accept" if d.accepted else "refuse"
            self._log(f"{who} device={d.device_id or '-'} {verdict}: {d.reason}")
        elif out.error:
            self._log(f"{who} dropped: {out.error}")

    def _error(self, who: str, why: str) -> None:
        with self._lock:
            self.stats.errors.append(why)
        self._log(f"{who} {why}")

    def _up(self, cl: socket.socket, backend: socket.socket, conn: ProxyConnection,
            who: str) -> None:
        while True:
            self.running.wait()
            data = cl.recv(_RECV)
            if not data:
                _shut(backend, socket.SHUT_WR)
                return
            self.running.wait()
            out = conn.from_client(data, time.time())
            if out.to_backend:
                backend.sendall(out.to_backend)
                with self._lock:
                    self.stats.bytes_up += len(out.to_backend)
            if out.close_backend:
                _shut(backend, socket.SHUT_WR)
            if out.error:
                self._error(who, out.error)
                _shut(backend, socket.SHUT_RDWR)
                _shut(cl, socket.SHUT_RDWR)
                return
            if out.close_backend:
                return

    def _down(self, cl: socket.socket, backend: socket.socket,
              conn: ProxyConnection) -> None:
        try:
            while data := backend.recv(_RECV):
                self.running.wait()
                cl.sendall(conn.from_backend(data).to_client)
                with self._lock:
                    self.stats.bytes_down += len(data)
            cl.sendall(conn.backend_eof().to_client)
        except OSError:
            _shut(cl, socket.SHUT_RDWR)


def _shut(s: socket.socket, how: int) -> None:
    try:
        s.shutdown(how)
    except OSError:
        pass


def parse_policy(text: str) -> ProxyPolicy:
    """``ID:TAG[,TAG][:accept|deny][:and]`` -> ProxyPolicy (``1:compliant``, ``2::deny``)."""
    parts = text.split(":")
    if not parts[0].isdigit():
        raise ValueError(f"policy {text!r}: ID:TAGS[:accept|deny][:and|or] expected")
    tags = tuple(t for t in (parts[1] if len(parts) > 1 else "").split(",") if t)
    action = parts[2] if len(parts) > 2 and parts[2] else "accept"
    logic = parts[3] if len(parts) > 3 else "or"
    if action not in ("accept", "deny") or logic not in ("and", "or"):
        raise ValueError(f"policy {text!r}: action accept|deny, logic and|or")
    return ProxyPolicy(int(parts[0]), tags, action, logic)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.ztna.refproxy",
                                description="Reference ZTNA access proxy (kernel sockets).")
    p.add_argument("--pki", type=Path, required=True, help="lab PKI directory (ca.pem, crl.pem)")
    p.add_argument("--cert", type=Path, help="proxy certificate (default DIR/devices/proxy.pem)")
    p.add_argument("--key", type=Path, help="proxy key (default DIR/devices/proxy.key)")
    p.add_argument("--listen", required=True, help="HOST:PORT (the access-proxy VIP)")
    p.add_argument("--ems", required=True, help="EMS address (HOST:PORT or socket path)")
    p.add_argument("--policy", action="append", default=[], metavar="ID:TAGS[:ACTION]",
                   help="proxy-policy, in order (default 1:compliant)")
    p.add_argument("--realserver", action="append", default=[], metavar="HOST:PORT",
                   help="allowed backend (repeatable; default: any)")
    a = p.parse_args(argv)
    try:
        cert = a.cert or a.pki / "devices" / "proxy.pem"
        key = a.key or a.pki / "devices" / "proxy.key"
        ca = (a.pki / "ca.pem").read_bytes()
        policies = [parse_policy(x) for x in a.policy or ["1:compliant"]]
        rs = None
        if a.realserver:
            rs = frozenset(parse_hostport(x) for x in a.realserver)
        ems = EmsClient(parse_address(a.ems))
        listen = parse_hostport(a.listen)

        def lookup(device: str) -> DeviceStatus | None:
            try:
                return ems.status(device)
            except EmsError as e:
                print(f"refproxy: {e}", file=sys.stderr)
                return None

        proxy = RefProxy(server_context(cert.read_bytes(), key.read_bytes(), ca), listen, ca,
                         a.pki / "crl.pem", policies, lookup, rs)
    except (OSError, ValueError, SSL.Error, VerifyConfigError) as e:
        print(f"refproxy: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: proxy.close())
    print(f"refproxy: listening on {proxy.address[0]}:{proxy.address[1]}", flush=True)
    try:
        proxy.serve_forever()
    except KeyboardInterrupt:
        proxy.close()
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
