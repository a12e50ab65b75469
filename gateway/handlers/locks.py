"""LOCK_BATCH_MQ and UNLOCK_BATCH_MQ for orderly consumers (AdminBrokerProcessor.lockBatchMQ / unlockBatchMQ)."""

from __future__ import annotations

from typing import Any

from codec import jsonbody
from codec.codes import ResponseCode
from codec.command import RemotingCommand
from gateway.context import BrokerContext
from gateway.locks import MessageQueue
from remoting.connection import Connection
from remoting.errors import RequestError


def _parse(body: bytes) -> tuple[str, str, list[MessageQueue]]:
    data = jsonbody.loads(body) if body else None
    if not isinstance(data, dict):
        raise RequestError(ResponseCode.SYSTEM_ERROR, "lock request body is not a JSON object")
    group, client_id = data.get("consumerGroup"), data.get("clientId")
    if not isinstance(group, str) or not group or not isinstance(client_id, str) or not client_id:
        raise RequestError(ResponseCode.SYSTEM_ERROR, "lock request body lacks consumerGroup or clientId")
    queues = []
    for mq in data.get("mqSet") or []:
        try:
            queues.append((str(mq["topic"]), str(mq["brokerName"]), int(mq["queueId"])))
        except (KeyError, TypeError, ValueError) as err:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"bad message queue in mqSet: {mq!r}") from err
    return group, client_id, queues


def _mq_json(mq: MessageQueue) -> dict[str, Any]:
    topic, broker, queue_id = mq
    return {"brokerName": broker, "queueId": queue_id, "topic": topic}


class LockHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    async def lock(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        group, client_id, queues = _parse(cmd.body)
        granted = self.ctx.locks.try_lock(group, client_id, queues, self.ctx.clock.now_ms())
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"lockOKMQSet": [_mq_json(q) for q in granted]}))

    async def unlock(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        group, client_id, queues = _parse(cmd.body)
        self.ctx.locks.unlock(group, client_id, queues)
        return cmd.response(ResponseCode.SUCCESS)
