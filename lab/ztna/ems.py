"""EMS stand-in for the ZTNA lab: devices, their tags and revocations, served as one JSON
object per line over TCP (``HOST:PORT``) or a unix socket (a path); protocol in docs/ztna.md.

``EmsCore`` is the pure state (``now`` passed in); ``EmsServer`` the threaded socket shell
that also re-signs the CRL of a ``PkiDir`` on revocation; ``EmsClient`` the caller's side.
CLI: ``python -m lab.ztna.ems serve DIR --listen ADDR`` and ``... ADDR query|list|...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from inspection.ztna.verify import DeviceStatus
from lab.ztna.pki import PkiDir, PkiError

__all__ = ["EmsClient", "EmsCore", "EmsError", "EmsServer", "parse_address", "parse_hostport"]

MAX_LINE = 65536
STATUS_ACTIVE = "active"
STATUS_REVOKED = "revoked"


class EmsError(Exception):
    """An EMS request that failed (unknown device, bad request, unreachable EMS)."""


def parse_address(text: str) -> tuple[str, int] | str:
    """``HOST:PORT`` -> (host, port); anything with a ``/`` is a unix socket path."""
    return text if "/" in text else parse_hostport(text)


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; empty host = 127.0.0.1) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r}: HOST:PORT expected")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class Device:
    device_id: str
    uid: str = ""
    serial: int = 0
    tags: set[str] = field(default_factory=set)
    status: str = STATUS_ACTIVE
    revoked_at: float | None = None
    changed_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device_id, "uid": self.uid, "serial": f"{self.serial:x}",
                "tags": sorted(self.tags), "status": self.status,
                "revoked_at": self.revoked_at, "changed_at": self.changed_at}


class EmsCore:
    """The EMS's state: devices, tags, revocations, and an event counter bumped on every
    change (callers poll it to know when to refresh their cache)."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.event = 0
        self.queries = 0

    def register(self, device_id: str, now: float, uid: str = "", serial: int = 0,
                 tags: Sequence[str] = (), revoked_at: float | None = None) -> Device:
        dev = Device(device_id, uid, serial, set(tags),
                     STATUS_REVOKED if revoked_at is not None else STATUS_ACTIVE,
                     revoked_at, now)
        self.devices[device_id] = dev
        self.event += 1
        return dev

    def _get(self, device_id: str) -> Device:
        dev = self.devices.get(device_id)
        if dev is None:
            raise EmsError(f"unknown device {device_id!r}")
        return dev

    def query(self, device_id: str) -> Device:
        self.queries += 1
        return self._get(device_id)

    def set_tag(self, device_id: str, tag: str, present: bool, now: float) -> Device:
        dev = self._get(device_id)
        if not tag or len(tag) > 64:
            raise EmsError(f"bad tag {tag!r}")
        if (tag in dev.tags) != present:
            (dev.tags.add if present else dev.tags.discard)(tag)
            dev.changed_at = now
            self.event += 1
        return dev

    def revoke(self, device_id: str, now: float) -> Device:
        dev = self._get(device_id)
        if dev.status != STATUS_REVOKED:
            dev.status, dev.revoked_at, dev.changed_at = STATUS_REVOKED, now, now
            self.event += 1
        return dev

    def status(self, device_id: str) -> DeviceStatus | None:
        """The verifier's view of a device (None: unknown)."""
        dev = self.devices.get(device_id)
        if dev is None:
            return None
        self.queries += 1
        return DeviceStatus(dev.device_id, frozenset(dev.tags), dev.status == STATUS_REVOKED)

    def handle(self, req: Any, now: float) -> dict[str, Any]:
        """One protocol request (a decoded JSON object) -> the response object."""
        try:
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise EmsError("bad request: an object with an 'op' string is expected")
            op = req["op"]
            device = req.get("device")
            dev_id = device if isinstance(device, str) else ""
            if op in ("query", "set-tag", "clear-tag", "revoke", "register") and not dev_id:
                raise EmsError(f"bad request: {op} needs a 'device' string")
            if op == "query":
                return {"ok": True, "device": self.query(dev_id).as_dict(), "event": self.event}
            if op == "list":
                return {"ok": True, "event": self.event,
                        "devices": [d.as_dict() for _, d in sorted(self.devices.items())]}
            if op == "events":
                return {"ok": True, "event": self.event}
            if op in ("set-tag", "clear-tag"):
                tag = req.get("tag")
                if not isinstance(tag, str):
                    raise EmsError(f"bad request: {op} needs a 'tag' string")
                dev = self.set_tag(dev_id, tag, op == "set-tag", now)
                return {"ok": True, "device": dev.as_dict(), "event": self.event}
            if op == "revoke":
                return {"ok": True, "device": self.revoke(dev_id, now).as_dict(),
                        "event": self.event}
            if op == "register":
                tags = req.get("tags", [])
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise EmsError("bad request: 'tags' must be a list of strings")
                dev = self.register(dev_id, now, str(req.get("uid", "")), tags=tags)
                return {"ok": True, "device": dev.as_dict(), "event": self.event}
            raise EmsError(f"bad request: unknown op {op!r}")
        except EmsError as e:
            return {"ok": False, "error": str(e), "event": self.event}

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event,
                "tags": {d: sorted(v.tags) for d, v in sorted(self.devices.items())}}


class _Handler(socketserver.StreamRequestHandler):
    server: _TcpServer | _UnixServer

    def handle(self) -> None:
        ems = self.server.ems
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE:
                self.wfile.write(b'{"ok": false, "error": "request line too long"}\n')
                return
            try:
                req = json.loads(line)
            except ValueError:
                resp: dict[str, Any] = {"ok": False, "error": "bad request: not JSON"}
            else:
                resp = ems.request(req)
            self.wfile.write(json.dumps(resp).encode() + b"\n")


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    ems: EmsServer  # set by EmsServer before it serves


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    ems: EmsServer  # set by EmsServer before it serves


class EmsServer:
    """The EMS process: core + lock + socket server; with a ``PkiDir``, devices come from its
    index, tags persist in DIR/ems.json and a revocation re-signs DIR/crl.pem."""

    def __init__(self, address: tuple[str, int] | str, pki: PkiDir | None = None,
                 tags: dict[str, list[str]] | None = None) -> None:
        self.core = EmsCore()
        self.pki = pki
        self.lock = threading.Lock()
        now = dt.datetime.now(dt.UTC).timestamp()
        saved: dict[str, list[str]] = {}
        if pki is not None and (pki.path / "ems.json").exists():
            saved = json.loads((pki.path / "ems.json").read_text()).get("tags", {})
        saved.update(tags or {})
        if pki is not None:
            for dev_id, info in pki.devices().items():
                if info["kind"] != "server":
                    self.core.register(dev_id, now, info["uid"], int(info["serial"]),
                                       saved.get(dev_id, ()), info["revoked_at"])
        if isinstance(address, str):
            if os.path.exists(address):
                os.unlink(address)
            self.server: _UnixServer | _TcpServer = _UnixServer(address, _Handler)
        else:
            self.server = _TcpServer(address, _Handler)
        self.server.ems = self
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | str:
        addr = self.server.server_address  # a path (unix) or (host, port) (TCP)
        if isinstance(addr, str):
            return addr
        if isinstance(addr, tuple):
            return str(addr[0]), int(addr[1])
        raise EmsError(f"unexpected EMS server address {addr!r}")

    def request(self, req: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            if isinstance(req, dict) and req.get("op") == "crl":
                return {"ok": True, "event": self.core.event, "crl": self.crl_pem()}
            resp = self.core.handle(req, now.timestamp())
            if resp["ok"] and isinstance(req, dict) and req.get("op") in (
                    "set-tag", "clear-tag", "revoke", "register"):
                if self.pki is not None and req["op"] == "revoke":
                    try:
                        self.pki.revoke(req["device"], now)
                    except PkiError as e:
                        resp["warning"] = f"CRL not updated: {e}"
                self._save()
        return resp

    def crl_pem(self) -> str:
        return self.pki.crl_path.read_text() if self.pki is not None else ""

    def _save(self) -> None:
        if self.pki is not None:
            tmp = self.pki.path / "ems.json.tmp"
            tmp.write_text(json.dumps(self.core.to_json(), indent=1))
            tmp.replace(self.pki.path / "ems.json")

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        name="ems", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()
        if isinstance(self.address, str) and os.path.exists(self.address):
            os.unlink(self.address)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class EmsClient:
    """Line-JSON client; one connection per request (simple, and survives EMS restarts)."""

    def __init__(self, address: tuple[str, int] | str, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        fam = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.address)
                s.sendall(json.dumps(req).encode() + b"\n")
                with s.makefile("rb") as f:
                    line = f.readline(MAX_LINE + 1)
        except OSError as e:
            raise EmsError(f"EMS at {self.address} unreachable: {e}") from e
        try:
            reply = json.loads(line)
        except ValueError as e:
            raise EmsError("EMS answered something that is not JSON") from e
        if not isinstance(reply, dict):
            raise EmsError("EMS answered JSON that is not an object")
        return reply

    def status(self, device_id: str) -> DeviceStatus | None:
        """The verifier's lookup: None when the EMS does not know the device."""
        resp = self.request({"op": "query", "device": device_id})
        if not resp.get("ok"):
            return None
        d = resp["device"]
        return DeviceStatus(d["device"], frozenset(d["tags"]), d["status"] == STATUS_REVOKED)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.ztna.ems",
                                description="EMS stand-in: device tags and revocations.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the EMS on ADDR for the devices of a PKI dir")
    s.add_argument("dir", type=Path)
    s.add_argument("--listen", required=True, help="HOST:PORT or a unix socket path")
    s.add_argument("--tag", action="append", default=[], metavar="DEVICE=TAG[,TAG]",
                   help="initial tags (repeatable)")
    for op in ("query", "set-tag", "clear-tag", "revoke", "list", "crl"):
        c = sub.add_parser(op, help=f"ask a running EMS: {op}")
        c.add_argument("addr")
        if op not in ("list", "crl"):
            c.add_argument("device")
        if op in ("set-tag", "clear-tag"):
            c.add_argument("tag")
    a = p.parse_args(argv)
    try:
        if a.cmd == "serve":
            tags = {}
            for spec in a.tag:
                dev, _, tl = spec.partition("=")
                tags[dev] = [t for t in tl.split(",") if t]
            signal.signal(signal.SIGTERM, _sigterm)
            with EmsServer(parse_address(a.listen), PkiDir(a.dir), tags) as ems:
                print(f"ems: serving {len(ems.core.devices)} devices on {a.listen}", flush=True)
                threading.Event().wait()
        req: dict[str, Any] = {"op": a.cmd}
        if hasattr(a, "device"):
            req["device"] = a.device
        if hasattr(a, "tag"):
            req["tag"] = a.tag
        resp = EmsClient(parse_address(a.addr)).request(req)
        print(resp["crl"] if a.cmd == "crl" and resp.get("ok") else json.dumps(resp, indent=1))
        return 0 if resp.get("ok") else 1
    except (EmsError, PkiError, ValueError) as e:
        print(f"ems: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
