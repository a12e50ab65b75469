"""A stored message as a 5.x client receives it: the message type and the split of its properties."""

from __future__ import annotations

import pytest

from codec.codes import MessageSysFlag
from codec.grpc_v2 import definition_pb2 as d
from codec.properties import encode_properties
from codec.record import StoredMessage
from gateway.grpc.convert import to_v2_message


@pytest.mark.parametrize(
    ("props", "sys_flag", "expected"),
    [
        ({}, 0, d.NORMAL),
        ({"__SHARDINGKEY": "order-1"}, 0, d.FIFO),
        ({"TIMER_DELIVER_MS": "1700000000000"}, 0, d.DELAY),
        ({"DELAY": "3"}, 0, d.DELAY),
        ({"TRAN_MSG": "true"}, int(MessageSysFlag.TRANSACTION_PREPARED), d.TRANSACTION),
        ({}, int(MessageSysFlag.TRANSACTION_COMMIT), d.TRANSACTION),  # committed: pocketmq drops TRAN_MSG
    ],
)
def test_the_message_type(props: dict[str, str], sys_flag: int, expected: int) -> None:
    stored = StoredMessage("T", 0, b"x", encode_properties({"UNIQ_KEY": "ID1", **props}), sys_flag=sys_flag)
    assert to_v2_message(stored, "offset-id").system_properties.message_type == expected


def test_system_properties_are_split_from_user_properties() -> None:
    props = {"UNIQ_KEY": "ID1", "TAGS": "A", "KEYS": "k1 k2", "color": "red", "__SHARDINGKEY": "g"}
    message = to_v2_message(StoredMessage("T", 2, b"body", encode_properties(props), queue_offset=7), "offset-id")
    system = message.system_properties
    assert (system.message_id, system.tag, list(system.keys), system.message_group) == ("ID1", "A", ["k1", "k2"], "g")
    assert (system.queue_id, system.queue_offset, system.delivery_attempt) == (2, 7, 1)
    assert system.body_digest.checksum == "841A2D689AD86BD1611447453C22C6FC"  # MD5 of b"body", upper case
    assert dict(message.user_properties) == {"color": "red", "__SHARDINGKEY": "g"}
