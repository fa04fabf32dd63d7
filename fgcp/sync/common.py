"""What the sync sender and receiver share: protocol timers, counters, the endpoint base.

``SyncEndpoint`` holds identity, key, tuning, counters and links, and sends/decodes
frames with every drop counted (fgcp/sync/sender.py and receiver.py build on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from fgcp.sync.links import LinkSelector, Tx
from fgcp.syncframe import (
    MAX_RECORDS_BYTES,
    T_BULK_BEGIN,
    T_BULK_END,
    T_DATA,
    MalformedSyncFrame,
    SyncAuthError,
    SyncFrame,
    decode_frame,
)

__all__ = ["BROADCAST", "SEQUENCED", "SyncEndpoint", "SyncStats", "SyncTuning"]

BROADCAST = ""  # Tx.peer for frames to every member (HELLO)
SEQUENCED = (T_DATA, T_BULK_BEGIN, T_BULK_END)  # frame types carrying a sequence number


@dataclass(frozen=True)
class SyncTuning:
    """Timers and sizes of the protocol (seconds, frames, bytes)."""

    flush_delay: float = 0.010  # a partly filled DATA frame waits at most this long
    batch_records: int = 16  # ... unless this many sessions are waiting (about a full frame)
    window: int = 256  # sequenced frames in flight (unacknowledged) per peer
    rto: float = 0.200  # retransmit an unacknowledged frame after this, doubling per resend
    rto_max: float = 2.0
    min_resend_gap: float = 0.020  # a NACKed frame is not resent twice within this
    alive_interval: float = 1.0  # ALIVE after this long without a frame to the peer
    ack_every: int = 8  # the receiver ACKs every N new frames...
    ack_delay: float = 0.020  # ... or this long after the first unacknowledged one
    nack_interval: float = 0.050  # outstanding gaps are NACKed again this often
    hello_interval: float = 0.5  # receiver without a stream repeats HELLO
    bulk_req_interval: float = 0.5  # receiver repeats BULK_REQ until a new stream starts
    restart_guard: float = 1.0  # HELLO does not restart a stream younger than this
    tombstone_ttl: float = 30.0  # receiver remembers deleted sessions' versions this long
    frame_capacity: int = MAX_RECORDS_BYTES  # record bytes per DATA frame


@dataclass
class SyncStats:
    """Counters of one engine (what ``diagnose sys ha session-sync`` shows)."""

    frames_tx: int = 0
    frames_rx: int = 0
    records_tx: int = 0
    records_rx: int = 0
    resends: int = 0  # frames retransmitted
    resent_records: int = 0
    acked: int = 0  # sequenced frames acknowledged by the peers
    acked_records: int = 0
    applied: int = 0  # records installed by the receiver
    stale: int = 0  # records older than the state held (rejected)
    dup_frames: int = 0
    dup_records: int = 0
    dropped_auth: int = 0
    dropped_malformed: int = 0
    dropped_foreign: int = 0  # other group, own frames, retired stream, wrong role
    oversize: int = 0  # records larger than a frame (never sent)
    no_link: int = 0  # frames not sent: no link up
    fallback_frames: int = 0  # frames sent on heartbeat links (all sync links down)
    creates: int = 0  # sessions added (sender: recorded, receiver: installed)
    updates: int = 0
    deletes: int = 0
    acks_tx: int = 0
    nacks_tx: int = 0
    bulks: int = 0  # bulk syncs started (sender) / completed (receiver)
    streams: int = 0  # streams started (sender) / adopted (receiver)


class SyncEndpoint:
    """One end of the sync protocol: member ``serial`` of HA group ``group_id``.

    ``key`` is the HMAC key (fgcp.hakeys.derive_sync_key), None without HA password.
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None) -> None:
        self.serial = serial
        self.group_id = group_id
        self.key = key
        self.tuning = tuning or SyncTuning()
        self.stats = SyncStats()
        self.links = LinkSelector()

    def set_links(self, sync_links_up: list[str], hb_links_up: list[str]) -> None:
        """Links usable now: session-sync-dev links up, heartbeat links up (fallback)."""
        self.links.set_links(sync_links_up, hb_links_up)

    def _send(self, out: list[Tx], peer: str, payload: bytes) -> None:
        """Queue ``payload`` for ``peer`` on the next link (counted; dropped when none is up)."""
        stats = self.stats
        link = self.links.pick()
        if link is None:
            stats.no_link += 1
            return
        if self.links.fallback:
            stats.fallback_frames += 1
        stats.frames_tx += 1
        out.append(Tx(link, peer, payload))

    def _decode(self, payload: bytes, now: float) -> SyncFrame | None:
        """The decoded frame, or None with the drop counted (never raises on bad input)."""
        try:
            return decode_frame(payload, self.key, now)
        except SyncAuthError:
            self.stats.dropped_auth += 1
        except MalformedSyncFrame:
            self.stats.dropped_malformed += 1
        return None
