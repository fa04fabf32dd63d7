"""``python -m tests.ips_flush_latency [RUNS]``: per-segment cost of the ICCP state update sent before the segment (STATE_NOW)
vs coalesced in the 2 ms flush ("state"): Forwarder + IpsInspector + the real SyncMember
over in-memory links (tests/unit/test_ips_sync.Pair), benign ICCP PDUs one per segment."""
from __future__ import annotations

import statistics
import sys
import time

from scapy.layers.inet import TCP

import fgcp.ipsinspector as ii
from lab.ips_bench import iccp_chunks
from tests.unit.test_forward import P1, P2, from_client, from_server
from tests.unit.test_ips_sync import Pair
from tests.unit.test_ipsinspector import handshake


def once(kind: str) -> tuple[float, float]:
    """(µs of Forwarder.handle per client segment, sync frames on the wire per segment)."""
    ii.STATE_NOW = kind  # type: ignore[misc]  # the adapter's event kind, "state": coalesced
    pair = Pair()
    a = pair.daemons[0]
    pair.takeover(0)
    pair.run(0.2)
    _s, nport = handshake(a.fwd, 102)
    chunks = iccp_chunks(0.05)
    seq = 1001
    wire = pair.wires["port5"]
    f0 = wire.frames
    t_fwd = 0.0
    n = 0
    for c in chunks:
        frame = bytearray(bytes(from_client(TCP(sport=40001, dport=102, seq=seq, ack=5001,
                                                 flags="PA") / c)))
        out = []
        t0 = time.perf_counter()
        a.fwd.handle(P1, frame, pair.now, out)
        t_fwd += time.perf_counter() - t0
        assert len(out) == 1
        seq += len(c)
        n += 1
        a.fwd.handle(P2, bytearray(bytes(from_server(TCP(sport=102, dport=nport, seq=5001,
                                                          ack=seq, flags="A")))), pair.now, [])
        pair.run(0.0005, step=0.0005)  # ~2,000 segments/s of simulated time
    return t_fwd / n * 1e6, (wire.frames - f0) / n


def main() -> None:
    res: dict[str, list[tuple[float, float]]] = {"state-now": [], "state": []}
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        for k, v in res.items():
            v.append(once(k))
    for k, v in res.items():
        us = [x[0] for x in v]
        fr = [x[1] for x in v]
        print(f"{k:10s} us/segment median {statistics.median(us):.0f} "
              f"({min(us):.0f}-{max(us):.0f})  sync frames/segment {statistics.median(fr):.2f}")


if __name__ == "__main__":
    main()
