"""The pull-style methods of ``MessagingService``: PullMessage, UpdateOffset, GetOffset, QueryOffset, for clients
that track offsets themselves (the 5.x lite pull consumers). Apache's 5.3.3 proxy declares them but does not serve
them; here they read the same queues and committed offsets as remoting PULL_MESSAGE and UPDATE_CONSUMER_OFFSET."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from codec.codes import Perm
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from codec.record import decode_record
from gateway.context import BrokerContext
from gateway.grpc.consumer import MAX_LONG_POLLING_MS, accept_for, names_refused
from gateway.grpc.convert import to_v2_message
from gateway.grpc.status import OK, status
from gateway.grpc.times import duration_ms, timestamp_ms
from gateway.pop import MAX_BATCH, MAX_RECEIVE_BYTES
from remoting.grpc_server import CallContext

MAX_SCAN = 2048


class PullMethods:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def _queue_refused(self, queue: d.MessageQueue) -> d.Status | None:
        topic = self.ctx.topics.get(queue.topic.name)
        if not queue.topic.name:
            return status(d.ILLEGAL_TOPIC, "the topic name is empty")
        if topic is None:
            return status(d.TOPIC_NOT_FOUND, f"topic {queue.topic.name} does not exist")
        if not topic.perm & Perm.READ:
            return status(d.FORBIDDEN, f"topic {queue.topic.name} is not readable")
        if not 0 <= queue.id < topic.read_queue_nums:
            return status(d.BAD_REQUEST, f"queue {queue.id} of {queue.topic.name} is not one of its readable queues")
        return None

    async def pull_message(self, req: s.PullMessageRequest, call: CallContext) -> AsyncIterator[s.PullMessageResponse]:
        """A status, the messages from ``offset`` on (filtered), then the offset to pull from next."""
        queue = req.message_queue
        refused = names_refused(queue.topic.name, req.group.name) or self._queue_refused(queue)
        if refused is None and not 1 <= req.batch_size <= MAX_BATCH:
            refused = status(d.BAD_REQUEST, f"the batch size {req.batch_size} is not within [1, {MAX_BATCH}]")
        if refused is None and req.offset < 0:
            refused = status(d.ILLEGAL_OFFSET, f"offset {req.offset} is negative")
        if refused is not None:
            yield s.PullMessageResponse(status=refused)
            return
        try:
            accept = accept_for(queue.topic.name, req.filter_expression)
        except ValueError as err:
            yield s.PullMessageResponse(status=status(d.ILLEGAL_FILTER_EXPRESSION, str(err)))
            return
        topic, queue_id, store = queue.topic.name, queue.id, self.ctx.store
        offset = max(req.offset, store.min_offset(topic, queue_id))
        wait_ms = min(max(duration_ms(req.long_polling_timeout), 0), MAX_LONG_POLLING_MS)
        deadline = anyio.current_time() + wait_ms / 1000
        while True:
            event = self.ctx.waits.park(topic, queue_id)
            try:
                pulled = store.pull(topic, queue_id, offset, req.batch_size, MAX_RECEIVE_BYTES, accept, MAX_SCAN)
                remaining = deadline - anyio.current_time()
                if pulled.records or remaining <= 0 or self.ctx.waits.closing:
                    break
                offset = pulled.next_offset
                if store.max_offset(topic, queue_id) <= offset:
                    with anyio.move_on_after(remaining):
                        await event.wait()
            finally:
                self.ctx.waits.cancel(topic, queue_id, event)
        if not pulled.records:
            yield s.PullMessageResponse(status=status(d.MESSAGE_NOT_FOUND, "no new message"))
        else:
            yield s.PullMessageResponse(status=OK)
            now = self.ctx.clock.now_ms()
            for record in pulled.records:
                message, _ = decode_record(record)
                converted = to_v2_message(message, self.ctx.msg_id(message.phys_offset), now_ms=now)
                yield s.PullMessageResponse(message=converted)
        yield s.PullMessageResponse(next_offset=pulled.next_offset)

    async def update_offset(self, req: s.UpdateOffsetRequest, call: CallContext) -> s.UpdateOffsetResponse:
        refused = names_refused(req.message_queue.topic.name, req.group.name) or self._queue_refused(req.message_queue)
        if refused is None and not 0 <= req.offset < 2**63:
            refused = status(d.ILLEGAL_OFFSET, f"offset {req.offset} is negative")
        if refused is not None:
            return s.UpdateOffsetResponse(status=refused)
        queue = req.message_queue
        self.ctx.store.set_consumer_offset(req.group.name, queue.topic.name, queue.id, req.offset)
        return s.UpdateOffsetResponse(status=OK)

    async def get_offset(self, req: s.GetOffsetRequest, call: CallContext) -> s.GetOffsetResponse:
        refused = self._queue_refused(req.message_queue)
        if refused is not None:
            return s.GetOffsetResponse(status=refused)
        queue = req.message_queue
        offset = self.ctx.store.get_consumer_offset(req.group.name, queue.topic.name, queue.id)
        if offset is None:
            problem = f"group {req.group.name} has no offset for queue {queue.id} of {queue.topic.name}"
            return s.GetOffsetResponse(status=status(d.OFFSET_NOT_FOUND, problem))
        return s.GetOffsetResponse(status=OK, offset=offset)

    async def query_offset(self, req: s.QueryOffsetRequest, call: CallContext) -> s.QueryOffsetResponse:
        queue = req.message_queue
        refused = self._queue_refused(queue)
        if refused is not None:
            return s.QueryOffsetResponse(status=refused)
        store, topic = self.ctx.store, queue.topic.name
        if req.query_offset_policy == d.BEGINNING:
            offset = store.min_offset(topic, queue.id)
        elif req.query_offset_policy == d.END:
            offset = store.max_offset(topic, queue.id)
        elif req.HasField("timestamp"):
            try:
                at_ms = timestamp_ms(req.timestamp, "timestamp")
            except ValueError as err:
                return s.QueryOffsetResponse(status=status(d.BAD_REQUEST, str(err)))
            offset = await store.search_offset_by_timestamp(topic, queue.id, at_ms, "lower")
        else:
            return s.QueryOffsetResponse(status=status(d.BAD_REQUEST, "the TIMESTAMP policy needs a timestamp"))
        return s.QueryOffsetResponse(status=OK, offset=offset)
