"""IPS component of the member daemon: builds the inspector, renders its diag commands.

``ips_setup(cfg, log_path, factory)`` -> (forwarder factory, component): when a policy
has an IPS sensor the factory builds the Forwarder with an ``IpsInspector`` (and
attaches it, so its state updates reach session sync).  The component registers:

* ``diagnose ips anomaly list``: the attack log, one line per event, newest last;
* ``diagnose lab stats``: the daemon's counters plus ``ips_*`` (and the engines'
  ``ips.*``);
* ``diagnose sys session list``: each row of an IPS session carries ``ips=on`` or
  ``ips=uninspected`` (a synced flow session no longer inspected after a takeover).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fgcp import diag
from fgcp.component import ForwarderFactory, ForwardingPlane, Host
from fgcp.forward import Forwarder, PortSpec
from fgcp.ipsinspector import IpsInspector
from fgcp.model import MemberConfig

__all__ = ["IpsMember", "ips_log_path", "ips_setup"]


def ips_log_path(member_log: str | Path) -> Path:
    """The IPS log next to a member log: ``<log path minus .log>.ips.log``."""
    p = Path(member_log)
    return p.with_suffix(".ips.log") if p.suffix == ".log" else p.with_name(p.name + ".ips.log")


class IpsMember:
    """The ``ips`` component: diag commands of the inspector (no descriptors, no timers)."""

    name = "ips"

    def __init__(self, inspector: IpsInspector) -> None:
        self.inspector = inspector

    def open(self, host: Host) -> None:
        table = host.table
        table.register("diagnose ips anomaly list", self.render_anomalies,
                       "IPS attack log (newest last)")
        stats, _ = table.resolve(["diagnose", "lab", "stats"])
        sessions, _ = table.resolve(["diagnose", "sys", "session", "list"])
        prev_stats, prev_sessions = stats.render, sessions.render

        def render_stats(state: diag.DiagState, args: Sequence[str]) -> str:
            lines = [f"{k}={v}" for k, v in self.inspector.stats().items()]
            return prev_stats(state, args) + "\n".join(lines) + "\n"

        def render_sessions(state: diag.DiagState, args: Sequence[str]) -> str:
            state.extra["session_note"] = self.inspector.session_note
            return prev_sessions(state, args)

        table.override("diagnose lab stats", render_stats, stats.help, stats.max_args)
        table.override("diagnose sys session list", render_sessions, sessions.help,
                       sessions.max_args)

    def render_anomalies(self, state: diag.DiagState, args: Sequence[str]) -> str:
        return self.inspector.render_anomalies()

    def fds(self) -> list[int]:
        return []

    def on_readable(self, fd: int, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def on_tick(self, now: float) -> None:
        return None

    def before_takeover(self, now: float) -> None:
        return None

    def after_release(self, now: float) -> None:
        return None

    def close(self) -> None:
        self.inspector.close()


def ips_setup(cfg: MemberConfig, log_path: str | Path | None,
              factory: ForwarderFactory = Forwarder) -> tuple[ForwarderFactory, IpsMember | None]:
    """The forwarder factory and IPS component for ``cfg`` (IpsSetupError on a sensor
    that does not compile).  No policy with a sensor, or another forwarding plane than
    the Forwarder (a benchmark's stand-in): ``factory`` unchanged and no component."""
    if factory is not Forwarder:
        return factory, None
    inspector = IpsInspector(cfg, log_path)
    if not inspector.enabled:
        inspector.close()
        return factory, None

    def build(c: MemberConfig, specs: list[PortSpec]) -> ForwardingPlane:
        fwd = Forwarder(c, specs, inspector=inspector)
        inspector.attach(fwd)
        return fwd

    return build, IpsMember(inspector)
