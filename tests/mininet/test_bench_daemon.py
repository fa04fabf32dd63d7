"""The real member daemon between two network namespaces (lab.vethlab.VethLab, no Mininet):
it forwards, answers diag on its control socket and exits cleanly on SIGTERM.

Root only (netns, veth, AF_PACKET): it lives with the Mininet tests, which skip
with "needs root" otherwise.
"""

from __future__ import annotations

import pytest

from lab.vethlab import VethLab


@pytest.mark.parametrize("forwarder", ["bridge-ring", "fgcpd"])
def test_fgcpd_forwards_answers_diag_and_exits_cleanly(forwarder: str) -> None:
    """The real daemon between client and server namespaces (lab.bench topology)."""
    with VethLab() as lab:
        lab.set_mode(forwarder)  # raises unless a ping crosses the member
        hostname = f"bench{lab.tag}"
        status = lab.daemon_query("get system status")
        assert f"Hostname: {hostname}\n" in status
        sessions = lab.daemon_query("diagnose sys session list")
        if forwarder == "fgcpd":
            assert "session info: proto=1 " in sessions
            assert "act=snat 198.51.100.10:" in sessions
            assert "total session 1\n" in sessions
        else:
            assert sessions == "total session 0\n"
        sock = lab.rundir / f"{hostname}.sock"
        pidfile = lab.rundir / f"{hostname}.pid"
        assert pidfile.read_text().strip().isdigit()
        daemon = lab.daemon
        assert daemon is not None
        daemon.terminate()  # SIGTERM: clean exit
        assert daemon.wait(10) == 0
        lab.daemon = None
        assert not sock.exists() and not pidfile.exists()
        log = (lab.rundir / f"{hostname}.log").read_text()
        assert "Traceback" not in log
        assert "stopping:" in log and "loop_errors=0" in log
