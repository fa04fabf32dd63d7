"""Memory-BIO mutual TLS, exporter keys, connect request and the proxy-side connection core
(client session <-> ProxyConnection in memory), including restore from synced state."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from OpenSSL import SSL

from inspection.ztna.connect import (
    ST_OK,
    ConnectError,
    ConnectRequest,
    ConnectResponse,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from inspection.ztna.proxyconn import ConnStateError, ProxyConnection, ProxySettings
from inspection.ztna.tlsend import RecordSplitter, TlsEndpoint, client_context, server_context
from inspection.ztna.verify import DeviceStatus, ProxyPolicy, TrustAnchor
from lab.ztna.client import ClientSession
from lab.ztna.pki import PkiDir
from tests.unit.ztna_pki import build_test_pki

NOW = dt.datetime.now(dt.UTC)
T = NOW.timestamp()
BACKEND = ConnectRequest("198.51.100.20", 80)


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiDir:
    return build_test_pki(tmp_path_factory.mktemp("pki"), NOW)


def read(p: PkiDir, name: str) -> bytes:
    return (p.path / name).read_bytes()


def sctx(p: PkiDir) -> SSL.Context:
    return server_context(read(p, "devices/proxy.pem"), read(p, "devices/proxy.key"),
                          read(p, "ca.pem"))


def cctx(p: PkiDir, dev: str | None) -> SSL.Context:
    if dev is None:
        return client_context(None, None, read(p, "ca.pem"))
    return client_context(read(p, f"devices/{dev}.pem"), read(p, f"devices/{dev}.key"),
                          read(p, "ca.pem"))


def settings(p: PkiDir) -> ProxySettings:
    return ProxySettings(TrustAnchor.from_pem(read(p, "ca.pem"), read(p, "crl.pem")),
                         (ProxyPolicy(1, ("compliant",)),), frozenset({("198.51.100.20", 80)}))


EMS = {"dev1": frozenset({"compliant"}), "dev2": frozenset({"managed"}),
       "old": frozenset({"compliant"}), "intruder": frozenset({"compliant"}),
       "gone": frozenset({"compliant"})}


def lookup(dev: str) -> DeviceStatus | None:
    return DeviceStatus(dev, EMS[dev]) if dev in EMS else None


def test_memory_bio_mtls_gives_equal_exporter_keys(lab_pki: PkiDir) -> None:
    srv = TlsEndpoint(sctx(lab_pki), server=True)
    cli = TlsEndpoint(cctx(lab_pki, "dev1"), server=False)
    s1 = srv.feed(cli.start())
    c1 = cli.feed(s1.out)
    s2 = srv.feed(c1.out)
    assert c1.handshake_done and s2.handshake_done and s2.error is None
    assert srv.version() == "TLSv1.3"
    assert srv.peer_cert_der() is not None
    assert srv.channel_keys() == cli.channel_keys()
    other = TlsEndpoint(sctx(lab_pki), server=True)
    other_cli = TlsEndpoint(cctx(lab_pki, "dev1"), server=False)
    other_cli.feed(other.feed(other_cli.start()).out)
    assert other_cli.channel_keys() != cli.channel_keys()  # fresh keys per handshake


def test_record_splitter_flags_garbage() -> None:
    rs = RecordSplitter()
    rs.feed(b"GET / HTTP/1.1\r\n")
    assert rs.next_record() is None and rs.error is not None and "not a TLS record" in rs.error
    rs = RecordSplitter()
    rs.feed(b"\x16\x03\x01\x00\x05abc")
    assert rs.next_record() is None and rs.error is None
    rs.feed(b"de!")
    assert rs.next_record() == b"\x16\x03\x01\x00\x05abcde" and rs.take_rest() == b"!"


def test_connect_codec() -> None:
    wire = encode_request(BACKEND)
    assert decode_request(wire) == (BACKEND, len(wire))
    assert decode_request(wire[:-1]) is None
    with pytest.raises(ConnectError):
        decode_request(b"XX\x01\x01a\x00\x50")
    with pytest.raises(ConnectError):
        encode_request(ConnectRequest("h", 0))
    resp = encode_response(ConnectResponse(1, "tag 'compliant' missing"))
    assert decode_response(resp) == (ConnectResponse(1, "tag 'compliant' missing"), len(resp))
    assert decode_response(encode_response(ConnectResponse(ST_OK)))[0].ok


def converse(p: PkiDir, dev: str | None, proxy: ProxyConnection,
             target: ConnectRequest = BACKEND) -> tuple[ClientSession, list]:
    """Run the client and the proxy core against each other in memory until set-up ends."""
    cli = ClientSession(cctx(p, dev), target)
    events: list = []
    to_proxy = cli.start()
    for _ in range(10):
        pout = proxy.from_client(to_proxy, T)
        events.append(pout)
        to_client = pout.to_client
        if pout.connect is not None:
            ok = proxy.backend_result(True)
            to_client += ok.to_client
        cout = cli.from_proxy(to_client)
        to_proxy = cout.to_proxy
        if cout.opened or cout.error:
            events.append(cout)
            break
    return cli, events


def test_tunnel_end_to_end_in_memory_and_failover_restore(lab_pki: PkiDir) -> None:
    proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    cli, events = converse(lab_pki, "dev1", proxy)
    assert events[-1].opened and proxy.phase == "open"
    assert proxy.request == BACKEND
    assert proxy.counters.verifications == 1 and proxy.counters.ems_queries == 1
    assert proxy.from_client(cli.from_app(b"GET /"), T).to_backend == b"GET /"
    assert cli.from_proxy(proxy.from_backend(b"HTTP/1.0 200").to_client).to_app == \
        b"HTTP/1.0 200"
    # mid-frame: part of the next client frame has reached the primary when it dies
    frame = cli.from_app(b"x" * 5000)
    assert proxy.from_client(frame[:1000], T).to_backend == b""
    state = proxy.export_state()
    restored = ProxyConnection.restore(state, settings(lab_pki), lambda d: pytest.fail("EMS"))
    assert restored.record == proxy.record and restored.request == BACKEND
    assert restored.from_client(frame[1000:], T).to_backend == b"x" * 5000
    assert cli.from_proxy(restored.from_backend(b"after failover").to_client).to_app == \
        b"after failover"
    assert restored.counters.verifications == 0 and restored.counters.ems_queries == 0
    # end of stream both ways
    assert restored.from_client(cli.app_closed(), T).close_backend
    assert cli.from_proxy(restored.backend_eof().to_client).app_eof
    assert restored.finished


def test_bad_sync_state_is_refused(lab_pki: PkiDir) -> None:
    proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    with pytest.raises(ConnStateError, match="only an open connection"):
        proxy.export_state()
    converse(lab_pki, "dev1", proxy)
    state = proxy.export_state()
    for n in (0, 1, 5, len(state) - 1):
        with pytest.raises(ConnStateError):
            ProxyConnection.restore(state[:n], settings(lab_pki), lookup)
    with pytest.raises(ConnStateError):
        ProxyConnection.restore(state + b"\x00", settings(lab_pki), lookup)


@pytest.mark.parametrize("dev, reason", [
    (None, "refused: no client certificate"),
    ("intruder", "refused: certificate not issued by the EMS CA"),
    ("old", "refused: certificate expired"),
    ("gone", "refused: device revoked"),
    ("dev2", "refused: tag 'compliant' missing"),
])
def test_refusals_reach_the_client_with_their_reason(lab_pki: PkiDir, dev, reason) -> None:
    proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    _, events = converse(lab_pki, dev, proxy)
    assert events[-1].error == reason
    decision = next(e.decision for e in events if getattr(e, "decision", None))
    assert decision.reason == reason.removeprefix("refused: ")
    assert proxy.phase == "closed"


def test_destination_not_served(lab_pki: PkiDir) -> None:
    proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    _, events = converse(lab_pki, "dev1", proxy, ConnectRequest("203.0.113.9", 22))
    assert events[-1].error == "bad request: destination 203.0.113.9:22 not served"


def test_garbage_and_truncated_handshakes_are_dropped_cleanly(lab_pki: PkiDir) -> None:
    for junk in (os.urandom(300), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"\x16\x03\x01\x00\x30" + os.urandom(48), b"\x16\x03\x01\xff\xff"):
        proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
        out = proxy.from_client(junk, T)
        more = proxy.from_client(os.urandom(100), T)
        assert (out.close_client and out.error) or not out.to_client
        assert proxy.phase in ("closed", "handshake")
        assert more.to_backend == b""


def test_backend_failure_is_reported_to_the_client(lab_pki: PkiDir) -> None:
    proxy = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    cli = ClientSession(cctx(lab_pki, "dev1"), BACKEND)
    to_proxy = cli.start()
    while True:
        pout = proxy.from_client(to_proxy, T)
        if pout.connect is not None:
            pout.to_client += proxy.backend_result(False, "connection refused").to_client
        cout = cli.from_proxy(pout.to_client)
        to_proxy = cout.to_proxy
        if cout.error or cout.opened:
            break
    assert cout.error == "backend failed: connection refused"


def test_synced_trust_skips_the_ems(lab_pki: PkiDir) -> None:
    first = ProxyConnection(sctx(lab_pki), settings(lab_pki), lookup)
    converse(lab_pki, "dev1", first)
    assert first.record is not None
    cache = {first.record.fingerprint: first.record}
    second = ProxyConnection(sctx(lab_pki), settings(lab_pki),
                             lambda d: pytest.fail("EMS asked"), trusted=cache)
    _, events = converse(lab_pki, "dev1", second)
    assert events[-1].opened
    assert second.counters.cache_hits == 1 and second.counters.verifications == 0
