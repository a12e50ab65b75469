"""CONSUMER_SEND_MSG_BACK: a consumer gives a failed message back; it returns through ``%RETRY%<group>`` after a
delay (by the delay scheduler), or goes to ``%DLQ%<group>`` once it failed too often."""

from __future__ import annotations

from collections.abc import Awaitable

import anyio

from codec.codes import (
    PROPERTY_DELAY,
    PROPERTY_ORIGIN_MESSAGE_ID,
    PROPERTY_RETRY_TOPIC,
    PROPERTY_WAIT,
    ResponseCode,
)
from codec.command import RemotingCommand
from codec.headers import ConsumerSendMsgBackRequestHeader, decode_header
from codec.message_id import encode_offset_msg_id
from codec.properties import append_properties, decode_properties, remove_properties
from codec.record import StoredMessage, decode_record
from gateway.context import BrokerContext
from gateway.delay import defer
from gateway.messages import append_request
from gateway.retry import decide_send_back, max_reconsume_times
from remoting.connection import Connection
from remoting.errors import RequestError
from store.api import AppendRequest

_REPLACED = frozenset({PROPERTY_DELAY, PROPERTY_WAIT, PROPERTY_ORIGIN_MESSAGE_ID})


class SendBackHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    async def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | Awaitable[RemotingCommand]:
        h = decode_header(ConsumerSendMsgBackRequestHeader, cmd.ext_fields)
        record = await self.ctx.store.get_by_phys_offset(h.offset)
        if record is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"look message by offset failed, {h.offset}")
        original, _ = decode_record(record)
        max_times = max_reconsume_times(h.max_reconsume_times, cmd.version)
        decision = decide_send_back(h.group, original.reconsume_times, h.delay_level, max_times)
        if decision.dead_letter:
            forced = h.delay_level < 0
            self.ctx.invariants.dead_lettered(h.group, original.topic, original.reconsume_times, max_times, forced)
        queue_nums = 1  # retryQueueNums / DLQ_NUMS_PER_GROUP
        await self.ctx.topics.ensure_system_topic(decision.topic, queue_nums)
        request = resend_request(self.ctx, original, decision.topic, decision.delay_level, h.origin_msg_id)
        return self._store(cmd, request)

    async def _store(self, cmd: RemotingCommand, request: AppendRequest) -> RemotingCommand:
        with anyio.CancelScope(shield=True):  # stored even if the consumer's connection closes meanwhile
            await self.ctx.store.append([request])
        if request.due_ms is not None:
            self.ctx.scheduler.scheduled(request.due_ms)
        else:
            self.ctx.waits.notify(request.topic, request.queue_id)
        return cmd.response(ResponseCode.SUCCESS)


def resend_request(
    ctx: BrokerContext,
    original: StoredMessage,
    topic: str,
    delay_level: int,
    origin_msg_id: str | None,
    reconsume_times: int | None = None,
) -> AppendRequest:
    """``original`` stored again in its group's retry topic (after ``delay_level``) or dead-letter topic, with the
    properties that lead back to it; ``reconsume_times`` defaults to one more than the original's."""
    now = ctx.clock.now_ms()
    props = decode_properties(original.properties)
    extra = {}
    if PROPERTY_RETRY_TOPIC not in props:
        extra[PROPERTY_RETRY_TOPIC] = original.topic
    origin = (
        props.get(PROPERTY_ORIGIN_MESSAGE_ID)
        or origin_msg_id
        or encode_offset_msg_id(original.store_host, original.store_port, original.phys_offset)
    )
    extra[PROPERTY_ORIGIN_MESSAGE_ID] = origin
    extra[PROPERTY_WAIT] = "false"
    if delay_level > 0:
        extra[PROPERTY_DELAY] = str(delay_level)
    properties = append_properties(remove_properties(original.properties, _REPLACED), extra)
    msg = StoredMessage(
        topic=topic,
        queue_id=0,
        body=original.body,
        properties=properties,
        flag=original.flag,
        sys_flag=original.sys_flag,
        born_timestamp=original.born_timestamp,
        born_host=original.born_host,
        born_port=original.born_port,
        store_timestamp=now,
        store_host=ctx.store_host,
        store_port=ctx.config.port,
        reconsume_times=original.reconsume_times + 1 if reconsume_times is None else reconsume_times,
    )
    new_props = decode_properties(properties)
    deferral = ctx.delays.plan(new_props, now) if delay_level > 0 else None
    if deferral is not None:
        defer(msg, deferral)
    return append_request(msg, new_props, due_ms=deferral.due_ms if deferral is not None else None)
