"""lab.ips_bench on a small load: every mode forwards the whole stream, the IPS really
sits in the forwarding path (a matching signature stops the run), the state sizes and the
sync cost of EXT_IPS."""

from __future__ import annotations

import random

import pytest

from inspection.ips import Rule, parse_signature
from lab.ips_bench import (
    BenchError,
    http_chunks,
    iccp_chunks,
    inspected_forwarder,
    run_bench,
    run_forwarding,
    state_sizes,
    sync_cost,
)


def test_every_mode_forwards_the_stream_and_the_figures_are_consistent() -> None:
    res = run_bench(1, 0.3, sizes=(10, 100), iccp_megabytes=0.02)
    assert [m.name for m in res.modes] == ["plain", "ips-10", "ips-100", "ips-100-sync-all",
                                           "iccp-plain", "iccp-ips-10", "iccp-ips-100"]
    for m in res.modes:
        assert res.mbs[m.name].values[0] > 0 and res.kpps[m.name].values[0] > 0
    for name in ("ips-100", "iccp-ips-10", "iccp-ips-100"):
        idle, pending = res.states[name]
        assert 0 < idle < pending
    pending = res.pending_state
    assert pending == max(p for _, p in res.states.values())
    without, with_ips = res.cost["without"][0], res.cost["with"][0]
    # the EXT_IPS TLV: a 4-byte header and the state
    assert with_ips.record_bytes == without.record_bytes + 4 + pending


def test_a_matching_signature_stops_the_benchmark_stream() -> None:
    sig = parse_signature('F-SBID( --name "get"; --service HTTP; --flow from_client; '
                          '--pattern "GET / HTTP"; )')
    fwd, insp = inspected_forwarder([Rule(sig, action="block")], iccp=None)
    with pytest.raises(BenchError, match="forwarded"):
        run_forwarding(fwd, http_chunks(0.1, random.Random(1)))
    assert insp.counters["ips_blocked"] == 1


def test_state_sizes_and_sync_cost() -> None:
    idle, pending = state_sizes(10)
    assert idle < pending < 1024
    c = sync_cost(b"\0" * pending, count=200)
    assert c.record_bytes == sync_cost(None, count=200).record_bytes + 4 + pending
    assert c.encode_rps > 0 and c.decode_rps > 0


def test_an_iccp_signature_blocks_the_stream_through_the_decoder() -> None:
    """The ICCP mode's engine decodes MMS: a signature on the benign writes' item stops
    the stream (so the benign ICCP figures are of the decoder path)."""
    sig = parse_signature('F-SBID( --name "setpoint"; --service ICCP; --flow from_client; '
                          '--iccp_service write; --iccp_item "AnOut1"; )')
    fwd, insp = inspected_forwarder([Rule(sig, action="block")])
    with pytest.raises(BenchError, match="forwarded"):
        run_forwarding(fwd, iccp_chunks(0.01), 102)
    assert insp.counters["ips_blocked"] == 1 and "name=\"setpoint\" action=block" in \
        insp.render_anomalies()
