"""Golden byte vectors, both ways: bytes -> objects and objects -> the exact bytes."""

from __future__ import annotations

from pathlib import Path

from codec.batch import BatchItem, decode_batch, encode_batch
from codec.codes import SerializeType
from codec.command import RemotingCommand
from codec.frame import FrameDecoder, encode_frame
from codec.message_id import decode_offset_msg_id, encode_offset_msg_id
from codec.properties import decode_properties
from codec.record import StoredMessage, decode_record, encode_record
from codec.tags import java_string_hash

VECTORS = Path(__file__).parent.parent / "vectors"

ROUTE_REQUEST = RemotingCommand(code=105, opaque=1, ext_fields={"topic": "TopicTest"}, version=401)
UNIQ = "7F00000130391B2C3D4E00000A1B0001"
RECORD_PROPS = f"UNIQ_KEY\x01{UNIQ}\x02TAGS\x01TagA\x02KEYS\x01k1\x02WAIT\x01true\x02CLUSTER\x01DefaultCluster\x02"
RECORD = StoredMessage(
    topic="TopicTest",
    queue_id=1,
    body=b"Hello",
    properties=RECORD_PROPS,
    born_timestamp=1700000000000,
    born_host="127.0.0.1",
    born_port=50000,
    store_timestamp=1700000000123,
    store_host="127.0.0.1",
    store_port=10911,
    body_crc=2010220930,
)


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def decode_one(data: bytes) -> RemotingCommand:
    (cmd,) = FrameDecoder().feed(data)
    return cmd


def test_json_request_decodes() -> None:
    assert decode_one(vector("ref-json-get-route.bin")) == ROUTE_REQUEST


def test_json_request_encodes_to_the_exact_bytes() -> None:
    assert encode_frame(ROUTE_REQUEST) == vector("ref-json-get-route.bin")


def test_binary_request_both_ways() -> None:
    binary = RemotingCommand(
        code=105, opaque=1, ext_fields={"topic": "TopicTest"}, version=401, serialize_type=SerializeType.ROCKETMQ
    )
    assert decode_one(vector("ref-binary-get-route.bin")) == binary
    assert encode_frame(binary) == vector("ref-binary-get-route.bin")


def test_send_response_both_ways() -> None:
    response = RemotingCommand(
        code=0,
        opaque=2,
        flag=1,
        ext_fields={
            "msgId": "7F00000100002A9F0000000000000000",
            "queueId": "1",
            "queueOffset": "0",
            "transactionId": UNIQ,
            "MSG_REGION": "DefaultRegion",
            "TRACE_ON": "true",
        },
        version=479,
    )
    assert encode_frame(response) == vector("ref-json-send-response.bin")
    assert decode_one(vector("ref-json-send-response.bin")) == response


def test_stored_record_both_ways() -> None:
    data = vector("ref-stored-record.bin")
    msg, end = decode_record(data)
    assert end == len(data) == 198
    assert msg == RECORD
    assert bytes(encode_record(RECORD)) == data
    assert decode_properties(msg.properties)["TAGS"] == "TagA"


def test_batch_body_both_ways() -> None:
    items = [
        BatchItem(b"m1", f"UNIQ_KEY\x01{'A' * 32}\x02TAGS\x01TagA\x02"),
        BatchItem(b"m2", f"UNIQ_KEY\x01{'B' * 32}\x02"),
    ]
    assert decode_batch(vector("ref-batch-body.bin")) == items
    assert encode_batch(items) == vector("ref-batch-body.bin")


def test_offset_message_id() -> None:
    assert encode_offset_msg_id("127.0.0.1", 10911, 0x1A2B) == "7F00000100002A9F0000000000001A2B"
    assert decode_offset_msg_id("7F00000100002A9F0000000000001A2B") == ("127.0.0.1", 10911, 0x1A2B)
    v6 = encode_offset_msg_id("::1", 10911, 7)
    assert len(v6) == 56
    assert decode_offset_msg_id(v6) == ("::1", 10911, 7)


def test_java_string_hashes() -> None:
    assert java_string_hash("TagA") == 2598919
    assert java_string_hash("TagB") == 2598920
    assert java_string_hash("*") == 42
    assert java_string_hash("标签") == 857175
