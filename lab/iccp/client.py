"""Benign ICCP client (pyiec61850 TASE2Client): associates once, then reads points and
writes a setpoint at a fixed rate, never reconnecting, and writes a JSON report.

    python -m lab.iccp.client --dst IP [--port 102] [--rate 5] [--duration 30] --out c.json

The report says whether the single association survived: ops attempted / ok / failed,
first and last error, each op's time (CLOCK_REALTIME) and result, the largest gap
between successful ops, and how the association ended.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lab.gaps import gaps_above, max_gap
from lab.iccp.server import BREAKER_POS, DOMAIN, POWER, RCB_ENABLE, SETPOINT
from lab.probes.common import stop_on_signals, write_report
from topologies.util import die_with_parent

LOCAL_AP_TITLE = "1.1.1.999"
REMOTE_AP_TITLE = "1.1.1.998"
MAX_OPS_KEPT = 20000
ASSOCIATE_TRIES = 3


def _op_cycle() -> list[tuple[str, str]]:
    """One cycle: read power, read breaker position, write the setpoint."""
    return [("read", POWER), ("read", BREAKER_POS), ("write", SETPOINT)]


def _mms_connection(client: Any) -> Any:
    """The libiec61850 MmsConnection under a TASE2Client (for identify/status/conclude)."""
    import pyiec61850.pyiec61850 as iec

    return iec.IedConnection_getMmsConnection(client._connection._connection)


def _mms_call(client: Any, name: str, *args: Any) -> str | None:
    """Run ``MmsConnection_<name>``; None when it worked, else the MMS error text."""
    import pyiec61850.pyiec61850 as iec

    err = iec.MmsError_create()
    try:
        getattr(iec, f"MmsConnection_{name}")(_mms_connection(client), err, *args)
        code = iec.MmsError_getValue(err)
        return None if code == 0 else f"{name}: {iec.MmsError_toString(code)}"
    finally:
        if hasattr(iec, "MmsError_destroy"):
            iec.MmsError_destroy(err)


def run_extras(client: Any) -> dict[str, str | None]:
    """One of each further service, for the golden capture: identify, a named variable list
    (define, read, delete) and a read of Next_DSTransfer_Set (define, read, delete). Returns each service's error (None: ok)."""
    from pyiec61850.tase2.exceptions import TASE2Error

    out: dict[str, str | None] = {"identify": _mms_call(client, "identify")}
    members = [f"{DOMAIN}/MMXU1.TotW.mag.f[MX]", f"{DOMAIN}/GGIO1.SPCSO1.stVal[ST]"]
    calls: tuple[tuple[str, Callable[[], object]], ...] = (
        ("defineNamedVariableList",
         lambda: client.create_data_set(DOMAIN, "DS_Transfer_Set1", members,
                                        include_transfer_metadata=True)),
        ("readNamedVariableList", lambda: client.get_data_set_values(DOMAIN, "DS_Transfer_Set1")),
        ("readNextDSTransferSet", lambda: client.read_point(DOMAIN, "Next_DSTransfer_Set")),
        ("deleteNamedVariableList", lambda: client.delete_data_set(DOMAIN, "DS_Transfer_Set1")),
    )
    for name, call in calls:
        try:
            call()
            out[name] = None
        except (TASE2Error, OSError) as e:
            out[name] = str(e)[:200]
    return out


def run_client(dst: str, port: int, rate: float, duration: float | None,
               should_stop: Callable[[], bool], connect_timeout_ms: int = 3000,
               gap_threshold_ms: float = 100.0, extras: bool = False,
               conclude: bool = False, reports: bool = False) -> dict[str, Any]:
    """Associate, run ops at ``rate``/s until ``duration`` or a stop; return the report."""
    from pyiec61850.tase2 import TASE2Client
    from pyiec61850.tase2.exceptions import TASE2Error

    failures = (TASE2Error, OSError)  # ConnectionFailedError is an OSError

    rep: dict[str, Any] = {
        "tool": "iccp-client", "dst": dst, "port": port, "rate": rate,
        "started": time.time(), "associated": False, "associated_at": None,
        "ops_attempted": 0, "ops_ok": 0, "ops_failed": 0, "reads_ok": 0, "writes_ok": 0,
        "first_error": None, "last_error": None, "ops": [], "ended": "running",
        "association_attempts": 0,
    }

    def error(text: str) -> None:
        rep["first_error"] = rep["first_error"] or text
        rep["last_error"] = text

    # pyiec61850's TASE2Client sometimes (about 1 fresh process in 6 here) reports
    # connection-lost on its first request right after a good association, with nothing
    # sent: the initial association is therefore verified by a read and retried up to
    # ASSOCIATE_TRIES times.  Once verified, there is no reconnect at all.
    client = None
    for attempt in range(1, ASSOCIATE_TRIES + 1):
        rep["association_attempts"] = attempt
        client = TASE2Client(local_ap_title=LOCAL_AP_TITLE, remote_ap_title=REMOTE_AP_TITLE,
                             max_consecutive_errors=1_000_000)
        try:
            client.connect(dst, port=port, timeout=connect_timeout_ms)
            client.read_point(DOMAIN, POWER)
            break
        except failures as e:
            error(f"associate (attempt {attempt}): {e}")
            with contextlib.suppress(*failures):
                client.disconnect()
            client = None
    if client is None:
        rep["ended"] = "connect-failed"
        return _finish(rep, gap_threshold_ms)
    rep["associated"], rep["associated_at"] = True, time.time()
    if extras:
        rep["extras"] = run_extras(client)
    if reports:  # enable the server's report control block: informationReports follow
        try:
            client.write_point(DOMAIN, RCB_ENABLE, True)
            rep["reports_enabled"] = True
        except failures as e:
            rep["reports_enabled"] = False
            error(f"enable reports: {e}")
    cycle = _op_cycle()
    interval = 1.0 / rate if rate > 0 else 0.0
    end = time.monotonic() + duration if duration else float("inf")
    next_t = time.monotonic()
    i = 0
    ok_times: list[float] = []
    try:
        while not should_stop() and time.monotonic() < end:
            kind, item = cycle[i % len(cycle)]
            t = time.time()
            t_mono = time.monotonic()
            ok = True
            try:
                if kind == "read":
                    client.read_point(DOMAIN, item)
                else:
                    client.write_point(DOMAIN, item, float(i % 1000))
            except failures as e:
                ok = False
                error(f"{kind} {item}: {e}")
            rep["ops_attempted"] += 1
            if ok:
                rep["ops_ok"] += 1
                rep["reads_ok" if kind == "read" else "writes_ok"] += 1
                ok_times.append(t)
            else:
                rep["ops_failed"] += 1
            if len(rep["ops"]) < MAX_OPS_KEPT:
                rep["ops"].append([round(t, 6), kind, ok,
                                   round((time.monotonic() - t_mono) * 1000, 3)])
            if not ok and not client.is_connected:
                rep["ended"] = "association-lost"
                break
            i += 1
            next_t += interval
            time.sleep(max(0.0, next_t - time.monotonic()))
        else:
            rep["ended"] = "completed"
    finally:
        if conclude and client.is_connected:
            rep["conclude_error"] = _mms_call(client, "conclude")
        try:
            client.disconnect()
        except failures as e:
            error(f"disconnect: {e}")
    rep["ok_times"] = ok_times
    return _finish(rep, gap_threshold_ms)


def _finish(rep: dict[str, Any], gap_threshold_ms: float) -> dict[str, Any]:
    times = rep.pop("ok_times", [])
    g = max_gap(times)
    rep["max_gap_ms"] = round(g.duration_ms, 3) if g else None
    rep["gaps"] = [x.to_dict() for x in gaps_above(times, gap_threshold_ms)][:100]
    rep["first_ok"] = times[0] if times else None
    rep["last_ok"] = times[-1] if times else None
    rep["finished"] = time.time()
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.iccp.client",
                                description=__doc__.split("\n")[0])
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=102)
    p.add_argument("--rate", type=float, default=5.0, help="MMS operations per second")
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--connect-timeout-ms", type=int, default=3000)
    p.add_argument("--gap-threshold-ms", type=float, default=100.0)
    p.add_argument("--extras", action="store_true",
                   help="once after associating: identify, define/read/delete a variable list")
    p.add_argument("--conclude", action="store_true", help="MMS conclude before closing")
    p.add_argument("--reports", action="store_true",
                   help="enable the server's report control block (informationReports)")
    p.add_argument("--out", required=True, help="JSON report path")
    p.add_argument("--die-with-parent", action="store_true")
    a = p.parse_args(argv)
    should_stop = stop_on_signals()
    if a.die_with_parent:
        die_with_parent()
    rep = run_client(a.dst, a.port, a.rate, a.duration, should_stop,
                     a.connect_timeout_ms, a.gap_threshold_ms, a.extras, a.conclude,
                     a.reports)
    write_report(a.out, rep)
    return 0 if rep["associated"] and rep["ops_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
