"""The live display of a running experiment (rich): phase, elapsed traffic
time, member roles, the last events and the sync lag; plain lines without a live console.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from lab.scenario import Scenario


class Progress:
    """Live display (rich) of an experiment: phase, time, roles, faults, sync lag."""

    def __init__(self, sc: Scenario, system: str, console: Console | None = None, live: bool = True) -> None:
        self.sc = sc
        self.system = system
        self.console = console
        self.phase = "starting"
        self.t0: float | None = None
        self.total = sc.duration
        self.lines: list[str] = []
        self.roles = "-"
        self.lag = ""
        self._live: Live | None = None
        self._enabled = live and console is not None

    def __enter__(self) -> Self:
        if self._enabled:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4,
                              transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
            if self.console is not None:  # the live panel was transient: keep the events
                for line in self.lines:
                    self.console.print(f"  {line}", highlight=False)

    def status(self, phase: str) -> None:
        self.phase = phase
        if self._live is None and self.console is not None:
            self.console.print(f"[dim]{self.system}: {phase}[/dim]")
        self.refresh()

    def note(self, line: str) -> None:
        self.lines.append(line)
        if self._live is None and self.console is not None:
            self.console.print(f"  {self.system}: {line}", highlight=False)
        self.refresh()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Panel:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        elapsed = 0.0 if self.t0 is None else time.time() - self.t0
        bar = ProgressBar(total=max(self.total, 0.1), completed=min(elapsed, self.total),
                          width=40)
        grid.add_row("phase", self.phase)
        grid.add_row("traffic", f"{elapsed:5.1f} / {self.total:.1f} s")
        grid.add_row("", bar)
        grid.add_row("roles", self.roles)
        if self.lag:
            grid.add_row("sync lag", self.lag)
        for line in self.lines[-6:]:
            grid.add_row("event", line)
        return Panel(grid, title=escape(f"{self.sc.name} [{self.system}]"), expand=False)
