"""QUERY_MESSAGE by key or unique id, VIEW_MESSAGE_BY_ID by commit-log offset (QueryMessageProcessor)."""

from __future__ import annotations

from codec.codes import ResponseCode
from codec.command import RemotingCommand
from codec.headers import QueryMessageRequestHeader, ViewMessageRequestHeader, decode_header
from gateway.context import BrokerContext
from remoting.connection import Connection

DEFAULT_QUERY_MAX = 32  # defaultQueryMaxNum


class QueryHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    async def query_message(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(QueryMessageRequestHeader, cmd.ext_fields)
        max_num = h.max_num
        if cmd.ext_fields.get("_UNIQUE_KEY_QUERY", "").lower() == "true":
            max_num = DEFAULT_QUERY_MAX
        max_num = max(1, min(max_num, 64))
        records = await self.ctx.store.query_by_key(h.topic, h.key, max_num, h.begin_timestamp, h.end_timestamp)
        ext = {"indexLastUpdateTimestamp": "0", "indexLastUpdatePhyoffset": "0"}
        if not records:
            return cmd.response(ResponseCode.QUERY_NOT_FOUND, "can not find message, maybe time range not correct", ext)
        return cmd.response(ResponseCode.SUCCESS, ext_fields=ext, body=b"".join(records))

    async def view_message(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(ViewMessageRequestHeader, cmd.ext_fields)
        record = await self.ctx.store.get_by_phys_offset(h.offset)
        if record is None:
            return cmd.response(ResponseCode.SYSTEM_ERROR, f"can not find message by the offset, {h.offset}")
        return cmd.response(ResponseCode.SUCCESS, body=record)
