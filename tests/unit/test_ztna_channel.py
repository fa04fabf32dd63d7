"""inspection.ztna.channel: AEAD frames, incremental feeding, errors, state restore."""

from __future__ import annotations

import os
import struct

import pytest

from inspection.ztna.channel import (
    EXPORT_LEN,
    MAX_PAYLOAD,
    Channel,
    ChannelKeys,
    ChannelStateError,
)


def pair() -> tuple[Channel, Channel]:
    keys = ChannelKeys.from_exporter(os.urandom(EXPORT_LEN))
    return Channel(keys, "client"), Channel(keys, "server")


def test_roundtrip_both_directions() -> None:
    c, s = pair()
    assert s.open(c.seal(b"GET / HTTP/1.0\r\n\r\n")).data == b"GET / HTTP/1.0\r\n\r\n"
    assert c.open(s.seal(b"HTTP/1.0 200 OK\r\n")).data == b"HTTP/1.0 200 OK\r\n"
    assert (c.tx_offset, c.rx_offset, s.tx_offset, s.rx_offset) == (18, 17, 17, 18)


def test_fed_byte_by_byte_and_large_writes_split_into_frames() -> None:
    c, s = pair()
    data = os.urandom(3 * MAX_PAYLOAD + 5)
    wire = c.seal(data)
    assert c.frames_out == 4
    got = b"".join(s.open(wire[i:i + 1]).data for i in range(len(wire)))
    assert got == data
    assert s.pending == 0 and s.frames_in == 4


def test_same_plaintext_never_gives_the_same_frame() -> None:
    c, _ = pair()
    assert c.seal(b"x" * 100) != c.seal(b"x" * 100)


def test_direction_keys_differ() -> None:
    c, _ = pair()
    # a client frame reflected back to the client does not authenticate
    assert c.open(c.seal(b"hello")).error == "frame authentication failed at offset 0"


def test_close_then_more_data_is_an_error() -> None:
    c, s = pair()
    got = s.open(c.seal(b"bye") + c.seal_close())
    assert got.data == b"bye" and got.closed and got.error is None
    with pytest.raises(ValueError):
        c.seal(b"more")
    keys = c.keys
    forged = Channel(keys, "client", tx_offset=3)
    assert s.open(forged.seal(b"x")).error == "data after end of stream at offset 3"


@pytest.mark.parametrize("wire, error", [
    (struct.pack("!H", 5) + b"\x00" * 5, "bad frame length 5 at offset 0"),
    (struct.pack("!H", 60000) + b"\x00" * 10, "bad frame length 60000 at offset 0"),
    (b"\xff\xff", "bad frame length 65535 at offset 0"),
])
def test_bad_lengths(wire: bytes, error: str) -> None:
    _, s = pair()
    assert s.open(wire).error == error
    assert s.open(b"anything").error == error  # a failed channel stays failed
    assert s.pending == 0


def test_tampered_frame_is_refused() -> None:
    c, s = pair()
    frame = bytearray(c.seal(b"payload"))
    frame[5] ^= 1
    assert s.open(bytes(frame)).error == "frame authentication failed at offset 0"


def test_replayed_frame_is_refused() -> None:
    c, s = pair()
    frame = c.seal(b"one")
    assert s.open(frame).data == b"one"
    assert s.open(frame).error == "frame authentication failed at offset 3"


def test_random_garbage_never_raises() -> None:
    for _ in range(200):
        _, s = pair()
        got = s.open(os.urandom(int.from_bytes(os.urandom(1), "big") + 2))
        assert got.data == b""
        assert got.error is not None or s.pending > 0


def test_restore_mid_stream_with_a_partial_frame() -> None:
    """The failover promise: a fresh object built from the synced bytes continues."""
    c, s = pair()
    assert s.open(c.seal(b"a" * 1000)).data == b"a" * 1000
    c.open(s.seal(b"b" * 10))
    nxt = c.seal(b"c" * 50)
    assert s.open(nxt[:20]).data == b""
    state = s.export_state()
    assert len(state) == 109 + 20  # fixed part + the partial frame
    s2 = Channel.from_state(state)
    assert (s2.rx_offset, s2.tx_offset, s2.pending) == (1000, 10, 20)
    assert s2.open(nxt[20:]).data == b"c" * 50
    assert c.open(s2.seal(b"d" * 5)).data == b"d" * 5


def test_restore_keeps_close_flags() -> None:
    c, s = pair()
    s.open(c.seal_close())
    s2 = Channel.from_state(s.export_state())
    assert s2.rx_closed and not s2.tx_closed


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:10], "too short"),
    (lambda b: b"\x09" + b[1:], "version"),
    (lambda b: b[:1] + b"\x07" + b[2:], "role"),
    (lambda b: b + b"x", "partial-frame length"),
])
def test_bad_state_is_refused(mutate, message: str) -> None:
    _, s = pair()
    with pytest.raises(ChannelStateError, match=message):
        Channel.from_state(mutate(s.export_state()))


def test_failed_channel_is_not_exported() -> None:
    _, s = pair()
    s.open(b"\x00\x01")
    with pytest.raises(ChannelStateError):
        s.export_state()
