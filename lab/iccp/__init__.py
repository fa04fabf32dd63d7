"""Real ICCP (TASE.2 / MMS) peers for the lab, built on pyiec61850-ng (libiec61850):
a server with a small TASE.2-flavoured model, a benign client and a split-write attacker.

    python -m lab.iccp.server --port 102 [--bind 0.0.0.0] [--ready-file F] [--duration S]
    python -m lab.iccp.client --dst IP --port 102 --rate 5 --duration 30 --out client.json
                              [--extras] [--reports] [--conclude]
    python -m lab.iccp.attack --dst IP --port 102 [--split item|N] --pause 1.0 --out attack.json
"""
