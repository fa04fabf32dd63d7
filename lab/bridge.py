"""The benchmark's stand-in forwarding plane: fgcpd's I/O without its decisions.

``BridgeForwarder`` sends every frame received on one port out of all the others,
unchanged (no policy, no sessions, no ARP), so lab.bench can measure the member's
packet I/O alone.  ``python -m lab.bridge`` is fgcpd (same options) with it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from fgcp import daemon
from fgcp.component import SessionEvent
from fgcp.forward import PortSpec
from fgcp.model import MemberConfig
from fgcp.session import Session, SessionTable

__all__ = ["BridgeForwarder", "main"]


class BridgeForwarder:
    """A ``fgcp.component.ForwardingPlane`` that bridges the member's ports."""

    def __init__(self, cfg: MemberConfig, ports: Sequence[PortSpec]) -> None:
        self.indexes = [p.index for p in ports]
        self._counters: dict[str, int] = {}
        self._sessions = SessionTable(cfg.session_table_max)
        self.on_session_event: SessionEvent | None = None

    @property
    def counters(self) -> Mapping[str, int]:
        return self._counters

    @property
    def sessions(self) -> SessionTable:
        return self._sessions

    def handle(self, port_index: int, frame: bytearray, now: float,
               out: list[tuple[int, bytes | bytearray]]) -> None:
        for i in self.indexes:
            if i != port_index:
                out.append((i, frame))

    def expire(self, now: float) -> int:
        return 0

    def set_active(self, active: bool) -> None:
        """Always bridging: the benchmark runs the member without HA."""

    def set_port_mac(self, index: int, mac: bytes) -> None:
        """Frames leave unchanged: no source MAC to set."""

    def gratuitous_arps(self, index: int) -> list[tuple[int, bytes | bytearray]]:
        return []

    def install_session(self, s: Session, now: float, pickup: bool = True) -> bool:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """fgcpd with the bridge as forwarding plane (options of fgcpd)."""
    return daemon.main(argv, forwarder=BridgeForwarder, prog="lab.bridge")


if __name__ == "__main__":
    sys.exit(main())
