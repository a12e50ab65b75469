"""Consumer and queue offsets: QUERY/UPDATE_CONSUMER_OFFSET, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP,
GET_EARLIEST_MSG_STORETIME (headers.md section 3, flows.md section 3.3)."""

from __future__ import annotations

import anyio

from codec.codes import RequestCode
from codec.command import request

NOT_FOUND_REMARK = "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"


def group_queue(topic: str, queue_id: int = 0, group: str = "cg") -> dict[str, str]:
    return {"consumerGroup": group, "topic": topic, "queueId": str(queue_id)}


def topic_queue(topic: str, queue_id: int = 0) -> dict[str, str]:
    return {"topic": topic, "queueId": str(queue_id)}


async def test_query_consumer_offset_rules(bc):
    await bc.send_ok("Off", queue_id=0)
    empty = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Off", 1))
    assert (empty.code, empty.remark, empty.ext_fields) == (22, NOT_FOUND_REMARK, {})
    unknown_topic = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Nope", 0))
    assert (unknown_topic.code, unknown_topic.remark) == (22, NOT_FOUND_REMARK)

    # A young queue whose message 0 is still stored: a new group starts at 0.
    young = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Off", 0))
    assert (young.code, young.remark, young.ext_fields) == (0, None, {"offset": "0"})
    # ... unless the 5.x client asks not to get a zero (setZeroIfNotFound=false).
    strict = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, {**group_queue("Off", 0), "setZeroIfNotFound": "false"})
    assert (strict.code, strict.remark) == (22, NOT_FOUND_REMARK)

    update = await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, {**group_queue("Off", 0), "commitOffset": "1"})
    assert (update.code, update.remark, update.ext_fields, update.body) == (0, None, {}, b"")
    committed = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Off", 0))
    assert (committed.code, committed.ext_fields) == (0, {"offset": "1"})
    # Committed offsets are per group.
    other = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Off", 0, group="cg2"))
    assert other.ext_fields == {"offset": "0"}


async def test_oneway_update_consumer_offset_is_applied_and_not_answered(bc):
    await bc.send_ok("Oneway", queue_id=2)
    await bc.client.oneway(request(RequestCode.UPDATE_CONSUMER_OFFSET, {**group_queue("Oneway", 2),
                                                                        "commitOffset": "7"}))  # fmt: skip
    query = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET, group_queue("Oneway", 2))
    assert query.ext_fields == {"offset": "7"}
    with anyio.move_on_after(0.1):
        extra = await bc.client.receive(timeout=1)
        raise AssertionError(f"a oneway request was answered: {extra}")


async def test_update_consumer_offset_for_a_bad_queue(bc):
    await bc.send_ok("Off4")
    response = await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, {**group_queue("Off4", 9), "commitOffset": "1"})
    assert (response.code, response.remark) == (29, "queueId[9] is illegal for topic[Off4]")


async def test_max_and_min_offset(bc):
    for _ in range(3):
        await bc.send_ok("MinMax", queue_id=1)
    for code, queue_id, expected in [
        (RequestCode.GET_MAX_OFFSET, 1, "3"),
        (RequestCode.GET_MIN_OFFSET, 1, "0"),
        (RequestCode.GET_MAX_OFFSET, 0, "0"),  # empty queue
        (RequestCode.GET_MIN_OFFSET, 0, "0"),
    ]:
        response = await bc.invoke(code, topic_queue("MinMax", queue_id))
        assert (response.code, response.remark, response.ext_fields) == (0, None, {"offset": expected})
    unknown = await bc.invoke(RequestCode.GET_MAX_OFFSET, topic_queue("NoSuchTopic", 0))
    assert unknown.ext_fields == {"offset": "0"}


async def test_search_offset_by_timestamp_and_earliest_store_time(bc):
    for i in range(3):
        await bc.send_ok("Times", f"{i}".encode())
        await anyio.sleep(0.005)  # distinct store timestamps (ms)
    stamps = [m.store_timestamp for m in await bc.pull_records("Times", 0, 0)]
    assert stamps == sorted(set(stamps))

    async def search(ts: int, boundary: str | None = None) -> str:
        ext = {**topic_queue("Times"), "timestamp": str(ts)}
        if boundary:
            ext["boundaryType"] = boundary
        response = await bc.invoke(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, ext)
        assert response.code == 0, response.remark
        return response.ext_fields["offset"]

    assert await search(0) == "0"
    assert await search(stamps[1]) == "1"
    assert await search(stamps[1] + 1) == "2"
    assert await search(stamps[2] + 10_000) == "3"  # lower: max offset when nothing is later
    assert await search(stamps[1], "upper") == "1"
    assert await search(stamps[1] - 1, "upper") == "0"
    assert await search(stamps[2] + 10_000, "upper") == "2"
    bad = await bc.invoke(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
                          {**topic_queue("Times"), "timestamp": "0", "boundaryType": "middle"})  # fmt: skip
    assert bad.code == 29

    earliest = await bc.invoke(RequestCode.GET_EARLIEST_MSG_STORETIME, topic_queue("Times"))
    assert (earliest.code, earliest.ext_fields) == (0, {"timestamp": str(stamps[0])})
    empty = await bc.invoke(RequestCode.GET_EARLIEST_MSG_STORETIME, topic_queue("Times", 3))
    assert (empty.code, empty.remark) == (1, "no message in queue Times:3")
