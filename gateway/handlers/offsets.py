"""Consumer offsets and queue offsets (ConsumerManageProcessor and the offset parts of AdminBrokerProcessor)."""

from __future__ import annotations

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from codec.headers import (
    OffsetResponseHeader,
    QueryConsumerOffsetRequestHeader,
    SearchOffsetRequestHeader,
    TopicQueueRequestHeader,
    UpdateConsumerOffsetRequestHeader,
    decode_header,
    encode_header,
)
from gateway.context import BrokerContext
from remoting.connection import Connection
from remoting.errors import RequestError


def _offset(cmd: RemotingCommand, value: int) -> RemotingCommand:
    return cmd.response(ResponseCode.SUCCESS, ext_fields=encode_header(OffsetResponseHeader(offset=value)))


class OffsetHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def _check_queue(self, topic: str, queue_id: int) -> None:
        cfg = self.ctx.topics.get(topic)
        if cfg is not None and not 0 <= queue_id < max(cfg.read_queue_nums, cfg.write_queue_nums):
            raise RequestError(ResponseCode.INVALID_PARAMETER, f"queueId[{queue_id}] is illegal for topic[{topic}]")

    async def query_consumer_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(QueryConsumerOffsetRequestHeader, cmd.ext_fields)
        store = self.ctx.store
        committed = store.get_consumer_offset(h.consumer_group, h.topic, h.queue_id)
        if committed is not None:
            return _offset(cmd, committed)
        # A young queue whose first message is still stored: a new group starts from 0, as the Java broker does.
        if (
            h.set_zero_if_not_found is not False
            and store.min_offset(h.topic, h.queue_id) == 0
            and (store.max_offset(h.topic, h.queue_id) > 0)
        ):
            return _offset(cmd, 0)
        return cmd.response(
            ResponseCode.QUERY_NOT_FOUND, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"
        )

    async def update_consumer_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(UpdateConsumerOffsetRequestHeader, cmd.ext_fields)
        self._check_queue(h.topic, h.queue_id)
        self.ctx.store.set_consumer_offset(h.consumer_group, h.topic, h.queue_id, h.commit_offset)
        self.ctx.invariants.offset_committed(h.consumer_group, h.topic, h.queue_id, h.commit_offset)
        return cmd.response(ResponseCode.SUCCESS)

    async def max_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(TopicQueueRequestHeader, cmd.ext_fields)
        return _offset(cmd, self.ctx.store.max_offset(h.topic, h.queue_id))

    async def min_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(TopicQueueRequestHeader, cmd.ext_fields)
        return _offset(cmd, self.ctx.store.min_offset(h.topic, h.queue_id))

    async def search_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(SearchOffsetRequestHeader, cmd.ext_fields)
        boundary = (h.boundary_type or "lower").lower()
        if boundary not in ("lower", "upper"):
            raise RequestError(ResponseCode.INVALID_PARAMETER, f"boundaryType {h.boundary_type!r} is not lower/upper")
        offset = await self.ctx.store.search_offset_by_timestamp(
            h.topic, h.queue_id, h.timestamp, "upper" if boundary == "upper" else "lower"
        )
        return _offset(cmd, offset)

    async def earliest_store_time(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(TopicQueueRequestHeader, cmd.ext_fields)
        ts = await self.ctx.store.earliest_store_time(h.topic, h.queue_id)
        if ts < 0:
            return cmd.response(ResponseCode.SYSTEM_ERROR, f"no message in queue {h.topic}:{h.queue_id}")
        return cmd.response(ResponseCode.SUCCESS, ext_fields={"timestamp": str(ts)})
