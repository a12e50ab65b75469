"""Malformed input: every decoder raises CodecError (never struct.error, IndexError or a silent result)."""

from __future__ import annotations

import contextlib
import json
import re
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.batch import decode_batch
from codec.codes import ResponseCode
from codec.errors import CodecError, FrameTooLarge, HeaderFieldError, MessageFormatError
from codec.frame import FrameDecoder
from codec.header_binary import decode_binary_header
from codec.headers import PullMessageRequestHeader, decode_header, decode_send_header
from codec.heartbeat import (
    MAX_HEARTBEAT_GROUPS,
    MAX_HEARTBEAT_SQL92_CHARS,
    MAX_HEARTBEAT_SUBSCRIPTIONS,
    make_subscription,
    parse_heartbeat,
)
from codec.message_id import decode_offset_msg_id
from codec.record import decode_record, properties_of
from codec.sql92 import compile_sql92
from codec.tags import java_string_hash
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


@pytest.mark.parametrize(
    "data",
    [
        RECORD[:84] + struct.pack(">i", -10) + RECORD[88:],
        RECORD[:103] + struct.pack(">h", -5) + RECORD[105:],
        RECORD[:103] + struct.pack(">h", 500) + RECORD[105:],
    ],
    ids=["negative body length", "negative properties length", "properties overrun"],
)
def test_properties_of_refuses_bad_lengths(data: bytes) -> None:
    with pytest.raises(CodecError):
        properties_of(data)


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


def heartbeat(subscriptions: list[dict[str, Any]] | None = None, **consumer: Any) -> bytes:
    group = {"groupName": "g", "subscriptionDataSet": subscriptions or [], **consumer}
    return json.dumps({"clientID": "c", "consumerDataSet": [group]}).encode()


SQL = {"topic": "T", "expressionType": "SQL92", "subString": "a > 1 AND " + "b = 'xxxxxxxxxx' AND " * 100 + "c = 1"}
HEARTBEATS = {
    "groupName a number": (heartbeat(groupName=5), "field groupName is not a string but int"),
    "topic an object": (heartbeat([{"topic": {"a": 1}}]), "field topic of group 'g' is not a string"),
    "subString a number": (heartbeat([{"topic": "T", "subString": 1}]), "subString of group 'g' on topic 'T'"),
    "expressionType a list": (heartbeat([{"topic": "T", "expressionType": []}]), "expressionType of group"),
    "consumerDataSet an object": (b'{"clientID":"c","consumerDataSet":{"a":1}}', "consumerDataSet is not an array"),
    "too many groups": (
        json.dumps({"clientID": "c", "producerDataSet": [{"groupName": "p"}] * (MAX_HEARTBEAT_GROUPS + 1)}).encode(),
        f"more than {MAX_HEARTBEAT_GROUPS}",
    ),
    "too many subscriptions": (
        heartbeat([{"topic": f"T{i}"} for i in range(MAX_HEARTBEAT_SUBSCRIPTIONS + 1)]),
        f"more than {MAX_HEARTBEAT_SUBSCRIPTIONS} subscriptions",
    ),
    "too much SQL92": (
        heartbeat([{**SQL, "topic": f"T{i}"} for i in range(MAX_HEARTBEAT_SQL92_CHARS // len(SQL["subString"]) + 1)]),
        f"more than {MAX_HEARTBEAT_SQL92_CHARS} characters of SQL92",
    ),
}


@pytest.mark.parametrize(("body", "remark"), HEARTBEATS.values(), ids=HEARTBEATS.keys())
def test_heartbeat_types_and_limits_are_checked_before_any_work(body: bytes, remark: str) -> None:
    with pytest.raises(CodecError, match=re.escape(remark)):
        parse_heartbeat(body)


def test_heartbeat_numbers_in_text_stay_lenient() -> None:
    body = heartbeat([{"topic": "T", "subVersion": "9" * 30}], consumeType="²", consumeFromWhere="9" * 5000)
    (consumer,) = parse_heartbeat(body).consumers
    assert (consumer.consume_type, consumer.consume_from_where) == ("CONSUME_PASSIVELY", "CONSUME_FROM_LAST_OFFSET")
    assert consumer.subscriptions["T"].sub_version == 0


def test_subscription_expression_must_be_text() -> None:
    with pytest.raises(CodecError, match="must be text, not int"):
        make_subscription("T", 5, "TAG", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg_id", ["", "XYZ", "7F00000100002A9F000000000000001", "Z" * 32, " " * 32, "7F000001 00002A9F000000000000001"]
)
def test_bad_offset_message_ids(msg_id: str) -> None:
    with pytest.raises(CodecError):
        decode_offset_msg_id(msg_id)


def test_sql92_errors_are_codec_errors_answered_subscription_parse_failed() -> None:
    with pytest.raises(CodecError, match="nested too deeply") as caught:
        compile_sql92("(" * 10_000 + "a = 1" + ")" * 10_000)
    assert caught.value.response_code == ResponseCode.SUBSCRIPTION_PARSE_FAILED
    assert isinstance(caught.value, ValueError)  # as SqlSyntaxError always was
    with pytest.raises(CodecError, match="not text"):
        compile_sql92(None)  # type: ignore[arg-type]


def test_java_string_hash_counts_a_lone_surrogate_as_one_utf16_unit() -> None:
    assert java_string_hash("\ud800") == 0xD800
    assert java_string_hash("a\udc00") == 31 * ord("a") + 0xDC00
