"""Hands scheduled messages over to their real queues when due (delay levels, timers, and later retries).

Pending messages live only in the store (indexed by due time), so memory does not grow with their number.
The loop sleeps until the earliest due time, or until a message due earlier is scheduled, then appends every
due message to its real queue in due-time order, in the same transaction that removes it from the schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from codec.errors import CodecError
from codec.properties import decode_properties
from codec.record import decode_record
from gateway.clock import Clock
from gateway.delay import due_message
from gateway.invariants import InvariantChecker
from gateway.messages import append_request
from remoting.errors import RequestError
from store.api import AppendRequest, MessageStore, ScheduledEntry
from store.errors import StoreError

log = logging.getLogger("pocketmq.scheduler")

HAND_OVER_BATCH = 512
IDLE_CHECK_MS = 60_000  # with nothing scheduled, look again now and then anyway
RETRY_AFTER_ERROR_S = 1.0


def hand_over_request(entry: ScheduledEntry, now_ms: int) -> AppendRequest:
    scheduled, _ = decode_record(entry.record)
    msg = due_message(scheduled, now_ms)
    return append_request(msg, decode_properties(msg.properties), hands_over=entry.phys_offset)


class DeliveryScheduler:
    def __init__(
        self,
        store: MessageStore,
        clock: Clock,
        on_delivered: Callable[[str, int], None],
        invariants: InvariantChecker | None = None,
    ) -> None:
        self.store = store
        self.invariants = invariants
        self.clock = clock
        self.on_delivered = on_delivered  # (topic, queue_id): wakes held pulls
        self._wake = anyio.Event()
        self._next_due: int | None = None  # None while unknown: every new schedule wakes the loop
        self.delivered = 0
        self.checked_at = -1  # the clock time of the last pass that found nothing (more) due
        self._idle = anyio.Event()  # set, and replaced, whenever the loop goes to sleep

    def scheduled(self, due_ms: int) -> None:
        """A message due at ``due_ms`` was just stored; wake the loop if it is due before the current sleep ends."""
        if self._next_due is None or due_ms < self._next_due:
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._next_due = None
            self._wake = anyio.Event()
            now = self.clock.now_ms()
            try:
                due = await self.store.due_scheduled(now, HAND_OVER_BATCH)
                if due:
                    await self._hand_over(due, now)
                    continue
                next_due = await self.store.next_due_ms()
            except StoreError as err:
                log.error("scheduled delivery failed, retrying: %s", err)
                await anyio.sleep(RETRY_AFTER_ERROR_S)
                continue
            self._next_due = next_due if next_due is not None else now + IDLE_CHECK_MS
            self.checked_at = now
            self._idle.set()
            self._idle = anyio.Event()
            await self.clock.sleep_until(self._next_due, self._wake)

    async def caught_up(self, now_ms: int) -> None:
        """Return once every message due at ``now_ms`` is handed over (the virtual clock's advance)."""
        while self.checked_at < now_ms:
            idle = self._idle
            self._wake.set()
            await idle.wait()

    async def _hand_over(self, due: list[ScheduledEntry], now: int) -> None:
        requests = []
        for entry in due:
            try:
                requests.append(hand_over_request(entry, now))
                if self.invariants is not None:
                    last = requests[-1]
                    self.invariants.handed_over(last.topic, last.queue_id, entry.due_ms, now, entry.phys_offset)
            except (CodecError, ValueError, RequestError) as err:
                # Unreadable: deliver nothing for it, but take it out of the schedule so it cannot block the rest.
                log.error("dropping unreadable scheduled message at %d: %s", entry.phys_offset, err)
                await self._drop(entry)
        if not requests:
            return
        await self.store.append(requests)
        self.delivered += len(requests)
        for queue in dict.fromkeys((r.topic, r.queue_id) for r in requests):
            self.on_delivered(*queue)

    async def _drop(self, entry: ScheduledEntry) -> None:
        await self.store.unschedule(entry.phys_offset)
