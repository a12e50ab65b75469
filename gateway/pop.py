"""POP consumption (Apache's PopMessageProcessor, AckMessageProcessor, ChangeInvisibleTimeProcessor), shared by the
gRPC ReceiveMessage / AckMessage / ChangeInvisibleDuration / ForwardMessageToDeadLetterQueue.

Per (group, topic, queue) the store keeps a pop offset (the next message not looked at yet) and the in-flight
messages: handed out and invisible until some time, or, in a FIFO group, waiting for their message group's turn.
A receive first hands out again what became visible (``attempt + 1``), then new messages from the pop offset, and
records all of it in one transaction before answering: what a consumer was given is durable, an ack is durable
before it is answered, so after ``kill -9`` an acked message never comes back and an unacked one always does.

Differences from Apache (docs/compatibility.md): a message that was not acked in time is handed out again from
where it is stored (same queue and offset) rather than through ``%RETRY%<group>``; a FIFO group hands out one
message per message group at a time (Apache: a batch per queue, the queue blocked until all of it is acked).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from codec.codes import PROPERTY_SHARDING_KEY
from codec.properties import decode_properties
from codec.record import StoredMessage, decode_record, properties_of
from gateway.context import BrokerContext
from gateway.handlers.sendback import resend_request
from gateway.retry import dlq_topic
from store.api import InFlight

RECEIPT_PREFIX = "pmq1"
MIN_RECEIVE_INVISIBLE_MS = 10_000  # the proxy's minInvisibleTimeMillsForRecv
MAX_INVISIBLE_MS = 12 * 3600 * 1000  # maxInvisibleTimeMills
MAX_IN_FLIGHT = 2048  # per group and queue: past this many unsettled messages no new ones are handed out
MAX_SCAN = 2048  # messages looked at per queue and receive (filters)
MAX_BATCH = 64
MAX_RECEIVE_BYTES = 4 * 1024 * 1024
AUTO_RENEW_INVISIBLE_MS = 60_000  # defaultInvisibleTimeMills: a push consumer's receive (auto_renew), per renewal
RENEW_MAX_MS = 3 * 3600 * 1000  # renewMaxTimeMillis: no renewal past this long after the delivery
MAX_WATCHED = 4096  # (group, topic) pairs whose next visibility time is remembered before old ones are dropped

Accept = Callable[[int, bytes], bool] | None


@dataclass(frozen=True, slots=True)
class Receipt:
    queue_id: int
    queue_offset: int
    generation: int

    def encode(self) -> str:
        return f"{RECEIPT_PREFIX} {self.queue_id} {self.queue_offset} {self.generation}"

    @classmethod
    def decode(cls, handle: str) -> Receipt:
        parts = handle.split(" ")
        if len(parts) != 4 or parts[0] != RECEIPT_PREFIX or not all(p.isdigit() and len(p) < 20 for p in parts[1:]):
            raise InvalidReceipt(f"receipt handle {handle[:80]!r} was not issued by this broker")
        return cls(int(parts[1]), int(parts[2]), int(parts[3]))


class InvalidReceipt(ValueError):
    pass


class OutOfDate(Exception):
    """The handle's message was acked, dead-lettered or handed out again since."""


@dataclass(slots=True)
class Popped:
    message: StoredMessage
    offset_msg_id: str
    receipt: Receipt
    attempt: int
    invisible_ms: int


@dataclass(slots=True)
class ReceiveRequest:
    group: str
    topic: str
    accept: Accept
    batch: int
    invisible_ms: int
    fifo: bool
    max_attempts: int
    renew_for: str | None = None  # auto_renew: the client whose deliveries stay invisible while it is connected


@dataclass(frozen=True, slots=True)
class _Renewal:
    generation: int
    client_id: str
    since_ms: int


class PopService:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._generation = time.time_ns()  # unique across restarts: handles from before one are out of date
        self._next_visible: dict[tuple[str, str], int] = {}  # when an in-flight message becomes visible next
        self._rotation = 0
        # auto_renew deliveries by (group, topic, queue, offset). The proxy renews them ahead of time; here a
        # receive that finds one visible again extends it instead, while its client is connected: the same
        # effect, with no timer, and the client's receipt handle stays valid.
        self._renewals: dict[tuple[str, str, int, int], _Renewal] = {}
        self.client_connected: Callable[[str], bool] = lambda _client_id: False

    def _new_generation(self) -> int:
        self._generation += 1
        return self._generation

    def _locked(self, group: str, topic: str) -> asyncio.Lock:
        return self._locks.setdefault((group, topic), asyncio.Lock())

    def _release(self, key: tuple[str, str], lock: asyncio.Lock) -> None:
        if not lock.locked() and self._locks.get(key) is lock:
            del self._locks[key]  # nobody waits: the table holds only groups receiving right now

    # ---- receive -----------------------------------------------------------------------------------

    async def receive(self, req: ReceiveRequest, poll_ms: int) -> list[Popped]:
        """Hand out up to ``req.batch`` messages, waiting up to ``poll_ms`` for the first (long polling)."""
        deadline = anyio.current_time() + poll_ms / 1000
        while True:
            topic = self.ctx.topics.get(req.topic)
            queues = range(topic.read_queue_nums) if topic is not None else range(0)
            event = self.ctx.waits.park_all(req.topic, queues)
            try:
                popped = await self.receive_now(req)
                remaining = deadline - anyio.current_time()
                if popped or remaining <= 0 or self.ctx.waits.closing:
                    return popped
                next_visible = self._next_visible.get((req.group, req.topic))
                if next_visible is not None:
                    remaining = min(remaining, max(next_visible - self.ctx.clock.now_ms(), 0) / 1000 + 0.001)
                with anyio.move_on_after(remaining):
                    await event.wait()
            finally:
                self.ctx.waits.cancel_all(req.topic, queues, event)

    async def receive_now(self, req: ReceiveRequest) -> list[Popped]:
        key = (req.group, req.topic)
        lock = self._locked(*key)
        try:
            async with lock:
                topic = self.ctx.topics.get(req.topic)
                if topic is None:
                    return []
                self._next_visible.pop(key, None)
                count = topic.read_queue_nums
                self._rotation += 1
                out: list[Popped] = []
                size = 0
                for i in range(count):
                    want = req.batch - len(out)
                    if want <= 0 or size >= MAX_RECEIVE_BYTES:
                        break
                    taken = await self._take(req, (self._rotation + i) % count, want)
                    out += taken
                    size += sum(len(p.message.body) for p in taken)
                return out
        finally:
            self._release(key, lock)

    def _record(self, topic: str, queue_id: int, offset: int) -> bytes | None:
        pulled = self.ctx.store.pull(topic, queue_id, offset, 1, 1 << 30)
        if not pulled.records or pulled.next_offset != offset + 1:
            return None
        return pulled.records[0]

    def _popped(self, message: StoredMessage | bytes, row: InFlight, queue_id: int, invisible_ms: int) -> Popped:
        if not isinstance(message, StoredMessage):
            message, _ = decode_record(message)
        return Popped(
            message,
            self.ctx.msg_id(message.phys_offset),
            Receipt(queue_id, row.queue_offset, row.generation),
            row.attempt,
            invisible_ms,
        )

    def _first_offset(self, group: str, topic: str, queue_id: int) -> int:
        committed = self.ctx.store.get_consumer_offset(group, topic, queue_id)
        if committed is not None:
            return committed
        store = self.ctx.store
        # ConsumeInitMode.MAX, as the proxy asks, where Apache starts from 0 while the queue's first message is
        # still in memory: from the start of a queue that never lost a message, else from its end.
        return 0 if store.min_offset(topic, queue_id) == 0 else store.max_offset(topic, queue_id)

    async def _take(self, req: ReceiveRequest, queue_id: int, want: int) -> list[Popped]:
        store, now = self.ctx.store, self.ctx.clock.now_ms()
        group, topic = req.group, req.topic
        rows = await store.in_flight(group, topic, queue_id, MAX_IN_FLIGHT)
        blocked: set[str] = set()  # FIFO: message groups with an earlier message still unsettled
        changed: list[InFlight] = []
        out: list[Popped] = []
        dead: list[tuple[InFlight, bytes]] = []
        visible_until = now + req.invisible_ms
        next_visible: int | None = None
        for row in rows:
            if len(out) >= want:
                break
            message_group = row.message_group if req.fifo else None
            if message_group is not None and message_group in blocked:
                continue
            if row.visible_ms > now:
                if message_group is not None:
                    blocked.add(message_group)
                next_visible = row.visible_ms if next_visible is None else min(next_visible, row.visible_ms)
                continue
            if message_group is not None:
                blocked.add(message_group)
            if self._renewed(group, topic, queue_id, row, now):
                visible = now + AUTO_RENEW_INVISIBLE_MS
                changed.append(InFlight(row.queue_offset, visible, row.attempt, row.generation, row.message_group))
                next_visible = visible if next_visible is None else min(next_visible, visible)
                continue
            record = self._record(topic, queue_id, row.queue_offset)
            if record is None:  # the message is gone (its topic deleted and made again): nothing to hand out
                await store.settle_pop(group, topic, [(queue_id, row.queue_offset, row.generation)])
                self.ctx.invariants.fifo_settled(group, topic, queue_id, row.queue_offset)
                continue
            if row.attempt + 1 > req.max_attempts:
                self.ctx.invariants.dead_lettered(group, topic, row.attempt, req.max_attempts, forced=False)
                dead.append((row, record))
                continue
            handed = InFlight(
                row.queue_offset, visible_until, row.attempt + 1, self._new_generation(), row.message_group
            )
            changed.append(handed)
            self._track(req, queue_id, handed, now)
            out.append(self._popped(record, handed, queue_id, req.invisible_ms))
            self._observe(req, queue_id, out[-1], handed, now)
        pop_offset = await store.pop_offset(group, topic, queue_id)
        start = self._first_offset(group, topic, queue_id) if pop_offset is None else pop_offset
        offset, scanned = start, 0
        end = store.max_offset(topic, queue_id)
        room = MAX_IN_FLIGHT - len(rows)
        while len(out) < want and offset < end and scanned < MAX_SCAN and room > 0:
            pulled = store.pull(topic, queue_id, offset, min(want - len(out), room), 1 << 30, req.accept, MAX_SCAN)
            scanned += max(pulled.examined, 1)
            for record in pulled.records:
                message, _ = decode_record(record)
                message_group = None
                if req.fifo:
                    message_group = decode_properties(properties_of(record)).get(PROPERTY_SHARDING_KEY)
                room -= 1
                if message_group is not None and message_group in blocked:
                    changed.append(InFlight(message.queue_offset, 0, 0, 0, message_group))  # waits for its turn
                    continue
                if message_group is not None:
                    blocked.add(message_group)
                handed = InFlight(message.queue_offset, visible_until, 1, self._new_generation(), message_group)
                changed.append(handed)
                self._track(req, queue_id, handed, now)
                out.append(self._popped(message, handed, queue_id, req.invisible_ms))
                self._observe(req, queue_id, out[-1], handed, now)
            if pulled.next_offset <= offset:
                break
            offset = pulled.next_offset
        if changed or offset != start or pop_offset is None:
            await store.save_pop(group, topic, queue_id, offset, changed)
        if next_visible is not None:
            key = (group, topic)
            self._note_visible(key, next_visible)
        for row, record in dead:
            await self._dead_letter(group, topic, queue_id, row, record)
        self._commit_progress(group, topic, queue_id, rows, changed, offset)
        return out

    def _observe(self, req: ReceiveRequest, queue_id: int, popped: Popped, handed: InFlight, now: int) -> None:
        invariants = self.ctx.invariants
        if not invariants.enabled:
            return
        invariants.delivered(req.group, popped.message)
        if req.fifo and handed.message_group is not None:
            invariants.fifo_handed(
                req.group, req.topic, queue_id, handed.message_group, handed.queue_offset, handed.visible_ms, now
            )

    def _note_visible(self, key: tuple[str, str], visible_ms: int) -> None:
        if len(self._next_visible) >= MAX_WATCHED and key not in self._next_visible:
            now = self.ctx.clock.now_ms()  # groups that stopped receiving leave entries behind: drop the past ones
            self._next_visible = {k: v for k, v in self._next_visible.items() if v > now}
        self._next_visible[key] = min(self._next_visible.get(key, visible_ms), visible_ms)

    def _track(self, req: ReceiveRequest, queue_id: int, handed: InFlight, now: int) -> None:
        key = (req.group, req.topic, queue_id, handed.queue_offset)
        if req.renew_for is None:
            self._renewals.pop(key, None)
        else:
            self._renewals[key] = _Renewal(handed.generation, req.renew_for, now)

    def _renewed(self, group: str, topic: str, queue_id: int, row: InFlight, now: int) -> bool:
        """Whether a visible-again auto_renew delivery stays with its client (which is still connected)."""
        key = (group, topic, queue_id, row.queue_offset)
        renewal = self._renewals.get(key)
        if renewal is None:
            return False
        if (
            renewal.generation == row.generation
            and now - renewal.since_ms < RENEW_MAX_MS
            and self.client_connected(renewal.client_id)
        ):
            return True
        del self._renewals[key]
        return False

    def _forget(self, group: str, topic: str, receipt: Receipt) -> None:
        self._renewals.pop((group, topic, receipt.queue_id, receipt.queue_offset), None)

    def _commit_progress(
        self, group: str, topic: str, queue_id: int, rows: list[InFlight], changed: list[InFlight], pop_offset: int
    ) -> None:
        """The group's consumer offset as admin tools show it: the lowest offset not yet settled."""
        lowest = min([r.queue_offset for r in rows[:1]] + [r.queue_offset for r in changed[:1]] + [pop_offset])
        self.ctx.store.set_consumer_offset(group, topic, queue_id, lowest)

    async def _dead_letter(self, group: str, topic: str, queue_id: int, row: InFlight, record: bytes) -> None:
        """Store the message in ``%DLQ%<group>`` first, then forget it: a crash between the two leaves a copy in
        the dead-letter queue and the message in flight (handed to the dead-letter queue again), never neither."""
        message, _ = decode_record(record)
        dlq = dlq_topic(group)
        await self.ctx.topics.ensure_system_topic(dlq, 1)
        request = resend_request(self.ctx, message, dlq, 0, None, reconsume_times=row.attempt)
        with anyio.CancelScope(shield=True):
            await self.ctx.store.append([request])
            await self.ctx.store.settle_pop(group, topic, [(queue_id, row.queue_offset, row.generation)])
        self.ctx.invariants.fifo_settled(group, topic, queue_id, row.queue_offset)
        self.ctx.waits.notify(dlq, 0)

    # ---- ack, change, dead-letter --------------------------------------------------------------------

    async def ack(self, group: str, topic: str, handle: str) -> None:
        """Raises InvalidReceipt for a handle this broker never issued, OutOfDate when it no longer names the
        message's current delivery."""
        [problem] = await self.ack_all(group, topic, [handle])
        if problem is not None:
            raise problem

    async def ack_all(self, group: str, topic: str, handles: Sequence[str]) -> list[Exception | None]:
        """Ack several deliveries in one transaction; per handle None, or why it was not acked."""
        out: list[Exception | None] = []
        receipts: list[Receipt] = []
        for handle in handles:
            try:
                receipts.append(Receipt.decode(handle))
                out.append(None)
            except InvalidReceipt as err:
                out.append(err)
        settled = iter(await self.ctx.store.settle_pop(
            group, topic, [(r.queue_id, r.queue_offset, r.generation) for r in receipts]
        ))  # fmt: skip
        queues = set()
        done = iter(receipts)
        for i, handle in enumerate(handles):
            if out[i] is not None:
                continue
            receipt = next(done)
            if next(settled):
                self._forget(group, topic, receipt)
                self.ctx.invariants.fifo_settled(group, topic, receipt.queue_id, receipt.queue_offset)
                queues.add(receipt.queue_id)
            else:
                out[i] = OutOfDate(f"the message of receipt handle {handle!r} was acked or delivered again since")
        for queue_id in queues:
            rows = await self.ctx.store.in_flight(group, topic, queue_id, 1)
            pop_offset = await self.ctx.store.pop_offset(group, topic, queue_id)
            if pop_offset is not None:
                self._commit_progress(group, topic, queue_id, rows, [], pop_offset)
        return out

    async def change_invisible(self, group: str, topic: str, handle: str, invisible_ms: int) -> Receipt:
        """The message stays in flight, visible again ``invisible_ms`` from now; the new handle replaces the old."""
        receipt = Receipt.decode(handle)
        new = Receipt(receipt.queue_id, receipt.queue_offset, self._new_generation())
        visible = self.ctx.clock.now_ms() + invisible_ms
        moved = await self.ctx.store.move_pop(
            group, topic, receipt.queue_id, receipt.queue_offset, receipt.generation, new.generation, visible
        )
        if not moved:
            raise OutOfDate(f"the message of receipt handle {handle!r} was acked or delivered again since")
        self._forget(group, topic, receipt)
        key = (group, topic)
        self._note_visible(key, visible)
        self.ctx.waits.notify(topic, receipt.queue_id)  # a receive waiting meanwhile looks again, or waits until then
        return new

    async def forward_to_dead_letter(self, group: str, topic: str, handle: str, attempt: int) -> None:
        receipt = Receipt.decode(handle)
        record = self._record(topic, receipt.queue_id, receipt.queue_offset)
        rows = await self.ctx.store.in_flight(group, topic, receipt.queue_id, MAX_IN_FLIGHT)
        row = next((r for r in rows if r.queue_offset == receipt.queue_offset), None)
        if record is None or row is None or row.generation != receipt.generation:
            raise OutOfDate(f"the message of receipt handle {handle!r} was acked or delivered again since")
        row.attempt = max(row.attempt, attempt)
        await self._dead_letter(group, topic, receipt.queue_id, row, record)
        self._forget(group, topic, receipt)
