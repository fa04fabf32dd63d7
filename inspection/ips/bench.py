"""Quick in-process IPS throughput figures (not the lab benchmark, which is lab.ips_bench).

``python -m inspection.ips.bench``: MB/s and kpps for 10/100/1000 signatures, and
the per-session state size (best of ``--repeat`` runs: the machine is shared).
"""

from __future__ import annotations

import argparse
import random
import time

from inspection.ips.engine import IpsEngine
from inspection.ips.reassembly import TCP_SYN
from inspection.ips.ruleset import Rule, RuleSet
from inspection.ips.signature import parse_signature


def signatures(n: int, rng: random.Random) -> list[Rule]:
    """``n`` HTTP signatures, a third of them two-pattern chains, a tenth with a pcre."""
    rules = []
    for i in range(n):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        body = f'--pattern "{word}{i}"; --no_case;'
        if i % 3 == 0:
            body += f' --pattern "|{i % 256:02x}|x{word[:3]}"; --distance 1; --within 32;'
        if i % 10 == 0:
            body += f' --pcre "/{word[:4]}[0-9]+z/";'
        text = f'F-SBID( --name "s{i}"; --service HTTP; --flow from_client; {body} )'
        rules.append(Rule(parse_signature(text), action="block", entry_id=i + 1))
    return rules


def run(n: int, megabytes: float, seg: int) -> tuple[float, float, int]:
    """Feed one HTTP session ``megabytes`` of benign data in ``seg``-byte segments."""
    rng = random.Random(n)
    eng = IpsEngine(RuleSet.compile(signatures(n, rng)), iccp=None)
    st = eng.new_flow("tcp", 40000, 80)
    eng.inspect(st, "client", 0, b"", 0.0, TCP_SYN)
    seq = 1
    eng.inspect(st, "client", seq, b"GET / HTTP/1.1\r\n", 0.0)
    seq += 16
    filler = bytes(rng.randrange(32, 127) for _ in range(seg * 64))
    chunks = [filler[i:i + seg] for i in range(0, len(filler), seg)]
    total = int(megabytes * 1e6)
    sent = packets = 0
    t0 = time.perf_counter()
    while sent < total:
        for c in chunks:
            eng.inspect(st, "client", seq & 0xFFFFFFFF, c, 0.0)
            seq += len(c)
        sent += len(filler)
        packets += len(chunks)
    dt = time.perf_counter() - t0
    assert not st.blocked
    return sent / dt / 1e6, packets / dt / 1e3, len(st.to_bytes())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=5.0, help="MB per run")
    ap.add_argument("--seg", type=int, default=1448, help="segment payload bytes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size (best is printed)")
    args = ap.parse_args(argv)
    print(f"{'signatures':>10} {'MB/s':>8} {'kpps':>8} {'state bytes':>12}")
    for n in (10, 100, 1000):
        mbs, kpps, size = max(run(n, args.mb, args.seg) for _ in range(args.repeat))
        print(f"{n:>10} {mbs:>8.1f} {kpps:>8.1f} {size:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
