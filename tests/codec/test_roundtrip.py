"""Hypothesis round trips for every structure the codec writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codec.batch import BatchItem, decode_batch, encode_batch
from codec.command import RemotingCommand
from codec.frame import FrameDecoder, encode_frame
from codec.header_json import java_text
from codec.message_id import decode_offset_msg_id, encode_offset_msg_id
from codec.properties import decode_properties, encode_properties
from codec.record import (
    StoredMessage,
    body_crc,
    decode_record,
    decode_records,
    encode_record,
    properties_of,
    set_offsets,
)
from tests.codec.strategies import any_ip, commands, int32, int64, port, prop_text, properties, stored_messages


@given(commands())
def test_command_round_trip(cmd: RemotingCommand) -> None:
    (back,) = FrameDecoder().feed(encode_frame(cmd))
    assert back == cmd


@given(st.lists(commands(), min_size=1, max_size=5), st.integers(1, 50))
def test_decoder_reassembles_frames_split_anywhere(cmds: list[RemotingCommand], chunk: int) -> None:
    data = b"".join(encode_frame(c) for c in cmds)
    decoder = FrameDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i : i + chunk])
    assert out == cmds
    assert decoder.buffered == 0


@given(stored_messages())
def test_record_round_trip(msg: StoredMessage) -> None:
    data = encode_record(msg)
    back, end = decode_record(data)
    assert end == len(data)
    msg.body_crc = body_crc(msg.body)
    back.sys_flag &= ~0x30  # host-width bits are derived from the addresses
    msg.sys_flag &= ~0x30
    assert back == msg


@given(st.lists(stored_messages(), max_size=4))
def test_records_concatenate(msgs: list[StoredMessage]) -> None:
    data = b"".join(encode_record(m) for m in msgs)
    assert [m.body for m in decode_records(data)] == [m.body for m in msgs]


@given(stored_messages(), int64, int64)
def test_set_offsets_patches_only_the_offsets(msg: StoredMessage, queue_offset: int, phys: int) -> None:
    data = encode_record(msg)
    set_offsets(data, queue_offset, phys)
    back, _ = decode_record(data)
    assert (back.queue_offset, back.phys_offset) == (queue_offset, phys)
    assert back.body == msg.body and back.properties == msg.properties


@given(st.lists(st.builds(BatchItem, st.binary(max_size=100), properties(), int32), min_size=1, max_size=5))
def test_batch_round_trip(items: list[BatchItem]) -> None:
    assert decode_batch(encode_batch(items)) == items


@given(st.dictionaries(prop_text, prop_text, max_size=8))
def test_properties_round_trip(props: dict[str, str]) -> None:
    assert decode_properties(encode_properties(props)) == props


@given(any_ip, port, int64)
def test_offset_msg_id_round_trip(host: str, p: int, offset: int) -> None:
    assert decode_offset_msg_id(encode_offset_msg_id(host, p, offset)) == (host, p, offset)


@given(st.integers(-(2**63), 2**63) | st.booleans())
def test_ext_field_numbers_render_as_java_text(value: int | bool) -> None:
    text = java_text(value)
    if isinstance(value, bool):
        assert text == ("true" if value else "false")
    else:
        assert int(text) == value and "." not in text


@given(stored_messages())
def test_properties_of_reads_just_the_properties(msg: StoredMessage) -> None:
    assert properties_of(encode_record(msg)) == msg.properties
