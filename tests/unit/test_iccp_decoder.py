"""ICCP decoder (inspection.iccp) on the golden capture of the real pyiec61850 peers and on
constructed frames: services and names, every split point, anomalies, state round trip."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from scapy.all import TCP, rdpcap

from inspection.iccp import ICCP_PORT, IccpDecoder, IccpEvent, looks_like_iccp
from inspection.iccp.frames import (
    cotp_cr,
    cotp_dt,
    iccp_dt,
    mms_confirmed_request,
    mms_read,
    mms_write,
    presentation_data,
    session_dt,
    spc_oper,
    tlv,
    tpkt,
)
from lab.iccp.attack import ASSOCIATE, COTP_CR

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "iccp_session.pcap"
BREAKER = "GGIO1$CO$SPCSO1$Oper"
SETPOINT = "GGIO1$SP$AnOut1$setMag$f"


def _streams() -> dict[tuple[int, int], bytes]:
    """TCP payload per (src port, dst port), in capture order (loopback: in order)."""
    out: dict[tuple[int, int], bytearray] = {}
    for p in rdpcap(str(GOLDEN)):
        if TCP in p and bytes(p[TCP].payload):
            out.setdefault((p[TCP].sport, p[TCP].dport), bytearray()).extend(
                bytes(p[TCP].payload))
    return {k: bytes(v) for k, v in out.items()}


def _connections() -> list[tuple[bytes, bytes]]:
    """(client->server, server->client) bytes of each connection, in capture order."""
    streams = _streams()
    clients = [k for k in streams if k[1] != k[0] and k[0] > k[1]]
    return [(streams[k], streams[(k[1], k[0])]) for k in clients]


def _feed_all(data: bytes, chunk: int | None = None) -> list[IccpEvent]:
    d = IccpDecoder()
    if chunk is None:
        return d.feed(data)
    out: list[IccpEvent] = []
    for i in range(0, len(data), chunk):
        out += d.feed(data[i:i + chunk])
    return out


# ---------------------------------------------------------------- golden capture
def test_golden_capture_every_pdu_decoded_with_service_and_names() -> None:
    (c2s, s2c), (a2s, s2a) = _connections()
    req, rsp = _feed_all(c2s), _feed_all(s2c)
    assert all(e.kind == "pdu" for e in req + rsp), [e.reason for e in req + rsp]
    assert [e.cotp for e in req[:2]] == ["CR", "DT"] and rsp[0].cotp == "CC"
    assert (req[1].spdu, req[1].mms_pdu, req[1].service) == ("CN", "initiate-RequestPDU",
                                                             "initiate")
    assert (rsp[1].spdu, rsp[1].mms_pdu) == ("AC", "initiate-ResponsePDU")
    # every DT carries an MMS PDU except the session release (FN / DN)
    assert [e.spdu for e in req if e.cotp == "DT" and e.mms_pdu is None] == ["FN"]
    assert [e.spdu for e in rsp if e.cotp == "DT" and e.mms_pdu is None] == ["DN"]
    services = [e.service for e in req]
    for s in ("getNameList", "read", "write", "identify", "deleteNamedVariableList",
              "conclude"):
        assert s in services, s
    reads = {e.items for e in req if e.service == "read"}
    assert {("Bilateral_Table_ID",), ("TASE2_Version",), ("Supported_Features",),
            ("MMXU1$MX$TotW$mag$f",)} <= reads
    tase2 = {n for e in req for n in e.tase2}
    assert {"Bilateral_Table_ID", "TASE2_Version", "Supported_Features",
            "Next_DSTransfer_Set"} <= tase2
    writes = [e.items for e in req if e.service == "write" and e.domain == "ICC1"]
    assert writes[0] == ("LLN0$RP$urcb01$RptEna",)  # enables the server's reports
    assert len(writes) > 2 and set(writes[1:]) == {(SETPOINT,)}
    # ... which then come as unconfirmed informationReports of the IEC 61850 "RPT" name
    reports = [e for e in rsp if e.service == "informationReport"]
    assert reports and all(e.mms_pdu == "unconfirmed-PDU" and e.items == ("RPT",)
                           and e.invoke_id is None for e in reports)
    # the server's domain list and directory come back named
    lists = [e for e in rsp if e.service == "getNameList"]
    assert lists[0].items == ("ICC1",) and BREAKER in lists[1].items
    # responses answer the requests' invoke ids, in order
    confirmed = [e.invoke_id for e in req if e.mms_pdu == "confirmed-RequestPDU"]
    answered = [e.invoke_id for e in rsp if e.mms_pdu == "confirmed-ResponsePDU"]
    assert answered == confirmed and confirmed == list(range(1, len(confirmed) + 1))
    assert [e.mms_pdu for e in req if e.service == "conclude"] == ["conclude-RequestPDU"]
    assert [e.mms_pdu for e in rsp if e.service == "conclude"] == ["conclude-ResponsePDU"]
    # offsets tile the stream
    assert req[0].start == 0 and req[-1].end == len(c2s)
    assert all(a.end == b.start for a, b in itertools.pairwise(req))
    # the attacker's connection: its write of the breaker, and the server's answer
    att = _feed_all(a2s)
    assert [(e.service, e.domain, e.items) for e in att if e.service == "write"] == \
        [("write", "ICC1", (BREAKER,))]
    assert [e.service for e in _feed_all(s2a)][-1] == "write"


def test_attacker_association_bytes_are_the_real_clients() -> None:
    (c2s, _), _ = _connections()
    assert c2s.startswith(COTP_CR + ASSOCIATE)
    ev = _feed_all(COTP_CR + ASSOCIATE)
    assert [(e.cotp, e.spdu, e.service) for e in ev] == [("CR", None, None),
                                                         ("DT", "CN", "initiate")]


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_golden_streams_fed_in_chunks_give_the_same_events(chunk: int) -> None:
    for stream in _streams().values():
        assert _feed_all(stream, chunk) == _feed_all(stream)


# ---------------------------------------------------------------- constructed frames
def test_every_split_point_of_a_breaker_write_gives_the_same_events() -> None:
    pdu = iccp_dt(mms_write(9, "ICC1", BREAKER, spc_oper(True)))
    data = cotp_cr() + pdu + iccp_dt(mms_read(10, "ICC1", SETPOINT))
    whole = IccpDecoder().feed(data)
    assert [(e.service, e.items) for e in whole] == [(None, ()), ("write", (BREAKER,)),
                                                    ("read", (SETPOINT,))]
    for cut in range(1, len(data)):
        d = IccpDecoder()
        assert d.feed(data[:cut]) + d.feed(data[cut:]) == whole, cut
    assert _feed_all(data, 1) == whole


def test_state_round_trip_mid_pdu() -> None:
    data = iccp_dt(mms_write(3, "ICC1", BREAKER, spc_oper(False))) + iccp_dt(
        mms_read(4, "ICC1", SETPOINT))
    whole = IccpDecoder().feed(data)
    for cut in (2, 5, 37, len(data) - 3):
        d = IccpDecoder()
        first = d.feed(data[:cut])
        blob = d.to_state()
        d2 = IccpDecoder.from_state(blob)
        assert d2.offset == cut and d2.to_state() == blob
        assert first + d2.feed(data[cut:]) == whole
    blob = IccpDecoder().to_state()
    print(f"ICCP decoder state: {len(blob)} bytes idle, "
          f"{len(IccpDecoder.from_state(blob).to_state())} after round trip, "
          f"{_state_mid_pdu(data)} bytes mid-PDU")
    assert len(blob) <= 48


def _state_mid_pdu(data: bytes) -> int:
    d = IccpDecoder()
    d.feed(data[:50])
    return len(d.to_state())


@pytest.mark.parametrize("blob", [b"", b"XX" + bytes(40), IccpDecoder().to_state()[:-1],
                                  IccpDecoder().to_state() + b"\x00"])
def test_from_state_rejects_bad_blobs(blob: bytes) -> None:
    with pytest.raises(ValueError):
        IccpDecoder.from_state(blob)


def test_segmented_tsdu_reassembled_across_cotp_dt_without_eot() -> None:
    tsdu = session_dt(presentation_data(mms_read(5, "ICC1", "Transfer_Set_Name")))
    data = cotp_dt(tsdu[:20], eot=False) + cotp_dt(tsdu[20:])
    ev = IccpDecoder().feed(data)
    assert [(e.kind, e.cotp, e.service) for e in ev] == [("pdu", "DT", None),
                                                         ("pdu", "DT", "read")]
    assert ev[1].start == 0 and ev[1].end == len(data)
    assert ev[1].tase2 == ("Transfer_Set_Name",)


def _service(service: tuple[str, object], invoke_id: int = 1) -> IccpEvent:
    return IccpDecoder().feed(iccp_dt(mms_confirmed_request(invoke_id, service)))[0]


def test_named_variable_list_services_and_status() -> None:
    name = ("domain-specific", {"domainId": "ICC1", "itemId": "DSConditions_Detected"})
    ev = _service(("getVariableAccessAttributes", ("name", name)))
    assert (ev.service, ev.domain, ev.tase2) == ("getVariableAccessAttributes", "ICC1",
                                                 ("DSConditions_Detected",))
    var = {"variableSpecification": ("name", ("domain-specific",
                                               {"domainId": "ICC1", "itemId": SETPOINT}))}
    ev = _service(("defineNamedVariableList", {
        "variableListName": ("domain-specific", {"domainId": "ICC1", "itemId": "DS1"}),
        "listOfVariable": [var]}))
    assert (ev.service, ev.items) == ("defineNamedVariableList", ("DS1", SETPOINT))
    ev = _service(("getNamedVariableListAttributes", ("aa-specific", "Transfer_Set1")), 77)
    assert (ev.service, ev.invoke_id, ev.domain, ev.items, ev.tase2) == (
        "getNamedVariableListAttributes", 77, None, ("Transfer_Set1",), ("Transfer_Set1",))
    status = IccpDecoder().feed(iccp_dt(tlv(0xA0, tlv(0x02, b"\x05") + tlv(0x80, b"\x00"))))
    assert (status[0].service, status[0].invoke_id) == ("status", 5)


def test_information_report_and_error_pdus() -> None:
    spec = _info_report()
    ev = IccpDecoder().feed(iccp_dt(spec))[0]
    assert ev.kind == "pdu", ev.reason
    assert (ev.mms_pdu, ev.service, ev.items, ev.tase2) == (
        "unconfirmed-PDU", "informationReport", ("Transfer_Set_Name",), ("Transfer_Set_Name",))
    err = IccpDecoder().feed(iccp_dt(tlv(0xA2, tlv(0x80, b"\x07") + tlv(0xA2, tlv(
        0x80, b"\x01")))))[0]
    assert (err.kind, err.mms_pdu, err.invoke_id) == ("pdu", "confirmed-ErrorPDU", 7)
    rej = IccpDecoder().feed(iccp_dt(tlv(0xA4, tlv(0x80, b"\x08") + tlv(0x81, b"\x01"))))[0]
    assert (rej.mms_pdu, rej.invoke_id) == ("reject-PDU", 8)


def _info_report() -> bytes:
    item = tlv(0x30, tlv(0xA0, tlv(0x80, b"Transfer_Set_Name")))  # name: vmd-specific
    name = tlv(0xA0, item)                                          # [0] listOfVariable
    results = tlv(0xA0, tlv(0x8A, b"DS1"))                          # one visible-string
    return tlv(0xA3, tlv(0xA0, name + results))


# ---------------------------------------------------------------- anomalies
def _kinds(events: list[IccpEvent]) -> list[tuple[str, str | None]]:
    return [(e.kind, e.service) for e in events]


def test_oversized_tpkt_is_an_anomaly_skipped_then_sync_resumes() -> None:
    big = tpkt(bytes([2, 0xF0, 0x80]) + bytes(2000))
    ok = iccp_dt(mms_read(1, "ICC1", SETPOINT))
    d = IccpDecoder(max_pdu=1000)
    ev = d.feed(big + ok)
    assert _kinds(ev) == [("anomaly", None), ("pdu", "read")]
    assert ev[0].reason == "oversized TPKT (2007 > 1000)" and ev[0].end == len(big)
    assert d.anomalies == 1 and len(d.to_state()) < 100


def test_truncated_pdu_waits_and_truncated_ber_is_an_anomaly() -> None:
    pdu = iccp_dt(mms_read(1, "ICC1", SETPOINT))
    d = IccpDecoder()
    assert d.feed(pdu[:-1]) == [] and d.anomalies == 0 and d.offset == len(pdu) - 1
    # the TPKT says it ends earlier than the BER inside claims: truncated BER
    mms = mms_read(1, "ICC1", SETPOINT)
    cut = cotp_dt(session_dt(presentation_data(mms))[:-4])
    ev = IccpDecoder().feed(cut)
    assert ev[0].kind == "anomaly" and "BER" in (ev[0].reason or "")


def test_bad_ber_length_in_mms_is_an_anomaly() -> None:
    mms = bytearray(mms_read(1, "ICC1", SETPOINT))
    mms[1] += 5  # the confirmed-RequestPDU claims 5 bytes more than the PDV carries
    ev = IccpDecoder().feed(cotp_dt(session_dt(presentation_data(bytes(mms)))))
    assert ev[0].kind == "anomaly" and "BER" in (ev[0].reason or "")
    mms = bytearray(mms_read(1, "ICC1", SETPOINT))
    mms[-1] = 0x80 | 0x05  # an identifier's last byte replaced by a 5-octet length form
    ev = IccpDecoder().feed(iccp_dt(bytes(mms)))
    assert ev[0].kind == "anomaly"


@pytest.mark.parametrize("payload, reason", [
    (bytes([2, 0x30, 0x80]) + b"\x01\x00\x01\x00", "unknown COTP TPDU code"),
    (bytes([3, 0xF0, 0x80, 0]) + b"\x01\x00\x01\x00", "COTP DT header length 3"),
    (bytes([6, 0xE0, 0, 0, 0, 1, 0x40]), "COTP CR class 4"),
    (bytes([9, 0xF0, 0x80]), "bad COTP length indicator"),
])
def test_wrong_cotp_is_an_anomaly(payload: bytes, reason: str) -> None:
    ev = IccpDecoder().feed(tpkt(payload))
    assert ev[0].kind == "anomaly" and reason in (ev[0].reason or "")


def test_garbage_is_one_anomaly_then_resync_on_the_next_tpkt() -> None:
    garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x03\x00\xff"
    ok = iccp_dt(mms_read(2, "ICC1", SETPOINT))
    for chunk in (None, 1, 5):
        ev = _feed_all(garbage + ok, chunk)
        assert _kinds(ev) == [("anomaly", None), ("pdu", "read")], chunk
        assert ev[0].reason == "bad TPKT header (version 71, reserved 69)"
        assert ev[1].start == len(garbage)


def test_unknown_spdu_and_non_mms_content_are_anomalies() -> None:
    ev = IccpDecoder().feed(cotp_dt(b"\x63\x00"))
    assert ev[0].kind == "anomaly" and "SPDU SI 99" in (ev[0].reason or "")
    ev = IccpDecoder().feed(cotp_dt(session_dt(presentation_data(tlv(0x04, b"x")))))
    assert ev[0].kind == "anomaly" and "not an MMS PDU" in (ev[0].reason or "")


def test_random_and_mutated_input_never_raises() -> None:
    rng = random.Random(61850)
    seeds = list(_streams().values())
    for _ in range(300):
        base = bytearray(rng.choice(seeds)[:rng.randrange(1, 600)])
        for _ in range(rng.randrange(1, 6)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        if rng.random() < 0.3:
            base = bytearray(rng.randbytes(rng.randrange(1, 300)))
        d = IccpDecoder(max_pdu=rng.choice([100, 1000, 65535]))
        events: list[IccpEvent] = []
        pos = 0
        while pos < len(base):
            n = rng.randrange(1, 64)
            events += d.feed(bytes(base[pos:pos + n]))
            pos += n
            d = IccpDecoder.from_state(d.to_state())
        assert d.offset == len(base)
        assert all(0 <= e.start <= e.end for e in events)
        assert d.anomalies == sum(e.kind == "anomaly" for e in events)


def test_looks_like_iccp() -> None:
    assert ICCP_PORT == 102
    assert looks_like_iccp(cotp_cr()) is True
    assert looks_like_iccp(iccp_dt(mms_read(1, "ICC1", SETPOINT))) is True
    assert looks_like_iccp(b"GET / HTTP/1.1\r\n") is False
    assert looks_like_iccp(b"\x03\x00\x00\x03\x02\xf0") is False  # length < 7
    assert looks_like_iccp(b"\x03\x00") is None
    assert looks_like_iccp(b"") is None


def test_preload_compiles_the_schema_once() -> None:
    from inspection.iccp import preload
    from inspection.iccp.mms import spec
    preload()
    assert spec() is spec() and spec().types["ConfirmedServiceRequest"] is not None
