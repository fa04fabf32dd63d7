"""ZTNA device verification: client certificate + EMS CA + CRL + EMS tags + ``now`` -> decision,
and the verified trust record with its compact codec (value of the EXT_ZTNA sync TLV).

Pure: no clock, no I/O. The EMS answer is passed in (a ``DeviceStatus`` lookup callable).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = [
    "EMS_UID_PREFIX",
    "REASON_EXPIRED",
    "REASON_MALFORMED",
    "REASON_NOT_YET_VALID",
    "REASON_NO_CERT",
    "REASON_NO_POLICY",
    "REASON_OTHER_CA",
    "REASON_REVOKED",
    "REASON_UNKNOWN_DEVICE",
    "CertCheck",
    "Decision",
    "DeviceStatus",
    "ProxyPolicy",
    "TrustAnchor",
    "TrustRecord",
    "TrustRecordError",
    "VerifyConfigError",
    "authorize",
    "cert_der_of",
    "check_certificate",
    "decode_trust",
    "encode_trust",
    "verify_client",
]

REASON_NO_CERT = "no client certificate"
REASON_MALFORMED = "malformed client certificate"
REASON_OTHER_CA = "certificate not issued by the EMS CA"
REASON_EXPIRED = "certificate expired"
REASON_NOT_YET_VALID = "certificate not yet valid"
REASON_REVOKED = "device revoked"
REASON_UNKNOWN_DEVICE = "device unknown to EMS"
REASON_NO_POLICY = "no proxy-policy for this access-proxy"
EMS_UID_PREFIX = "urn:fgcp-lab:ems-uid:"  # SAN URI of a device certificate: the EMS UID

# public keys a CRL can be verified with (CertificateRevocationList.is_signature_valid)
CRL_KEYS = (dsa.DSAPublicKey, rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
            ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


class VerifyConfigError(Exception):
    """The trust configuration itself is unusable (CA or CRL unreadable, CRL of another CA)."""


class TrustRecordError(Exception):
    """A trust record's bytes are malformed (sync input): says what is wrong."""


@dataclass(frozen=True)
class TrustAnchor:
    """The EMS CA and its current CRL (None: no CRL configured, only EMS revocation)."""

    ca: x509.Certificate
    crl: x509.CertificateRevocationList | None = None

    @classmethod
    def from_pem(cls, ca_pem: bytes, crl_pem: bytes | None = None) -> TrustAnchor:
        """Parse and check: the CRL must be signed by the CA."""
        try:
            ca = x509.load_pem_x509_certificate(ca_pem)
            crl = x509.load_pem_x509_crl(crl_pem) if crl_pem else None
        except ValueError as e:
            raise VerifyConfigError(f"unreadable CA or CRL: {e}") from e
        key = ca.public_key()
        if crl is not None and (crl.issuer != ca.subject or not isinstance(key, CRL_KEYS)
                                or not crl.is_signature_valid(key)):
            raise VerifyConfigError("the CRL is not signed by the EMS CA")
        return cls(ca, crl)


@dataclass(frozen=True)
class ProxyPolicy:
    """The part of a ``config firewall proxy-policy`` entry the verifier needs."""

    policy_id: int
    ems_tags: tuple[str, ...] = ()  # set ztna-ems-tag (empty: any verified device)
    action: str = "accept"  # accept | deny
    match_logic: str = "or"  # set ztna-tags-match-logic or | and


@dataclass(frozen=True)
class DeviceStatus:
    """What the EMS says about a device."""

    device_id: str
    tags: frozenset[str] = frozenset()
    revoked: bool = False


@dataclass(frozen=True)
class CertCheck:
    """Outcome of the certificate checks (chain, validity, CRL); ``reason`` empty when ok."""

    ok: bool
    reason: str = ""
    device_id: str = ""
    uid: str = ""
    fingerprint: bytes = b""
    serial: int = 0
    not_after: float = 0.0


@dataclass(frozen=True)
class TrustRecord:
    """A verified device: what a new primary needs to keep it verified without re-checking."""

    device_id: str
    fingerprint: bytes  # SHA-256 of the certificate DER, 32 bytes
    tags: tuple[str, ...]
    verified_at: float  # epoch seconds (ms precision on the wire)
    policy_id: int
    serial: int = 0
    not_after: float = 0.0  # certificate expiry, epoch seconds (s precision on the wire)


@dataclass(frozen=True)
class Decision:
    """Accept (with the trust record) or refuse (with the reason)."""

    accepted: bool
    reason: str
    device_id: str = ""
    fingerprint: bytes = b""
    policy_id: int = 0
    record: TrustRecord | None = field(default=None)


def _device_identity(cert: x509.Certificate) -> tuple[str, str]:
    device_id = uid = ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
                if u.startswith(EMS_UID_PREFIX)]
        device_id = dns[0] if dns else ""
        uid = uris[0][len(EMS_UID_PREFIX):] if uris else ""
    except x509.ExtensionNotFound:
        pass
    if not device_id:
        cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        device_id = str(cns[0].value) if cns else ""
    return device_id, uid


def check_certificate(cert_der: bytes | None, anchor: TrustAnchor, now: float) -> CertCheck:
    """Chain to the EMS CA, validity window at ``now``, CRL. Never raises on bad input."""
    if not cert_der:
        return CertCheck(False, REASON_NO_CERT)
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        device_id, uid = _device_identity(cert)
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
    except (ValueError, TypeError):
        return CertCheck(False, REASON_MALFORMED)
    fp = cert.fingerprint(hashes.SHA256())
    base: dict[str, Any] = {"device_id": device_id, "uid": uid, "fingerprint": fp,
            "serial": cert.serial_number, "not_after": not_after}
    if cert.issuer != anchor.ca.subject:
        return CertCheck(False, REASON_OTHER_CA, **base)
    try:
        cert.verify_directly_issued_by(anchor.ca)
    except (ValueError, TypeError, InvalidSignature):
        return CertCheck(False, REASON_OTHER_CA, **base)
    if now < not_before:
        return CertCheck(False, REASON_NOT_YET_VALID, **base)
    if now > not_after:
        return CertCheck(False, REASON_EXPIRED, **base)
    if anchor.crl is not None and (
            anchor.crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None):
        return CertCheck(False, REASON_REVOKED, **base)
    if not device_id:
        return CertCheck(False, REASON_MALFORMED, **base)
    return CertCheck(True, "", **base)


def _tags_reason(policy: ProxyPolicy, have: frozenset[str]) -> str:
    missing = [t for t in policy.ems_tags if t not in have]
    if len(policy.ems_tags) == 1 or policy.match_logic == "and":
        return ", ".join(f"tag '{t}' missing" for t in missing)
    return "none of tags " + ", ".join(f"'{t}'" for t in policy.ems_tags) + " present"


def _matches(policy: ProxyPolicy, have: frozenset[str]) -> bool:
    if not policy.ems_tags:
        return True
    hits = [t in have for t in policy.ems_tags]
    return all(hits) if policy.match_logic == "and" else any(hits)


def authorize(check: CertCheck, status: DeviceStatus | None,
              policies: Sequence[ProxyPolicy], now: float) -> Decision:
    """EMS status and tags against the proxy-policies (first match, in order)."""
    ident: dict[str, Any] = {"device_id": check.device_id, "fingerprint": check.fingerprint}
    if not check.ok:
        return Decision(False, check.reason, **ident)
    if status is None:
        return Decision(False, REASON_UNKNOWN_DEVICE, **ident)
    if status.revoked:
        return Decision(False, REASON_REVOKED, **ident)
    if not policies:
        return Decision(False, REASON_NO_POLICY, **ident)
    for pol in policies:
        if not _matches(pol, status.tags):
            continue
        if pol.action != "accept":
            return Decision(False, f"denied by proxy-policy {pol.policy_id}",
                            policy_id=pol.policy_id, **ident)
        rec = TrustRecord(check.device_id, check.fingerprint, tuple(sorted(status.tags)),
                          round(now * 1000) / 1000, pol.policy_id, check.serial,
                          float(int(check.not_after)))  # the precision of the sync codec
        return Decision(True, f"accepted by proxy-policy {pol.policy_id}",
                        policy_id=pol.policy_id, record=rec, **ident)
    first = next((p for p in policies if p.action == "accept"), policies[0])
    return Decision(False, _tags_reason(first, status.tags), **ident)


def verify_client(cert_der: bytes | None, anchor: TrustAnchor,
                  lookup: Callable[[str], DeviceStatus | None],
                  policies: Sequence[ProxyPolicy], now: float) -> Decision:
    """``check_certificate`` then ``authorize``; ``lookup`` (the EMS) is asked only when the
    certificate passed."""
    check = check_certificate(cert_der, anchor, now)
    status = lookup(check.device_id) if check.ok else None
    return authorize(check, status, policies, now)


def cert_der_of(cert: x509.Certificate) -> bytes:
    """DER bytes of a ``cryptography`` certificate (what the TLS endpoint hands over)."""
    return cert.public_bytes(Encoding.DER)


# --- trust record codec (EXT_ZTNA TLV value, big-endian) --------------------------------
TRUST_VERSION = 1
_TR_HEAD = struct.Struct("!BIQI32s")  # version, policy id, verified_at ms, not_after s, fp


def encode_trust(rec: TrustRecord) -> bytes:
    """version u8, policy u32, verified_at ms u64, not_after s u32, fingerprint 32,
    serial (u8 len + bytes), device id (u8 len + UTF-8), u8 tag count, each u8 len + UTF-8."""
    if len(rec.fingerprint) != 32:
        raise TrustRecordError("fingerprint must be 32 bytes")
    serial = rec.serial.to_bytes((rec.serial.bit_length() + 7) // 8, "big")
    parts = [_TR_HEAD.pack(TRUST_VERSION, rec.policy_id, round(rec.verified_at * 1000),
                           int(rec.not_after), rec.fingerprint)]
    items = [serial, rec.device_id.encode()]
    for item in items:
        if len(item) > 255:
            raise TrustRecordError("serial or device id longer than 255 bytes")
        parts.append(bytes([len(item)]) + item)
    tags = [t.encode() for t in rec.tags]
    if len(tags) > 255 or any(len(t) > 255 for t in tags):
        raise TrustRecordError("too many or too long tags")
    parts.append(bytes([len(tags)]))
    parts.extend(bytes([len(t)]) + t for t in tags)
    return b"".join(parts)


def decode_trust(data: bytes) -> TrustRecord:
    """Inverse of ``encode_trust``; raises TrustRecordError on any malformed input."""
    if len(data) < _TR_HEAD.size:
        raise TrustRecordError(f"trust record too short ({len(data)} bytes)")
    ver, pol, vat, naf, fp = _TR_HEAD.unpack_from(data)
    if ver != TRUST_VERSION:
        raise TrustRecordError(f"unknown trust record version {ver}")
    p = _TR_HEAD.size

    def take() -> bytes:
        nonlocal p
        if p >= len(data) or p + 1 + data[p] > len(data):
            raise TrustRecordError(f"trust record truncated at byte {p}")
        n = data[p]
        p += 1 + n
        return data[p - n:p]

    serial = int.from_bytes(take(), "big")
    try:
        device = take().decode()
        if p >= len(data):
            raise TrustRecordError("trust record truncated before the tags")
        count = data[p]
        p += 1
        tags = tuple(take().decode() for _ in range(count))
    except UnicodeDecodeError as e:
        raise TrustRecordError("trust record text is not UTF-8") from e
    if p != len(data):
        raise TrustRecordError(f"{len(data) - p} bytes after the trust record")
    return TrustRecord(device, fp, tags, vat / 1000, pol, serial, float(naf))
