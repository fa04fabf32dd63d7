"""ZTNA end to end on loopback (no cluster): HTTP download through lab.ztna.client ->
lab.ztna.refproxy -> a local HTTP server, with the EMS and the lab PKI; refusals; garbage."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import pytest

from inspection.ztna.connect import ConnectRequest
from inspection.ztna.tlsend import client_context, server_context
from inspection.ztna.verify import ProxyPolicy
from lab.ztna.client import ZtnaClient
from lab.ztna.ems import EmsClient, EmsServer
from lab.ztna.pki import PkiDir
from lab.ztna.refproxy import RefProxy, parse_policy

NOW = dt.datetime.now(dt.UTC)
SIZE = 4_000_000


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(root: Path) -> Iterator[tuple[str, int]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=root))
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield srv.server_address[:2]
    finally:
        srv.shutdown()
        srv.server_close()


class Lab:
    def __init__(self, root: Path, stack: ExitStack) -> None:
        self.pki = PkiDir(root / "pki")
        self.pki.init(NOW)
        for dev in ("dev1", "dev2", "dev3"):
            self.pki.issue(dev, NOW)
        self.pki.issue("old", NOW, "expired")
        self.pki.issue("intruder", NOW, "foreign")
        self.pki.issue("proxy", NOW, "server")
        www = root / "www"
        www.mkdir()
        self.blob = os.urandom(SIZE)
        (www / "file.bin").write_bytes(self.blob)
        self.http = stack.enter_context(http_server(www))
        tags = {d: ["compliant"] for d in ("dev1", "dev3", "old", "intruder")}
        self.ems = stack.enter_context(EmsServer(("127.0.0.1", 0), self.pki, tags))
        ca = self.pki.ca_path.read_bytes()
        d = self.pki.path / "devices"
        ctx = server_context((d / "proxy.pem").read_bytes(), (d / "proxy.key").read_bytes(), ca)
        self.proxy = stack.enter_context(RefProxy(
            ctx, ("127.0.0.1", 0), ca, self.pki.crl_path, [ProxyPolicy(1, ("compliant",))],
            EmsClient(self.ems.address).status, frozenset({self.http})))
        self.stack = stack

    def client(self, dev: str | None) -> ZtnaClient:
        d = self.pki.path / "devices"
        ctx = client_context((d / f"{dev}.pem").read_bytes() if dev else None,
                             (d / f"{dev}.key").read_bytes() if dev else None,
                             self.pki.ca_path.read_bytes())
        return self.stack.enter_context(ZtnaClient(ctx, ("127.0.0.1", 0),
                                                   ConnectRequest(*self.http),
                                                   self.proxy.address))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with ExitStack() as stack:
        yield Lab(tmp_path, stack)


def http_get(addr: tuple[str, int], path: str = "/file.bin", timeout: float = 5.0) -> bytes:
    """A curl-like HTTP/1.0 GET on the client's local port; returns the body (empty when
    the connection was closed or reset without a 200 answer)."""
    chunks = []
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: backend\r\n\r\n".encode())
        try:
            while data := s.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            return b""
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return body if head.startswith(b"HTTP/1.0 200") else b""


def test_download_through_the_tunnel_checksum(lab: Lab) -> None:
    client = lab.client("dev1")
    body = http_get(client.address)
    assert hashlib.sha256(body).digest() == hashlib.sha256(lab.blob).digest()
    assert lab.proxy.stats.verified == 1 and lab.proxy.stats.refused == []
    assert lab.proxy.stats.ems_queries == 1
    assert client.stats.opened == 1 and client.stats.errors == []


@pytest.mark.parametrize("dev, reason", [
    (None, "no client certificate"),
    ("intruder", "certificate not issued by the EMS CA"),
    ("old", "certificate expired"),
    ("dev2", "tag 'compliant' missing"),
])
def test_refused_with_reason(lab: Lab, dev: str | None, reason: str) -> None:
    client = lab.client(dev)
    assert http_get(client.address) == b""
    assert lab.proxy.stats.refused == [reason]
    assert client.stats.errors == [f"refused: {reason}"]


def test_revocation_and_tag_change_at_run_time(lab: Lab) -> None:
    ems = EmsClient(lab.ems.address)
    c3, c2 = lab.client("dev3"), lab.client("dev2")
    assert len(http_get(c3.address)) == SIZE
    assert ems.request({"op": "revoke", "device": "dev3"})["ok"]
    assert http_get(c3.address) == b""
    assert ems.request({"op": "set-tag", "device": "dev2", "tag": "compliant"})["ok"]
    assert len(http_get(c2.address)) == SIZE
    assert lab.proxy.stats.refused == ["device revoked"]


def test_garbage_on_the_proxy_port_does_not_stop_a_transfer(lab: Lab) -> None:
    client = lab.client("dev1")
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(http_get(client.address)))
    t.start()
    for junk in (os.urandom(2000), b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00" + b"\0" * 512):
        with socket.create_connection(lab.proxy.address, timeout=2) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""  # dropped: closed without an answer
    t.join(5)
    assert result and hashlib.sha256(result[0]).digest() == hashlib.sha256(lab.blob).digest()
    assert len(lab.proxy.stats.errors) == 3
    assert any("not a TLS record" in e for e in lab.proxy.stats.errors)


def test_client_waits_out_a_proxy_pause_on_the_same_socket(lab: Lab) -> None:
    """A frozen proxy (as during a failover) stalls the open tunnel; the client neither
    times out nor reconnects, and the download completes once the proxy resumes."""
    client = lab.client("dev1")
    lab.proxy.running.clear()
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append(http_get(client.address, timeout=30)))
    t.start()
    deadline = time.monotonic() + 5
    while client.stats.opened == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats.opened == 1  # tunnel open, relay frozen
    t.join(1.0)
    assert t.is_alive() and lab.proxy.stats.bytes_up == 0  # stalled, not failed
    lab.proxy.running.set()
    t.join(5)
    assert result and hashlib.sha256(result[0]).digest() == hashlib.sha256(lab.blob).digest()
    assert lab.proxy.stats.accepted == 1 and client.stats.accepted == 1
    assert client.stats.errors == []


def test_parse_policy() -> None:
    assert parse_policy("1:compliant") == ProxyPolicy(1, ("compliant",))
    assert parse_policy("2:a,b:deny:and") == ProxyPolicy(2, ("a", "b"), "deny", "and")
    assert parse_policy("3") == ProxyPolicy(3)
    with pytest.raises(ValueError):
        parse_policy("x:compliant")
