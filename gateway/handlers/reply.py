"""SEND_REPLY_MESSAGE(_V2): a responder's reply is pushed to the requesting client (PUSH_REPLY_MESSAGE_TO_CLIENT,
a request the broker sends on that client's connection) and stored in ``<cluster>_REPLY_TOPIC`` (ReplyMessageProcessor,
storeReplyMessageEnable=true)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import anyio

from codec.codes import (
    PROPERTY_PUSH_REPLY_TIME,
    PROPERTY_REPLY_TO_CLIENT,
    PUSH_REPLY_TIMEOUT_S,
    RequestCode,
    ResponseCode,
)
from codec.command import RemotingCommand, request
from codec.headers import SendMessageRequestHeader, decode_send_header, encode_header
from codec.properties import append_properties, decode_properties, remove_properties
from gateway.context import BrokerContext, ipv4_of
from gateway.handlers.send import SendHandler
from remoting.connection import Connection
from remoting.errors import RequestError

log = logging.getLogger("pocketmq.broker")


class ReplyHandler:
    def __init__(self, ctx: BrokerContext, send: SendHandler) -> None:
        self.ctx = ctx
        self.send = send  # storing the reply is an ordinary send to the reply topic

    async def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | Awaitable[RemotingCommand]:
        header = decode_send_header(cmd.ext_fields, v2=cmd.code == RequestCode.SEND_REPLY_MESSAGE_V2)
        now = self.ctx.clock.now_ms()
        header.properties = append_properties(
            remove_properties(header.properties or "", frozenset({PROPERTY_PUSH_REPLY_TIME})),
            {PROPERTY_PUSH_REPLY_TIME: str(now)},
        )
        props = decode_properties(header.properties)
        target = props.get(PROPERTY_REPLY_TO_CLIENT)
        if not target:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, f"the reply message has no {PROPERTY_REPLY_TO_CLIENT}")
        # The push waits for the requester's answer (up to PUSH_REPLY_TIMEOUT_S): done in a task of its own, so a
        # requester that never answers does not hold up the responder's connection (Java: replyMessageExecutor).
        return self._push_and_store(cmd, header, conn, target, now)

    async def _push_and_store(
        self, cmd: RemotingCommand, header: SendMessageRequestHeader, conn: Connection, target: str, now: int
    ) -> RemotingCommand:
        conn_id = self.ctx.clients.connection_of_client(target)
        requester = self.ctx.connections.get(conn_id) if conn_id is not None else None
        push_error = None
        if requester is None:
            push_error = f"the requester {target} is not connected to this broker"
        else:
            push_error = await self._push(requester, header, cmd, conn, now)
        stored = await self.send.send(_as_send(cmd, header), conn)
        if push_error is not None and stored.code == ResponseCode.SUCCESS:
            log.warning("reply for %s stored but not pushed: %s", target, push_error)
            stored.code = ResponseCode.SYSTEM_ERROR
            stored.remark = push_error
        return stored

    async def _push(
        self, requester: Connection, header: SendMessageRequestHeader, cmd: RemotingCommand, conn: Connection, now: int
    ) -> str | None:
        cfg = self.ctx.config
        ext = {
            "producerGroup": header.producer_group,
            "topic": header.topic,
            "defaultTopic": header.default_topic,
            "defaultTopicQueueNums": str(header.default_topic_queue_nums),
            "queueId": str(max(header.queue_id, 0)),
            "sysFlag": str(header.sys_flag),
            "bornTimestamp": str(header.born_timestamp),
            "flag": str(header.flag),
            "properties": header.properties or "",
            "reconsumeTimes": str(header.reconsume_times or 0),
            "unitMode": "true" if header.unit_mode else "false",
            "bornHost": f"{ipv4_of(conn.peer[0])}:{conn.peer[1]}",
            "storeHost": f"{self.ctx.store_host}:{cfg.port}",
            "storeTimestamp": str(now),
        }
        try:
            response = await requester.request(
                request(RequestCode.PUSH_REPLY_MESSAGE_TO_CLIENT, ext, cmd.body), timeout=PUSH_REPLY_TIMEOUT_S
            )
        except (TimeoutError, ConnectionError, anyio.BrokenResourceError, anyio.ClosedResourceError) as err:
            # ConnectionError: the requester went away while the push waited for its answer.
            return f"push reply to the requester failed: {type(err).__name__}"
        if response.code != ResponseCode.SUCCESS:
            return f"the requester refused the reply: {response.code} {response.remark}"
        return None


def _as_send(cmd: RemotingCommand, header: SendMessageRequestHeader) -> RemotingCommand:
    """The reply as a plain SEND_MESSAGE to the reply topic (long header names), for storing."""
    return RemotingCommand(
        code=RequestCode.SEND_MESSAGE,
        opaque=cmd.opaque,
        flag=cmd.flag,
        ext_fields=encode_header(header),
        body=cmd.body,
        language=cmd.language,
        version=cmd.version,
        serialize_type=cmd.serialize_type,
    )
