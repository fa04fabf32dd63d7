"""The contract between the member daemon and what it hosts: components, the forwarding plane.

``Component`` is a part of the member run by the daemon's poll loop (HA in
fgcp.hamember, session sync in fgcp.syncmember, the inspection engines next);
``Host`` is all a component may see of the daemon; ``ForwardingPlane`` is what the
daemon and the components call on the forwarder (fgcp.forward.Forwarder satisfies
it); ``DaemonError`` / ``ComponentError`` are the errors that stop a start.
Components never import fgcp.daemon and never call each other's private methods:
they talk through ``Host`` and the small public protocols below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from fgcp.diag import CommandTable
from fgcp.forward import PortSpec
from fgcp.model import MemberConfig
from fgcp.roles import Role
from fgcp.session import Session, SessionTable

__all__ = [
    "Component",
    "ComponentError",
    "DaemonError",
    "ForwarderFactory",
    "ForwardingPlane",
    "Host",
    "SessionEvent",
    "SyncCompleteListener",
]


class DaemonError(RuntimeError):
    """The daemon cannot start (bad ports, missing interface, ...)."""


class ComponentError(DaemonError):
    """A component cannot start (e.g. a heartbeat interface is missing)."""


SessionEvent = Callable[[str, Session], None]  # (kind: "add" | "state" | "remove", session)
# kind "state-now" (the IPS adapter): as "state", and session sync sends the update at once,
# before the segment whose inspection changed it is forwarded (docs/ips.md "HA")
STATE_NOW = "state-now"


class ForwardingPlane(Protocol):
    """The forwarder as the daemon and the components use it (docs/architecture.md)."""

    on_session_event: SessionEvent | None

    @property
    def counters(self) -> Mapping[str, int]: ...
    @property
    def sessions(self) -> SessionTable: ...

    def handle(self, port_index: int, frame: bytearray, now: float,
               out: list[tuple[int, bytes | bytearray]]) -> None: ...
    def expire(self, now: float) -> int: ...
    def set_active(self, active: bool) -> None: ...
    def set_port_mac(self, index: int, mac: bytes) -> None: ...
    def gratuitous_arps(self, index: int) -> Sequence[tuple[int, bytes | bytearray]]: ...
    def install_session(self, s: Session, now: float, pickup: bool = True) -> bool: ...


ForwarderFactory = Callable[[MemberConfig, list[PortSpec]], ForwardingPlane]


class Host(Protocol):
    """What a component sees of the daemon (fgcp.daemon.Daemon satisfies it)."""

    @property
    def cfg(self) -> MemberConfig: ...
    @property
    def table(self) -> CommandTable: ...  # register diag commands here in ``open``
    @property
    def fwd(self) -> ForwardingPlane | None: ...
    @property
    def role(self) -> Role: ...

    def component(self, name: str) -> Component | None: ...
    def enter_hello(self, now: float, reason: str = "HA hello") -> None: ...
    def become_primary(self, now: float, reason: str) -> bool:
        """Run every ``before_takeover``, then take traffic; False (still not primary)
        when a hook failed: the caller retries later."""
        ...
    def become_secondary(self, now: float, reason: str) -> None: ...
    def announce(self, now: float) -> None: ...


class Component(Protocol):
    """A part of the member hosted by the daemon's poll loop.

    ``open(host)`` once ports, forwarder and control socket exist; ``fds()`` asked
    every loop turn; ``on_readable(fd, now)``; ``next_deadline()`` (epoch seconds or
    None) and ``on_tick(now)`` once it has passed; ``before_takeover(now)`` BEFORE the
    member takes traffic (raise to refuse: the member stays out of primary);
    ``after_release(now)`` after it stopped forwarding; ``close()``.
    """

    name: str

    def open(self, host: Host) -> None: ...
    def fds(self) -> list[int]: ...
    def on_readable(self, fd: int, now: float) -> None: ...
    def next_deadline(self) -> float | None: ...
    def on_tick(self, now: float) -> None: ...
    def before_takeover(self, now: float) -> None: ...
    def after_release(self, now: float) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class SyncCompleteListener(Protocol):
    """The HA component as session sync reports to it: bulk sync done or pending."""

    def set_sync_complete(self, now: float, done: bool) -> None: ...
