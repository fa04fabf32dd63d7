"""fgcp.neighwarm in the lab: the secondary resolves the next hops of the synced sessions
through the real fabric (its ARP probes from 0.0.0.0 answered by the Linux hosts), after
a restart that left it nothing learned from the hosts' own ARP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lab.failover_bench import bench_settings
from topologies.lab import LabNetwork, write_ha_config


def test_secondary_knows_every_next_hop_of_the_synced_sessions(
        make_lab: Callable[..., LabNetwork], lab_rundir: Path) -> None:
    settings = bench_settings(1, 3, 100)
    configs = {m: write_ha_config(m, lab_rundir / f"{m}.conf", settings) for m in ("fgt1", "fgt2")}
    with make_lab(configs=configs) as lab:
        primary = lab.wait_ha_stable()
        assert primary is not None
        out = lab.host("c1").cmd("ping -c 10 -i 0.1 203.0.113.11")
        assert " 0% packet loss" in out, out
        (secondary,) = [m for m in lab.running_members() if m != primary]
        # a fresh secondary: the hosts' ARP caches are warm, so no broadcast ARP from
        # them teaches it anything; only its own probes can
        lab.kill_daemon(secondary)
        lab.start_daemon(secondary)
        lab.wait_ha_stable()
        deadline = time.time() + 15.0
        while True:  # a pass every second once the ping session was synced
            kv = dict(line.split("=", 1) for line in
                      lab.diag(secondary, "diagnose lab neighwarm").splitlines() if "=" in line)
            if int(kv["hops"]) >= 2 and kv["hops_known"] == kv["hops"] or time.time() > deadline:
                break
            time.sleep(0.5)
        # c1 (port1) and sv1 (port2): both answered the probes and are in the cache
        assert int(kv["hops"]) >= 2 and kv["hops_known"] == kv["hops"], kv
        assert int(kv["probes_tx"]) >= 2, kv
