"""lab.syncbench_inproc runs on the current sync API (the challenge, frame v2) and its
engine run ends with the receiver's table equal to the sender's (asserted inside)."""

from __future__ import annotations

import pytest

from lab.syncbench_inproc import main


def test_inproc_bench_runs_on_the_current_sync_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--records", "500"]) == 0
    out = capsys.readouterr().out
    assert "500 TCP records in" in out and "engine : sender -> receiver" in out
