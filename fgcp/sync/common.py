"""What the sync sender and receiver share: protocol timers, counters, the endpoint base.

``SyncEndpoint`` holds identity, key, freshness, tuning, counters and links, and
sends/accepts frames with every drop counted (fgcp/sync/sender.py and receiver.py build
on it): a received frame is used only when it is authentic, of this group, and fresh
(fgcp/sync/fresh.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from fgcp.freshness import MAX_MEMBERS
from fgcp.sync.fresh import SyncFreshness, Verdict
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
    encode_frame,
)
from fgcp.syncrecord import ms32

__all__ = ["BROADCAST", "MAX_PEERS", "SEQUENCED", "SyncEndpoint", "SyncStats", "SyncTuning"]

BROADCAST = ""  # Tx.peer for frames to every member (HELLO)
SEQUENCED = (T_DATA, T_BULK_BEGIN, T_BULK_END)  # frame types carrying a sequence number
MAX_PEERS = MAX_MEMBERS - 1  # secondaries a sender streams to


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
    hello_interval: float = 0.2  # receiver without a (live) stream repeats HELLO
    sender_silence: float = 3.0  # ... and when nothing fresh came from its sender this long
    bulk_req_interval: float = 0.5  # receiver repeats BULK_REQ until a new stream starts
    restart_guard: float = 1.0  # HELLO does not restart a stream younger than this
    tombstone_ttl: float = 30.0  # receiver remembers deleted sessions' versions this long
    challenge_interval: float = 0.05  # challenges to one unverified peer epoch at most this often
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
    dropped_replay: int = 0  # counter already seen / too old, or a retired epoch (replays)
    dropped_unverified: int = 0  # epoch not verified yet (challenged; recorded frames stay here)
    peers_refused: int = 0  # a peer serial beyond the cluster size (MAX_PEERS)
    table_full: int = 0  # receiver: new sessions refused at the session limit
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
    ``fresh``: the member's freshness state (epoch, counter, peers), shared by the engines
    of one run; a new one (a new epoch) when None.  ``accepted`` is the serial of the last
    frame ``receive`` used (authentic, fresh), None otherwise: only such a frame may teach
    the daemon a peer's address or liveness.
    """

    def __init__(self, serial: str, group_id: int, key: bytes | None,
                 tuning: SyncTuning | None = None, fresh: SyncFreshness | None = None) -> None:
        self.serial = serial
        self.group_id = group_id
        self.key = key
        self.tuning = tuning or SyncTuning()
        self.fresh = fresh or SyncFreshness()
        self.stats = SyncStats()
        self.links = LinkSelector()
        self.accepted: str | None = None

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

    def _encode(self, ftype: int, stream: int, seq: int, ack: int, now: float, *,
                flags: int = 0, count: int = 0, payload: bytes = b"") -> bytes:
        """One frame of this member: its epoch and next counter, signed with the key."""
        fresh = self.fresh
        return encode_frame(ftype, self.group_id, self.serial, stream, seq, ack, ms32(now),
                            self.key, epoch=fresh.epoch, counter=fresh.next_counter(),
                            flags=flags, count=count, payload=payload)

    def _decode(self, payload: bytes, now: float) -> SyncFrame | None:
        """The decoded frame, or None with the drop counted (never raises on bad input)."""
        try:
            return decode_frame(payload, self.key, now)
        except SyncAuthError:
            self.stats.dropped_auth += 1
        except MalformedSyncFrame:
            self.stats.dropped_malformed += 1
        return None

    def _accept(self, payload: bytes, now: float) -> tuple[SyncFrame, Verdict] | None:
        """Decode and check a frame: None (counted) unless authentic, of this group and
        fresh or pending (the caller may answer a pending one with a challenge only)."""
        self.accepted = None
        fr = self._decode(payload, now)
        if fr is None:
            return None
        st = self.stats
        st.frames_rx += 1
        if fr.group_id != self.group_id or fr.serial == self.serial:
            st.dropped_foreign += 1
            return None
        v = self.fresh.check(now, fr.serial, fr.epoch, fr.counter, fr.echo)
        if v is Verdict.REPLAY:
            st.dropped_replay += 1
            return None
        if v is Verdict.REFUSED:
            st.peers_refused += 1
            return None
        if v is Verdict.PENDING:
            st.dropped_unverified += 1
        else:
            self.accepted = fr.serial
        return fr, v

    def _challenge_due(self, fr: SyncFrame, now: float) -> bool:
        """Answer a pending peer's frame with a challenge now? (rate limited; a HELLO that
        carries the peer's own challenge is always answered, its echo is awaited)."""
        due = self.fresh.challenge_due(now, fr.serial, fr.epoch, self.tuning.challenge_interval)
        return due or bool(fr.nonce)
