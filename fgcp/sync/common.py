"""What the sync sender and receiver share: protocol timers, counters, frame decoding.

Pure data and helpers of the session-sync engine (fgcp/sync/sender.py, receiver.py).
"""

from __future__ import annotations

from dataclasses import dataclass

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

__all__ = ["BROADCAST", "SEQUENCED", "SyncStats", "SyncTuning", "decode_counted"]

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


def decode_counted(payload: bytes, key: bytes | None, now: float,
                   stats: SyncStats) -> SyncFrame | None:
    """The decoded frame, or None with the drop counted (never raises on bad input)."""
    try:
        return decode_frame(payload, key, now)
    except SyncAuthError:
        stats.dropped_auth += 1
    except MalformedSyncFrame:
        stats.dropped_malformed += 1
    return None
