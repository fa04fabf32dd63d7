"""lab.scale_bench's in-process parts at a small N (figures are not asserted, only that
every step of the measurement did what it claims) and the slabinfo reader."""

from __future__ import annotations

from pathlib import Path

from lab.scale_bench import conntrack_slab, measure


def test_measure_fills_forwards_and_expires_everything() -> None:
    r = measure(1200, 400, 1)  # raises when a frame is not forwarded or a session is left
    assert r.n == 1200 and r.bytes_per_session > 0
    assert len(r.kpps_hot) == len(r.kpps_spread) == 1
    # 1,201 sessions in two due buckets (180.0 s, 181.0 s) at 500 a step
    assert r.steps == 3 and r.budget == 500


def test_conntrack_slab_reads_object_size(tmp_path: Path) -> None:
    p = tmp_path / "slabinfo"
    p.write_text("slabinfo - version: 2.1\n"
                 "nf_conntrack_expect      0      0    208   19    1 : tunables 0 0 0\n"
                 "nf_conntrack         144    208    256   16    1 : tunables    0    0    0\n")
    assert conntrack_slab(p) == 256
    assert conntrack_slab(tmp_path / "missing") is None
