"""``fgcp-lab`` command line (fgcplab.cli): parsing, dispatch and the diag client."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fgcp import ctl, daemon
from fgcplab import cli


@pytest.fixture
def member(tmp_path: Path) -> Iterator[list[str]]:
    """A control socket answering like a daemon (echoes what it got)."""
    seen: list[str] = []

    def handler(line: str) -> str:
        seen.append(line)
        if line == "bad":
            return "Unknown action 0\n"
        return f"answer to {line}\n"

    server = ctl.CtlServer(ctl.socket_path(tmp_path, "FGT1"), handler)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if select.select([server], [], [], 0.05)[0]:
                server.handle_ready()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield seen
    stop.set()
    t.join(2)
    server.close()


def test_diag_joins_words_and_prints_the_answer(
    member: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["diag", "FGT1", "diagnose", "sys", "session", "list", "--rundir", str(tmp_path)])
    assert rc == 0
    assert capsys.readouterr().out == "answer to diagnose sys session list\n"
    rc = cli.main(["diag", "--rundir", str(tmp_path), "FGT1", "get system status"])
    assert rc == 0
    assert member == ["diagnose sys session list", "get system status"]


def test_diag_rundir_from_environment(
    member: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FGCP_LAB_RUNDIR", str(tmp_path))
    assert cli.main(["diag", "FGT1", "get system status"]) == 0
    assert "answer to get system status" in capsys.readouterr().out


def test_diag_failed_command_exits_nonzero(
    member: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["diag", "FGT1", "bad", "--rundir", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "Unknown action 0\n"


def test_diag_without_daemon_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["diag", "FGT9", "get system status", "--rundir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "FGT9: no daemon listening on" in err and "FGT9.sock" in err


def test_diag_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["diag", "FGT1"])
    assert exc.value.code == 2
    assert "command" in capsys.readouterr().err


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_check_config_is_delegated_with_its_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fgcp.config

    got: list[list[str]] = []
    monkeypatch.setattr(fgcp.config, "main", lambda argv: got.append(list(argv)) or 3)
    assert cli.main(["check-config", "a.conf", "-h", "b.conf"]) == 3
    assert got == [["a.conf", "-h", "b.conf"]]


def test_check_config_of_a_real_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "m.conf"
    conf.write_text('config system global\n    set hostname "FGT7"\nend\n')
    assert cli.main(["check-config", str(conf)]) == 0
    assert "FGT7" in capsys.readouterr().out
    bad = tmp_path / "bad.conf"
    bad.write_text("config system global\n    set no-such-key 1\nend\n")
    assert cli.main(["check-config", str(bad)]) != 0


def test_bench_and_topo_are_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    import lab.bench

    got: list[list[str]] = []
    monkeypatch.setattr(lab.bench, "main", lambda argv: got.append(list(argv)) or 0)
    assert cli.main(["bench", "--runs", "1"]) == 0
    assert got == [["--runs", "1"]]


def test_bench_parser_defaults() -> None:
    import lab.bench

    args = lab.bench.build_parser().parse_args([])
    assert (args.modes, args.runs, args.seconds) == ("kernel,fgcpd", 3, 5.0)


def test_fgcpd_options() -> None:
    args = daemon.build_parser().parse_args(
        ["--config", "m.conf", "--rundir", "/tmp/r", "--serial", "FGVM1", "--ports", "port1,port2"]
    )
    assert (args.config, args.rundir, args.serial, args.port_kind) == (
        "m.conf", "/tmp/r", "FGVM1", "ring")
    assert daemon.parse_ports(args.ports) == [("port1", "port1"), ("port2", "port2")]
    assert daemon.parse_ports("port1=eth0, port2=eth1") == [("port1", "eth0"), ("port2", "eth1")]
    with pytest.raises(daemon.DaemonError):
        daemon.parse_ports(",")
    with pytest.raises(SystemExit):
        daemon.build_parser().parse_args([])  # --config is required


def test_data_plane_ports_exclude_ha_links() -> None:
    from fgcp.config import parse_config

    cfg = parse_config(
        (Path(__file__).resolve().parents[2] / "topologies/configs/fgt1.conf").read_text()
    )
    assert daemon.data_plane_ports(cfg) == ["port1", "port2"]


def test_fgcpd_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("config system global\n    set no-such-key 1\nend\n")
    assert daemon.main(["--config", str(bad), "--rundir", str(tmp_path)]) == 2
    assert "bad.conf" in capsys.readouterr().err
