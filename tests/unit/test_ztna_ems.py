"""lab.ztna.ems: the pure core, the line-JSON protocol over TCP and a unix socket, the CLI,
and a revocation that re-signs the CRL the verifier reads."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import pytest
from cryptography import x509

from inspection.ztna.verify import TrustAnchor, cert_der_of, check_certificate
from lab.ztna import ems as emsmod
from lab.ztna.ems import EmsClient, EmsCore, EmsError, EmsServer, parse_address
from lab.ztna.pki import PkiDir

NOW = dt.datetime.now(dt.UTC)


def test_core_tags_revocation_and_event_counter() -> None:
    core = EmsCore()
    core.register("dev1", 1.0, "U1", 0x10, ["managed"])
    ev = core.event
    core.set_tag("dev1", "compliant", True, 2.0)
    core.set_tag("dev1", "compliant", True, 3.0)  # no change: no event
    assert core.event == ev + 1
    assert core.status("dev1").tags == frozenset({"compliant", "managed"})
    core.set_tag("dev1", "managed", False, 4.0)
    core.revoke("dev1", 5.0)
    st = core.status("dev1")
    assert st.revoked and st.tags == frozenset({"compliant"})
    assert core.event == ev + 3
    assert core.status("nobody") is None
    with pytest.raises(EmsError, match="unknown device 'nobody'"):
        core.revoke("nobody", 6.0)


@pytest.mark.parametrize("req, error", [
    ([1, 2], "an object with an 'op' string"),
    ({"op": "fly"}, "unknown op 'fly'"),
    ({"op": "query"}, "query needs a 'device' string"),
    ({"op": "set-tag", "device": "dev1"}, "set-tag needs a 'tag' string"),
    ({"op": "query", "device": "ghost"}, "unknown device 'ghost'"),
    ({"op": "register", "device": "x", "tags": "compliant"}, "'tags' must be a list"),
])
def test_protocol_errors_are_answers_not_crashes(req, error: str) -> None:
    core = EmsCore()
    core.register("dev1", 0.0)
    resp = core.handle(req, 1.0)
    assert resp["ok"] is False and error in resp["error"]


@pytest.fixture
def lab_pki(tmp_path: Path) -> PkiDir:
    p = PkiDir(tmp_path / "pki")
    p.init(NOW)
    p.issue("dev1", NOW)
    p.issue("dev2", NOW)
    p.issue("proxy", NOW, "server")
    return p


def test_server_over_tcp_revocation_updates_the_crl(lab_pki: PkiDir) -> None:
    with EmsServer(("127.0.0.1", 0), lab_pki, {"dev1": ["compliant"]}) as ems:
        client = EmsClient(ems.address)
        listed = client.request({"op": "list"})
        assert [d["device"] for d in listed["devices"]] == ["dev1", "dev2"]  # no proxy cert
        assert client.status("dev1").tags == frozenset({"compliant"})
        assert client.request({"op": "set-tag", "device": "dev2", "tag": "managed"})["ok"]
        assert client.status("dev2").tags == frozenset({"managed"})
        cert = cert_der_of(x509.load_pem_x509_certificate(
            (lab_pki.path / "devices/dev1.pem").read_bytes()))
        before = TrustAnchor.from_pem(lab_pki.ca_path.read_bytes(),
                                      client.request({"op": "crl"})["crl"].encode())
        assert check_certificate(cert, before, NOW.timestamp()).ok
        resp = client.request({"op": "revoke", "device": "dev1"})
        assert resp["ok"] and resp["device"]["status"] == "revoked"
        assert client.status("dev1").revoked
        after = TrustAnchor.from_pem(lab_pki.ca_path.read_bytes(),
                                     client.request({"op": "crl"})["crl"].encode())
        assert check_certificate(cert, after, NOW.timestamp()).reason == "device revoked"
        assert client.status("nobody") is None
        # garbage line on the socket: a JSON error answer, and the server keeps serving
        with socket.create_connection(ems.address) as s:
            s.sendall(b"\x00\xffnot json\n")
            assert b'"ok": false' in s.recv(1000)
        assert client.request({"op": "events"})["ok"]
    # tags persisted beside the PKI; a restarted EMS sees them and the revocation
    saved = json.loads((lab_pki.path / "ems.json").read_text())
    assert saved["tags"]["dev2"] == ["managed"]
    with EmsServer(("127.0.0.1", 0), lab_pki) as ems:
        assert EmsClient(ems.address).status("dev2").tags == frozenset({"managed"})
        assert EmsClient(ems.address).status("dev1").revoked


def test_server_over_unix_socket_and_cli(lab_pki: PkiDir, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "ems.sock")
    with EmsServer(path, lab_pki):
        assert emsmod.main(["set-tag", path, "dev1", "compliant"]) == 0
        assert emsmod.main(["query", path, "dev1"]) == 0
        out = capsys.readouterr().out
        assert json.loads(out[out.index("{", out.index("}\n")):])["device"]["tags"] == [
            "compliant"]
        assert emsmod.main(["query", path, "ghost"]) == 1
    assert emsmod.main(["query", path, "dev1"]) == 2  # EMS gone: unreachable, exit 2
    assert "unreachable" in capsys.readouterr().err


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:8013") == ("127.0.0.1", 8013)
    assert parse_address("/run/ems.sock") == "/run/ems.sock"
    assert parse_address(":9") == ("127.0.0.1", 9)
    with pytest.raises(ValueError):
        parse_address("localhost")
