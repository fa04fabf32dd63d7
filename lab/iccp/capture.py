"""Records the real ICCP peers on loopback with tcpdump into a pcap (the golden capture
tests/golden/iccp_session.pcap): association, services, reports, split write.

    python -m lab.iccp.capture --out tests/golden/iccp_session.pcap [--port 10102]

Runs as root (tcpdump).  The benign client does one of each extra service (identify,
define/read/delete a named variable list), enables the report control block (the
server's informationReports), reads and writes for ``--duration`` s and concludes;
then the attacker associates and sends its split breaker write.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _wait_file(path: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{path} not written within {timeout} s")
        time.sleep(0.05)


def capture(out: Path, port: int, duration: float) -> dict[str, object]:
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="iccp-cap-") as tmp:
        d = Path(tmp)
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", str(out),
                                 f"tcp port {port}"], stderr=subprocess.DEVNULL)
        srv = subprocess.Popen([py, "-m", "lab.iccp.server", "--port", str(port),
                                "--bind", "127.0.0.1", "--ready-file", str(d / "ready")])
        try:
            _wait_file(d / "ready", 10)
            time.sleep(0.5)  # tcpdump attached
            subprocess.run([py, "-m", "lab.iccp.client", "--dst", "127.0.0.1", "--port",
                            str(port), "--rate", "10", "--duration", str(duration),
                            "--extras", "--reports", "--conclude", "--out", str(d / "client.json")],
                           check=False, timeout=60)
            subprocess.run([py, "-m", "lab.iccp.attack", "--dst", "127.0.0.1", "--port",
                            str(port), "--split", "40", "--pause", "0.2",
                            "--out", str(d / "attack.json")], check=False, timeout=60)
            time.sleep(0.5)
        finally:
            srv.terminate()
            srv.wait(10)
            dump.terminate()
            dump.wait(10)
        return {"client": json.loads((d / "client.json").read_text()),
                "attack": json.loads((d / "attack.json").read_text())}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.iccp.capture",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, default=10102)
    p.add_argument("--duration", type=float, default=1.2)
    a = p.parse_args(argv)
    res = capture(Path(a.out), a.port, a.duration)
    c = res["client"]
    assert isinstance(c, dict)
    print(json.dumps({"client": {k: c.get(k) for k in ("ops_ok", "ops_failed", "extras", "reports_enabled",
                                                       "conclude_error", "ended")},
                      "attack": res["attack"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
