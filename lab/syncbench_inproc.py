"""In-process session-sync throughput: records/s for the codec and the engine, no sockets.

Prints the encode and decode rates of the raw-bytes codec (HMAC included) and the
end-to-end rate of SyncSender -> SyncReceiver over a perfect in-memory link.
Usage: python -m lab.syncbench_inproc [--records N]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from fgcp.freshness import new_epoch
from fgcp.hakeys import derive_sync_key
from fgcp.sync import SyncReceiver, SyncSender, SyncTuning
from fgcp.syncframe import T_DATA, FrameBuilder, decode_frame, encode_frame
from fgcp.syncrecord import OP_ADD, SessionRecord, TcpWindow, encode_record


def make_records(n: int, seed: int = 1) -> list[SessionRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        port = 1024 + i % 64000
        out.append(SessionRecord(
            6, (0xC6336400 + 10 + i // 64000, port, 0xCB00710A, 80),
            (0xCB00710A, 80, 0xCB007101, port), 1, 1, True, 0xCB007101, port,
            (TcpWindow(rng.randrange(1 << 32), rng.randrange(1 << 32), 65535, 0x87, 4),
             TcpWindow(rng.randrange(1 << 32), rng.randrange(1 << 32), 65535, 0x87, 4)),
            1, "flow", "port1", "port2", [], 0.0, i + 1))
    return out


def bench_codec(recs: list[SessionRecord], key: bytes | None) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    frames: list[bytes] = []
    fb = FrameBuilder()
    epoch = new_epoch()
    for r in recs:
        enc = encode_record(OP_ADD, r)
        if not fb.add(enc):
            n = len(frames) + 1
            frames.append(encode_frame(T_DATA, 10, "FGT1", 1, n, 0, 0, key, epoch=epoch,
                                       counter=n, count=fb.count, payload=fb.payload()))
            fb = FrameBuilder()
            fb.add(enc)
    n = len(frames) + 1
    frames.append(encode_frame(T_DATA, 10, "FGT1", 1, n, 0, 0, key, epoch=epoch, counter=n,
                               count=fb.count, payload=fb.payload()))
    t1 = time.perf_counter()
    n = 0
    for f in frames:
        n += len(decode_frame(f, key, 0.0).records)
    t2 = time.perf_counter()
    assert n == len(recs)
    return len(recs) / (t1 - t0), len(recs) / (t2 - t1), len(frames)


def bench_engine(recs: list[SessionRecord], key: bytes | None) -> tuple[float, int]:
    tuning = SyncTuning(window=1024)
    s = SyncSender("FGT1", 10, key, tuning=tuning)
    r = SyncReceiver("FGT2", 10, key, tuning=tuning)
    for e in (s, r):
        e.set_links(["port5"], [])
    now = 0.0
    # the HELLO challenge both ways (docs/protocol.md "Freshness (session sync)"): the
    # sender knows the receiver once it answered; the bulk of an empty table follows
    to_r = s.start(now)
    while not r.bulk_complete:
        now += 0.001
        to_s = [b for tx in to_r for b in r.receive(tx.payload, now)] + r.poll(now)
        to_r = [b for tx in to_s for b in s.receive(tx.payload, now)] + s.poll(now)
    t0 = time.perf_counter()
    for rec in recs:
        s.upsert(rec, now)
    while not r.bulk_complete or len(r.table) < len(recs):
        now += 0.001
        for tx in s.poll(now):
            for back in r.receive(tx.payload, now):
                s.receive(back.payload, now)
        for back in r.poll(now):
            s.receive(back.payload, now)
    t1 = time.perf_counter()
    assert r.table == s.records
    return len(recs) / (t1 - t0), s.stats.frames_tx


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--default-gc", action="store_true",
                    help="keep Python's default GC thresholds (the daemon raises them)")
    args = ap.parse_args(argv)
    if not args.default_gc:
        # with 100k+ live records the default gen-0 threshold (700) makes the cyclic GC
        # rescan the tables constantly: it costs about 2/3 of the receiver's time
        gc.set_threshold(100_000, 50, 100)
    recs = make_records(args.records)
    key = derive_sync_key("secret", 10)
    enc, dec, frames = bench_codec(recs, key)
    print(f"codec  : {args.records} TCP records in {frames} frames "
          f"({args.records / frames:.1f} records/frame, HMAC-SHA256)")
    print(f"codec  : encode {enc:,.0f} records/s, decode {dec:,.0f} records/s")
    rate, ftx = bench_engine(make_records(args.records), key)
    gcs = "default GC" if args.default_gc else "GC threshold 100000"
    print(f"engine : sender -> receiver (in memory, acked) {rate:,.0f} records/s, {ftx} frames"
          f" ({gcs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
