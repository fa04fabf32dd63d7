"""lab.ztna.pki + inspection.ztna.verify: trust material, every refusal reason, trust records."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from cryptography import x509

from inspection.ztna.verify import (
    REASON_EXPIRED,
    REASON_MALFORMED,
    REASON_NO_CERT,
    REASON_NO_POLICY,
    REASON_OTHER_CA,
    REASON_REVOKED,
    REASON_UNKNOWN_DEVICE,
    DeviceStatus,
    ProxyPolicy,
    TrustAnchor,
    TrustRecord,
    TrustRecordError,
    VerifyConfigError,
    cert_der_of,
    check_certificate,
    decode_trust,
    encode_trust,
    verify_client,
)
from lab.ztna import pki as pkimod
from lab.ztna.pki import PkiDir, PkiError
from tests.unit.ztna_pki import build_test_pki

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
T = NOW.timestamp()
COMPLIANT = (ProxyPolicy(1, ("compliant",)),)


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiDir:
    return build_test_pki(tmp_path_factory.mktemp("pki"), NOW)


def der(p: PkiDir, dev: str) -> bytes:
    return cert_der_of(x509.load_pem_x509_certificate(
        (p.path / "devices" / f"{dev}.pem").read_bytes()))


def anchor(p: PkiDir) -> TrustAnchor:
    return TrustAnchor.from_pem(p.ca_path.read_bytes(), p.crl_path.read_bytes())


def ems(tags: dict[str, set[str]], revoked: frozenset[str] = frozenset()):
    asked: list[str] = []

    def lookup(dev: str) -> DeviceStatus | None:
        asked.append(dev)
        if dev not in tags:
            return None
        return DeviceStatus(dev, frozenset(tags[dev]), dev in revoked)

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def test_device_certificate_carries_the_device_id_and_ems_uid(lab_pki: PkiDir) -> None:
    cert = x509.load_pem_x509_certificate((lab_pki.path / "devices/dev1.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["dev1"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        pkimod.EMS_UID_PREFIX + lab_pki.devices()["dev1"]["uid"]]
    check = check_certificate(der(lab_pki, "dev1"), anchor(lab_pki), T)
    assert check.ok and check.device_id == "dev1" and check.uid.endswith("-dev1")


def test_crl_lists_the_revoked_serial_only(lab_pki: PkiDir) -> None:
    crl = x509.load_pem_x509_crl(lab_pki.crl_path.read_bytes())
    devs = lab_pki.devices()
    assert [r.serial_number for r in crl] == [devs["gone"]["serial"]]
    assert (lab_pki.path / "ca.key").stat().st_mode & 0o077 == 0


def test_foreign_ca_has_the_same_name_but_another_key(lab_pki: PkiDir) -> None:
    ours = x509.load_pem_x509_certificate(lab_pki.ca_path.read_bytes())
    theirs = x509.load_pem_x509_certificate((lab_pki.path / "foreign-ca.pem").read_bytes())
    assert ours.subject == theirs.subject and ours.public_key() != theirs.public_key()


def test_accepted_with_trust_record(lab_pki: PkiDir) -> None:
    lookup = ems({"dev1": {"compliant", "managed"}})
    d = verify_client(der(lab_pki, "dev1"), anchor(lab_pki), lookup, COMPLIANT, T)
    assert d.accepted and d.reason == "accepted by proxy-policy 1"
    assert d.record is not None
    assert d.record.tags == ("compliant", "managed") and d.record.verified_at == T  # whole s
    assert decode_trust(encode_trust(d.record)) == d.record
    assert d.record.serial == lab_pki.devices()["dev1"]["serial"]
    assert lookup.asked == ["dev1"]


@pytest.mark.parametrize("dev, tags, revoked, reason", [
    (None, {}, (), REASON_NO_CERT),
    ("intruder", {"intruder": {"compliant"}}, (), REASON_OTHER_CA),
    ("old", {"old": {"compliant"}}, (), REASON_EXPIRED),
    ("gone", {"gone": {"compliant"}}, (), REASON_REVOKED),  # on the CRL
    ("dev1", {"dev1": {"compliant"}}, ("dev1",), REASON_REVOKED),  # EMS says revoked
    ("dev1", {}, (), REASON_UNKNOWN_DEVICE),
    ("dev2", {"dev2": {"managed"}}, (), "tag 'compliant' missing"),
])
def test_refusal_reasons(lab_pki: PkiDir, dev, tags, revoked, reason: str) -> None:
    lookup = ems(tags, frozenset(revoked))
    cert = der(lab_pki, dev) if dev else None
    d = verify_client(cert, anchor(lab_pki), lookup, COMPLIANT, T)
    assert not d.accepted and d.reason == reason and d.record is None
    if reason in (REASON_NO_CERT, REASON_OTHER_CA, REASON_EXPIRED) or dev == "gone":
        assert lookup.asked == []  # no EMS query for a certificate that failed


def test_garbage_certificate_bytes(lab_pki: PkiDir) -> None:
    d = verify_client(b"\x30\x03\x01\x01\x00", anchor(lab_pki), ems({}), COMPLIANT, T)
    assert d.reason == REASON_MALFORMED


def test_not_yet_valid_and_expiry_follow_now(lab_pki: PkiDir) -> None:
    a = anchor(lab_pki)
    assert check_certificate(der(lab_pki, "dev1"), a, T - 86400).reason == \
        "certificate not yet valid"
    assert check_certificate(der(lab_pki, "dev1"), a, T + 400 * 86400).reason == REASON_EXPIRED


def test_policy_order_tag_logic_and_deny(lab_pki: PkiDir) -> None:
    a, cert = anchor(lab_pki), der(lab_pki, "dev2")
    lookup = ems({"dev2": {"managed"}})
    pols = (ProxyPolicy(5, ("managed",), "deny"), ProxyPolicy(6, ("managed",)))
    assert verify_client(cert, a, lookup, pols, T).reason == "denied by proxy-policy 5"
    both = (ProxyPolicy(7, ("compliant", "managed"), match_logic="and"),)
    assert verify_client(cert, a, lookup, both, T).reason == "tag 'compliant' missing"
    anyof = (ProxyPolicy(8, ("compliant", "managed")),)
    assert verify_client(cert, a, lookup, anyof, T).policy_id == 8
    none = (ProxyPolicy(9, ("compliant", "low-risk")),)
    assert verify_client(cert, a, lookup, none, T).reason == \
        "none of tags 'compliant', 'low-risk' present"
    assert verify_client(cert, a, lookup, (), T).reason == REASON_NO_POLICY
    assert verify_client(cert, a, lookup, (ProxyPolicy(3),), T).accepted  # no tag: any device


def test_crl_of_another_ca_is_a_config_error(lab_pki: PkiDir, tmp_path: Path) -> None:
    other = PkiDir(tmp_path)
    other.init(NOW)
    with pytest.raises(VerifyConfigError, match="not signed by the EMS CA"):
        TrustAnchor.from_pem(lab_pki.ca_path.read_bytes(), other.crl_path.read_bytes())
    with pytest.raises(VerifyConfigError):
        TrustAnchor.from_pem(b"not a pem")


def test_trust_record_roundtrip_is_compact() -> None:
    rec = TrustRecord("dev1", bytes(range(32)), ("compliant", "managed"), 1796288400.123, 7,
                      0x47487CA4EAE057C4558BBBA05A3B3A3BE811C4D1, 1827824400.0)
    data = encode_trust(rec)
    assert len(data) == 49 + 1 + 20 + 1 + 4 + 1 + 10 + 8
    assert decode_trust(data) == rec


def test_trust_record_malformed_inputs_raise_only_trust_record_error() -> None:
    data = encode_trust(TrustRecord("dev1", b"\x01" * 32, ("compliant",), 1.5, 1, 99, 2.0))
    for n in range(len(data)):
        with pytest.raises(TrustRecordError):
            decode_trust(data[:n])
    with pytest.raises(TrustRecordError, match="after the trust record"):
        decode_trust(data + b"\x00")
    with pytest.raises(TrustRecordError, match="version"):
        decode_trust(b"\x02" + data[1:])
    for i, bit in itertools.product(range(len(data)), (1, 0x80)):
        mutated = bytearray(data)
        mutated[i] ^= bit
        try:
            decode_trust(bytes(mutated))
        except TrustRecordError:
            pass


def test_pki_errors_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PkiError, match="no PKI here"):
        PkiDir(tmp_path / "none").issue("dev", NOW)
    assert pkimod.main(["issue", str(tmp_path / "none"), "dev"]) == 2
    d = str(tmp_path / "cli")
    assert pkimod.main(["init", d]) == 0
    assert pkimod.main(["init", d]) == 2
    assert pkimod.main(["issue", d, "laptop", "phone"]) == 0
    assert pkimod.main(["issue", d, "../evil"]) == 2
    assert pkimod.main(["revoke", d, "phone"]) == 0
    assert pkimod.main(["revoke", d, "nobody"]) == 2
    capsys.readouterr()
    assert pkimod.main(["show", d]) == 0
    out = capsys.readouterr().out.split("\n")
    assert out[0].split()[:3] == ["laptop", "valid", "active"]
    assert out[1].split()[:3] == ["phone", "valid", "revoked"]
    assert (tmp_path / "cli/devices/laptop.key").exists()
