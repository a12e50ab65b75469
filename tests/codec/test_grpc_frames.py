"""gRPC message framing: golden bytes, split feeds, limits checked before buffering, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.grpc_frames import GrpcFrameError, MessageDecoder, Status, encode_message, parse_timeout, percent_encode


def test_golden_prefix() -> None:
    # PROTOCOL-HTTP2.md: Compressed-Flag (1 byte), Message-Length (4 bytes, big-endian), Message.
    assert encode_message(b"\x0a\x02hi") == bytes.fromhex("00 00000004 0a026869")
    assert encode_message(b"") == bytes.fromhex("00 00000000")


def test_messages_split_anywhere_come_out_whole() -> None:
    stream = encode_message(b"a" * 70_000) + encode_message(b"") + encode_message(b"xyz")
    decoder = MessageDecoder(1 << 20)
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += decoder.feed(stream[i : i + 7])
    decoder.finish()
    assert out == [b"a" * 70_000, b"", b"xyz"]


def test_the_length_is_checked_before_the_body_arrives() -> None:
    decoder = MessageDecoder(1024)
    with pytest.raises(GrpcFrameError, match="1025 bytes exceeds the limit of 1024") as err:
        decoder.feed(bytes.fromhex("00 00000401"))  # only the prefix so far
    assert err.value.status is Status.RESOURCE_EXHAUSTED


def test_compressed_and_unknown_flags_are_refused() -> None:
    with pytest.raises(GrpcFrameError, match="compressed") as err:
        MessageDecoder(1024).feed(bytes.fromhex("01 00000001 00"))
    assert err.value.status is Status.UNIMPLEMENTED
    with pytest.raises(GrpcFrameError, match="flag 2"):
        MessageDecoder(1024).feed(bytes.fromhex("02 00000001 00"))


def test_a_stream_ending_inside_a_message_is_an_error() -> None:
    decoder = MessageDecoder(1024)
    assert decoder.feed(bytes.fromhex("00 00000005 6162")) == []
    with pytest.raises(GrpcFrameError, match="ended inside a gRPC message"):
        decoder.finish()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"1S", 1.0), (b"250m", 0.25), (b"3M", 180.0), (b"1H", 3600.0), (b"500u", 0.0005), (b"99999999n", 0.099999999)],
)
def test_timeouts(value: bytes, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"S", b"123456789S", b"12x", b"-1S", b"1.5S"])
def test_bad_timeouts(value: bytes) -> None:
    with pytest.raises(GrpcFrameError, match="grpc-timeout"):
        parse_timeout(value)


def test_percent_encoding_of_grpc_message() -> None:
    assert percent_encode("topic 'a' not found: 100%") == b"topic 'a' not found: 100%25"
    assert percent_encode("caf\u00e9\n") == b"caf%C3%A9%0A"


@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(min_value=1, max_value=64))
def test_any_messages_in_any_chunks_round_trip(messages: list[bytes], chunk: int) -> None:
    stream = b"".join(encode_message(m) for m in messages)
    decoder = MessageDecoder(300)
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += decoder.feed(stream[i : i + chunk])
    decoder.finish()
    assert out == messages


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=100))
def test_arbitrary_bytes_raise_only_grpc_frame_errors_and_stay_bounded(data: bytes, chunk: int) -> None:
    decoder = MessageDecoder(256)
    try:
        for i in range(0, len(data), chunk):
            for message in decoder.feed(data[i : i + chunk]):
                assert len(message) <= 256
            assert decoder.buffered <= 5 + 256 + chunk
        decoder.finish()
    except GrpcFrameError as err:
        assert isinstance(err.status, Status)
