"""Lab trust material for ZTNA: the EMS CA, device certificates, an impostor CA, the CRL.

Pure builders (``now`` passed in, ``cryptography`` only) and ``PkiDir``, a directory of PEM
files with an ``index.json``; CLI ``python -m lab.ztna.pki init|issue|revoke|show DIR ...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inspection.ztna.verify import EMS_UID_PREFIX

__all__ = [
    "EMS_UID_PREFIX",
    "IssuedDevice",
    "PkiDir",
    "PkiError",
    "build_crl",
    "issue_device",
    "key_pem",
    "make_ca",
    "new_key",
    "pem",
]

CA_NAME = "fgcp-lab EMS CA"
KINDS = ("valid", "expired", "foreign", "server")  # server: the access proxy's certificate
_DAY = dt.timedelta(days=1)


class PkiError(Exception):
    """A PKI directory or request that cannot be served (missing CA, unknown device, ...)."""


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (fast to make, accepted by every TLS 1.3 stack)."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fgcp-lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(now: dt.datetime, name: str = CA_NAME, days: int = 3650,
            key: ec.EllipticCurvePrivateKey | None = None
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate valid from a day before ``now`` for ``days``."""
    key = key or new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + days * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue_device(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                 device_id: str, uid: str, not_before: dt.datetime, not_after: dt.datetime,
                 key: ec.EllipticCurvePrivateKey | None = None, server: bool = False
                 ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A client certificate: CN and SAN DNS = ``device_id``, SAN URI = EMS UID; or, with
    ``server``, the access proxy's certificate (SAN DNS = ``device_id``, serverAuth)."""
    key = key or new_key()
    names: list[x509.GeneralName] = [x509.DNSName(device_id)]
    if not server:
        names.append(x509.UniformResourceIdentifier(EMS_UID_PREFIX + uid))
    san = x509.SubjectAlternativeName(names)
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(device_id)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([eku]),
                           critical=False)
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def build_crl(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
              revoked: Iterable[tuple[int, dt.datetime]], now: dt.datetime, number: int,
              days: int = 7) -> x509.CertificateRevocationList:
    """The CA's CRL listing ``(serial, revocation time)`` pairs, valid ``days`` from now."""
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(now - dt.timedelta(minutes=1)).next_update(now + days * _DAY)
         .add_extension(x509.CRLNumber(number), critical=False))
    for serial, when in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(serial).revocation_date(when).build())
    return b.sign(ca_key, hashes.SHA256())


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    """PEM bytes of a certificate or CRL."""
    return obj.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM of a private key (lab material only)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class IssuedDevice:
    """Where a device's certificate and key were written, and what identifies it."""

    device_id: str
    uid: str
    serial: int
    cert_path: Path
    key_path: Path
    kind: str  # one of KINDS


class PkiDir:
    """A lab PKI in one directory: ca.pem/ca.key, crl.pem, foreign-ca.*, devices/, index.json.

    Every method takes ``now`` (UTC datetime) so tests control time; the CLI passes the clock.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    # --- files -------------------------------------------------------------------------
    @property
    def ca_path(self) -> Path:
        return self.path / "ca.pem"

    @property
    def crl_path(self) -> Path:
        return self.path / "crl.pem"

    def _index(self) -> dict[str, Any]:
        p = self.path / "index.json"
        if not p.exists():
            raise PkiError(f"{self.path}: no PKI here (run `python -m lab.ztna.pki init`)")
        index = json.loads(p.read_text())
        if not isinstance(index, dict):
            raise PkiError(f"{p}: not a PKI index (a JSON object is expected)")
        return index

    def _save_index(self, index: dict[str, Any]) -> None:
        tmp = self.path / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        tmp.replace(self.path / "index.json")

    def _load_ca(self, stem: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate((self.path / f"{stem}.pem").read_bytes())
        key = serialization.load_pem_private_key((self.path / f"{stem}.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    @staticmethod
    def _write(path: Path, data: bytes, private: bool = False) -> None:
        path.write_bytes(data)
        if private:
            path.chmod(0o600)

    # --- operations --------------------------------------------------------------------
    def init(self, now: dt.datetime) -> None:
        """Create the EMS CA, an impostor CA with the same name, an empty CRL."""
        if (self.path / "index.json").exists():
            raise PkiError(f"{self.path}: a PKI exists already")
        (self.path / "devices").mkdir(parents=True, exist_ok=True)
        for stem in ("ca", "foreign-ca"):
            cert, key = make_ca(now)
            self._write(self.path / f"{stem}.pem", pem(cert))
            self._write(self.path / f"{stem}.key", key_pem(key), private=True)
        self._save_index({"devices": {}, "crl_number": 0})
        self.write_crl(now)

    def issue(self, device_id: str, now: dt.datetime, kind: str = "valid",
              days: int = 365) -> IssuedDevice:
        """Issue ``device_id``'s certificate: valid, already expired, from the impostor CA,
        or (``server``) the access proxy's TLS certificate."""
        if kind not in KINDS:
            raise PkiError(f"unknown certificate kind {kind!r}")
        if not device_id or "/" in device_id or device_id.startswith("."):
            raise PkiError(f"bad device id {device_id!r}")
        index = self._index()
        uid = f"{len(index['devices']) + 1:08X}-{device_id}"
        ca_cert, ca_key = self._load_ca("foreign-ca" if kind == "foreign" else "ca")
        if kind == "expired":
            nb, na = now - 30 * _DAY, now - _DAY
        else:
            nb, na = now - dt.timedelta(minutes=5), now + days * _DAY
        cert, key = issue_device(ca_cert, ca_key, device_id, uid, nb, na,
                                 server=kind == "server")
        cp = self.path / "devices" / f"{device_id}.pem"
        kp = self.path / "devices" / f"{device_id}.key"
        self._write(cp, pem(cert))
        self._write(kp, key_pem(key), private=True)
        index["devices"][device_id] = {"serial": cert.serial_number, "uid": uid, "kind": kind,
                                       "revoked_at": None}
        self._save_index(index)
        return IssuedDevice(device_id, uid, cert.serial_number, cp, kp, kind)

    def revoke(self, device_id: str, now: dt.datetime) -> int:
        """Put ``device_id``'s certificate on the CRL (idempotent); returns its serial."""
        index = self._index()
        dev = index["devices"].get(device_id)
        if dev is None:
            raise PkiError(f"unknown device {device_id!r}")
        if dev["revoked_at"] is None:
            dev["revoked_at"] = now.timestamp()
            self._save_index(index)
            self.write_crl(now)
        return int(dev["serial"])

    def write_crl(self, now: dt.datetime) -> bytes:
        """Re-sign crl.pem from the index (a new CRL number each time); returns the PEM."""
        index = self._index()
        index["crl_number"] += 1
        ca_cert, ca_key = self._load_ca("ca")
        revoked = [(int(d["serial"]), dt.datetime.fromtimestamp(d["revoked_at"], dt.UTC))
                   for d in index["devices"].values()
                   if d["revoked_at"] is not None and d["kind"] != "foreign"]
        data = pem(build_crl(ca_cert, ca_key, revoked, now, index["crl_number"]))
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.crl_path)
        self._save_index(index)
        return data

    def devices(self) -> dict[str, dict[str, Any]]:
        """The index: device id -> serial, uid, kind, revoked_at (epoch s or None)."""
        return dict(self._index()["devices"])


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.ztna.pki",
                                description="Lab PKI for ZTNA: EMS CA, device certs, CRL.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("init", help="create the EMS CA, an impostor CA and an empty CRL")
    s.add_argument("dir", type=Path)
    s = sub.add_parser("issue", help="issue device certificates (devices/<id>.pem, .key)")
    s.add_argument("dir", type=Path)
    s.add_argument("device", nargs="+")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--expired", action="store_true", help="validity ended yesterday")
    g.add_argument("--foreign", action="store_true", help="signed by the impostor CA")
    g.add_argument("--server", action="store_true", help="the access proxy's certificate")
    s.add_argument("--days", type=int, default=365)
    s = sub.add_parser("revoke", help="revoke devices (re-signs crl.pem)")
    s.add_argument("dir", type=Path)
    s.add_argument("device", nargs="+")
    s = sub.add_parser("show", help="list the issued devices")
    s.add_argument("dir", type=Path)
    a = p.parse_args(argv)
    pki = PkiDir(a.dir)
    try:
        if a.cmd == "init":
            pki.init(_utcnow())
            print(f"{a.dir}: EMS CA {pki.ca_path}, CRL {pki.crl_path}")
        elif a.cmd == "issue":
            kind = ("expired" if a.expired else "foreign" if a.foreign
                    else "server" if a.server else "valid")
            for d in a.device:
                dev = pki.issue(d, _utcnow(), kind, a.days)
                print(f"{dev.device_id} {dev.kind} serial={dev.serial:x} uid={dev.uid} "
                      f"cert={dev.cert_path} key={dev.key_path}")
        elif a.cmd == "revoke":
            for d in a.device:
                print(f"{d} revoked serial={pki.revoke(d, _utcnow()):x}")
        else:
            for d, info in sorted(pki.devices().items()):
                state = "revoked" if info["revoked_at"] is not None else "active"
                print(f"{d:20} {info['kind']:8} {state:8} serial={int(info['serial']):x}")
    except PkiError as e:
        print(f"pki: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
