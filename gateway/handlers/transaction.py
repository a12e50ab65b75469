"""END_TRANSACTION: commit (deliver into the real topic, exactly once) or roll back a half message."""

from __future__ import annotations

from codec.codes import (
    PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS,
    PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_TRAN_MSG,
    PROPERTY_WAIT,
    TRANSACTION_COMMIT_TYPE,
    TRANSACTION_ROLLBACK_TYPE,
    TRANSACTION_TYPE_MASK,
    ResponseCode,
)
from codec.command import RemotingCommand
from codec.headers import EndTransactionRequestHeader, decode_header
from codec.properties import append_properties, decode_properties, remove_properties
from codec.record import StoredMessage, decode_record
from gateway.context import BrokerContext
from gateway.messages import append_request
from gateway.transactions import HalfEvent, HalfState, TransitionRefused, next_state
from remoting.connection import Connection
from remoting.errors import RequestError
from store.errors import AlreadyResolved

_DROPPED_ON_COMMIT = frozenset({PROPERTY_REAL_TOPIC, PROPERTY_REAL_QUEUE_ID, PROPERTY_TRAN_MSG, PROPERTY_WAIT})


def committed_message(half: StoredMessage, now_ms: int) -> StoredMessage:
    """The message a commit delivers (EndTransactionProcessor.endMessageTransaction): the half message in its real
    topic and queue, without REAL_TOPIC/REAL_QID/TRAN_MSG, commit type in sysFlag, the half's offset as
    preparedTransactionOffset."""
    props = decode_properties(half.properties)
    properties = append_properties(remove_properties(half.properties, _DROPPED_ON_COMMIT), {PROPERTY_WAIT: "false"})
    return StoredMessage(
        topic=props[PROPERTY_REAL_TOPIC],
        queue_id=int(props[PROPERTY_REAL_QUEUE_ID]),
        body=half.body,
        properties=properties,
        flag=half.flag,
        sys_flag=(half.sys_flag & ~TRANSACTION_TYPE_MASK) | TRANSACTION_COMMIT_TYPE,
        born_timestamp=half.born_timestamp,
        born_host=half.born_host,
        born_port=half.born_port,
        store_timestamp=now_ms,
        store_host=half.store_host,
        store_port=half.store_port,
        reconsume_times=half.reconsume_times,
        prepared_transaction_offset=half.phys_offset,
    )


class EndTransactionHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    async def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | None:
        h = decode_header(EndTransactionRequestHeader, cmd.ext_fields)
        if h.commit_or_rollback == TRANSACTION_COMMIT_TYPE:
            event = HalfEvent.COMMIT
        elif h.commit_or_rollback == TRANSACTION_ROLLBACK_TYPE:
            event = HalfEvent.ROLLBACK
        else:
            return None  # unknown: the message stays pending and is checked again; Java answers nothing either
        half_msg, half_state = await self._find(h)
        try:
            next_state(half_state, event)
        except TransitionRefused as err:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"transaction {h.transaction_id or h.msg_id}: {err}") from err
        now = self.ctx.clock.now_ms()
        self._check_immunity(h, half_msg, now)
        if event is HalfEvent.COMMIT:
            msg = committed_message(half_msg, now)
            request = append_request(msg, decode_properties(msg.properties))
            request.commits_half = h.commit_log_offset
            try:
                await self.ctx.store.append([request])
            except AlreadyResolved as err:  # committed or rolled back meanwhile: never a second delivery
                raise RequestError(ResponseCode.SYSTEM_ERROR, f"transaction was already resolved: {err}") from err
            self.ctx.invariants.half_resolved(h.commit_log_offset, committed=True)
            self.ctx.waits.notify(msg.topic, msg.queue_id)
        elif not await self.ctx.store.update_half(
            h.commit_log_offset, state=HalfState.ROLLED_BACK, check_times=0, next_check_ms=0, now_ms=now
        ):
            raise RequestError(ResponseCode.SYSTEM_ERROR, "transaction was already resolved")
        else:
            self.ctx.invariants.half_resolved(h.commit_log_offset, committed=False)
        self.ctx.transactions.resolved(h.commit_log_offset)
        return cmd.response(ResponseCode.SUCCESS)

    async def _find(self, h: EndTransactionRequestHeader) -> tuple[StoredMessage, HalfState]:
        """The half message the request names, checked as EndTransactionProcessor.checkPrepareMessage does."""
        half = await self.ctx.store.half_message(h.commit_log_offset)
        record = await self.ctx.store.get_by_phys_offset(h.commit_log_offset) if half else None
        if half is None or record is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "Find prepared transaction message failed")
        msg, _ = decode_record(record)
        props = decode_properties(msg.properties)
        if props.get(PROPERTY_PRODUCER_GROUP, half.producer_group) != h.producer_group:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "The producer group wrong")
        if msg.queue_offset != h.tran_state_table_offset:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "The transaction state table offset wrong")
        return msg, HalfState(half.state)

    def _check_immunity(self, h: EndTransactionRequestHeader, half: StoredMessage, now: int) -> None:
        """5.x: a commit/rollback not answering a check, arriving after the message's own first-check time, is
        refused (the check is then authoritative)."""
        props = decode_properties(half.properties)
        if h.from_transaction_check or PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS not in props:
            return
        if now - half.born_timestamp > self.ctx.transaction_policy.immunity_ms(props):
            raise RequestError(
                ResponseCode.ILLEGAL_OPERATION,
                f"Message commit fail [producerGroup:{h.producer_group} transactionId:{h.transaction_id}]. "
                "It's rejected since it's not in the check immunity time",
            )
