"""Session-sync frames (0x8892): golden bytes, round trips, scapy dissection, fuzzing, tshark."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from fgcp.hakeys import derive_sync_key
from fgcp.syncframe import (
    AUTH_LEN,
    HEADER_LEN,
    MAX_FRAME,
    T_BULK_BEGIN,
    T_BULK_END,
    T_DATA,
    T_HELLO,
    T_NACK,
    FrameBuilder,
    MalformedSyncFrame,
    SyncAuthError,
    decode_frame,
    encode_bulk_begin,
    encode_challenge,
    encode_frame,
    encode_nack_ranges,
    encode_total,
)
from fgcp.synclayer import FGCPSync, FGCPSyncRecord
from fgcp.syncrecord import (
    EXT_IPS,
    OP_ADD,
    OP_DELETE,
    OP_UPDATE,
    SessionRecord,
    SyncRecordError,
    TcpWindow,
    encode_delete,
    encode_record,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = derive_sync_key("secret", 10)
SERIAL = "FGVM01TM00000001"

# v2 (issue 13): the header carries the sender's epoch (0x0123456789abcdef) and counter (42)
# after the serial; stream id and the rest follow unchanged, 16 bytes later
GOLDEN = bytes.fromhex(
    "465302010200000a4647564d3031544d30303030303030310123456789abcdef"
    "000000000000002a01020304000000050000000000002ee00002007901005e00"
    "00000000000007060103000100000003c63364149c40cb00710a0050cb00710a"
    "0050cb007101ee48cb007101ee4800002710000003e800011170020087040000"
    "1388000023280400820405706f72743105706f72743201000003697073030015"
    "000000000000000911c633641514e9cb00710b00351c78ffa0af1b86cdfbc081"
    "c885a092162b6ca8fa951813193371c189b5f094ee"
)
DEL_KEY = (17, 0xC6336415, 5353, 0xCB00710B, 53)


def tcp_record(i: int = 0, *, created: float = 10.0, version: int = 7) -> SessionRecord:
    """198.51.100.20:40000 -> 203.0.113.10:80, source NAT to 203.0.113.1:61000."""
    return SessionRecord(
        proto=6, orig=(0xC6336414 + i, 40000, 0xCB00710A, 80),
        reply=(0xCB00710A, 80, 0xCB007101, 61000 - i), state=1, policy_id=3, nat=True,
        nat_ip=0xCB007101, nat_port=61000 - i,
        tcp=(TcpWindow(1000, 70000, 512, 0x87, 4), TcpWindow(5000, 9000, 1024, 0x82, 4)),
        flags=1, inspection="flow", in_intf="port1", out_intf="port2",
        ext=[(EXT_IPS, b"ips")], created=created, version=version)


EPOCH = 0x0123456789ABCDEF


def golden_frame() -> bytes:
    payload = encode_record(OP_ADD, tcp_record()) + encode_delete(DEL_KEY, 9)
    return encode_frame(T_DATA, 10, SERIAL, 0x01020304, 5, 0, 12000, KEY, epoch=EPOCH,
                        counter=42, count=2, payload=payload)


def test_golden_bytes() -> None:
    assert golden_frame() == GOLDEN


def test_golden_decodes_to_the_records() -> None:
    fr = decode_frame(GOLDEN, KEY, now=100.0)
    assert (fr.type, fr.group_id, fr.serial, fr.stream, fr.seq, fr.count) == (
        T_DATA, 10, SERIAL, 0x01020304, 5, 2)
    assert (fr.epoch, fr.counter) == (EPOCH, 42)
    add, dele = fr.records
    assert add.op == OP_ADD and add.version == 7
    assert add.record == tcp_record()
    # created 10.0 s on the sender's clock, frame sent at 12.0 s: 2 s old on arrival
    assert add.record is not None and add.record.created == pytest.approx(98.0)
    assert (dele.op, dele.key, dele.version, dele.record) == (OP_DELETE, DEL_KEY, 9, None)


def test_scapy_builds_the_golden_bytes() -> None:
    recs = [FGCPSyncRecord(encode_record(OP_ADD, tcp_record())),
            FGCPSyncRecord(encode_delete(DEL_KEY, 9))]
    pkt = FGCPSync(type="DATA", flags="authenticated", group_id=10, serial=SERIAL.encode(),
                   epoch=EPOCH, counter=42, stream=0x01020304, seq=5, time_ms=12000,
                   records=recs)
    assert pkt.sign(KEY) == GOLDEN
    # record built field by field (lengths left None) gives the codec's bytes
    rec = FGCPSyncRecord(op="ADD", version=7, proto=6, state=1, rflags="nat+tcp", sflags=1,
                         policy_id=3, src="198.51.100.20", sport=40000, dst="203.0.113.10",
                         dport=80, r_src="203.0.113.10", r_sport=80, r_dst="203.0.113.1",
                         r_dport=61000, nat_ip="203.0.113.1", nat_port=61000,
                         created_ms=10000, in_intf=b"port1", out_intf=b"port2")
    rec.tcp = FGCPSyncRecord(encode_record(OP_ADD, tcp_record())).tcp
    rec.ext = FGCPSyncRecord(encode_record(OP_ADD, tcp_record())).ext
    assert bytes(rec) == encode_record(OP_ADD, tcp_record())


def test_ether_dissects_sync_frame() -> None:
    raw = bytes(Ether(dst="00:09:0f:09:0a:02", src="00:09:0f:09:0a:01", type=0x8892)) + GOLDEN
    pkt = Ether(raw)
    assert FGCPSync in pkt
    s = pkt[FGCPSync]
    assert (s.type, s.seq, s.count, s.length, s.group_id) == (T_DATA, 5, 2, 121, 10)
    assert s.records[0].src == "198.51.100.20" and s.records[0].nat_port == 61000
    assert s.records[0].tcp[0].seqhi == 70000 and s.records[0].tcp[1].wscale == 0x82
    assert s.records[0].ext[0].value == b"ips"
    assert s.records[1].op == OP_DELETE and s.records[1].dport == 53
    assert len(s.auth) == AUTH_LEN
    assert bytes(pkt) == raw
    assert "seq=5" in pkt.summary()


@pytest.mark.parametrize("op", [OP_ADD, OP_UPDATE])
def test_record_round_trip_variants(op: int) -> None:
    recs = [
        tcp_record(),
        SessionRecord(17, (0xC633640A, 5000, 0xCB00710A, 53), (0xCB00710A, 53, 0xC633640A, 5000),
                      flags=2, inspection="flow", in_intf="port1", out_intf="port2"),
        SessionRecord(1, (0xC633640A, 77, 0xCB00710A, 0), (0xCB00710A, 0, 0xC633640A, 77),
                      inspection="ztna", ext=[(0x200, b"\x01" * 40), (0x201, b"")]),
    ]
    for rec in recs:
        enc = encode_record(op, rec)
        frame = encode_frame(T_DATA, 1, "A", 1, 1, 0, 0, None, epoch=1, counter=1, count=1,
                             payload=enc)
        got = decode_frame(frame, None).records[0]
        assert got.op == op and got.record == rec and got.key == rec.key


def test_nack_and_bulk_round_trip() -> None:
    nack = encode_frame(T_NACK, 10, "B", 9, 40, 3, 0, KEY, epoch=2, counter=7, count=2,
                        payload=encode_nack_ranges([(4, 9), (20, 20)]))
    fr = decode_frame(nack, KEY)
    assert (fr.epoch, fr.counter) == (2, 7)
    assert (fr.ack, fr.seq, fr.ranges) == (3, 40, [(4, 9), (20, 20)])
    assert [(g.from_seq, g.to_seq) for g in FGCPSync(nack).gaps] == [(4, 9), (20, 20)]
    bulk = encode_frame(T_BULK_BEGIN, 10, "A", 9, 1, 0, 0, KEY, epoch=1, counter=1,
                        payload=encode_bulk_begin(10000, 0xFEED))
    assert (decode_frame(bulk, KEY).total, decode_frame(bulk, KEY).echo) == (10000, 0xFEED)
    assert (FGCPSync(bulk).total, FGCPSync(bulk).echo) == (10000, 0xFEED)
    end = encode_frame(T_BULK_END, 10, "A", 9, 2, 0, 0, KEY, epoch=1, counter=2,
                       payload=encode_total(9999))
    assert decode_frame(end, KEY).total == FGCPSync(end).total == 9999


def test_hello_carries_the_challenge_and_the_echo() -> None:
    hello = encode_frame(T_HELLO, 10, "FGT2", 0, 0, 0, 0, KEY, epoch=EPOCH, counter=3,
                         payload=encode_challenge(0xA1, 0xB2))
    fr = decode_frame(hello, KEY)
    assert (fr.type, fr.epoch, fr.counter, fr.nonce, fr.echo) == (T_HELLO, EPOCH, 3, 0xA1, 0xB2)
    pkt = FGCPSync(hello)
    assert (pkt.epoch, pkt.counter, pkt.nonce, pkt.echo) == (EPOCH, 3, 0xA1, 0xB2)
    built = FGCPSync(type="HELLO", flags="authenticated", group_id=10, serial=b"FGT2",
                     epoch=EPOCH, counter=3, nonce=0xA1, echo=0xB2)
    assert built.sign(KEY) == hello
    with pytest.raises(MalformedSyncFrame, match="nonce"):  # v1 HELLO: no payload
        decode_frame(encode_frame(T_HELLO, 10, "FGT2", 0, 0, 0, 0, None, epoch=1, counter=1),
                     None)
    for epoch, counter in ((0, 1), (1, 0)):  # zero epoch or counter: never sent
        with pytest.raises(MalformedSyncFrame, match="non-zero"):
            decode_frame(encode_frame(T_HELLO, 10, "FGT2", 0, 0, 0, 0, None, epoch=epoch,
                                      counter=counter, payload=encode_challenge(1)), None)


def test_batching_fills_a_1500_byte_frame() -> None:
    fb = FrameBuilder()
    i = 0
    while fb.add(encode_record(OP_ADD, tcp_record(i))):
        i += 1
    frame = encode_frame(T_DATA, 10, SERIAL, 1, 1, 0, 0, KEY, epoch=1, counter=1,
                         count=fb.count, payload=fb.payload())
    assert len(frame) <= MAX_FRAME
    assert fb.count >= 14  # TCP records with NAT, windows, interfaces and a 7-byte ext
    fb = FrameBuilder()
    while fb.add(encode_record(OP_ADD, SessionRecord(
            17, (0xC633640A, 5000 + fb.count, 0xCB00710A, 53),
            (0xCB00710A, 53, 0xCB007101, 5000), in_intf="port1", out_intf="port2"))):
        pass
    assert fb.count >= 21
    assert len(decode_frame(encode_frame(T_DATA, 1, "A", 1, 1, 0, 0, None, epoch=1, counter=1,
                                         count=fb.count, payload=fb.payload()),
                            None).records) == fb.count


def test_encode_rejects_out_of_range() -> None:
    bad = tcp_record()
    bad.nat_port = 70000
    with pytest.raises(SyncRecordError):
        encode_record(OP_ADD, bad)
    bad = tcp_record()
    bad.inspection = "magic"
    with pytest.raises(SyncRecordError):
        encode_record(OP_ADD, bad)
    with pytest.raises(SyncRecordError):
        encode_record(OP_DELETE, tcp_record())


def test_auth_failures_are_typed() -> None:
    with pytest.raises(SyncAuthError):
        decode_frame(GOLDEN, derive_sync_key("wrong", 10))
    with pytest.raises(SyncAuthError):
        decode_frame(GOLDEN, derive_sync_key("secret", 11))  # key bound to the group id
    with pytest.raises(SyncAuthError):
        decode_frame(GOLDEN, None)  # we have no password, the peer has one
    plain = encode_frame(T_DATA, 10, SERIAL, 1, 1, 0, 0, None, epoch=1, counter=1)
    with pytest.raises(SyncAuthError):
        decode_frame(plain, KEY)
    tampered = bytearray(GOLDEN)
    tampered[60] ^= 0x01
    with pytest.raises(SyncAuthError):
        decode_frame(bytes(tampered), KEY)
    assert derive_sync_key("", 10) is None


def test_ethernet_padding_accepted_garbage_refused() -> None:
    small = encode_frame(T_BULK_END, 1, "A", 1, 1, 0, 0, None, epoch=1, counter=1,
                         payload=encode_total(3))
    assert decode_frame(small + b"\0" * 10, None).total == 3
    with pytest.raises(MalformedSyncFrame, match="trailing"):
        decode_frame(small + b"\x01", None)


def test_every_truncation_is_malformed() -> None:
    for n in range(len(GOLDEN)):
        with pytest.raises(MalformedSyncFrame):
            decode_frame(GOLDEN[:n], KEY)


def test_fuzz_only_typed_errors() -> None:
    """5000 random and mutated inputs: either a frame or MalformedSyncFrame, nothing else."""
    rng = random.Random(4)
    seed = encode_frame(T_DATA, 10, SERIAL, 1, 5, 0, 12000, None, epoch=1, counter=1, count=2,
                        payload=GOLDEN[HEADER_LEN:-AUTH_LEN])
    parsed = 0
    for i in range(5000):
        kind = i % 3
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:
            data = bytearray(seed)
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[:rng.randrange(len(data) + 1)]) if rng.random() < 0.3 else bytes(data)
        else:  # valid header, random body
            body = rng.randbytes(rng.randrange(0, 120))
            data = encode_frame(rng.choice([T_DATA, T_NACK, T_BULK_BEGIN, 2, 4, 5]), 10, "A", 1,
                                1, 0, 0, None, epoch=1, counter=1, count=rng.randrange(0, 5),
                                payload=body)
        key = KEY if rng.random() < 0.2 else None
        try:
            decode_frame(data, key, verify=rng.random() < 0.5)
            parsed += 1
        except MalformedSyncFrame:
            pass
    assert parsed > 0  # some mutations stay valid: the fuzzer reaches the record parser


LUA = ROOT / "wireshark" / "fgcp_sync.lua"


def test_tshark_lua_dissector(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    nack = encode_frame(T_NACK, 10, "FGT2", 0x01020304, 40, 3, 0, KEY, epoch=EPOCH, counter=9,
                        count=2,
                        payload=encode_nack_ranges([(4, 9), (20, 20)]))
    hello = encode_frame(T_HELLO, 10, "FGT2", 0, 0, 0, 0, KEY, epoch=EPOCH, counter=10,
                         payload=encode_challenge(0xA1, 0xB2))
    frames = [Ether(dst="00:09:0f:09:0a:02", src="00:09:0f:09:0a:01", type=0x8892) / FGCPSync(p)
              for p in (GOLDEN, nack, hello)]
    pcap = tmp_path / "sync.pcap"
    wrpcap(str(pcap), frames)
    res = subprocess.run(
        [tshark, "-X", f"lua_script:{LUA}", "-r", str(pcap), "-T", "fields",
         "-E", "separator=|", "-e", "fgcp_sync.type", "-e", "fgcp_sync.seq",
         "-e", "fgcp_sync.records", "-e", "fgcp_sync.ack", "-e", "fgcp_sync.serial",
         "-e", "fgcp_sync.rec.op", "-e", "fgcp_sync.rec.src", "-e", "fgcp_sync.rec.nat_port",
         "-e", "fgcp_sync.gap.from", "-e", "fgcp_sync.rec.tcp.seqhi", "-e", "fgcp_sync.epoch",
         "-e", "fgcp_sync.counter", "-e", "fgcp_sync.nonce", "-e", "fgcp_sync.echo"],
        capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3, res.stdout + res.stderr
    data, nk, hl = (ln.split("|") for ln in lines)
    assert data[:5] == ["1", "5", "2", "0", SERIAL]
    assert data[5] == "1,3" and data[6] == "198.51.100.20,198.51.100.21"
    assert data[7] == "61000" and data[9] == "70000,9000"
    assert nk[0] == "3" and nk[3] == "3" and nk[8] == "4,20"
    assert int(data[10], 16) == EPOCH and data[11] == "42" and nk[11] == "9"
    assert hl[0] == "4" and int(hl[12], 16) == 0xA1 and int(hl[13], 16) == 0xB2
