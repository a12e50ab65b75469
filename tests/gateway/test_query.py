"""QUERY_MESSAGE (12) by key and by UNIQ_KEY, VIEW_MESSAGE_BY_ID (33) by commit-log offset (headers.md section 7)."""

from __future__ import annotations

import time

import pytest

from codec.codes import RequestCode
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties
from codec.record import decode_records

FAR_FUTURE = str(int(time.time() * 1000) + 3_600_000)


def query(topic: str, key: str, *, max_num: int = 32, unique: bool = False, begin: str = "0") -> dict[str, str]:
    ext = {"topic": topic, "key": key, "maxNum": str(max_num), "beginTimestamp": begin, "endTimestamp": FAR_FUTURE}
    if unique:
        ext["_UNIQUE_KEY_QUERY"] = "true"
    return ext


@pytest.fixture
async def stored(bc):
    """Three messages in TopicK: keys "order-1 shared", "order-2 shared", none."""
    responses = [
        await bc.send_ok("TopicK", b"one", properties={"KEYS": "order-1 shared"}, queue_id=0),
        await bc.send_ok("TopicK", b"two", properties={"KEYS": "order-2 shared"}, queue_id=1),
        await bc.send_ok("TopicK", b"three", queue_id=0),
    ]
    return bc, responses


async def test_query_by_key(stored):
    bc, _ = stored
    response = await bc.invoke(RequestCode.QUERY_MESSAGE, query("TopicK", "order-2"))
    assert (response.code, response.remark) == (0, None)
    assert set(response.ext_fields) == {"indexLastUpdateTimestamp", "indexLastUpdatePhyoffset"}
    [m] = decode_records(response.body)
    assert (m.body, m.topic, m.queue_id) == (b"two", "TopicK", 1)

    shared = await bc.invoke(RequestCode.QUERY_MESSAGE, query("TopicK", "shared"))
    assert sorted(m.body for m in decode_records(shared.body)) == [b"one", b"two"]
    limited = await bc.invoke(RequestCode.QUERY_MESSAGE, query("TopicK", "shared", max_num=1))
    assert len(decode_records(limited.body)) == 1


async def test_query_by_unique_key(stored):
    bc, responses = stored
    uniq = responses[2].ext_fields["transactionId"]
    response = await bc.invoke(RequestCode.QUERY_MESSAGE, query("TopicK", uniq, max_num=0, unique=True))
    assert response.code == 0
    [m] = decode_records(response.body)
    assert m.body == b"three"
    assert decode_properties(m.properties)["UNIQ_KEY"] == uniq


@pytest.mark.parametrize(
    "ext",
    [
        query("TopicK", "no-such-key"),
        query("OtherTopic", "order-1"),
        query("TopicK", "order-1", begin=FAR_FUTURE),  # outside the time window
    ],
)
async def test_query_not_found(stored, ext):
    bc, _ = stored
    response = await bc.invoke(RequestCode.QUERY_MESSAGE, ext)
    assert (response.code, response.remark, response.body) == (
        22, "can not find message, maybe time range not correct", b"")  # fmt: skip


async def test_view_message_by_id(stored):
    bc, responses = stored
    pulled = await bc.pull("TopicK", 1, 0)
    for response in responses:
        _host, _port, phys = decode_offset_msg_id(response.ext_fields["msgId"])
        viewed = await bc.invoke(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": str(phys)})
        assert (viewed.code, viewed.remark) == (0, None)
        [m] = decode_records(viewed.body)
        assert m.phys_offset == phys
    # The same bytes a pull returns.
    _h, _p, phys_two = decode_offset_msg_id(responses[1].ext_fields["msgId"])
    assert (await bc.invoke(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": str(phys_two)})).body == pulled.body

    missing = await bc.invoke(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": "999999"})
    assert (missing.code, missing.remark, missing.body) == (1, "can not find message by the offset, 999999", b"")
