"""Flow-based IPS: F-SBID signatures, a hyperscan rule set, TCP reassembly, verdicts.

Pure engine (bytes and ``now`` in, verdicts and serializable state out) that the
forwarding plane calls; the subset of F-SBID it supports is in docs/ips.md.
"""

from inspection.ips.engine import COUNTERS, AttackEvent, IpsEngine, Verdict
from inspection.ips.reassembly import (
    GAP_SKIPPED,
    GAP_UNRECOVERABLE,
    OVERLAP_CHANGED,
    REASSEMBLY_OVERFLOW,
    TCP_FIN,
    TCP_SYN,
)
from inspection.ips.ruleset import Rule, RuleSet, RuleSetError
from inspection.ips.signature import Signature, SignatureError, parse_signature
from inspection.ips.state import FlowState, StateError

__all__ = [
    "COUNTERS", "GAP_SKIPPED", "GAP_UNRECOVERABLE", "OVERLAP_CHANGED", "REASSEMBLY_OVERFLOW", "TCP_FIN", "TCP_SYN", "AttackEvent",
    "FlowState", "IpsEngine", "Rule", "RuleSet", "RuleSetError", "Signature",
    "SignatureError", "StateError", "Verdict", "parse_signature",
]
