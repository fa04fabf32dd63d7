"""The role vocabulary of a member, in one place: the daemon's traffic role and the FGCP state.

``Role`` is what the daemon does with traffic (``diagnose lab stats`` ``role=``);
``HaState`` is the FGCP state of the HA state machine (``get system ha status``).
Both are ``StrEnum``: they print and compare as the words FortiOS and the lab use.
The heartbeat's wire codes for them are mapped in one place, ``fgcp.hafsm``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["HaState", "Role"]


class Role(StrEnum):
    """The daemon's role: ``init`` -> ``hello`` (HA negotiating) -> ``primary`` / ``secondary``."""

    INIT = "init"
    HELLO = "hello"  # HA negotiating: forwards nothing
    PRIMARY = "primary"  # forwards traffic, owns the virtual MACs
    SECONDARY = "secondary"  # forwards nothing, holds synced sessions


class HaState(StrEnum):
    """FGCP states of the HA state machine (``hello`` -> ``work`` / ``standby``)."""

    HELLO = "hello"
    WORK = "work"  # primary
    STANDBY = "standby"  # secondary
