"""The hand-specialised struct code agrees with the construct definitions in codec.spec."""

from __future__ import annotations

import ipaddress
import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import spec
from codec.batch import BatchItem, decode_batch, encode_batch, encode_batch_records
from codec.codes import SerializeType
from codec.command import RemotingCommand
from codec.frame import encode_frame
from codec.header_binary import decode_binary_header, encode_binary_header
from codec.record import RecordTemplate, StoredMessage, decode_record, encode_record
from tests.codec.strategies import commands, int32, properties, stored_messages
from tests.codec.test_golden import vector


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def assert_record_agrees(data: bytes) -> None:
    parsed = spec.StoredRecord.parse(data)
    fast, end = decode_record(data)
    assert end == parsed.total_size == len(data)
    assert (fast.topic, fast.queue_id, fast.body, fast.properties) == (
        parsed.topic,
        parsed.queue_id,
        parsed.body,
        parsed.properties,
    )
    assert (fast.flag, fast.sys_flag, fast.queue_offset, fast.phys_offset, fast.body_crc) == (
        parsed.flag,
        parsed.sys_flag,
        parsed.queue_offset,
        parsed.phys_offset,
        parsed.body_crc,
    )
    assert (fast.born_host, fast.born_port, fast.store_host, fast.store_port) == (
        _ip(parsed.born_ip),
        parsed.born_port,
        _ip(parsed.store_ip),
        parsed.store_port,
    )
    assert (fast.born_timestamp, fast.store_timestamp, fast.reconsume_times, fast.prepared_transaction_offset) == (
        parsed.born_timestamp,
        parsed.store_timestamp,
        parsed.reconsume_times,
        parsed.prepared_transaction_offset,
    )
    assert spec.StoredRecord.build(parsed) == data


def test_golden_record_agrees() -> None:
    assert_record_agrees(vector("ref-stored-record.bin"))


@given(stored_messages())
def test_generated_records_agree(msg: StoredMessage) -> None:
    assert_record_agrees(bytes(encode_record(msg)))


_ITEM = st.tuples(st.binary(max_size=300), properties(), st.integers(-(2**31), 2**31 - 1))  # body, properties, flag


@given(stored_messages(), st.lists(_ITEM))
def test_record_template_encodes_exactly_what_encode_record_does(
    msg: StoredMessage, items: list[tuple[bytes, str, int]]
) -> None:
    """The batch path's specialised encoder: same bytes as encode_record for every item, hence as the spec."""
    template = RecordTemplate(msg)
    for body, props, flag in [(msg.body, msg.properties, msg.flag), *items]:
        msg.body, msg.properties, msg.flag = body, props, flag
        record = template.encode(body, props.encode(), flag)
        assert record == encode_record(msg)
        assert_record_agrees(bytes(record))


@given(
    stored_messages(),
    st.lists(st.tuples(st.binary(max_size=300), properties(), st.integers(-(2**31), 2**31 - 1)), min_size=1),
)
def test_a_batch_encodes_into_the_records_of_its_items_back_to_back(
    msg: StoredMessage, items: list[tuple[bytes, str, int]]
) -> None:
    template = RecordTemplate(msg)
    body = encode_batch([BatchItem(b, p, f) for b, p, f in items])
    encoded = encode_batch_records(template, body)
    records = [template.encode(b, p.encode(), f) for b, p, f in items]
    assert encoded.records == b"".join(records)
    assert encoded.ends == list(itertools.accumulate(len(r) for r in records))
    assert encoded.properties == [p.encode() for _, p, _ in items]


@pytest.mark.parametrize("name", ["ref-json-get-route.bin", "ref-binary-get-route.bin", "ref-json-send-response.bin"])
def test_golden_frames_agree(name: str) -> None:
    data = vector(name)
    frame = spec.Frame.parse(data)
    assert spec.Frame.build(frame) == data
    if frame.serialize_type == SerializeType.ROCKETMQ:
        header = spec.BinaryHeader.parse(frame.header)
        cmd = decode_binary_header(frame.header, frame.body)
        assert cmd.ext_fields == {e.key: e.value for e in header.ext_fields}


@given(commands(SerializeType.ROCKETMQ))
def test_binary_headers_agree(cmd: RemotingCommand) -> None:
    data = encode_binary_header(cmd)
    parsed = spec.BinaryHeader.parse(data)
    assert (parsed.code, parsed.version, parsed.opaque, parsed.flag) == (cmd.code, cmd.version, cmd.opaque, cmd.flag)
    assert (parsed.remark or None) == cmd.remark
    assert {e.key: e.value for e in parsed.ext_fields} == cmd.ext_fields
    assert decode_binary_header(data, b"") == RemotingCommand(**{**_fields(cmd), "body": b""})


def _fields(cmd: RemotingCommand) -> dict[str, object]:
    return {name: getattr(cmd, name) for name in cmd.__slots__}  # type: ignore[attr-defined]


@given(commands())
def test_frames_agree(cmd: RemotingCommand) -> None:
    data = encode_frame(cmd)
    frame = spec.Frame.parse(data)
    assert frame.body == cmd.body
    assert frame.serialize_type == cmd.serialize_type
    assert spec.Frame.build(frame) == data


@given(st.lists(st.builds(BatchItem, st.binary(max_size=100), properties(), int32), min_size=1, max_size=4))
def test_batches_agree(items: list[BatchItem]) -> None:
    data = encode_batch(items)
    parsed = spec.BatchBody.parse(data)
    assert [(p.body, p.properties, p.flag) for p in parsed] == [(i.body, i.properties, i.flag) for i in items]
    assert decode_batch(data) == items
    assert spec.BatchBody.build(parsed) == data


def test_offset_message_id_layout_agrees() -> None:
    raw = bytes.fromhex("7F00000100002A9F0000000000001A2B")
    parsed = spec.OffsetMessageIdV4.parse(raw)
    assert (parsed.ip, parsed.port, parsed.offset) == (b"\x7f\x00\x00\x01", 10911, 0x1A2B)
    assert struct.unpack(">4siq", raw) == (parsed.ip, parsed.port, parsed.offset)
