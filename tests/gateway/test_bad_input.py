"""Unknown requests and unreadable frames (framing.md sections 1 and 3): an error answer where Java answers,
otherwise the offending connection is closed, other clients are unaffected and nothing is half-stored."""

from __future__ import annotations

import struct

import anyio
import pytest

from codec.codes import RequestCode, SerializeType
from codec.command import RemotingCommand, request
from codec.frame import encode_frame
from codec.header_json import encode_json_header

CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError)


async def assert_closed_by_server(client) -> None:
    with pytest.raises(CLOSED):
        # Whatever arrives first, the stream must end: an unreadable frame is never answered.
        while True:
            frame = await client.receive(timeout=2)
            raise AssertionError(f"the broker answered an unreadable frame: {frame}")


def send_header(wire, topic: str, opaque: int) -> bytes:
    """The JSON header of a SEND_MESSAGE_V2 with a fixed opaque, for frames assembled by hand."""
    cmd = RemotingCommand(code=RequestCode.SEND_MESSAGE_V2, opaque=opaque, ext_fields=wire.send_fields(topic))
    return encode_json_header(cmd)


async def test_unknown_request_code(bc):
    response = await bc.invoke(9999, {"x": "1"})
    assert (response.code, response.remark, response.body) == (3, " request type 9999 not supported", b"")
    assert response.is_response
    # The connection stays usable.
    await bc.send_ok("StillFine")
    assert await bc.max_offset("StillFine") == 1


async def test_oneway_unknown_request_gets_no_response(bc):
    await bc.client.oneway(request(9999))
    response = await bc.invoke(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"})
    assert response.code == 0
    with anyio.move_on_after(0.15):
        frame = await bc.client.receive(timeout=5)
        raise AssertionError(f"a oneway request was answered: {frame}")


def broken_frames(wire) -> dict[str, bytes]:
    header = send_header(wire, "Victim", opaque=1)
    body = b"payload"
    return {
        "broken-json": wire.raw_frame(header[:-7], body),
        "json-not-object": wire.raw_frame(b"[1,2,3]", body),
        "json-without-code": wire.raw_frame(b'{"opaque":1,"flag":0}', body),
        "negative-length": struct.pack(">iI", -5, len(header)) + header + body,
        "length-below-word": struct.pack(">iI", 3, 0),
        "header-beyond-frame": struct.pack(">iI", 4 + len(header) + len(body), len(header) + len(body) + 1)
        + header
        + body,
        "unknown-serialize-type": wire.raw_frame(header, body, serialize_type=2),
        "truncated-binary-header": wire.raw_frame(b"\x00\x0a\x00", body, serialize_type=SerializeType.ROCKETMQ),
    }


@pytest.mark.parametrize(
    "case",
    ["broken-json", "json-not-object", "json-without-code", "negative-length", "length-below-word",
     "header-beyond-frame", "unknown-serialize-type", "truncated-binary-header"],
)  # fmt: skip
async def test_unreadable_frame_closes_only_that_connection(bc, cluster, wire, case):
    await bc.send_ok("Victim", b"before")
    bad = await cluster.connect(bc.broker)
    await bad.stream.send(broken_frames(wire)[case])
    await assert_closed_by_server(bad)

    assert await bc.max_offset("Victim") == 1  # nothing from the bad frame was stored
    await bc.send_ok("Victim", b"after")
    assert [m.body for m in await bc.pull_records("Victim")] == [b"before", b"after"]


async def test_frame_size_limit_applies_to_the_whole_frame(cluster, namesrv, open_broker_client, wire):
    limit = 4096
    broker = await cluster.start_broker(max_frame_size=limit)
    bc = await open_broker_client(broker)
    header = send_header(wire, "Limited", opaque=501)
    at_limit = wire.raw_frame(header, b"x" * (limit - 8 - len(header)))
    assert len(at_limit) == limit
    await bc.client.stream.send(at_limit)
    response = await bc.client.receive()
    assert (response.opaque, response.code) == (501, 0)

    other = await open_broker_client(broker)
    over = wire.raw_frame(send_header(wire, "Limited", opaque=502), b"x" * (limit - 8 - len(header) + 1))
    await other.client.stream.send(over)
    await assert_closed_by_server(other.client)

    assert await bc.max_offset("Limited") == 1
    await bc.send_ok("Limited", b"small")
    assert await bc.max_offset("Limited") == 2


async def test_a_frame_announcing_too_much_is_refused_before_its_body_arrives(cluster, namesrv):
    broker = await cluster.start_broker(max_frame_size=4096)
    bad = await cluster.connect(broker)
    await bad.stream.send(struct.pack(">iI", 1_000_000, 10))  # only the prefix of a 1 MB frame
    await assert_closed_by_server(bad)


async def test_fragmented_frames_are_reassembled(bc, wire):
    frame = wire.raw_frame(send_header(wire, "Frag", opaque=700), b"split body")
    for i in range(len(frame)):
        await bc.client.stream.send(frame[i : i + 1])
    response = await bc.client.receive()
    assert (response.opaque, response.code) == (700, 0)
    assert [m.body for m in await bc.pull_records("Frag")] == [b"split body"]


async def test_a_send_cut_off_by_a_closed_connection_stores_nothing(bc, cluster, wire):
    frame = wire.raw_frame(send_header(wire, "Cut", opaque=1), b"x" * 1000)
    cut = await cluster.connect(bc.broker)
    await cut.stream.send(frame[:-10])
    await cut.aclose()
    await anyio.sleep(0.05)
    assert await bc.max_offset("Cut") == 0
    await bc.send_ok("Cut", b"whole")
    assert await bc.max_offset("Cut") == 1


async def test_rocketmq_binary_requests_are_answered_in_binary(bc):
    def binary(code: int, ext: dict[str, str], body: bytes = b"") -> RemotingCommand:
        cmd = request(code, ext, body)
        cmd.serialize_type = SerializeType.ROCKETMQ
        cmd.language = "GO"
        cmd.version = 317
        return cmd

    wire_send = {"a": "pg", "b": "BinTopic", "c": "TBW102", "d": "4", "e": "2", "f": "0", "g": "1700000000000",
                 "h": "0", "i": "TAGS\x01bin\x02"}  # fmt: skip
    sent = await bc.client.invoke(binary(RequestCode.SEND_MESSAGE_V2, wire_send, b"binary body"))
    assert sent.serialize_type == SerializeType.ROCKETMQ
    assert sent.code == 0
    assert (sent.ext_fields["queueId"], sent.ext_fields["queueOffset"]) == ("2", "0")
    assert sent.ext_fields["MSG_REGION"] == "DefaultRegion"

    offset = await bc.client.invoke(binary(RequestCode.GET_MAX_OFFSET, {"topic": "BinTopic", "queueId": "2"}))
    assert (offset.serialize_type, offset.code, offset.ext_fields) == (SerializeType.ROCKETMQ, 0, {"offset": "1"})

    unknown = await bc.client.invoke(binary(9999, {}))
    assert (unknown.serialize_type, unknown.code, unknown.remark) == (
        SerializeType.ROCKETMQ, 3, " request type 9999 not supported")  # fmt: skip

    # A JSON request on the same connection is still answered in JSON.
    json_answer = await bc.invoke(RequestCode.GET_MAX_OFFSET, {"topic": "BinTopic", "queueId": "2"})
    assert json_answer.serialize_type == SerializeType.JSON


async def test_binary_frame_bytes(bc):
    """The response frame's header-length word carries serialize type 1 in its high byte."""
    cmd = request(RequestCode.GET_MIN_OFFSET, {"topic": "T", "queueId": "0"})
    cmd.serialize_type = SerializeType.ROCKETMQ
    cmd.opaque = 31
    await bc.client.stream.send(encode_frame(cmd))
    raw = b""
    with anyio.fail_after(2):
        while len(raw) < 8 or len(raw) < 4 + struct.unpack_from(">i", raw)[0]:
            raw += await bc.client.stream.receive()
    length, word = struct.unpack_from(">iI", raw)
    assert len(raw) == 4 + length
    assert word >> 24 == SerializeType.ROCKETMQ
    code, _lang, _version, opaque, flag = struct.unpack_from(">hBhii", raw, 8)
    assert (code, opaque, flag) == (0, 31, 1)


async def test_requests_before_an_unreadable_frame_in_the_same_read_are_served(bc, cluster, wire):
    good = wire.raw_frame(send_header(wire, "Mixed", opaque=41), b"served")
    conn = await cluster.connect(bc.broker)
    await conn.stream.send(good + broken_frames(wire)["broken-json"])
    response = await conn.receive(timeout=3)
    assert (response.opaque, response.code) == (41, 0)
    await assert_closed_by_server(conn)
    assert [m.body for m in await bc.pull_records("Mixed")] == [b"served"]
