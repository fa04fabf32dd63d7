"""Mininet's CLI with the lab's commands (as ipmininet extends it): ``diag``,
``kill``, ``restart``, ``links``, ``failover``, ``watch``; the logic is topologies.labcmds.

``LabCLI(lab)`` runs interactively; ``LabCLI(lab, script=path)`` runs a file of
commands and returns (Mininet's batch mode), which the Mininet test uses.
"""

from __future__ import annotations

import sys
from typing import Any

from mininet.cli import CLI
from mininet.log import error, output

from topologies.lab import LabError, LabNetwork
from topologies.labcmds import WATCH_COLUMNS, LabCommands, UsageError, render_watch, watch_rows

LAB_HELP = """Lab commands (member: fgt1, fgt2, ... or `primary`):
  diag <member> <FortiOS command>    e.g. diag fgt1 get system ha status
  kill <member>                      SIGKILL the member's fgcpd (waits for the new primary)
  restart <member>                   stop (if running) and start the member's fgcpd
  links <member> up|down [port ...]  the member's ports (default: all) up or down
  links                              (no arguments) Mininet's link report
  failover                           execute ha failover set 1 on the primary
  watch [seconds [interval]]         roles and session counts, every interval
                                     (default 10 s every 1 s; Ctrl-C ends it)
"""


class LabCLI(CLI):  # type: ignore[misc]  # mininet has no type hints
    """The Mininet CLI of a running `LabNetwork` plus the lab commands."""

    prompt = "fgcp-lab> "

    def __init__(self, lab: LabNetwork, **kwargs: Any) -> None:
        self.lab = lab
        ports = {m.name: [p.name for p in m.ports] for m in lab.topo.members}
        self.cmds = LabCommands(lab, ports)
        super().__init__(lab.net, **kwargs)

    def _run(self, fn: Any, line: str) -> None:
        try:
            output(fn(line))
        except (UsageError, LabError) as exc:
            error(f"*** {exc}\n")

    def do_diag(self, line: str) -> None:
        """diag <member> <FortiOS command>: run it on the member's control socket."""
        self._run(self.cmds.diag, line)

    def do_kill(self, line: str) -> None:
        """kill <member>: SIGKILL its fgcpd; when it was primary, wait for the new one."""
        self._run(self.cmds.kill, line)

    def do_restart(self, line: str) -> None:
        """restart <member>: stop (if running) and start its fgcpd."""
        self._run(self.cmds.restart, line)

    def do_links(self, line: str) -> None:
        """links <member> up|down [port ...]; without arguments Mininet's link report."""
        if not line.strip():
            super().do_links(line)
            return
        self._run(self.cmds.links, line)

    def do_failover(self, line: str) -> None:
        """failover: execute ha failover set 1 on the primary, wait for the new one."""
        self._run(self.cmds.failover, line)

    def do_watch(self, line: str) -> None:
        """watch [seconds [interval]]: a live view of roles and session counts."""
        try:
            frames = self.cmds.watch(line)
            if sys.stdout.isatty() and self.inputFile is None:
                self._watch_live(frames)
            else:
                for elapsed, views in frames:
                    output(render_watch(views, elapsed))
        except UsageError as exc:
            error(f"*** {exc}\n")
        except KeyboardInterrupt:
            output("\n")

    @staticmethod
    def _watch_live(frames: Any) -> None:
        from rich.live import Live
        from rich.table import Table

        def table(elapsed: float, views: Any) -> Table:
            t = Table(title=f"cluster +{elapsed:.1f} s (Ctrl-C ends)")
            for col in WATCH_COLUMNS:
                t.add_column(col)
            for row in watch_rows(views):
                t.add_row(*row)
            return t

        with Live(refresh_per_second=4) as live:
            for elapsed, views in frames:
                live.update(table(elapsed, views))

    def do_help(self, line: str) -> None:
        super().do_help(line)
        if not line.strip():
            output(LAB_HELP)
