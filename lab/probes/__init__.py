"""Traffic probes that measure a failover: TCP counter streams, UDP sequence
streams, ping and short TCP connections, run in lab hosts, reporting JSON.

CLI (one process per tool, single selector loop, no busy loop)::

    python -m lab.probes tcp-sink   --port 5001 --out sink.json [--duration S]
    python -m lab.probes tcp-source --dst IP --port 5001 --conns 200 --rate 100 --out src.json
    python -m lab.probes udp-sink   --port 5002 --out usink.json
    python -m lab.probes udp-source --dst IP --port 5002 --flows 1 --interval 0.01 --out usrc.json
    python -m lab.probes ping       --dst IP --interval 0.01 --out ping.json
    python -m lab.probes short-tcp  --dst IP --port 5001 --rate 20 --out short.json
    python -m lab.probes iccp-server --port 102 --out srv.json      (lab.probes.iccp)
    python -m lab.probes iccp-client --dst IP --rate 5 --out iccp.json
    python -m lab.probes iccp-attack --dst IP --out attack.json     (second half on SIGUSR1)

Each tool stops on SIGTERM/SIGINT or after --duration and then writes its
report (atomically) to --out. The sinks write --ready-file once bound.
Python API: ``start_tcp_streams``, ``start_udp_streams``, ``start_ping``,
``start_short_tcp``, ``start_iccp`` -> a handle whose ``stop()`` returns the merged reports.

Modules: ``common`` (message layout, ProbeError, Tool, reports), one module per
kind (``tcp_sink``, ``tcp_stream``, ``udp``, ``ping``, ``short_tcp``, ``iccp``: the
process, its CLI options, its report merge, its starter), ``hosts`` (start and
stop in lab hosts, collect), ``registry`` (the kinds the CLI knows), ``cli``.
"""

from lab.probes.common import MSG, SHORT_FLAG, ProbeError, Tool, write_report
from lab.probes.hosts import (
    REPO_ROOT,
    HostLike,
    LabLike,
    Launch,
    LoopbackHost,
    LoopbackLab,
    ProbeHandle,
    probe_env,
    start_probes,
    stop_all,
)
from lab.probes.iccp import IccpHandle, start_iccp
from lab.probes.ping import parse_ping_output, run_ping, start_ping
from lab.probes.short_tcp import failure_windows, run_short_tcp, start_short_tcp
from lab.probes.tcp_sink import run_tcp_sink
from lab.probes.tcp_stream import merge_tcp, run_tcp_source, start_tcp_streams
from lab.probes.udp import merge_udp, run_udp_sink, run_udp_source, start_udp_streams

__all__ = [
    "MSG", "REPO_ROOT", "SHORT_FLAG", "HostLike", "IccpHandle", "LabLike", "Launch",
    "LoopbackHost", "LoopbackLab", "ProbeError", "ProbeHandle", "Tool", "failure_windows",
    "merge_tcp", "merge_udp", "parse_ping_output", "probe_env", "run_ping", "run_short_tcp",
    "run_tcp_sink", "run_tcp_source", "run_udp_sink", "run_udp_source", "start_iccp",
    "start_ping", "start_probes", "start_short_tcp", "start_tcp_streams",
    "start_udp_streams", "stop_all", "write_report",
]
