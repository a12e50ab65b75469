"""Malformed input: every decoder raises CodecError (never struct.error, IndexError or a silent result)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.batch import decode_batch
from codec.errors import CodecError, FrameTooLarge, HeaderFieldError, MessageFormatError
from codec.frame import FrameDecoder
from codec.header_binary import decode_binary_header
from codec.headers import PullMessageRequestHeader, decode_header, decode_send_header
from codec.heartbeat import parse_heartbeat
from codec.message_id import decode_offset_msg_id
from codec.record import decode_record
from tests.codec.test_golden import vector


def frame(serialize_type: int, header: bytes, body: bytes = b"", length: int | None = None) -> bytes:
    total = 4 + len(header) + len(body) if length is None else length
    return struct.pack(">iI", total, (serialize_type << 24) | len(header)) + header + body


FRAMES = {
    "length below the header word": struct.pack(">iI", 3, 0),
    "negative length": struct.pack(">iI", -5, 0),
    "header longer than the frame": struct.pack(">iI", 10, 50) + b"x" * 6,
    "broken JSON": frame(0, b'{"code":10,'),
    "JSON array header": frame(0, b"[1,2]"),
    "JSON without code": frame(0, b'{"opaque":1}'),
    "non-numeric code": frame(0, b'{"code":"ten"}'),
    "extFields not an object": frame(0, b'{"code":10,"extFields":[1]}'),
    "invalid UTF-8 JSON": frame(0, b'{"code":10,"remark":"\xff"}'),
    "unknown serialize type": frame(7, b"{}"),
    "binary header truncated": frame(1, b"\x00\x69\x00"),
    "binary remark length too long": frame(1, struct.pack(">hBhiii", 105, 0, 401, 1, 0, 99)),
    "binary ext length too long": frame(1, struct.pack(">hBhiiii", 105, 0, 401, 1, 0, 0, 99)),
    "binary key length too long": frame(1, struct.pack(">hBhiiiih", 105, 0, 401, 1, 0, 0, 2, 40)),
}


@pytest.mark.parametrize("data", FRAMES.values(), ids=FRAMES.keys())
def test_unreadable_frames_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        FrameDecoder().feed(data)


def test_oversized_frame_is_refused_before_its_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed(struct.pack(">iI", 2000, 10))  # only the 8-byte prefix was fed


def test_frame_at_the_limit_is_accepted() -> None:
    data = frame(0, b'{"code":10}', b"x" * 100)
    assert len(FrameDecoder(max_frame_size=len(data)).feed(data)) == 1


@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_but_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        FrameDecoder(max_frame_size=4096).feed(data)


@given(st.binary(max_size=200))
def test_binary_header_never_raises_anything_but_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_binary_header(data, b"")


RECORD = vector("ref-stored-record.bin")
RECORDS = {
    "truncated": RECORD[:100],
    "bad magic": RECORD[:4] + b"\x00\x00\x00\x00" + RECORD[8:],
    "total size too big": struct.pack(">i", 500) + RECORD[4:],
    "body length overruns": RECORD[:84] + struct.pack(">i", 10_000) + RECORD[88:],
    "properties length wrong": RECORD[:103] + struct.pack(">h", 5) + RECORD[105:],
}


@pytest.mark.parametrize("data", RECORDS.values(), ids=RECORDS.keys())
def test_bad_records_raise_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_record(data)


@given(st.binary(max_size=300))
def test_record_decoder_never_raises_anything_but_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_record(data)


BATCHES = {
    "empty": b"",
    "truncated head": b"\x00\x00\x00\x20\x00",
    "size below overhead": struct.pack(">iiiii", 10, 0, 0, 0, 0),
    "body overruns item": struct.pack(">iiiii", 24, 0, 0, 0, 100) + b"\x00\x00",
    "properties length wrong": struct.pack(">iiiii", 25, 0, 0, 0, 1) + b"x" + struct.pack(">h", 9),
}


@pytest.mark.parametrize("data", BATCHES.values(), ids=BATCHES.keys())
def test_bad_batches_raise_message_format_error(data: bytes) -> None:
    with pytest.raises(MessageFormatError):
        decode_batch(data)


@given(st.binary(max_size=200))
def test_batch_decoder_never_raises_anything_but_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_batch(data)


def test_missing_required_header_field_is_named() -> None:
    with pytest.raises(HeaderFieldError, match="<consumerGroup>"):
        decode_header(PullMessageRequestHeader, {})


def test_non_numeric_header_field_is_named() -> None:
    ext = {"a": "g", "b": "T", "c": "TBW102", "d": "four", "e": "0", "f": "0", "g": "0", "h": "0"}
    with pytest.raises(HeaderFieldError, match="defaultTopicQueueNums"):
        decode_send_header(ext, v2=True)


def test_int32_header_overflow_is_refused() -> None:
    ext = {"a": "g", "b": "T", "c": "TBW102", "d": "4", "e": str(2**31), "f": "0", "g": "0", "h": "0"}
    with pytest.raises(HeaderFieldError, match="queueId"):
        decode_send_header(ext, v2=True)


@pytest.mark.parametrize("body", [b"[]", b'{"producerDataSet":[]}', b"not json", b'{"clientID":""}'])
def test_bad_heartbeats_raise_codec_error(body: bytes) -> None:
    with pytest.raises(CodecError):
        parse_heartbeat(body)


@pytest.mark.parametrize("msg_id", ["", "XYZ", "7F00000100002A9F000000000000001", "Z" * 32])
def test_bad_offset_message_ids(msg_id: str) -> None:
    with pytest.raises(CodecError):
        decode_offset_msg_id(msg_id)
