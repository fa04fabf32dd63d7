"""Session-sync engine: reliable, state-based replication of the session table (pure).

``SyncSender`` (primary, sender.py) and ``SyncReceiver`` (secondary, receiver.py) take
``now`` and frame bytes and return the frames to send (``Tx``, links.py: link selection
with heartbeat fallback); pickup.py is the FortiOS session-pickup filter; common.py the
shared timers and counters.  The diag text is fgcp/syncdiag.py (the engine renders nothing).

Reliability (conntrackd FT-FW style, docs/protocol.md "Session sync"): every sequenced frame
(DATA, BULK_BEGIN, BULK_END) carries a per-peer stream id and sequence number;
the receiver ACKs cumulatively and NACKs gaps (a NACK also selectively
acknowledges everything between the cumulative point and the highest sequence it
saw); the sender retransmits a missing sequence number rebuilt from the *current*
state of the sessions it carried (or DELETE for the gone ones), and on timeout
when the acknowledgements stop.  Every record carries the sender's global update
counter; the receiver keeps the newest and counts the older ones as stale
(pfsync).  Every stream starts with a bulk sync of the whole table.
"""

from fgcp.sync.common import SyncStats, SyncTuning
from fgcp.sync.fresh import SyncFreshness
from fgcp.sync.links import LinkSelector, Tx
from fgcp.sync.pickup import PICKUP_DELAY_S, pickup_wait, should_sync, sync_eligible_at
from fgcp.sync.receiver import SyncReceiver
from fgcp.sync.sender import SyncSender

__all__ = [
    "PICKUP_DELAY_S",
    "LinkSelector",
    "SyncFreshness",
    "SyncReceiver",
    "SyncSender",
    "SyncStats",
    "SyncTuning",
    "Tx",
    "pickup_wait",
    "should_sync",
    "sync_eligible_at",
]
