"""A real MMS/ICCP server (libiec61850 IedServer, model built in code) with a small
TASE.2-flavoured data model: domain ICC1 with measurements, a setpoint and a breaker.

    python -m lab.iccp.server --port 102 [--bind 0.0.0.0] [--ready-file F] [--duration S]

Data model (MMS domain ``ICC1`` = IED ``ICC`` + logical device ``1``)::

    LLN0                         mandatory logical node
    MMXU1$MX$TotW$mag$f          active power (float), changes every second
    MMXU1$MX$Hz$mag$f            frequency (float)
    GGIO1$SP$AnOut1$setMag$f     writable setpoint (float, FC SP, write allowed)
    GGIO1$CO$SPCSO1$Oper         breaker control point (SPC, direct control with normal security)
    GGIO1$ST$SPCSO1$stVal        breaker position (status)
    LLN0$Transfer_Set1           data set {TotW, Hz}
    LLN0$RP$urcb01               unbuffered report control block on it (integrity 500 ms)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.probes.common import stop_on_signals
from topologies.util import die_with_parent

DOMAIN = "ICC1"
IED_NAME, LD_NAME = "ICC", "1"
POWER = "MMXU1$MX$TotW$mag$f"
FREQ = "MMXU1$MX$Hz$mag$f"
SETPOINT = "GGIO1$SP$AnOut1$setMag$f"
BREAKER_OPER = "GGIO1$CO$SPCSO1$Oper"
BREAKER_POS = "GGIO1$ST$SPCSO1$stVal"
POINTS = (POWER, FREQ, SETPOINT, BREAKER_POS)
DATA_SET = "Transfer_Set1"             # LLN0$Transfer_Set1: TotW and Hz
RCB = "urcb01"
RCB_ENABLE = f"LLN0$RP${RCB}$RptEna"     # write True: integrity reports every period
REPORT_PERIOD_MS = 500


class IccpServerError(RuntimeError):
    """The MMS server could not be built or started."""


def _lib() -> Any:
    try:
        import pyiec61850.pyiec61850 as iec
    except ImportError as e:  # pragma: no cover - the dependency is pinned
        raise IccpServerError(f"pyiec61850-ng not importable: {e}") from e
    return iec


class IccpServer:
    """libiec61850 IedServer with the model above; ``start()``/``tick()``/``stop()``."""

    def __init__(self) -> None:
        iec = self._iec = _lib()
        self.model = iec.IedModel_create(IED_NAME)
        ld = iec.LogicalDevice_create(LD_NAME, self.model)
        lln0 = iec.LogicalNode_create("LLN0", ld)
        mmxu = iec.toModelNode(iec.LogicalNode_create("MMXU1", ld))
        iec.CDC_MV_create("TotW", mmxu, 0, False)
        iec.CDC_MV_create("Hz", mmxu, 0, False)
        ggio = iec.toModelNode(iec.LogicalNode_create("GGIO1", ld))
        iec.CDC_ASG_create("AnOut1", ggio, 0, False)
        iec.CDC_SPC_create("SPCSO1", ggio, 0, iec.CDC_CTL_MODEL_DIRECT_NORMAL)
        # a data set and an unbuffered report control block: the client's RptEna write
        # makes the server send informationReports (a TASE.2 DS transfer set's role)
        ds = iec.DataSet_create(DATA_SET, lln0)
        for ref in (POWER, FREQ):
            iec.DataSetEntry_create(ds, ref, -1, None)
        iec.ReportControlBlock_create(RCB, lln0, "ICC1Transfer", False, DATA_SET, 1,
                                      iec.TRG_OPT_DATA_CHANGED | iec.TRG_OPT_INTEGRITY,
                                      iec.RPT_OPT_SEQ_NUM | iec.RPT_OPT_DATA_SET, 50,
                                      REPORT_PERIOD_MS)
        self.server: Any = None

    def _attribute(self, ref: str) -> Any:
        node = self._iec.IedModel_getModelNodeByObjectReference(self.model, ref)
        if not node:
            raise IccpServerError(f"{ref} not in the model")
        return self._iec.toDataAttribute(node)

    def start(self, port: int = 102, bind: str = "0.0.0.0") -> None:
        iec = self._iec
        self.server = iec.IedServer_create(self.model)
        if bind and bind != "0.0.0.0":
            iec.IedServer_setLocalIpAddress(self.server, bind)
        iec.IedServer_setWriteAccessPolicy(self.server, iec.IEC61850_FC_SP,
                                           iec.ACCESS_POLICY_ALLOW)
        iec.IedServer_start(self.server, port)
        if not iec.IedServer_isRunning(self.server):
            iec.IedServer_destroy(self.server)
            self.server = None
            raise IccpServerError(f"IedServer did not start on {bind}:{port}")

    def tick(self, now: float) -> None:
        """Move the measurements (a slow sine) so reads see changing values."""
        iec = self._iec
        totw = self._attribute(f"{IED_NAME}{LD_NAME}/MMXU1.TotW.mag.f")
        hz = self._attribute(f"{IED_NAME}{LD_NAME}/MMXU1.Hz.mag.f")
        iec.IedServer_lockDataModel(self.server)
        try:
            iec.IedServer_updateFloatAttributeValue(self.server, totw,
                                                    100.0 + 10.0 * math.sin(now / 10.0))
            iec.IedServer_updateFloatAttributeValue(self.server, hz,
                                                    50.0 + 0.02 * math.sin(now))
        finally:
            iec.IedServer_unlockDataModel(self.server)

    def setpoint(self) -> float:
        """The setpoint's current value (what the last accepted write put there)."""
        ref = f"{IED_NAME}{LD_NAME}/GGIO1.AnOut1.setMag.f"
        return float(self._iec.IedServer_getFloatAttributeValue(self.server,
                                                                self._attribute(ref)))

    def stop(self) -> None:
        if self.server is not None:
            self._iec.IedServer_stop(self.server)
            self._iec.IedServer_destroy(self.server)
            self.server = None


def serve(port: int, bind: str, duration: float | None, ready_file: str | None,
          should_stop: Callable[[], bool]) -> None:
    srv = IccpServer()
    srv.start(port, bind)
    if ready_file:
        Path(ready_file).write_text(str(port))
    end = time.monotonic() + duration if duration else float("inf")
    try:
        while not should_stop() and time.monotonic() < end:
            srv.tick(time.time())
            time.sleep(0.2)
    finally:
        srv.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.iccp.server",
                                description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=102)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--ready-file")
    p.add_argument("--die-with-parent", action="store_true")
    a = p.parse_args(argv)
    should_stop = stop_on_signals()
    if a.die_with_parent:
        die_with_parent()
    try:
        serve(a.port, a.bind, a.duration, a.ready_file, should_stop)
    except IccpServerError as e:
        print(f"iccp server: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
