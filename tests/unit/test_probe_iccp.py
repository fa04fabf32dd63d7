"""The iccp probe kind (lab.probes.iccp) on loopback high ports: the real peers as lab
probes, the attack's second half released by the fault, and the parsers of what the
members report (the ``ips=`` field of ``diagnose sys session list``, the anomaly list)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from lab.probes import LoopbackLab, start_iccp
from lab.probes.iccp import anomaly_lines, session_ips

SV1 = "203.0.113.11"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _block(lport: int, port: int = 102, extra: str = "") -> str:
    return (f"session info: proto=6 proto_state=01 duration=3 expire=3597 timeout=3600\n"
            f"state=may_dirty synced\n{extra}"
            f"hook=post dir=org act=snat 198.51.100.10:{lport}->{SV1}:{port}"
            f"(203.0.113.1:{lport})\n"
            f"hook=pre dir=reply act=dnat {SV1}:{port}->203.0.113.1:{lport}"
            f"(198.51.100.10:{lport})\n"
            "misc=0 policy_id=2 pol_uuid_idx=0 auth_info=0 chk_client_info=0 vd=0")


def test_session_ips_field_per_session() -> None:
    listing = "\n\n".join([_block(40001, extra="ips=on\n"), _block(40002),
                           _block(40003, extra="ips=uninspected\n"), _block(40001, 8080),
                           "total session 4"]) + "\n"
    assert session_ips(listing, SV1, 102, 40001) == "on"
    assert session_ips(listing, SV1, 102, 40002) == "-"          # the field is absent
    assert session_ips(listing, SV1, 102, 40003) == "uninspected"
    assert session_ips(listing, SV1, 102, 40004) is None          # no such session
    assert session_ips(listing, SV1, 102, None) is None
    assert session_ips(listing, SV1, 8080, 40001) == "-"


def test_anomaly_lines_of_one_session() -> None:
    text = ('t=1.000 attack_id=9001 name="ICCP.Breaker.Write" action=block proto=6 '
            f'198.51.100.10:40001->{SV1}:102 dir=from_client service=iccp\n'
            't=2.000 attack_id=9002 name="HTTP.X" action=reset proto=6 '
            f'198.51.100.10:40002->{SV1}:8080 dir=from_client service=http\n')
    assert [ln.split()[1] for ln in anomaly_lines(text, 102, 40001)] == ["attack_id=9001"]
    assert anomaly_lines(text, 102, 40002) == [] and anomaly_lines(text, 102, None) == []


def test_benign_association_and_split_attack_released_by_the_fault(tmp_path: Path) -> None:
    port = _free_port()
    h = start_iccp(LoopbackLab(), rate=20.0, port=port, server_ip="127.0.0.1",
                   workdir=tmp_path)
    try:
        time.sleep(1.0)
        t_fault = time.time()
        h.fault_applied(t_fault)
        h.fault_applied(t_fault + 1)  # only the first fault splits the attack
        time.sleep(1.0)
    finally:
        res = h.stop()
    c, a = res["client"], res["attack"]
    assert res["kind"] == "iccp" and res["fault_t"] == t_fault
    assert c["associated"] and c["ended"] == "completed" and c["ops_failed"] == 0
    assert c["reads_ok"] > 0 and c["writes_ok"] > 0
    assert all(len(op) == 4 and op[3] >= 0 for op in c["ops"])  # each op's latency
    assert a["associated"] and a["outcome"] == "answered"     # no IPS on loopback
    assert a["second_half_on"] == "fault" and a["second_half_at"] >= t_fault
    assert a["first_half_at"] < t_fault
    assert c["local_port"] and a["local_port"] and c["local_port"] != a["local_port"]
    assert res["inspection"]["client"]["ips"] is None  # no member to ask
