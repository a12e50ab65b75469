"""What an administrator does over HTTP: create, update and delete topics, reset a group's offsets, send a test
message and resend a stored one. The rules are the remoting admin codes' (gateway/topic_admin.py,
gateway/offset_reset.py) and a send goes through the broker's own send path (validation, auto-creation, delay
levels, statistics), as if a producer on the HTTP client's address had sent it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codec.codes import (
    PROPERTY_DELAY,
    PROPERTY_KEYS,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_RETRY_TOPIC,
    PROPERTY_START_DELIVER_TIME,
    PROPERTY_TAGS,
    PROPERTY_TIMER_DELAY_MS,
    PROPERTY_TIMER_DELAY_SEC,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_TRAN_MSG,
    RequestCode,
    ResponseCode,
)
from codec.command import RemotingCommand, request
from codec.compression import COMPRESSION_BITS
from codec.errors import CodecError
from codec.properties import NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, decode_properties, encode_properties
from codec.record import decode_record
from gateway.context import BrokerContext
from gateway.handlers.send import SendHandler
from gateway.offset_reset import SKIP_TO_END, plan_reset, tell_consumers
from gateway.retry import retry_topic
from gateway.topic_admin import create_or_update_topic, delete_topic
from remoting.errors import RequestError
from store.api import TopicConfig

PRODUCER_GROUP = "pocketmq_console"
# What makes a stored message delayed, transactional or parked elsewhere: not carried over to a resent copy.
NOT_RESENT = frozenset({
    PROPERTY_DELAY, PROPERTY_TIMER_DELIVER_MS, PROPERTY_TIMER_DELAY_SEC, PROPERTY_TIMER_DELAY_MS,
    PROPERTY_START_DELIVER_TIME, PROPERTY_TRAN_MSG, PROPERTY_REAL_TOPIC, PROPERTY_REAL_QUEUE_ID,
    "TIMER_OUT_MS", "TIMER_ENQUEUE_MS", "TIMER_DEQUEUE_MS", "TIMER_ROLL_TIMES", "PGROUP", "RECONSUME_TIME",
})  # fmt: skip


@dataclass(slots=True, frozen=True)
class HttpPeer:
    """The HTTP client where the send handler expects a remoting connection (it reads only the peer address)."""

    peer: tuple[str, int]

    @property
    def peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"


class AdminActions:
    def __init__(self, ctx: BrokerContext, send_handler: SendHandler) -> None:
        self.ctx = ctx
        self.send_handler = send_handler

    async def create_topic(
        self, topic: str, read_queue_nums: int, write_queue_nums: int, perm: int, message_type: str | None
    ) -> TopicConfig:
        attributes = f"+message.type={message_type}" if message_type else None
        return await create_or_update_topic(
            self.ctx.topics, topic, read_queue_nums=read_queue_nums, write_queue_nums=write_queue_nums, perm=perm,
            attributes=attributes,
        )  # fmt: skip

    async def delete_topic(self, topic: str) -> None:
        if self.ctx.topics.get(topic) is None:
            raise RequestError(ResponseCode.TOPIC_NOT_EXIST, f"no topic {topic} in this broker")
        await delete_topic(self.ctx.topics, topic)

    async def reset_offsets(self, group: str, topic: str, timestamp: int | None) -> dict[str, Any]:
        """Move the group's committed offsets of ``topic`` to ``timestamp`` (ms; None: skip to the end), back or
        forward, and tell its online consumers as INVOKE_BROKER_TO_RESET_OFFSET does. The offsets are committed
        here too (what the tools do when no consumer is online), so a group that is offline starts from them."""
        at = SKIP_TO_END if timestamp is None else timestamp
        cfg = self.ctx.topics.get(topic)
        queues = range(cfg.write_queue_nums) if cfg is not None else range(0)
        missing = [q for q in queues if self.ctx.store.get_consumer_offset(group, topic, q) is None]
        if missing:
            raise RequestError(
                ResponseCode.INVALID_PARAMETER,
                f"the group {group} has no committed offset on queue {missing[0]} of {topic}; "
                "a group is reset once it has consumed from every queue",
            )
        offsets = await plan_reset(self.ctx, group, topic, at, True)
        for queue_id, offset in offsets:
            self.ctx.store.set_consumer_offset(group, topic, queue_id, offset)
        told = tell_consumers(self.ctx, group, topic, at, True, offsets)
        return {"offsets": [{"queueId": q, "offset": o} for q, o in offsets], "consumersTold": told}

    async def send(
        self,
        topic: str,
        body: bytes,
        *,
        properties: dict[str, str],
        peer: tuple[str, int],
        sys_flag: int = 0,
        queue_id: int = -1,
    ) -> dict[str, Any]:
        """Send as a producer would (SEND_MESSAGE); RequestError with the broker's remark when it is refused."""
        ext = {
            "producerGroup": PRODUCER_GROUP, "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
            "queueId": str(queue_id), "sysFlag": str(sys_flag), "bornTimestamp": str(self.ctx.clock.now_ms()),
            "flag": "0", "properties": encode_properties(properties), "reconsumeTimes": "0",
        }  # fmt: skip
        answer: RemotingCommand = await self.send_handler.send(
            request(RequestCode.SEND_MESSAGE, ext, body),
            HttpPeer(peer),  # type: ignore[arg-type]
        )
        if answer.code != ResponseCode.SUCCESS:
            raise RequestError(ResponseCode(answer.code), answer.remark or "the send was refused")
        fields = answer.ext_fields
        return {
            "msgId": fields.get("msgId", ""), "uniqKey": fields.get("transactionId", ""), "topic": topic,
            "queueId": int(fields.get("queueId", -1)), "queueOffset": int(fields.get("queueOffset", -1)),
        }  # fmt: skip

    async def send_test(
        self, topic: str, body: bytes, tags: str, keys: list[str], user: dict[str, str], delay_level: int,
        peer: tuple[str, int],
    ) -> dict[str, Any]:  # fmt: skip
        levels = len(self.ctx.delays.levels)
        if not 0 <= delay_level <= levels:
            raise RequestError(ResponseCode.INVALID_PARAMETER, f"delayLevel must be 0 (none) to {levels}")
        for name, value in user.items():
            if not name or any(c in name + value for c in (NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR)):
                raise RequestError(ResponseCode.INVALID_PARAMETER, f"property {name!r} is empty or has \\x01/\\x02")
        properties = dict(user)
        if tags:
            properties[PROPERTY_TAGS] = tags
        if keys:
            properties[PROPERTY_KEYS] = " ".join(keys)
        if delay_level:
            properties[PROPERTY_DELAY] = str(delay_level)
        return await self.send(topic, body, properties=properties, peer=peer)

    async def resend(self, record: bytes, group: str | None, peer: tuple[str, int]) -> dict[str, Any]:
        """A copy of a stored message sent to its topic (every group consumes it again) or, with ``group``, to that
        group's retry topic %RETRY%group (only that group does: its consumers subscribe to it and read RETRY_TOPIC
        as the topic). Its UNIQ_KEY stays, as on a retry; delay and transaction properties go."""
        try:
            msg, _end = decode_record(record)
        except CodecError as err:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"the stored message cannot be decoded: {err}") from None
        stored = decode_properties(msg.properties)
        properties = {k: v for k, v in stored.items() if k not in NOT_RESENT}
        topic = stored.get(PROPERTY_REAL_TOPIC, msg.topic)
        if group:
            properties[PROPERTY_RETRY_TOPIC] = topic
            topic = retry_topic(group)
        return await self.send(
            topic, msg.body, properties=properties, peer=peer, sys_flag=msg.sys_flag & COMPRESSION_BITS
        )
