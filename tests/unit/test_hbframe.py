"""FGCP heartbeat frames: golden bytes, scapy round trip, authentication, replay, fuzzing."""

from __future__ import annotations

import dataclasses
import random
import struct
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from fgcp.freshness import Challenge, Verdict
from fgcp.hbframe import (
    HB_MAGIC,
    IF_ADMIN_UP,
    IF_HA_ELIGIBLE,
    IF_MONITORED,
    IF_OPER_UP,
    STATE_WORK,
    TLV_INTERFACES,
    TLV_PRIORITY,
    AuthFailure,
    HeartbeatError,
    HeartbeatInfo,
    IfaceRecord,
    MalformedHeartbeat,
    WrongGroup,
    decode_heartbeat,
    encode_heartbeat,
    encode_payload,
)
from fgcp.hblayer import (
    FGCPTLV,
    FGCPHeartbeat,
    FGCPTLVEnd,
    FGCPTLVEpoch,
    FGCPTLVPriority,
    FGCPTLVSequence,
    FGCPTLVState,
    FGCPTLVUptime,
)
from fgcp.hbreplay import HeartbeatFreshness, ReplayedHeartbeat

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SRC = bytes.fromhex("00090f090a01")

INFO = HeartbeatInfo(
    serial="FGVM01TM00000001",
    group_name="lab",
    group_id=10,
    port="port3",
    config_revision=7,
    config_hash=0xBEEF,
    priority=200,
    override=False,
    interfaces=(
        IfaceRecord(
            "port1",
            bytes.fromhex("020000000101"),
            IF_ADMIN_UP | IF_OPER_UP | IF_MONITORED | IF_HA_ELIGIBLE,
        ),
        IfaceRecord(
            "port2",
            bytes.fromhex("020000000102"),
            IF_ADMIN_UP | IF_OPER_UP | IF_MONITORED | IF_HA_ELIGIBLE,
        ),
        IfaceRecord("port3", bytes.fromhex("020000000103"), IF_ADMIN_UP | IF_OPER_UP),
    ),
    checksums=(b"\x11" * 16, b"\x22" * 16, b"\x33" * 16),
    uptime_ms=123456,
    state=STATE_WORK,
    role=1,
    failed_monitors=0,
    monitored=2,
    seq=1_790_000_000_000_000_001,
    members=("FGVM01TM00000002",),
    hostname="FGT1",
    primary="FGVM01TM00000001",
    epoch=0x1122334455667788,
    challenges=(Challenge("FGVM01TM00000002", 0x0102030405060708, 0xA1A2A3A4A5A6A7A8),),
    responses=(("FGVM01TM00000002", 0xB1B2B3B4B5B6B7B8),),
)


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "password"), [("heartbeat_plain.bin", ""), ("heartbeat_auth.bin", "secret")]
)
def test_golden_bytes(name: str, password: str) -> None:
    frame = encode_heartbeat(INFO, password, src=SRC)
    assert frame == _golden(name), "wire format drifted from the golden capture"
    got = decode_heartbeat(frame, password, group_id=10, group_name="lab")
    assert dataclasses.replace(got, authenticated=False) == INFO
    assert got.authenticated == bool(password)


def test_header_offsets_match_design_table() -> None:
    p = encode_payload(INFO)
    assert struct.unpack_from("<H", p, 0)[0] == HB_MAGIC and p[:2] == b"FG"
    assert p[2] == 2  # a-p
    assert p[3] == 0  # flags: no auth without a password
    assert p[4:36].rstrip(b"\0") == b"lab"
    assert struct.unpack_from("<H", p, 38)[0] == 10
    assert p[52:68].rstrip(b"\0") == b"port3"
    assert struct.unpack_from("<HH", p, 68) == (7, 0xBEEF)
    assert p[72:88] == b"FGVM01TM00000001"
    # first TLVs: vcluster 1, priority 200, override 0 (as Wireshark's fortinet_fgcp_hb decodes them)
    assert p[88:93] == bytes.fromhex("0b00010001")
    assert p[93:98] == bytes.fromhex("0c000100c8")
    assert p[98:103] == bytes.fromhex("0d00010000")
    assert p.endswith(b"\x00\x00\x00\x00")  # end TLV
    assert encode_payload(INFO, "secret")[3] == 0x02


def test_scapy_dissects_and_rebuilds_the_same_bytes() -> None:
    for password in ("", "secret"):
        frame = encode_heartbeat(INFO, password, src=SRC)
        pkt = Ether(frame)
        hb = pkt[FGCPHeartbeat]
        assert hb.group_name.rstrip(b"\0") == b"lab"
        assert hb.group_id == 10
        assert hb.serial == b"FGVM01TM00000001"
        assert hb.tlv(TLV_PRIORITY).priority == 200
        assert hb.tlv(TLV_INTERFACES).records() == INFO.interfaces
        assert isinstance(hb.tlvs[-1], FGCPTLVEnd)
        assert bytes(pkt) == frame
        assert "FGCP HB lab/10 SN FGVM01TM00000001 on port3 prio 200 work" in pkt.summary()
        if password:
            assert hb.auth == frame[-32:]


def test_scapy_build_fills_lengths_and_decodes() -> None:
    pkt = Ether(dst="ff:ff:ff:ff:ff:ff", src="00:09:0f:09:0a:02") / FGCPHeartbeat(
        group_name=b"lab",
        group_id=10,
        port=b"port4",
        serial=b"FGVM01TM00000002",
        tlvs=[
            FGCPTLVPriority(priority=100),
            FGCPTLVUptime(uptime_ms=5000),
            FGCPTLVState(state=3),
            FGCPTLVSequence(seq=42),
            FGCPTLVEpoch(epoch=5),
            FGCPTLV(type=0x9F, value=b"future"),  # unknown TLV: skipped by length
            FGCPTLVEnd(),
        ],
    )
    raw = bytes(pkt)
    info = decode_heartbeat(raw, "", group_id=10)
    assert (info.serial, info.priority, info.uptime_ms, info.state, info.seq, info.epoch) == (
        "FGVM01TM00000002",
        100,
        5000,
        3,
        42,
        5,
    )
    again = Ether(raw)[FGCPHeartbeat]
    assert (
        again.tlvs[5].type == 0x9F and again.tlvs[5].len == 6 and again.tlvs[5].value == b"future"
    )


def test_parser_honours_length_of_known_type() -> None:
    # a priority TLV of length 2 is not assumed to be 1 byte: scapy keeps it generic,
    # the strict decoder refuses it
    body = bytearray(encode_payload(INFO))
    at = body.index(bytes.fromhex("0c000100c8"))
    body[at : at + 5] = bytes.fromhex("0c000200c8c8")
    frame = b"\xff" * 6 + SRC + b"\x88\x90" + bytes(body)
    hb = Ether(frame)[FGCPHeartbeat]
    assert hb.tlvs[1].len == 2 and hb.tlvs[1].value == b"\xc8\xc8"
    assert bytes(Ether(frame)) == frame
    with pytest.raises(MalformedHeartbeat, match="length 2"):
        decode_heartbeat(frame)


def test_auth_wrong_password_and_tampering() -> None:
    frame = encode_heartbeat(INFO, "secret", src=SRC)
    with pytest.raises(AuthFailure):
        decode_heartbeat(frame, "other", 10)
    with pytest.raises(AuthFailure):
        decode_heartbeat(frame, "", 10)  # authenticated but no password here
    with pytest.raises(AuthFailure):
        decode_heartbeat(
            encode_heartbeat(INFO, "", src=SRC), "secret", 10
        )  # spoofed without trailer
    tampered = bytearray(frame)
    tampered[14 + 93 + 4] = 255  # priority 200 -> 255
    with pytest.raises(AuthFailure):
        decode_heartbeat(bytes(tampered), "secret", 10)


def test_wrong_group() -> None:
    frame = encode_heartbeat(INFO, "secret", src=SRC)
    with pytest.raises(WrongGroup):
        decode_heartbeat(frame, "secret", group_id=11)
    with pytest.raises(WrongGroup):
        decode_heartbeat(frame, "secret", group_id=10, group_name="other")


def test_counters_per_epoch_and_port() -> None:
    me = HeartbeatFreshness("FGVM01TM00000002", ttl=5.0, epoch=7)
    peer = HeartbeatFreshness(INFO.serial, ttl=5.0, epoch=9)
    base = dataclasses.replace(INFO, challenges=(), responses=())
    first = peer.stamp(0.0, base)
    assert (first.epoch, first.seq) == (9, 1)
    assert me.check(0.0, first)[0] is Verdict.PENDING  # unknown epoch: challenged
    with pytest.raises(ReplayedHeartbeat):
        me.check(0.1, first)  # the same frame twice, even while pending
    chal = me.stamp(0.1, base)
    peer.check(0.1, dataclasses.replace(chal, serial="FGVM01TM00000002"))
    answer = peer.stamp(0.2, base)
    assert me.check(0.2, answer)[0] is Verdict.VERIFIED
    later = peer.stamp(0.3, base)
    assert me.check(0.3, later)[0] is Verdict.FRESH
    with pytest.raises(ReplayedHeartbeat):
        me.check(0.4, answer)  # older counter of the verified epoch
    # the same counter on another heartbeat link is a different stream
    assert me.check(0.4, dataclasses.replace(later, port="port4"))[0] is Verdict.FRESH


def test_truncated_frames_are_malformed() -> None:
    for password in ("", "secret"):
        frame = encode_heartbeat(INFO, password, src=SRC)
        for cut in range(len(frame)):
            with pytest.raises(HeartbeatError) as err:
                decode_heartbeat(frame[:cut], password, 10)
            # without a password every truncation is malformed; with one the HMAC may catch it first
            if not password:
                assert isinstance(err.value, MalformedHeartbeat), cut


def test_bad_interface_stream_is_malformed() -> None:
    body = encode_payload(dataclasses.replace(INFO, checksums=None))
    at = body.index(b"\x2a\x00")
    (tlen,) = struct.unpack_from("<H", body, at + 2)
    broken = body[: at + 6] + b"\x00" * (tlen - 2) + body[at + 4 + tlen :]
    with pytest.raises(MalformedHeartbeat, match="zlib"):
        decode_heartbeat(b"\xff" * 6 + SRC + b"\x88\x90" + broken)


def test_fuzz_5000_random_inputs_raise_only_malformed() -> None:
    rng = random.Random(20261124)
    for i in range(5000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 400)))
        if i % 2:  # half of them with a valid Ethernet type and magic, to reach the TLV parser
            data = b"\xff" * 6 + SRC + b"\x88\x90" + b"FG\x02\x00" + data
        try:
            decode_heartbeat(data, "", 10)
        except MalformedHeartbeat:
            pass
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"random input #{i} raised {type(exc).__name__}: {exc}")
        else:
            pytest.fail(f"random input #{i} decoded")


def test_fuzz_mutated_frames_raise_only_heartbeat_errors() -> None:
    rng = random.Random(4)
    good = encode_heartbeat(INFO, "", src=SRC)
    decoded = 0
    for i in range(2000):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(14, len(data))] = rng.getrandbits(8)
        try:
            decode_heartbeat(bytes(data), "", 10)
            decoded += 1
        except HeartbeatError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"mutation #{i} raised {type(exc).__name__}: {exc}")
    assert decoded < 2000  # some mutations (e.g. inside the serial) stay valid, most do not


def test_scapy_dissection_never_raises_on_garbage() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = (
            b"\xff" * 6
            + SRC
            + b"\x88\x90"
            + b"FG"
            + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 200)))
        )
        Ether(data).summary()
