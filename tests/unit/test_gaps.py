"""lab.gaps: gap, outage, sequence and percentile analysis on synthetic inputs."""

from __future__ import annotations

import math

import pytest

from lab.gaps import (
    Gap,
    GapTracker,
    bin_counts,
    gap_owner,
    gaps_above,
    loss_windows,
    max_gap,
    missing_ranges,
    outage_window,
    percentile,
    percentiles,
    seq_stats,
    trailing_gap,
)


def stream(start: float, end: float, step: float = 0.01, holes: tuple = ()) -> list[float]:
    """Arrivals every ``step`` from start to end, none inside any (a, b) hole."""
    n = round((end - start) / step)
    ts = [round(start + i * step, 6) for i in range(n)]
    return [t for t in ts if not any(a + 1e-9 < t < b - 1e-9 for a, b in holes)]


def test_known_350ms_hole_is_found_where_it_is() -> None:
    times = stream(100.0, 105.0, holes=((102.0, 102.35),))
    g = max_gap(times)
    assert g is not None
    assert g.start == pytest.approx(102.0)
    assert g.end == pytest.approx(102.35)
    assert g.duration_ms == pytest.approx(350.0, abs=0.5)
    assert [round(x.duration_ms) for x in gaps_above(times, 100)] == [350]


def test_gaps_above_lists_every_hole_in_order_and_ignores_small_ones() -> None:
    times = stream(0.0, 10.0, holes=((1.0, 1.2), (3.0, 3.05), (6.0, 7.0)))
    found = gaps_above(times, 100)
    assert [(round(g.start, 2), round(g.duration_ms)) for g in found] == [(1.0, 200), (6.0, 1000)]
    assert gaps_above(times, 2000) == []


def test_max_gap_within_a_window_counts_the_silence_at_its_edges() -> None:
    times = stream(0.0, 10.0, holes=((1.0, 1.8), (5.0, 5.3)))
    # the 800 ms hole lies outside the window: the 300 ms one is the longest inside
    g = max_gap(times, start=4.0, end=6.0)
    assert g is not None and (round(g.start, 2), round(g.duration_ms)) == (5.0, 300)
    # traffic that never resumes inside the window: the silence runs to its end
    g = max_gap(times, start=9.0, end=12.0)
    assert g is not None and g.end == 12.0 and round(g.duration_ms) == 2010
    # a window starting inside a hole: from the window's start to the first arrival
    g = max_gap(times, start=1.5, end=1.9)
    assert g is not None and (g.start, round(g.end, 2)) == (1.5, 1.8)
    # no arrival in the window at all: the whole window
    g = max_gap([], start=2.0, end=3.0)
    assert g is not None and (g.start, g.end) == (2.0, 3.0)


def test_no_gap_without_two_arrivals() -> None:
    assert max_gap([]) is None
    assert max_gap([1.0]) is None
    assert gaps_above([1.0], 0) == []


def test_outage_window_aligns_to_the_fault_not_to_the_largest_gap() -> None:
    # an unrelated 800 ms hole at t=2 and a 400 ms outage starting 50 ms after a fault at t=6
    times = stream(0.0, 10.0, holes=((2.0, 2.8), (6.05, 6.45)))
    gaps = gaps_above(times, 100)
    out = outage_window(gaps, fault_time=6.0, within_s=2.0)
    assert out is not None
    assert out.start == pytest.approx(6.05)
    assert out.duration_ms == pytest.approx(400, abs=0.5)
    # a fault inside a gap: that gap
    inside = outage_window(gaps, fault_time=2.5)
    assert inside is not None and inside.start == pytest.approx(2.0)
    # nothing near the fault
    assert outage_window(gaps, fault_time=9.0, within_s=0.5) is None


def test_gap_owner_is_the_fault_it_started_after_never_a_later_one() -> None:
    faults = [10.0, 10.5, 16.0]  # kill, old primary back 0.5 s later, next kill
    # the stream's last arrival 12 ms before the kill, silent 680 ms: past the restart
    assert gap_owner(Gap(9.988, 10.668), faults, onset_s=0.04) == 0
    # a gap that begins after the restart belongs to the restart
    assert gap_owner(Gap(10.6, 10.9), faults, onset_s=0.04) == 1
    # the onset is capped at half the gap: a 150 ms gap starting 60 ms before a
    # fault is that fault's (onset 75 ms), one starting 100 ms before is not
    assert gap_owner(Gap(15.94, 16.09), faults, onset_s=0.2) == 2
    assert gap_owner(Gap(15.9, 16.05), faults, onset_s=0.2) == 1
    # before every fault, or longer than within_s after the last one: no owner
    assert gap_owner(Gap(2.0, 2.5), faults, onset_s=0.04) is None
    assert gap_owner(Gap(40.0, 40.5), faults, onset_s=0.04, within_s=10.0) is None


def test_trailing_gap_when_traffic_never_resumes() -> None:
    times = stream(0.0, 3.0)
    tail = trailing_gap(times, end=5.0, threshold_ms=100)
    assert tail is not None and not tail.resumed
    assert tail.duration_ms == pytest.approx(2010, abs=1)  # last arrival 2.99
    assert trailing_gap(times, end=3.0, threshold_ms=100) is None


def test_gap_tracker_matches_the_offline_functions() -> None:
    times = stream(0.0, 5.0, holes=((1.0, 1.3), (4.0, 4.12)))
    tr = GapTracker(threshold_ms=100)
    for t in times:
        tr.add(t)
    rep = tr.report(end=times[-1] + 1.0)
    offline = max_gap(times)
    assert offline is not None
    assert rep["max_gap_ms"] == pytest.approx(offline.duration_ms, abs=0.01)
    assert [round(g["duration_ms"]) for g in rep["gaps"]] == [
        round(g.duration_ms) for g in gaps_above(times, 100)
    ]
    assert rep["arrivals"] == len(times)
    assert rep["trailing_gap"]["resumed"] is False


def test_gap_tracker_caps_the_gap_list() -> None:
    tr = GapTracker(threshold_ms=10, keep=3)
    for i in range(10):
        tr.add(i * 1.0)
    assert len(tr.gaps) == 3 and tr.gaps_dropped == 6


def test_seq_stats_loss_duplicates_reordering() -> None:
    seqs = [0, 1, 2, 4, 3, 3, 7, 8]  # 5, 6 lost; 3 reordered then duplicated
    st = seq_stats(seqs)
    assert (st.received, st.unique, st.duplicates, st.reordered) == (8, 7, 1, 1)
    assert st.lost == 2
    assert st.missing == [(5, 6)]
    assert st.highest == 8


def test_seq_stats_counts_trailing_loss_with_sent_count() -> None:
    st = seq_stats([0, 1, 2], sent=10)
    assert st.lost == 7
    assert st.missing == [(3, 9)]
    assert seq_stats([0, 1, 2], sent=3).lost == 0


def test_seq_stats_first_number_one_like_ping() -> None:
    st = seq_stats([1, 2, 4], first=1, sent=5)
    assert st.lost == 2 and st.missing == [(3, 3), (5, 5)]


def test_missing_ranges_limit() -> None:
    assert missing_ranges({0, 2, 4}, 0, 6) == [(1, 1), (3, 3), (5, 6)]
    assert len(missing_ranges(set(), 0, 100, limit=1)) == 1


def test_percentiles() -> None:
    vals = list(range(1, 101))
    assert percentile(vals, 50) == pytest.approx(50.5)
    assert percentile(vals, 0) == 1 and percentile(vals, 100) == 100
    p = percentiles([10.0, 20.0, 30.0], ps=(50,))
    assert p == {"p50": 20.0, "max": 30.0}
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(vals, 101)


def test_bin_counts_shows_the_hole() -> None:
    times = stream(0.0, 1.0, holes=((0.3, 0.6),))
    counts = bin_counts(times, start=0.0, bin_s=0.1)
    assert len(counts) == 10
    assert counts[3] == 0 and counts[4] == 0
    assert sum(counts) == len(times)
    assert counts[1] == 10 and counts[8] >= 9


def test_gap_dict_round_trip() -> None:
    g = Gap(1.0, 1.5, resumed=False)
    d = g.to_dict()
    assert d["duration_ms"] == 500.0
    assert Gap.from_dict(d) == g


def test_loss_windows_are_on_the_senders_clock_even_when_the_receiver_read_a_backlog() -> None:
    # 10 ms datagrams; 30..59 lost (a 300 ms outage); the receiver was starved and read
    # everything late in one burst, so its arrival times show no silence at all
    sent_at = {seq: 100.0 + seq * 0.01 for seq in range(100) if not 30 <= seq < 60}
    arrivals = [105.0 + i * 1e-5 for i in range(len(sent_at))]
    assert gaps_above(arrivals, 100.0) == []
    (w,) = loss_windows(sent_at)
    assert w.start == sent_at[29] and w.end == sent_at[60]
    assert round(w.duration_ms) == 310
    assert outage_window([w], fault_time=100.3, within_s=1.0) == w
    assert loss_windows({1: 1.0, 2: 2.0, 3: 3.0}) == [] and loss_windows({}) == []
