"""``set hb-interval-in-milliseconds 10ms`` end to end: the default scenario (SIGKILL of the
primary under traffic, session pickup) at hb-interval 1 x 10 ms, threshold 3."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lab.scenario import load_scenario
from tests.mininet.test_experiment import SMALL_TRAFFIC, out_dir, run  # noqa: F401 (fixture)


def test_10ms_cluster_fails_over_keeping_every_tcp_stream(out_dir: Path) -> None:  # noqa: F811
    def ten_ms(data: dict[str, Any]) -> None:
        data["ha"]["hb-interval-in-milliseconds"] = "10ms"  # before the member configs are made

    sc = load_scenario("default", ten_ms)
    traffic = {k: dict(v) for k, v in sc.traffic.items()}
    traffic["tcp"].update(SMALL_TRAFFIC)
    sc = dataclasses.replace(sc, traffic=traffic, settle=2.5)
    assert all("set hb-interval-in-milliseconds 10ms" in m.text for m in sc.members)
    data = run(sc, out_dir)
    assert data["settings"]["hb_interval_ms"] == 10
    f = data["faults"][0]
    assert (f["kind"], f["member"], f["new_primary"]) == ("kill-primary", "fgt1", "fgt2")
    tcp = data["summary"]["tcp"]
    assert tcp["survived"] == tcp["flows"] == SMALL_TRAFFIC["conns"], data["flows"]
    assert tcp["lost_bytes"] == 0
    assert 0 < f["detect_ms"] <= f["takeover_ms"] <= f["reroute_ms"], f
    fgt2 = data["members"]["fgt2"]
    # the only peer lost in the whole run is the killed primary (no false peer-lost at 10 ms)
    assert fgt2["ha_history"].count("is lost") == 1, fgt2["ha_history"]
    assert "hb-interval: 1 x 10ms (hb-interval-in-milliseconds 10ms)" in fgt2["ha_status"]
