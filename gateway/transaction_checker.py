"""Back-checks of pending half messages: CHECK_TRANSACTION_STATE to a live producer of the message's group.

Pending half messages are few (a transaction normally resolves in milliseconds), so they are kept in memory,
loaded from the store at start, and every change is written to the store before it counts. Nothing is checked
while no producer of the group is connected; a producer's heartbeat wakes the checker again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from codec.codes import (
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_TRANSACTION_CHECK_TIMES,
    PROPERTY_UNIQ_KEY,
    RequestCode,
)
from codec.command import request
from codec.headers import CheckTransactionStateRequestHeader, encode_header
from codec.message_id import encode_offset_msg_id
from codec.properties import append_properties, decode_properties, remove_properties
from codec.record import StoredMessage, decode_record, encode_record
from gateway.clock import Clock
from gateway.transactions import CheckPolicy, HalfState
from remoting.connection import Connection
from store.api import HalfMessage, MessageStore

log = logging.getLogger("pocketmq.transactions")

IDLE_CHECK_MS = 60_000


def check_request_body(half: StoredMessage, check_times: int) -> bytes:
    """The half message as the producer must see it in a check: its real topic and queue, with PGROUP and
    UNIQ_KEY, and TRANSACTION_CHECK_TIMES counting this check."""
    props = decode_properties(half.properties)
    half.topic = props.get(PROPERTY_REAL_TOPIC, half.topic)
    half.queue_id = int(props.get(PROPERTY_REAL_QUEUE_ID, half.queue_id))
    half.properties = append_properties(
        remove_properties(half.properties, frozenset({PROPERTY_TRANSACTION_CHECK_TIMES})),
        {PROPERTY_TRANSACTION_CHECK_TIMES: str(check_times)},
    )
    return bytes(encode_record(half))


class TransactionChecker:
    def __init__(
        self,
        store: MessageStore,
        clock: Clock,
        policy: CheckPolicy,
        find_producer: Callable[[str], Connection | None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.find_producer = find_producer
        self.pending: dict[int, HalfMessage] = {}
        self._wake = anyio.Event()
        self.checks_sent = 0
        self.discarded = 0
        self.checked_at = -1  # the clock time of the last pass over the due checks
        self._idle = anyio.Event()  # set, and replaced, whenever the loop goes to sleep

    async def load(self) -> None:
        self.pending = {h.phys_offset: h for h in await self.store.pending_half_messages()}

    def added(self, half: HalfMessage) -> None:
        self.pending[half.phys_offset] = half
        self._wake.set()

    def resolved(self, phys_offset: int) -> None:
        self.pending.pop(phys_offset, None)

    def producer_online(self) -> None:
        """A producer registered: checks that waited for one can go now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = anyio.Event()
            now = self.clock.now_ms()
            for half in sorted(self.pending.values(), key=lambda h: h.next_check_ms):
                if half.next_check_ms > now:
                    break
                conn = self.find_producer(half.producer_group)
                if conn is None:
                    continue  # resumes when a producer of the group registers
                await self._check_or_discard(half, conn, now)
            upcoming = [h.next_check_ms for h in self.pending.values() if h.next_check_ms > now]
            self.checked_at = now
            self._idle.set()
            self._idle = anyio.Event()
            await self.clock.sleep_until(min(upcoming, default=now + IDLE_CHECK_MS), self._wake)

    def next_check_after(self, now_ms: int) -> int | None:
        """The earliest check due after ``now_ms`` (None: none pending)."""
        return min((h.next_check_ms for h in self.pending.values() if h.next_check_ms > now_ms), default=None)

    async def caught_up(self, now_ms: int) -> None:
        """Return once every check due at ``now_ms`` is sent (or waits for a producer to connect)."""
        while self.checked_at < now_ms:
            idle = self._idle
            self._wake.set()
            await idle.wait()

    async def _check_or_discard(self, half: HalfMessage, conn: Connection, now: int) -> None:
        if self.policy.exhausted(half.check_times):
            if await self.store.update_half(
                half.phys_offset, state=HalfState.DISCARDED, check_times=half.check_times, next_check_ms=0, now_ms=now
            ):
                log.warning(
                    "discarding half message %d (transaction %s of %s) after %d checks without an answer",
                    half.phys_offset, half.transaction_id, half.producer_group, half.check_times,
                )  # fmt: skip
                self.discarded += 1
            self.resolved(half.phys_offset)
            return
        record = await self.store.get_by_phys_offset(half.phys_offset)
        if record is None:
            log.error("half message %d is pending but not stored; forgetting it", half.phys_offset)
            self.resolved(half.phys_offset)
            return
        # The interval counts from now, not from when this round began: reading the record may have taken a while.
        now = self.clock.now_ms()
        check_times, next_check = self.policy.after_check(half.check_times, now)
        if not await self.store.update_half(
            half.phys_offset, state=HalfState.PENDING, check_times=check_times, next_check_ms=next_check, now_ms=now
        ):
            self.resolved(half.phys_offset)  # resolved meanwhile
            return
        half.check_times, half.next_check_ms = check_times, next_check
        msg, _ = decode_record(record)
        uniq = decode_properties(msg.properties).get(PROPERTY_UNIQ_KEY, half.transaction_id)
        offset_msg_id = encode_offset_msg_id(msg.store_host, msg.store_port, half.phys_offset)
        body = check_request_body(msg, check_times)
        header = CheckTransactionStateRequestHeader(
            tran_state_table_offset=msg.queue_offset,
            commit_log_offset=half.phys_offset,
            msg_id=uniq,
            transaction_id=uniq,
            offset_msg_id=offset_msg_id,
            topic=msg.topic,
        )
        conn.send_oneway(request(RequestCode.CHECK_TRANSACTION_STATE, encode_header(header), body))
        self.checks_sent += 1
        log.info(
            "checked transaction %s of %s (check %d) with %s", half.transaction_id, half.producer_group, check_times,
            conn.peer_text,
        )  # fmt: skip
