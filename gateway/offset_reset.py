"""Resetting a consumer group's offsets on a topic to a time, or skipping to the end (Broker2Client.resetOffset),
for INVOKE_BROKER_TO_RESET_OFFSET and the HTTP admin API alike."""

from __future__ import annotations

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from codec.jsonbody import mq_key
from gateway.context import BrokerContext
from remoting.errors import RequestError

SKIP_TO_END = -1  # the timestamp that means "the end of every queue" (skipAccumulatedMessage)


async def plan_reset(ctx: BrokerContext, group: str, topic: str, timestamp: int, force: bool) -> list[tuple[int, int]]:
    """Per queue of ``topic`` the offset of the first message stored at or after ``timestamp`` (SKIP_TO_END: the
    end), moved back only unless ``force``. RequestError when the topic is unknown here or the group has no
    committed offset on one of its queues."""
    cfg = ctx.topics.get(topic)
    if cfg is None:
        raise RequestError(
            ResponseCode.TOPIC_NOT_EXIST, f"[reset-offset] reset offset failed, no topic in this broker. topic={topic}"
        )
    store = ctx.store
    offsets: list[tuple[int, int]] = []
    for queue_id in range(cfg.write_queue_nums):
        committed = store.get_consumer_offset(group, topic, queue_id)
        if committed is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"THe consumer group <{group}> not exist")
        if timestamp == SKIP_TO_END:
            target = store.max_offset(topic, queue_id)
        else:
            target = await store.search_offset_by_timestamp(topic, queue_id, timestamp, "lower")
        offsets.append((queue_id, target if force or target < committed else committed))
    return offsets


def tell_consumers(
    ctx: BrokerContext, group: str, topic: str, timestamp: int, force: bool, offsets: list[tuple[int, int]]
) -> int:
    """Send RESET_CONSUMER_CLIENT_OFFSET to every online consumer of ``group``, which moves its offsets and commits
    them; return how many were told."""
    ctx.invariants.offsets_reset(group, topic)
    consumers = ctx.clients.consumers.get(group)
    broker = ctx.config.broker_name
    told = 0
    for channel in list(consumers.channels.values()) if consumers is not None else []:
        connection = ctx.connections.get(channel.connection_id)
        if connection is None:
            continue
        header = {"topic": topic, "group": group, "timestamp": str(timestamp), "isForce": str(force).lower()}
        payload = (
            reset_body_for_c(broker, topic, offsets)
            if channel.language == "CPP"
            else reset_body(broker, topic, offsets)
        )
        connection.send_oneway(request(RequestCode.RESET_CONSUMER_CLIENT_OFFSET, header, payload))
        told += 1
    return told


def reset_body(broker: str, topic: str, offsets: list[tuple[int, int]]) -> bytes:
    """ResetOffsetBody: {"offsetTable": {MessageQueue: offset}} with fastjson's object keys."""
    table = ",".join(f"{mq_key(broker, topic, queue_id)}:{offset}" for queue_id, offset in offsets)
    return ('{"offsetTable":{' + table + "}}").encode()


def reset_body_for_c(broker: str, topic: str, offsets: list[tuple[int, int]]) -> bytes:
    """ResetOffsetBodyForC, which the C++ client reads: a list instead of a map."""
    rows = [{"brokerName": broker, "offset": o, "queueId": q, "topic": topic} for q, o in offsets]
    return jsonbody.dumps({"offsetTable": rows})
