"""Link selection of session sync: round robin over the up session-sync-dev links.

Falls back to the up heartbeat links when none is up (FortiOS behaviour); ``Tx`` is one
frame to send on a chosen link.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["LinkSelector", "Tx"]


class Tx(NamedTuple):
    """One frame to send: on link ``link`` (port name) to member ``peer`` (serial, "" = all).

    ``payload`` is the bytes after the Ethernet header (ethertype 0x8892).
    """

    link: str
    peer: str
    payload: bytes


class LinkSelector:
    """Round robin over the up session-sync links; the up heartbeat links when none is up."""

    def __init__(self) -> None:
        self.sync_up: list[str] = []
        self.hb_up: list[str] = []
        self._rr = 0

    def set_links(self, sync_links_up: list[str], hb_links_up: list[str]) -> None:
        """Links usable now: session-sync-dev links up, heartbeat links up (fallback)."""
        self.sync_up = list(sync_links_up)
        self.hb_up = list(hb_links_up)

    @property
    def fallback(self) -> bool:
        """Frames go on heartbeat links (every session-sync link is down)."""
        return not self.sync_up and bool(self.hb_up)

    @property
    def any_up(self) -> bool:
        """Some link (sync or heartbeat) is up."""
        return bool(self.sync_up or self.hb_up)

    def pick(self) -> str | None:
        """The link of the next frame (round robin), None when no link is up."""
        links = self.sync_up or self.hb_up
        if not links:
            return None
        self._rr = (self._rr + 1) % len(links)
        return links[self._rr]
