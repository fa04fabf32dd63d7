"""The probe kinds the CLI knows: one entry per kind module, each contributing
its ``TOOLS`` (CLI subcommands, in the order ``--help`` lists them).
"""

from __future__ import annotations

from lab.probes import iccp, ping, short_tcp, tcp_sink, tcp_stream, udp
from lab.probes.common import Tool

TOOLS: tuple[Tool, ...] = (
    *tcp_sink.TOOLS,
    *tcp_stream.TOOLS,
    *udp.TOOLS,
    *ping.TOOLS,
    *short_tcp.TOOLS,
    *iccp.TOOLS,
)


def tool(name: str) -> Tool:
    """The registered tool called ``name`` (KeyError when there is none)."""
    for t in TOOLS:
        if t.name == name:
            return t
    raise KeyError(name)
