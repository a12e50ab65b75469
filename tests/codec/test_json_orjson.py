"""orjson in the JSON codecs: output byte for byte what ``json.dumps`` wrote, input read as ``json.loads`` read it.

The reference functions below are the stdlib code the codecs used before orjson.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import jsonbody
from codec.codes import SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.frame import FrameDecoder
from codec.header_binary import decode_binary_header
from codec.header_json import decode_json_header, encode_json_header, java_text

# Any text a str can hold and UTF-8 can carry: control characters, quotes, backslashes, astral planes.
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)
tricky_text = st.text(alphabet=st.sampled_from('\x00\x01\x1f\x7f"\\/\b\f\n\r\t\u2028\u2029\ufeffé中😀 a'), max_size=20)
any_text = text | tricky_text
int32 = st.integers(-(2**31), 2**31 - 1)


def reference_header(cmd: RemotingCommand) -> bytes:
    obj: dict[str, Any] = {"code": cmd.code}
    if cmd.ext_fields:
        obj["extFields"] = cmd.ext_fields
    obj["flag"] = cmd.flag
    obj["language"] = cmd.language
    obj["opaque"] = cmd.opaque
    if cmd.remark is not None:
        obj["remark"] = cmd.remark
    obj["serializeTypeCurrentRPC"] = "JSON"
    obj["version"] = cmd.version
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def reference_java_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@st.composite
def headers(draw: st.DrawFn) -> RemotingCommand:
    return RemotingCommand(
        code=draw(int32 | st.integers(-(2**63), 2**64 - 1)),
        opaque=draw(int32),
        flag=draw(st.integers(0, 3)),
        remark=draw(st.none() | any_text),
        ext_fields=draw(st.dictionaries(any_text, any_text, max_size=8)),
        language=draw(st.sampled_from(["JAVA", "CPP", "GO", "RUST", "OTHER"]) | any_text),
        version=draw(int32),
    )


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(headers())
def test_header_encoder_writes_what_json_dumps_wrote(cmd: RemotingCommand) -> None:
    assert encode_json_header(cmd) == reference_header(cmd)


def test_header_encoder_falls_back_for_what_orjson_refuses() -> None:
    cmd = RemotingCommand(code=10, opaque=2**70)  # beyond 64 bits: orjson refuses, json wrote it
    assert encode_json_header(cmd) == reference_header(cmd)


def test_header_encoder_refuses_a_lone_surrogate_with_codec_error() -> None:
    with pytest.raises(CodecError, match=r"lone surrogate|cannot write"):
        encode_json_header(RemotingCommand(code=10, remark="\ud800"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(json_values)
def test_body_encoder_writes_what_json_dumps_wrote(value: Any) -> None:
    assert jsonbody.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_body_encoder_keeps_non_string_keys_as_json_did() -> None:
    value = {0: "127.0.0.1:10911", 1: "x"}
    assert jsonbody.dumps(value) == b'{"0":"127.0.0.1:10911","1":"x"}'


json_values_64 = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)  # orjson reads integers beyond 64 bits as floats; json bodies hold Java longs


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(json_values_64)
def test_body_decoder_reads_what_json_loads_read(value: Any) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    assert jsonbody.loads(data) == json.loads(data)


# Floats only at the top of a value: inside an object or array orjson 3.8 spells exponents its own way.
ext_values = st.floats(allow_nan=False, allow_infinity=False) | json_values_64


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(any_text, ext_values, max_size=6), int32, st.none() | any_text)
def test_header_decoder_reads_what_the_json_decoder_read(ext: dict[str, Any], opaque: int, remark: str | None) -> None:
    """C++ and ali-ons write numbers, booleans (and anything else) in extFields: the Java text is unchanged."""
    header = json.dumps({"code": 10, "opaque": opaque, "remark": remark, "extFields": ext}, ensure_ascii=False)
    cmd = decode_json_header(header.encode(), b"")
    expected = {k: reference_java_text(v) for k, v in json.loads(header)["extFields"].items() if v is not None}
    assert (cmd.opaque, cmd.remark, cmd.ext_fields, cmd.invalid) == (opaque, remark, expected, None)


def test_java_text_of_numbers_is_unchanged() -> None:
    assert [java_text(v) for v in (0, -1, 2**63, True, False, 1.0, 1.5, 1e-07, [1, "a"], {"a": None})] == [
        "0", "-1", str(2**63), "true", "false", "1", "1.5", "1e-07", '[1,"a"]', '{"a":null}'
    ]  # fmt: skip


def frame(serialize_type: int, header: bytes) -> bytes:
    return struct.pack(">iI", 4 + len(header), (serialize_type << 24) | len(header)) + header


# ---------------------------------------------------------------------------------------------------- golden


LONE_SURROGATE_PULL = (
    b'{"code":11,"extFields":{"consumerGroup":"\\ud800","topic":"TopicTest","queueId":"0"},'
    b'"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}'
)


def test_golden_json_lone_surrogate_decodes_with_invalid_set() -> None:
    (cmd,) = FrameDecoder().feed(frame(0, LONE_SURROGATE_PULL))
    assert cmd == RemotingCommand(
        code=11,
        opaque=7,
        ext_fields={"consumerGroup": "?", "topic": "TopicTest", "queueId": "0"},
        version=479,
        invalid="the header field extFields.consumerGroup is not valid Unicode text: '\\ud800'",
    )


def test_golden_json_invalid_request_is_answered_in_plain_bytes() -> None:
    (cmd,) = FrameDecoder().feed(frame(0, LONE_SURROGATE_PULL))
    assert cmd.invalid is not None
    response = cmd.response(29, cmd.invalid)
    assert encode_json_header(response) == (
        b'{"code":29,"flag":1,"language":"JAVA","opaque":7,"remark":"the header field extFields.consumerGroup is not'
        b' valid Unicode text: \'\\\\ud800\'","serializeTypeCurrentRPC":"JSON","version":479}'
    )


BINARY_BAD_UTF8 = (
    struct.pack(">hBhii", 11, 0, 401, 7, 0)
    + struct.pack(">i", 0)  # no remark
    + struct.pack(">i", 2 + 13 + 4 + 3 + 2 + 5 + 4 + 9)
    + struct.pack(">h", 13) + b"consumerGroup" + struct.pack(">i", 3) + b"\xed\xa0\x80"  # an encoded surrogate
    + struct.pack(">h", 5) + b"topic" + struct.pack(">i", 9) + b"TopicTest"
)  # fmt: skip


def test_golden_binary_bad_utf8_decodes_with_invalid_set() -> None:
    (cmd,) = FrameDecoder().feed(frame(1, BINARY_BAD_UTF8))
    assert cmd == RemotingCommand(
        code=11,
        opaque=7,
        ext_fields={"consumerGroup": "\ufffd\ufffd\ufffd", "topic": "TopicTest"},
        version=401,
        serialize_type=SerializeType.ROCKETMQ,
        invalid="the header field extFields.consumerGroup is not valid UTF-8 text: b'\\xed\\xa0\\x80'",
    )
    assert cmd.response(29, cmd.invalid).remark.isascii()  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------- nesting


def reference_depth_at_most(text: bytes, limit: int) -> bool:
    """A character loop: depth of brackets outside JSON strings (a closer with nothing open is skipped).

    A backslash takes the next character with it wherever it stands: outside a string a parser stops there.
    An unterminated string's brackets count.
    """
    depth, pos, string_start = 0, 0, None
    outside = bytearray()
    while pos < len(text):
        char = text[pos : pos + 1]
        if char == b"\\":
            pos += 2
            continue
        if char == b'"':
            if string_start is None:
                string_start = len(outside)
                outside += char
            else:
                del outside[string_start:]
                string_start = None
        else:
            outside += char
        pos += 1
    for byte in outside:
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return False
        elif byte in b"]}":
            depth = max(0, depth - 1)
    return True


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet='[]{}"\\a,', max_size=80).map(str.encode), st.sampled_from([1, 2, 3, 16]))
def test_nesting_check_agrees_with_a_character_loop(text: bytes, limit: int) -> None:
    assert jsonbody.nests_at_most(text, limit) == reference_depth_at_most(text, limit)


@pytest.mark.parametrize("limit", [16, 32])
def test_nesting_check_at_the_limit(limit: int) -> None:
    assert jsonbody.nests_at_most(b"[" * limit + b"]" * limit, limit)
    assert not jsonbody.nests_at_most(b"[" * (limit + 1) + b"]" * (limit + 1), limit)
    assert jsonbody.nests_at_most(b'["' + b"[" * 100 + b'"]', limit)  # brackets in a string do not count
    assert not jsonbody.nests_at_most(b'{"a":[' * limit + b"1" + b"]}" * limit, limit)


def test_a_million_brackets_is_refused_before_parsing() -> None:
    """orjson before 3.9.x has no nesting limit and crashes the process on input like this."""
    with pytest.raises(CodecError, match="nests deeper"):
        FrameDecoder().feed(frame(0, b"[" * 1_000_000 + b"]" * 1_000_000))
    with pytest.raises(CodecError, match="nests deeper"):
        jsonbody.loads(b'{"a":' * 1_000_000)


def test_bodies_nest_up_to_their_limit() -> None:
    depth = jsonbody.MAX_BODY_DEPTH
    assert jsonbody.loads(b"[" * depth + b"]" * depth) is not None
    with pytest.raises(CodecError, match=f"nests deeper than {depth}"):
        jsonbody.loads(b"[" * (depth + 1) + b"]" * (depth + 1))


def test_bare_integer_keys_are_quoted_outside_strings_only() -> None:
    assert jsonbody.loads(b'{0:"127.0.0.1:10911",-1:"x,2:y"}') == {"0": "127.0.0.1:10911", "-1": "x,2:y"}
    with pytest.raises(CodecError, match="not valid JSON"):
        jsonbody.loads(b'{"a":1,}')


def test_a_large_body_with_a_key_like_run_in_a_string_is_refused_not_changed() -> None:
    padding = b',"pad":"' + b"x" * jsonbody.STRING_AWARE_LIMIT + b'"'
    assert jsonbody.loads(b'{0:"a"' + padding + b"}")["0"] == "a"
    with pytest.raises(CodecError, match="not valid JSON"):
        jsonbody.loads(b'{0:"x,5:y"' + padding + b"}")


UNSTORABLE_JSON = {
    "remark": (b'{"code":0,"flag":1,"remark":"bad \\udc00 text"}', "the header field remark is not valid Unicode text:"
               " 'bad \\udc00 text'", {"remark": "bad ? text"}),
    "language": (b'{"code":10,"language":"\\ud800"}', "the header field language is not valid Unicode text: '\\ud800'",
                 {"language": "OTHER"}),
    "key": (b'{"code":10,"extFields":{"a\\ud800":"1","b":"\\ud800"}}', "a header field name in extFields is not"
            " valid Unicode text: 'a\\ud800'", {"ext_fields": {"a?": "1", "b": "?"}}),
    "nested value": (b'{"code":10,"extFields":{"x":{"y":["\\udfff"]}}}', "the header field extFields.x.y[0] is not"
                     " valid Unicode text: '\\udfff'", {"ext_fields": {"x": '{"y":["?"]}'}}),
    "odd key name": (b'{"code":10,"extFields":{"k y":"\\ud800"}}', "the header field extFields.'k y' is not valid"
                     " Unicode text: '\\ud800'", {"ext_fields": {"k y": "?"}}),
    "long value": (b'{"code":10,"extFields":{"p":"' + b"a" * 100 + b'\\ud800"}}', "the header field extFields.p is"
                   " not valid Unicode text: ...'" + "a" * 47 + "\\ud800'", {"ext_fields": {"p": "a" * 100 + "?"}}),
}  # fmt: skip


@pytest.mark.parametrize(("header", "remark", "fields"), UNSTORABLE_JSON.values(), ids=UNSTORABLE_JSON.keys())
def test_unstorable_json_text_is_named_and_replaced(header: bytes, remark: str, fields: dict[str, Any]) -> None:
    cmd = decode_json_header(header, b"")
    assert cmd.invalid == remark
    assert {name: getattr(cmd, name) for name in fields} == fields


@pytest.mark.parametrize(
    "header",
    [
        b'{"code":10,"remark":"\\ud800",' + b"[" * 20 + b"]" * 20 + b"}",  # too deep for the second reading
        b'{"code":10,"remark":"\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8: not JSON text at all
        b'{"code":10,"remark":"\\ud800",}',  # broken JSON besides
        b'{"code":10,"remark":"\\ud800","n":NaN}',
    ],
    ids=["deep", "surrogate bytes", "trailing comma", "NaN"],
)
def test_only_a_lone_surrogate_gets_a_second_reading(header: bytes) -> None:
    with pytest.raises(CodecError):
        decode_json_header(header, b"")


def binary_header(remark: bytes, entries: list[tuple[bytes, bytes]]) -> bytes:
    ext = b"".join(struct.pack(">h", len(k)) + k + struct.pack(">i", len(v)) + v for k, v in entries)
    return struct.pack(">hBhiii", 10, 0, 401, 1, 0, len(remark)) + remark + struct.pack(">i", len(ext)) + ext


UNSTORABLE_BINARY = {
    "remark": (binary_header(b"ok \xff", []), "the header field remark is not valid UTF-8 text: b'ok \\xff'",
               {"remark": "ok \ufffd"}),
    "key": (binary_header(b"", [(b"\xc3(", b"v"), (b"b", b"\xff")]), "a header field name in extFields is not valid"
            " UTF-8 text: b'\\xc3('", {"ext_fields": {"\ufffd(": "v", "b": "\ufffd"}}),
    "value": (binary_header(b"", [(b"topic", b"T\x80")]), "the header field extFields.topic is not valid UTF-8"
              " text: b'T\\x80'", {"ext_fields": {"topic": "T\ufffd"}}),
}  # fmt: skip


@pytest.mark.parametrize(("header", "remark", "fields"), UNSTORABLE_BINARY.values(), ids=UNSTORABLE_BINARY.keys())
def test_binary_text_that_is_not_utf8_is_named_and_replaced(header: bytes, remark: str, fields: dict[str, Any]) -> None:
    cmd = decode_binary_header(header, b"")
    assert cmd.invalid == remark
    assert {name: getattr(cmd, name) for name in fields} == fields
