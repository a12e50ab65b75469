"""Fuzzing every decoder: arbitrary input and structure-aware mutations of valid input decode or raise CodecError.

Nothing else may escape a decoder (no RecursionError, struct.error, IndexError, UnicodeError, OverflowError,
TypeError or KeyError), and whatever decodes holds only text that can be stored and written back.
Deterministic (``derandomize``, no example database) and sized to run in a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import headers as header_classes
from codec import jsonbody
from codec.batch import BatchItem, decode_batch, encode_batch
from codec.codes import SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.frame import FrameDecoder, encode_frame
from codec.header_binary import decode_binary_header, encode_binary_header
from codec.header_json import decode_json_header, encode_json_header
from codec.headers import decode_header, decode_send_header
from codec.heartbeat import make_subscription, parse_heartbeat
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties
from codec.record import decode_record, decode_records, encode_record, properties_of
from codec.sql92 import SqlSyntaxError, compile_sql92
from codec.tags import java_string_hash, parse_tag_expression
from tests.codec.strategies import commands, properties, stored_messages

T = TypeVar("T")

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ROOT = Path(__file__).parents[2]
CAPTURED = sorted((ROOT / "compat_tests" / "cpp" / "captured").glob("*.bin"))
CAPTURED_FRAMES = [p.read_bytes() for p in CAPTURED]
VECTORS = ROOT / "tests" / "vectors"


def decoded(fn: Callable[..., T], *args: Any) -> T | None:
    """``fn(*args)``, or None when it raises CodecError; any other exception fails the test."""
    try:
        return fn(*args)
    except CodecError as err:
        assert str(err), "a CodecError must say what is wrong"
        return None


def assert_storable(cmd: RemotingCommand) -> None:
    """A decoded command holds only UTF-8-encodable text and can be written back in both serialisations."""
    for text in [cmd.remark or "", cmd.language, cmd.invalid or "", *cmd.ext_fields, *cmd.ext_fields.values()]:
        text.encode()
    assert cmd.invalid is None or cmd.invalid.isascii()
    encode_json_header(cmd)
    if -32768 <= cmd.code <= 32767 and -32768 <= cmd.version <= 32767:
        encode_binary_header(cmd)


# ---------------------------------------------------------------------------------------------------- mutations

INTERESTING = [0, 1, -1, 2, 4, 8, 21, 127, 128, 255, 0x7FFF, 0x8000, 0xFFFF, 0xFFFFFF, 1 << 24, 2**31 - 1, -(2**31)]
ODD_BYTES = [b"\xff", b"\xed\xa0\x80", b"\x00", b"\\ud800", b"[", b"{"]


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """Bit flips, truncations, insertions, deletions, duplications, and length-sized fields set to edge values."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate", "int32", "int16", "byte"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(pos, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(ODD_BYTES))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "int32":
            data[pos : pos + 4] = struct.pack(">I", draw(st.sampled_from(INTERESTING)) & 0xFFFFFFFF)
        elif kind == "int16":
            data[pos : pos + 2] = struct.pack(">H", draw(st.sampled_from(INTERESTING)) & 0xFFFF)
        else:
            data[pos : pos + 1] = bytes([draw(st.integers(0, 255))])
    return bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, valid: st.SearchStrategy[str], pieces: list[str]) -> str:
    text = draw(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "insert", "delete", "duplicate", "char"]))
        pos = draw(st.integers(0, len(text)))
        if kind == "truncate":
            text = text[:pos]
        elif kind == "insert":
            text = text[:pos] + draw(st.sampled_from(pieces)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        elif kind == "duplicate":
            text = text[:pos] + text[pos : pos + draw(st.integers(1, 16))] + text[pos:]
        else:
            text = text[:pos] + draw(st.characters()) + text[pos + 1 :]
    return text


def deep(depth: st.SearchStrategy[int], opening: str, middle: str, closing: str) -> st.SearchStrategy[str]:
    return depth.map(lambda n: opening * n + middle + closing * n)


# Any JSON-able value, lone surrogates included in strings (json.dumps writes them as \ud800 escapes).
surrogate_text = st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=4)
json_text = st.text(max_size=12) | surrogate_text
json_any = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | json_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3),
    max_leaves=10,
)


def frame(serialize_type: int, header: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">iI", 4 + len(header) + len(body), (serialize_type << 24) | len(header)) + header + body


# ---------------------------------------------------------------------------------------------------- frames

valid_frames = commands().map(encode_frame) | st.sampled_from(CAPTURED_FRAMES)


def decode_stream(data: bytes, chunk: int) -> list[RemotingCommand]:
    """Every command the decoder yields before it gives up, feeding ``chunk`` bytes at a time."""
    decoder = FrameDecoder(max_frame_size=1 << 16)
    out: list[RemotingCommand] = []
    for i in range(0, len(data), chunk):
        try:
            out += decoder.feed(data[i : i + chunk])
        except CodecError:
            break
    return out


@FUZZ
@given(st.binary(max_size=400) | mutated(valid_frames) | mutated(st.lists(valid_frames, max_size=3).map(b"".join)))
def test_frame_decoder(data: bytes) -> None:
    whole = decode_stream(data, len(data) or 1)
    for cmd in whole:
        assert_storable(cmd)
    assert decode_stream(data, 7) == whole  # where the reads split the stream changes nothing


# ---------------------------------------------------------------------------------------------------- JSON header

valid_json_headers = commands(SerializeType.JSON).map(encode_json_header) | st.sampled_from(
    [p[8:] for p in CAPTURED_FRAMES]
)
json_header_shapes = st.fixed_dictionaries(
    {"code": st.integers(-(2**40), 2**40) | json_any},
    optional={
        "opaque": st.integers(-(2**33), 2**33) | json_any,
        "flag": json_any,
        "version": json_any,
        "language": st.sampled_from(["JAVA", "CPP"]) | json_any,
        "remark": json_any,
        "extFields": st.dictionaries(json_text, json_any, max_size=4) | json_any,
    },
)
deep_json = (
    deep(st.integers(15, 3000), "[", "", "]")
    | deep(st.integers(15, 3000), '{"a":', '"\\ud800"', "}")
    | deep(st.integers(1, 3000), "[", "", "")
    | deep(st.integers(250, 1100), '{"code":10,"extFields":{"a":' + "[", "1", "]").map(lambda t: t + "}}")
    | deep(st.integers(900, 1100), "[", "", "]").map(lambda t: '{"code":' + t + "}")
).map(str.encode)


@FUZZ
@given(
    st.binary(max_size=300)
    | mutated(valid_json_headers)
    | json_header_shapes.map(lambda o: json.dumps(o).encode())
    | deep_json
)
def test_json_header_decoder(header: bytes) -> None:
    cmd = decoded(decode_json_header, header, b"")
    if cmd is not None:
        assert_storable(cmd)


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings_of(item)]]
    return []


@FUZZ
@given(json_header_shapes)
def test_json_header_with_lone_surrogates_is_answerable(obj: dict[str, Any]) -> None:
    """A header that is JSON except for lone surrogates decodes (or fails for another reason) with ``invalid``."""
    cmd = decoded(decode_json_header, json.dumps(obj).encode(), b"")
    if cmd is None:
        return
    assert_storable(cmd)
    read = json.loads(json.dumps(obj))  # as the standard library reads it: escaped surrogate pairs joined
    bad = any(any("\ud800" <= c <= "\udfff" for c in s) for s in strings_of(read))
    assert (cmd.invalid is not None) == bad
    if bad:
        assert cmd.invalid is not None and "is not valid Unicode text" in cmd.invalid


# ---------------------------------------------------------------------------------------------------- binary header


@st.composite
def binary_headers(draw: st.DrawFn) -> bytes:
    """A binary header whose strings are arbitrary bytes (UTF-8 or not) and whose lengths are right."""
    remark = draw(st.binary(max_size=20) | st.text(max_size=10).map(str.encode))
    entries = b""
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.binary(max_size=10) | st.text(max_size=10).map(str.encode))
        value = draw(st.binary(max_size=20) | st.text(max_size=10).map(str.encode))
        entries += struct.pack(">h", len(key)) + key + struct.pack(">i", len(value)) + value
    fixed = struct.pack(">hBhii", draw(st.integers(-32768, 32767)), draw(st.integers(0, 255)), 401, 1, 0)
    return fixed + struct.pack(">i", len(remark)) + remark + struct.pack(">i", len(entries)) + entries


def utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(
    st.binary(max_size=200)
    | binary_headers()
    | mutated(binary_headers())
    | mutated(commands(SerializeType.ROCKETMQ).map(encode_binary_header))
)
def test_binary_header_decoder(header: bytes) -> None:
    cmd = decoded(decode_binary_header, header, b"")
    if cmd is not None:
        assert_storable(cmd)


@FUZZ
@given(binary_headers())
def test_binary_header_flags_what_is_not_utf8(header: bytes) -> None:
    cmd = decode_binary_header(header, b"")  # lengths are right: it must decode
    assert_storable(cmd)
    (remark_len,) = struct.unpack_from(">i", header, 13)
    strings = [header[17 : 17 + remark_len]]
    pos = 17 + remark_len + 4
    while pos < len(header):
        (key_len,) = struct.unpack_from(">h", header, pos)
        (value_len,) = struct.unpack_from(">i", header, pos + 2 + key_len)
        strings += [header[pos + 2 : pos + 2 + key_len], header[pos + 6 + key_len : pos + 6 + key_len + value_len]]
        pos += 6 + key_len + value_len
    assert (cmd.invalid is not None) == (not all(map(utf8, strings)))


# ---------------------------------------------------------------------------------------------------- ext headers

HEADER_CLASSES = [
    cls
    for cls in vars(header_classes).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == header_classes.__name__
]
ext_text = (
    st.text(max_size=30)
    | st.integers(-(2**70), 2**70).map(str)
    | st.sampled_from(["true", "TRUE", " 1", "1_0", "٣", "1e3", "0x10", "+5", "-0", "9" * 5000, ""])
)


@FUZZ
@given(st.sampled_from(HEADER_CLASSES), st.data())
def test_ext_header_decoders(cls: type, data: st.DataObject) -> None:
    keys = [f.metadata["wire"] for f in dataclasses.fields(cls)]
    ext = data.draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=3), ext_text, max_size=len(keys) + 2))
    decoded(decode_header, cls, ext)


@FUZZ
@given(st.dictionaries(st.sampled_from("abcdefghijklmn") | st.text(max_size=12), ext_text, max_size=16), st.booleans())
def test_send_header_decoder(ext: dict[str, str], v2: bool) -> None:
    decoded(decode_send_header, ext, v2)


# ---------------------------------------------------------------------------------------------------- records

valid_records = stored_messages().map(lambda m: bytes(encode_record(m))) | st.just(
    (VECTORS / "ref-stored-record.bin").read_bytes()
)


@FUZZ
@given(st.binary(max_size=300) | mutated(valid_records) | mutated(st.lists(valid_records, max_size=3).map(b"".join)))
def test_record_decoders(data: bytes) -> None:
    msg = decoded(decode_record, data)
    if msg is not None:
        msg[0].properties.encode()
        msg[0].topic.encode()
    decoded(decode_records, data)
    props = decoded(properties_of, data)
    if props is not None:
        decode_properties(props)


# ---------------------------------------------------------------------------------------------------- batches

valid_batches = st.lists(st.builds(BatchItem, st.binary(max_size=40), properties()), min_size=1, max_size=4).map(
    encode_batch
) | st.just((VECTORS / "ref-batch-body.bin").read_bytes())


@FUZZ
@given(st.binary(max_size=300) | mutated(valid_batches))
def test_batch_decoder(data: bytes) -> None:
    items = decoded(decode_batch, data)
    for item in items or []:
        decode_properties(item.properties)


@FUZZ
@given(st.text(max_size=60) | properties().flatmap(lambda p: mutated_text(st.just(p), ["\x01", "\x02", "=", ""])))
def test_properties_decoder_never_raises(text: str) -> None:
    decode_properties(text)


# ---------------------------------------------------------------------------------------------------- JSON bodies

HEARTBEAT = next(p for p in CAPTURED if "heartbeat-consumer" in p.name).read_bytes()
HEARTBEAT_BODY = FrameDecoder().feed(HEARTBEAT)[0].body
subscription_shapes = st.fixed_dictionaries(
    {},
    optional={
        "topic": st.sampled_from(["T", "%RETRY%g"]) | json_any,
        "subString": st.sampled_from(["*", "a || b", "a > 1", "(((", "NOT " * 70 + "TRUE"]) | json_any,
        "expressionType": st.sampled_from(["TAG", "SQL92", "sql92", "XPATH"]) | json_any,
        "subVersion": st.integers(-(2**70), 2**70) | json_any,
    },
)
heartbeat_shapes = st.fixed_dictionaries(
    {},
    optional={
        "clientID": st.just("127.0.0.1@1") | json_any,
        "producerDataSet": st.lists(st.fixed_dictionaries({"groupName": json_any}), max_size=2) | json_any,
        "consumerDataSet": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "groupName": st.just("g") | json_any,
                    "consumeType": st.sampled_from(["CONSUME_PASSIVELY", "1", "²", "9" * 30]) | json_any,
                    "messageModel": json_any,
                    "consumeFromWhere": st.integers(-1, 6) | json_any,
                    "subscriptionDataSet": st.lists(subscription_shapes, max_size=3) | json_any,
                },
            ),
            max_size=2,
        )
        | json_any,
    },
)


@FUZZ
@given(
    st.binary(max_size=200)
    | mutated(st.just(HEARTBEAT_BODY))
    | heartbeat_shapes.map(lambda o: json.dumps(o).encode())
    | deep_json
)
def test_heartbeat_decoder(body: bytes) -> None:
    hb = decoded(parse_heartbeat, body)
    if hb is not None:
        for consumer in hb.consumers:
            assert isinstance(consumer.group, str)
            for topic, sub in consumer.subscriptions.items():
                assert isinstance(topic, str) and isinstance(sub.expression, str)
                sub.to_json()


@FUZZ
@given(
    st.binary(max_size=200)
    | mutated(st.just(b'{0:"127.0.0.1:10911",1:"x,2:y",\n-3 :[{"a":1}]}'))
    | json_any.map(lambda v: json.dumps(v).encode())
    | deep_json
)
def test_json_body_decoder(body: bytes) -> None:
    decoded(jsonbody.loads, body)


@FUZZ
@given(json_any, json_any)
def test_subscription_builder(expression: Any, expression_type: Any) -> None:
    sub = decoded(make_subscription, "T", expression, expression_type, 0)
    if sub is not None:
        sub.to_json()


# ---------------------------------------------------------------------------------------------------- text formats

SQL = ["a = 1", "TAGS IN ('x', 'y') AND b > 2.5", "NOT (a IS NULL) OR c BETWEEN 1 AND 3", "a CONTAINS 'x''y'"]
SQL_PIECES = ["(", ")", "NOT ", "'", "--", "\n", "/*", "*/", " AND ", "-", "1e999", "9" * 30, "\ud800", "\x00"]


@FUZZ
@given(
    st.text(max_size=80)
    | mutated_text(st.sampled_from(SQL), SQL_PIECES)
    | deep(st.integers(60, 10_000), "(", "a = 1", ")")
    | deep(st.integers(60, 10_000), "NOT ", "TRUE", "")
    | st.integers(60, 10_000).map(lambda n: "a > " + "-" * n + "1")
)
def test_sql92_compiler(expression: str) -> None:
    compiled = decoded(compile_sql92, expression)
    if compiled is not None:
        assert compiled.matches({"a": "1", "TAGS": "x", "b": "3", "c": "\ud800"}) in (True, False)


@FUZZ
@given(st.text(max_size=70) | st.text(alphabet="0123456789abcdefABCDEF ", min_size=32, max_size=32))
def test_offset_message_id_decoder(msg_id: str) -> None:
    decoded(decode_offset_msg_id, msg_id)


@FUZZ
@given(st.none() | st.text(max_size=40) | mutated_text(st.just("a || b"), ["||", " ", "*", "\ud800"]))
def test_tag_expressions_never_raise(expression: str | None) -> None:
    tag_filter = parse_tag_expression(expression)
    tag_filter.codes()
    java_string_hash(expression or "")


# ---------------------------------------------------------------------------------------------------- regressions


def test_thousand_brackets_json_header_is_a_codec_error() -> None:
    """Issue 10: ``json.loads`` raised RecursionError here and took the process down."""
    with pytest.raises(CodecError, match="nests deeper than 16 levels"):
        FrameDecoder().feed(frame(0, b"[" * 1000))
    with pytest.raises(CodecError):
        FrameDecoder().feed(frame(0, b"[" * 1000 + b"]" * 1000))


def test_lone_surrogate_consumer_group_is_flagged_not_stored() -> None:
    """Issue 10: a lone-surrogate consumerGroup was accepted and later broke every SQLite write."""
    header = b'{"code":14,"extFields":{"consumerGroup":"\\ud800","topic":"T","queueId":"0"},"opaque":3}'
    (cmd,) = FrameDecoder().feed(frame(0, header))
    assert cmd.invalid == "the header field extFields.consumerGroup is not valid Unicode text: '\\ud800'"
    assert cmd.ext_fields["consumerGroup"] == "?"
    assert (cmd.code, cmd.opaque, cmd.ext_fields["topic"]) == (14, 3, "T")


@pytest.mark.parametrize(
    "expression",
    ["(" * 10_000 + "a = 1" + ")" * 10_000, "NOT " * 10_000 + "TRUE", "a = " + "(" * 10_000],
    ids=["parentheses", "NOT", "unclosed"],
)
def test_deeply_nested_sql92_is_a_codec_error(expression: str) -> None:
    with pytest.raises(SqlSyntaxError, match="nested too deeply") as caught:
        compile_sql92(expression)
    assert isinstance(caught.value, CodecError)
    assert caught.value.response_code == 23  # SUBSCRIPTION_PARSE_FAILED
