"""The consumer side of ``MessagingService``: QueryAssignment, ReceiveMessage, AckMessage, ChangeInvisibleDuration
and ForwardMessageToDeadLetterQueue over POP (gateway.pop), as the proxy's consumer activities answer them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio

from codec.codes import RETRY_GROUP_TOPIC_PREFIX, Perm
from codec.errors import CodecError
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from codec.heartbeat import make_subscription
from gateway.context import BrokerContext
from gateway.grpc.convert import to_v2_message
from gateway.grpc.sessions import CLIENT_ID
from gateway.grpc.status import OK, status
from gateway.grpc.times import duration_ms
from gateway.handlers.pull import acceptor
from gateway.pop import (
    AUTO_RENEW_INVISIBLE_MS,
    MAX_BATCH,
    MAX_INVISIBLE_MS,
    MIN_RECEIVE_INVISIBLE_MS,
    Accept,
    InvalidReceipt,
    OutOfDate,
    Popped,
    PopService,
    ReceiveRequest,
)
from remoting.grpc_server import CallContext

MAX_NAME_LENGTH = 255  # the proxy's CHARACTER_MAX_LENGTH for topic and group names
VALID_NAME = re.compile(r"^[%|a-zA-Z0-9_-]+$")
MIN_LONG_POLLING_MS = 5_000  # grpcClientConsumerMinLongPollingTimeoutMillis
MAX_LONG_POLLING_MS = 20_000  # grpcClientConsumerMaxLongPollingTimeoutMillis
REQUEST_TIMEOUT_MS = 3_000  # what a client's settings ask when they say nothing


def accept_for(topic: str, expression: d.FilterExpression) -> Accept:
    """What a receive checks per message for a filter expression; ValueError names what is wrong with it."""
    etype = "SQL92" if expression.type == d.SQL else "TAG"
    try:
        sub = make_subscription(topic, expression.expression or "*", etype, 0)
    except CodecError as err:
        raise ValueError(str(err)) from None
    if sub.error is not None:
        raise ValueError(sub.error)
    if sub.sql is not None:
        return None if topic.startswith(RETRY_GROUP_TOPIC_PREFIX) else acceptor(sub.sql)
    return acceptor(sub.tag_filter)


def names_refused(topic: str, group: str) -> d.Status | None:
    """The proxy's validateTopicAndConsumerGroup: both present, at most 255 characters, ^[%|a-zA-Z0-9_-]+$."""
    for code, what, name in ((d.ILLEGAL_TOPIC, "topic", topic), (d.ILLEGAL_CONSUMER_GROUP, "consumer group", group)):
        if not name:
            return status(code, f"the {what} name is empty")
        if len(name) > MAX_NAME_LENGTH:
            return status(code, f"the {what} name is longer than {MAX_NAME_LENGTH} characters")
        if not VALID_NAME.match(name):
            return status(code, f"the {what} name {name!r} has illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$")
    return None


class ConsumerMethods:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.pop = PopService(ctx)

    def _topic_and_group(self, topic: str, group: str) -> d.Status | None:
        refused = names_refused(topic, group)
        if refused is not None:
            return refused
        config = self.ctx.topics.get(topic)
        if config is None:
            return status(d.TOPIC_NOT_FOUND, f"topic {topic} does not exist on broker {self.ctx.config.broker_name}")
        if not config.perm & Perm.READ:
            return status(d.FORBIDDEN, f"topic {topic} is not readable")
        if not self.ctx.groups.get(group).consume_enable:
            return status(d.FORBIDDEN, f"consumer group {group} may not consume (consumeEnable is false)")
        return None

    # ---- assignment ----------------------------------------------------------------------------------

    async def query_assignment(self, req: s.QueryAssignmentRequest, call: CallContext) -> s.QueryAssignmentResponse:
        """Non-FIFO groups: the whole broker as one queue (id -1), received from across its queues; FIFO groups:
        every readable queue (RouteActivity.queryAssignment)."""
        refused = self._topic_and_group(req.topic.name, req.group.name)
        if refused is not None:
            return s.QueryAssignmentResponse(status=refused)
        topic = self.ctx.topics.get(req.topic.name)
        assert topic is not None
        if topic.read_queue_nums <= 0:
            return s.QueryAssignmentResponse(status=status(d.FORBIDDEN, "no readable queue"))
        endpoints = req.endpoints
        if not endpoints.addresses:
            host, port = call.local
            endpoints = d.Endpoints(scheme=d.IPv4, addresses=[d.Address(host=host, port=port)])
        broker = d.Broker(name=self.ctx.config.broker_name, id=0, endpoints=endpoints)
        permission = d.READ_WRITE if topic.perm & Perm.WRITE else d.READ
        ids = range(topic.read_queue_nums) if self.ctx.groups.get(req.group.name).orderly else [-1]
        assignments = [
            d.Assignment(message_queue=d.MessageQueue(topic=req.topic, id=i, permission=permission, broker=broker))
            for i in ids
        ]
        return s.QueryAssignmentResponse(status=OK, assignments=assignments)

    # ---- receive -------------------------------------------------------------------------------------

    async def receive_message(
        self, req: s.ReceiveMessageRequest, call: CallContext
    ) -> AsyncIterator[s.ReceiveMessageResponse]:
        """A status, the messages if any, then the time of delivery (the 5.x clients time their receive latency from
        it; ReceiveMessageResponseStreamWriter ends every answer so)."""
        async for response in self._receive(req, call):
            yield response
        stamp = s.ReceiveMessageResponse()
        stamp.delivery_timestamp.FromMilliseconds(self.ctx.clock.now_ms())
        yield stamp

    async def _receive(
        self, req: s.ReceiveMessageRequest, call: CallContext
    ) -> AsyncIterator[s.ReceiveMessageResponse]:
        topic, group = req.message_queue.topic.name, req.group.name
        refused = self._topic_and_group(topic, group) or self._batch_refused(req.batch_size)
        if refused is not None:
            yield s.ReceiveMessageResponse(status=refused)
            return
        if req.auto_renew and not req.HasField("invisible_duration"):
            invisible_ms = AUTO_RENEW_INVISIBLE_MS
        else:
            invisible_ms = duration_ms(req.invisible_duration)
            if not MIN_RECEIVE_INVISIBLE_MS <= invisible_ms <= MAX_INVISIBLE_MS:
                yield s.ReceiveMessageResponse(status=status(
                    d.ILLEGAL_INVISIBLE_TIME,
                    f"the invisible duration {invisible_ms} ms is not within"
                    f" [{MIN_RECEIVE_INVISIBLE_MS}, {MAX_INVISIBLE_MS}] ms",
                ))  # fmt: skip
                return
        poll_ms = self._polling_ms(req, call)
        if poll_ms is None:
            yield s.ReceiveMessageResponse(status=status(
                d.ILLEGAL_POLLING_TIME,
                "the deadline time remaining is not enough for polling, please check network condition",
            ))  # fmt: skip
            return
        try:
            accept = accept_for(topic, req.filter_expression)
        except ValueError as err:
            yield s.ReceiveMessageResponse(status=status(d.ILLEGAL_FILTER_EXPRESSION, str(err)))
            return
        config = self.ctx.groups.get(group)
        renew_for = call.metadata.get(CLIENT_ID) if req.auto_renew and not req.HasField("invisible_duration") else None
        request = ReceiveRequest(
            group, topic, accept, req.batch_size, invisible_ms, config.orderly, config.max_attempts, renew_for or None
        )
        popped = await self.pop.receive(request, poll_ms)
        if not popped:
            yield s.ReceiveMessageResponse(status=status(d.MESSAGE_NOT_FOUND, "no new message"))
            return
        self.ctx.stats.got(topic, group, len(popped), sum(len(p.message.body) for p in popped))
        yield s.ReceiveMessageResponse(status=OK)
        now = self.ctx.clock.now_ms()
        for p in popped:
            yield s.ReceiveMessageResponse(message=self._message(p, now))

    @staticmethod
    def _batch_refused(batch_size: int) -> d.Status | None:
        if not 1 <= batch_size <= MAX_BATCH:
            return status(d.BAD_REQUEST, f"the batch size {batch_size} is not within [1, {MAX_BATCH}]")
        return None

    def _polling_ms(self, req: s.ReceiveMessageRequest, call: CallContext) -> int | None:
        """ReceiveMessageActivity: the request's long-polling time (else what its deadline leaves), clamped to
        5-20 s and to the deadline; None when the deadline leaves less than the minimum."""
        remaining = None if call.deadline is None else int((call.deadline - anyio.current_time()) * 1000)
        if req.HasField("long_polling_timeout"):
            poll = duration_ms(req.long_polling_timeout)
        else:
            poll = (remaining if remaining is not None else MAX_LONG_POLLING_MS) - REQUEST_TIMEOUT_MS // 2
        poll = min(max(poll, MIN_LONG_POLLING_MS), MAX_LONG_POLLING_MS)
        if remaining is not None and poll > remaining:
            if remaining < MIN_LONG_POLLING_MS:
                return None
            poll = remaining
        return poll

    def _message(self, p: Popped, now_ms: int) -> d.Message:
        message = to_v2_message(p.message, p.offset_msg_id, receipt_handle=p.receipt.encode(), now_ms=now_ms)
        system = message.system_properties
        system.delivery_attempt = p.message.reconsume_times + p.attempt
        system.invisible_duration.FromMilliseconds(p.invisible_ms)
        return message

    # ---- settling --------------------------------------------------------------------------------------

    async def ack_message(self, req: s.AckMessageRequest, call: CallContext) -> s.AckMessageResponse:
        refused = names_refused(req.topic.name, req.group.name)
        if refused is not None:
            return s.AckMessageResponse(status=refused)
        if not req.entries:
            return s.AckMessageResponse(status=status(d.BAD_REQUEST, "no entry to ack"))
        problems = await self.pop.ack_all(req.group.name, req.topic.name, [e.receipt_handle for e in req.entries])
        entries = [
            s.AckMessageResultEntry(
                message_id=entry.message_id,
                receipt_handle=entry.receipt_handle,
                status=OK if problem is None else status(d.INVALID_RECEIPT_HANDLE, str(problem)),
            )
            for entry, problem in zip(req.entries, problems, strict=True)
        ]
        codes = {e.status.code for e in entries}
        overall = entries[0].status if len(codes) == 1 else status(d.MULTIPLE_RESULTS)
        return s.AckMessageResponse(status=overall, entries=entries)

    async def change_invisible_duration(
        self, req: s.ChangeInvisibleDurationRequest, call: CallContext
    ) -> s.ChangeInvisibleDurationResponse:
        refused = names_refused(req.topic.name, req.group.name)
        if refused is not None:
            return s.ChangeInvisibleDurationResponse(status=refused)
        invisible_ms = duration_ms(req.invisible_duration)
        if not 0 <= invisible_ms <= MAX_INVISIBLE_MS:
            problem = f"the invisible duration {invisible_ms} ms is not within [0, {MAX_INVISIBLE_MS}] ms"
            return s.ChangeInvisibleDurationResponse(status=status(d.ILLEGAL_INVISIBLE_TIME, problem))
        try:
            receipt = await self.pop.change_invisible(req.group.name, req.topic.name, req.receipt_handle, invisible_ms)
        except (InvalidReceipt, OutOfDate) as err:
            return s.ChangeInvisibleDurationResponse(status=status(d.INVALID_RECEIPT_HANDLE, str(err)))
        return s.ChangeInvisibleDurationResponse(status=OK, receipt_handle=receipt.encode())

    async def forward_to_dead_letter_queue(
        self, req: s.ForwardMessageToDeadLetterQueueRequest, call: CallContext
    ) -> s.ForwardMessageToDeadLetterQueueResponse:
        refused = names_refused(req.topic.name, req.group.name)
        if refused is not None:
            return s.ForwardMessageToDeadLetterQueueResponse(status=refused)
        try:
            await self.pop.forward_to_dead_letter(
                req.group.name, req.topic.name, req.receipt_handle, req.delivery_attempt
            )
        except (InvalidReceipt, OutOfDate) as err:
            return s.ForwardMessageToDeadLetterQueueResponse(status=status(d.INVALID_RECEIPT_HANDLE, str(err)))
        return s.ForwardMessageToDeadLetterQueueResponse(status=OK)
