"""ICCP (IEC 60870-6 TASE.2) decoder: MMS (ISO 9506, BER) over ISO session/presentation/
ACSE over COTP class 0 over TPKT (RFC 1006) on TCP 102; pure, incremental, never raises.

    from inspection.iccp import IccpDecoder, IccpEvent, looks_like_iccp, ICCP_PORT
    dec = IccpDecoder(max_pdu=65535)        # one direction of one TCP stream
    for ev in dec.feed(segment_bytes): ...  # IccpEvent per TPKT (or anomaly)
    blob = dec.to_state(); dec = IccpDecoder.from_state(blob)
    preload()    # compile the MMS ASN.1 subset now (~0.2 s), not on the first PDU
"""

from inspection.iccp.decoder import ICCP_PORT, IccpDecoder, IccpEvent, looks_like_iccp
from inspection.iccp.mms import spec as _spec


def preload() -> None:
    """Compile the MMS ASN.1 subset (done lazily otherwise, on the first MMS PDU)."""
    _spec()


__all__ = ["ICCP_PORT", "IccpDecoder", "IccpEvent", "looks_like_iccp", "preload"]
