"""The lab PKI the ZTNA unit tests share (tests/unit/test_ztna_*.py).

``build_test_pki(path, now)``: the EMS CA; device certificates dev1, dev2 and gone (gone
revoked, in the CRL), old (expired), intruder (signed by a foreign CA); and the proxy's
server certificate "proxy".
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lab.ztna.pki import PkiDir


def build_test_pki(path: Path, now: dt.datetime) -> PkiDir:
    p = PkiDir(path)
    p.init(now)
    for dev in ("dev1", "dev2", "gone"):
        p.issue(dev, now)
    p.issue("old", now, "expired")
    p.issue("intruder", now, "foreign")
    p.issue("proxy", now, "server")
    p.revoke("gone", now)
    return p
