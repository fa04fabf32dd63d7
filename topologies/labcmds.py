"""The lab commands a user types in the Mininet CLI (``diag``, ``kill``, ``restart``,
``links``, ``failover``, ``watch``): argument parsing and what each does to a running lab.

Pure of Mininet: `LabCommands` works on any object with LabNetwork's methods
(`LabLike`), with the clock and sleep passed in, so tests drive it with fakes;
topologies/labcli.py is the thin Mininet ``CLI`` subclass that calls it.
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

PRIMARY_ALIAS = "primary"  # names the current primary in every member argument
SYNC_ROLE = re.compile(r"role: (?:primary \(sender\)|secondary \(receiver\)) serial=\S+ "
                       r"(?:\w+=\S+ )*sessions=(\d+)")
SESSION_COUNT = re.compile(r"session_count=(\d+)")
WATCH_DEFAULT_S = 10.0
WATCH_INTERVAL_S = 1.0


class UsageError(ValueError):
    """A lab command was typed wrong; the message says how to type it."""


class LabLike(Protocol):
    """What the commands need of a running lab (topologies.lab.LabNetwork)."""

    def diag(self, member: str, command: str) -> str: ...
    def ha_state(self, member: str) -> dict[str, str]: ...
    def running_members(self) -> list[str]: ...
    def kill_daemon(self, name: str, sig: int = ..., timeout: float = ...) -> float: ...
    def stop_daemon(self, name: str, timeout: float = ...) -> int | None: ...
    def start_daemon(self, name: str, config: str | None = ...) -> None: ...
    def set_links(self, member: str, up: bool, ports: Sequence[str] | None = ...) -> float: ...


# -- parsing (pure) -------------------------------------------------------------
def split_args(line: str) -> list[str]:
    """The words of a command line (shell quoting); UsageError on a stray quote."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse {line!r}: {exc}") from None


@dataclass(frozen=True)
class LinksArgs:
    member: str
    up: bool
    ports: tuple[str, ...]  # empty: every port of the member


def parse_links(line: str, ports_of: Mapping[str, Sequence[str]]) -> LinksArgs:
    """``<member> up|down [port ...]`` with the ports checked against the member's."""
    words = split_args(line)
    if len(words) < 2 or words[1] not in ("up", "down"):
        raise UsageError("usage: links <member> up|down [port ...]")
    member = words[0]
    if member not in ports_of and member != PRIMARY_ALIAS:
        raise UsageError(f"unknown member {member!r} (members: {', '.join(ports_of)})")
    ports = tuple(words[2:])
    if member in ports_of:
        bad = [p for p in ports if p not in ports_of[member]]
        if bad:
            raise UsageError(f"{member} has no port {', '.join(bad)} "
                             f"(ports: {', '.join(ports_of[member])})")
    return LinksArgs(member, words[1] == "up", ports)


def parse_diag(line: str) -> tuple[str, str]:
    """``<member> <FortiOS command>`` -> (member, command); quotes around the
    command are optional (``diag fgt1 get system ha status``)."""
    member, _, rest = line.strip().partition(" ")
    command = rest.strip()
    if len(command) >= 2 and command[0] == command[-1] and command[0] in "\"'":
        command = command[1:-1].strip()
    if not member or not command:
        raise UsageError("usage: diag <member> <FortiOS command>, e.g. "
                         "diag fgt1 get system ha status")
    return member, command


def parse_watch(line: str) -> tuple[float, float]:
    """``[seconds [interval]]`` -> (seconds, interval); defaults 10 s every 1 s."""
    words = split_args(line)
    if len(words) > 2:
        raise UsageError("usage: watch [seconds [interval]]")
    try:
        values = [float(w) for w in words]
    except ValueError:
        raise UsageError("usage: watch [seconds [interval]] (numbers of seconds)") from None
    seconds = values[0] if values else WATCH_DEFAULT_S
    interval = values[1] if len(values) > 1 else WATCH_INTERVAL_S
    if not (0 < seconds <= 86400 and 0.1 <= interval <= 60):
        raise UsageError("watch: seconds must be in (0, 86400], interval in [0.1, 60]")
    return seconds, interval


def one_member(line: str, command: str) -> str:
    words = split_args(line)
    if len(words) != 1:
        raise UsageError(f"usage: {command} <member>")
    return words[0]


# -- the view of the cluster ------------------------------------------------------
@dataclass(frozen=True)
class MemberView:
    """One member's row of ``watch``."""

    name: str
    running: bool
    state: str = ""        # hello | work | standby ('' when standalone or unreadable)
    primary: str = ""      # serial of the primary it follows
    failover_set: bool = False
    sessions: int | None = None
    synced: int | None = None  # records the primary syncs / a secondary holds


def parse_sessions(stat: str) -> int | None:
    m = SESSION_COUNT.search(stat)
    return int(m.group(1)) if m else None


def parse_synced(sync: str) -> int | None:
    m = SYNC_ROLE.search(sync)
    return int(m.group(1)) if m else None


WATCH_COLUMNS = ("member", "fgcpd", "HA state", "sessions", "synced", "failover")


def watch_rows(views: Sequence[MemberView]) -> list[tuple[str, ...]]:
    """The cells of the ``watch`` table, one tuple per member."""
    def n(v: int | None) -> str:
        return "-" if v is None else str(v)

    rows: list[tuple[str, ...]] = []
    for v in views:
        state = {"work": "primary", "standby": "secondary"}.get(v.state, v.state or "-")
        rows.append((v.name, "running" if v.running else "stopped",
                     state if v.running else "-", n(v.sessions), n(v.synced),
                     "set" if v.failover_set else ""))
    return rows


def render_watch(views: Sequence[MemberView], elapsed: float) -> str:
    """Plain-text ``watch`` table (the CLI uses rich on a terminal)."""
    rows = [WATCH_COLUMNS, *watch_rows(views)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(WATCH_COLUMNS))]
    lines = [f"watch +{elapsed:.1f} s"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines) + "\n"


# -- the commands ---------------------------------------------------------------------
class LabCommands:
    """The lab commands on ``lab``; ``ports_of`` maps each member to its ports.

    Each method returns the text to print and raises UsageError for a wrong
    command line or an impossible request (a member not running, no primary)."""

    def __init__(self, lab: LabLike, ports_of: Mapping[str, Sequence[str]],
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 takeover_timeout: float = 10.0, join_timeout: float = 60.0) -> None:
        self.lab = lab
        self.ports_of = {m: tuple(p) for m, p in ports_of.items()}
        self.clock = clock
        self.sleep = sleep
        self.takeover_timeout = takeover_timeout
        self.join_timeout = join_timeout

    # -- helpers
    def member(self, name: str) -> str:
        """``name`` checked; ``primary`` resolves to the current primary."""
        if name == PRIMARY_ALIAS:
            work = self.primaries()
            if not work:
                raise UsageError("no primary right now")
            return work[0]
        if name not in self.ports_of:
            raise UsageError(f"unknown member {name!r} (members: {', '.join(self.ports_of)})")
        return name

    def running(self, name: str) -> str:
        name = self.member(name)
        if name not in self.lab.running_members():
            raise UsageError(f"{name}: fgcpd is not running (restart {name} starts it)")
        return name

    def roles(self) -> dict[str, str]:
        return {m: self.lab.ha_state(m).get("state", "") for m in self.lab.running_members()}

    def primaries(self) -> list[str]:
        return [m for m, st in self.roles().items() if st == "work"]

    def wait_primary(self, other_than: str, since: float) -> tuple[str, float] | None:
        """The first primary that is not ``other_than`` and the seconds from
        ``since`` to seeing it; None after ``takeover_timeout``."""
        while True:
            work = [m for m in self.primaries() if m != other_than]
            if work:
                return work[0], self.clock() - since
            if self.clock() - since > self.takeover_timeout:
                return None
            self.sleep(0.02)

    # -- commands
    def diag(self, line: str) -> str:
        member, command = parse_diag(line)
        member = self.running(member)
        try:
            return self.lab.diag(member, command)
        except OSError as exc:  # fgcp.ctl.CtlError
            raise UsageError(f"{member}: {exc}") from None

    def kill(self, line: str) -> str:
        name = self.running(one_member(line, "kill"))
        was_primary = self.lab.ha_state(name).get("state") == "work"
        t = self.clock()
        self.lab.kill_daemon(name, signal.SIGKILL)
        out = f"{name}: fgcpd killed (SIGKILL)\n"
        if was_primary and self.lab.running_members():
            got = self.wait_primary(name, t)
            out += (f"new primary: {got[0]}, seen {got[1] * 1000:.0f} ms after the kill\n"
                    if got else f"no new primary within {self.takeover_timeout:.0f} s\n")
        return out

    def restart(self, line: str) -> str:
        name = self.member(one_member(line, "restart"))
        out = ""
        if name in self.lab.running_members():
            code = self.lab.stop_daemon(name)
            out += f"{name}: fgcpd stopped (exit {code})\n"
        t = self.clock()
        self.lab.start_daemon(name)
        while True:  # until it joined the cluster (hello-holddown, bulk sync)
            state = self.lab.ha_state(name).get("state") or "standalone"
            waited = self.clock() - t
            if state != "hello" or waited > self.join_timeout:
                break
            self.sleep(0.1)
        role = {"work": "primary", "standby": "secondary"}.get(state, state)
        return out + f"{name}: fgcpd started, HA {role} after {waited:.1f} s\n"

    def links(self, line: str) -> str:
        args = parse_links(line, self.ports_of)
        name = self.member(args.member)
        ports = args.ports or self.ports_of[name]
        self.lab.set_links(name, args.up, list(ports))
        return f"{name}: {' '.join(ports)} {'up' if args.up else 'down'}\n"

    def failover(self, line: str) -> str:
        """``execute ha failover set 1`` on the primary; waits for the new one.
        The flag stays set on the old primary (FortiOS keeps it until ``unset``);
        a member that becomes primary with its own flag from an earlier
        ``failover`` gets it cleared, so repeated failovers alternate."""
        if split_args(line):
            raise UsageError("usage: failover (takes no arguments)")
        work = self.primaries()
        if len(work) != 1:
            raise UsageError(f"failover needs exactly one primary, found {work or 'none'}")
        old = work[0]
        t = self.clock()
        self.lab.diag(old, "execute ha failover set 1")
        got = self.wait_primary(old, t)
        if got is None:
            return (f"{old}: execute ha failover set 1; no new primary within "
                    f"{self.takeover_timeout:.0f} s\n")
        new, dt = got
        if self.lab.ha_state(new).get("failover_set") == "1":
            self.lab.diag(new, "execute ha failover unset 1")
        return (f"failover: {old} -> {new} in {dt * 1000:.0f} ms (execute ha failover set 1 "
                f"on {old}; `diag {old} execute ha failover unset 1` clears it)\n")

    def views(self) -> list[MemberView]:
        """Every member's state, sessions and synced sessions now."""
        running = set(self.lab.running_members())
        out = []
        for name in self.ports_of:
            if name not in running:
                out.append(MemberView(name, False))
                continue
            st = self.lab.ha_state(name)
            try:
                sessions = parse_sessions(self.lab.diag(name, "diagnose sys session stat"))
                synced = parse_synced(self.lab.diag(name, "diagnose sys session sync"))
            except OSError:
                sessions = synced = None
            out.append(MemberView(name, True, st.get("state", ""), st.get("primary", ""),
                                  st.get("failover_set") == "1", sessions, synced))
        return out

    def watch(self, line: str) -> Iterator[tuple[float, list[MemberView]]]:
        """(elapsed s, views) every interval until ``seconds`` have passed."""
        seconds, interval = parse_watch(line)
        start = self.clock()
        while True:
            elapsed = self.clock() - start
            yield elapsed, self.views()
            if elapsed + interval > seconds:
                return
            self.sleep(interval)
