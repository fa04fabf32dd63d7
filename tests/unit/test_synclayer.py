"""The session record has one layout: the struct codec and the scapy layer agree byte for byte."""

from __future__ import annotations

import ipaddress
import random

from fgcp.synclayer import FGCPSyncRecord
from fgcp.syncrecord import (
    EXT_IPS,
    EXT_ZTNA,
    INSPECTION_CODES,
    OP_ADD,
    OP_DELETE,
    OP_UPDATE,
    REC_DEL_FIELDS,
    REC_FIXED_FIELDS,
    REC_TCP_FIELDS,
    RF_INSPECT_SHIFT,
    SessionRecord,
    TcpWindow,
    encode_delete,
    encode_record,
)


def _ip(v: int) -> str:
    return str(ipaddress.IPv4Address(v))


def random_record(rng: random.Random) -> SessionRecord:
    def tup() -> tuple[int, int, int, int]:
        return (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16))

    def win() -> TcpWindow:
        return TcpWindow(rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16),
                         rng.getrandbits(8), rng.getrandbits(8))

    proto = rng.choice((6, 17, 1, 47))
    ext = [(rng.choice((EXT_IPS, EXT_ZTNA, 0x0101)), rng.randbytes(rng.randrange(0, 40)))
           for _ in range(rng.randrange(0, 3))]
    return SessionRecord(
        proto, tup(), tup(), rng.getrandbits(8), rng.getrandbits(32), rng.random() < 0.5,
        rng.getrandbits(32), rng.getrandbits(16), (win(), win()) if proto == 6 else None,
        rng.getrandbits(16), rng.choice(list(INSPECTION_CODES)),
        "port" + str(rng.randrange(1, 40)), "x" * rng.randrange(0, 16), ext,
        created=rng.randrange(0, 2**31) / 1000.0, version=rng.getrandbits(64))


def test_delete_layout_is_a_subsequence_of_the_fixed_part() -> None:
    names = [n for n, _ in REC_FIXED_FIELDS]
    assert [n for n in names if n in REC_DEL_FIELDS] == list(REC_DEL_FIELDS)


def test_scapy_dissects_and_rebuilds_the_codec_bytes() -> None:
    rng = random.Random(9)
    for _ in range(300):
        rec = random_record(rng)
        op = rng.choice((OP_ADD, OP_UPDATE))
        raw = encode_record(op, rec)
        pkt = FGCPSyncRecord(raw)
        assert bytes(pkt) == raw
        o, r = rec.orig, rec.reply
        assert (pkt.op, pkt.version, pkt.proto, pkt.state, pkt.sflags, pkt.policy_id) == (
            op, rec.version, rec.proto, rec.state, rec.flags, rec.policy_id)
        assert (pkt.src, pkt.sport, pkt.dst, pkt.dport) == (_ip(o[0]), o[1], _ip(o[2]), o[3])
        assert (pkt.r_src, pkt.r_sport, pkt.r_dst, pkt.r_dport) == (
            _ip(r[0]), r[1], _ip(r[2]), r[3])
        assert (pkt.nat_ip, pkt.nat_port) == (_ip(rec.nat_ip), rec.nat_port)
        assert (int(pkt.rflags) >> RF_INSPECT_SHIFT) & 3 == INSPECTION_CODES[rec.inspection]
        assert (pkt.in_intf, pkt.out_intf) == (rec.in_intf.encode(), rec.out_intf.encode())
        assert [(e.type, e.value) for e in pkt.ext] == rec.ext
        if rec.tcp is None:
            assert not pkt.tcp
        else:
            for layer, w in zip(pkt.tcp, rec.tcp):
                assert [getattr(layer, n) for n, _ in REC_TCP_FIELDS] == [
                    getattr(w, n) for n, _ in REC_TCP_FIELDS]


def test_scapy_built_field_by_field_gives_the_codec_bytes() -> None:
    rng = random.Random(10)
    for _ in range(100):
        rec = random_record(rng)
        raw = encode_record(OP_UPDATE, rec)
        ref = FGCPSyncRecord(raw)
        built = FGCPSyncRecord(
            op=OP_UPDATE, **{n: getattr(ref, n) for n, _ in REC_FIXED_FIELDS},
            in_intf=rec.in_intf.encode(), out_intf=rec.out_intf.encode(),
            tcp=list(ref.tcp) if rec.tcp else [], ext=list(ref.ext))
        assert bytes(built) == raw


def test_delete_record_dissects() -> None:
    key = (17, 0xC6336415, 5353, 0xCB00710B, 53)
    raw = encode_delete(key, 2**40 + 3)
    pkt = FGCPSyncRecord(raw)
    assert bytes(pkt) == raw
    assert (pkt.op, pkt.version, pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport) == (
        OP_DELETE, 2**40 + 3, 17, "198.51.100.21", 5353, "203.0.113.11", 53)
