"""The narrow interface between the broker and its storage.

The broker encodes each message as a complete stored record (the exact bytes a pull returns, see
``codec.record``) with its queue offset and physical offset left at zero. The store assigns both,
patches them into the record with ``codec.record.set_offsets`` and persists it. Everything the broker
needs to answer pulls, offset queries and lookups goes through this Protocol; ``store.sqlite`` is the
only implementation and the only module that imports sqlite3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from runtime.completion import Completion


@dataclass(slots=True)
class AppendRequest:
    """One message to store. ``record`` is patched in place with the offsets the store assigns."""

    topic: str
    queue_id: int
    record: bytearray
    tags_code: int
    keys: tuple[str, ...]  # values of the KEYS property (space-split) plus the UNIQ_KEY, for QUERY_MESSAGE
    store_timestamp: int  # ms; also written inside the record by the caller
    # Deferred delivery (delay levels, timers, retries): the record is stored (in a schedule topic) and also
    # entered in the schedule, due at this time (ms).
    due_ms: int | None = None
    # Hand-over: this append delivers the scheduled message stored at this physical offset; its schedule entry
    # is removed in the same transaction, so a message is delivered exactly once even across a crash.
    hands_over: int | None = None
    # Transactions: this append stores a half message (and enters it in the half-message table), or commits the
    # pending half message stored at this physical offset (it is marked committed in the same transaction).
    half: HalfMessage | None = None
    commits_half: int | None = None


@dataclass(slots=True)
class RecordRun:
    """Plain messages for one queue, encoded back to back in one buffer: the items of a batch send. Stored like
    as many ``AppendRequest``s, without an object per message; ``records`` is patched in place."""

    topic: str
    queue_id: int
    records: bytearray
    ends: list[int]  # the end of each record in ``records``
    tags_codes: list[int]
    keys: list[tuple[str, ...]]  # per record, as ``AppendRequest.keys``
    store_timestamp: int  # of every record


class AppendResult(NamedTuple):
    queue_offset: int
    phys_offset: int


class PulledRecords(NamedTuple):
    """What a pull read: the records taken (stored bytes, ready to concatenate), the offset to pull from next,
    and how many records were looked at (taken or filtered out)."""

    records: list[bytes]
    next_offset: int
    examined: int


@dataclass(slots=True, frozen=True)
class StoredEntry:
    """A stored message as read back for a queue scan."""

    queue_offset: int
    tags_code: int
    record: bytes


@dataclass(slots=True)
class HalfMessage:
    """A transactional half message and where it stands (``state``: pending, committed, rolled_back, discarded)."""

    phys_offset: int  # 0 until stored; the store fills it in
    producer_group: str
    transaction_id: str
    state: str
    check_times: int
    next_check_ms: int
    created_ms: int
    resolved_ms: int | None = None


@dataclass(slots=True, frozen=True)
class ScheduledEntry:
    """A message waiting in the schedule."""

    phys_offset: int
    due_ms: int
    record: bytes


@dataclass(slots=True)
class InFlight:
    """A message a POP consumer group was handed (or that waits for its message group's turn), per queue."""

    queue_offset: int
    visible_ms: int  # invisible to the group until then (ms); 0: never handed out, waiting for its FIFO turn
    attempt: int  # deliveries so far
    generation: int  # names the current delivery: a receipt handle with another one is out of date
    message_group: str | None = None  # FIFO consumer groups only


@dataclass(slots=True)
class Expired:
    """What one retention step deleted (``MessageStore.expire``)."""

    chunks: int = 0  # rows of records deleted
    messages: int = 0
    bytes: int = 0  # record bytes deleted
    more: bool = False  # the step stopped at its limit: older records may be left


@dataclass(slots=True)
class TopicConfig:
    """A topic's configuration, as Apache's TopicConfig (perm bits from PermName)."""

    topic_name: str
    read_queue_nums: int = 4
    write_queue_nums: int = 4
    perm: int = 6
    topic_filter_type: str = "SINGLE_TAG"
    topic_sys_flag: int = 0
    order: bool = False
    attributes: dict[str, str] = field(default_factory=dict)  # e.g. message.type (TopicAttributes)


class MessageStore(Protocol):
    """What the broker needs from storage. All offsets are logical per (topic, queue) except ``phys_offset``."""

    async def open(self) -> None:
        """Create or migrate the schema and load the per-queue counters."""

    async def close(self) -> None:
        """Finish pending writes (including buffered consumer offsets) and close cleanly."""

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Store messages atomically (all or none) and return their offsets once durably committed.

        Concurrent callers are group-committed: everything queued while a transaction is being written
        goes into the next single transaction. Queue offsets within one call are consecutive per queue.
        """

    def append_nowait(self, requests: Sequence[AppendRequest]) -> asyncio.Future[list[AppendResult]]:
        """``append`` without a coroutine: queue the messages, return the future of their offsets."""

    def append_run_nowait(self, run: RecordRun) -> asyncio.Future[AppendResult]:
        """``append_nowait`` for a run of records: the future holds the offsets of its first record (the others
        follow it: queue offsets one apart, physical offsets at ``run.ends``)."""

    def append_then(self, requests: Sequence[AppendRequest], done: Completion[list[AppendResult]]) -> None:
        """``append_nowait`` that sets ``done`` from within the group commit (runtime.completion)."""

    def append_run_then(self, run: RecordRun, done: Completion[AppendResult]) -> None:
        """``append_run_nowait`` that sets ``done`` from within the group commit."""

    after_answers: list[Callable[[], None]]
    """Called after each group commit has set its appends' results (the broker writes the answers then)."""

    def max_offset(self, topic: str, queue_id: int) -> int:
        """Next queue offset to be written (0 for an unknown queue). In memory, no I/O."""

    def min_offset(self, topic: str, queue_id: int) -> int:
        """Smallest queue offset still stored (0 for an unknown queue). In memory, no I/O."""

    def queue_exists(self, topic: str, queue_id: int) -> bool:
        """Whether any message was ever stored in this queue."""

    async def read_queue(self, topic: str, queue_id: int, offset: int, max_count: int) -> list[StoredEntry]:
        """Messages with queue offset >= ``offset``, ascending, at most ``max_count`` (an indexed range scan)."""

    def pull(
        self,
        topic: str,
        queue_id: int,
        offset: int,
        max_count: int,
        max_bytes: int,
        accept: Callable[[int, bytes], bool] | None = None,
        max_scan: int = 1 << 30,
    ) -> PulledRecords:
        """What a pull returns, read at once: records from ``offset`` that ``accept(tags_code, record)`` takes
        (all when None), at most ``max_count`` and ``max_bytes`` (the first always goes), examining at most
        ``max_scan``."""

    async def get_by_phys_offset(self, phys_offset: int) -> bytes | None:
        """The record stored at this physical (commit-log) offset, or None."""

    async def query_by_key(self, topic: str, key: str, max_num: int, begin_ts: int, end_ts: int) -> list[bytes]:
        """Records of ``topic`` carrying ``key`` (KEYS or UNIQ_KEY) stored within [begin_ts, end_ts]."""

    async def search_offset_by_timestamp(
        self, topic: str, queue_id: int, timestamp: int, boundary: Literal["lower", "upper"]
    ) -> int:
        """lower: first offset stored at or after ``timestamp`` (max offset if none);
        upper: last offset stored at or before ``timestamp`` (min offset if none)."""

    async def earliest_store_time(self, topic: str, queue_id: int) -> int:
        """Store timestamp of the message at min offset, or -1 when the queue is empty."""

    def get_consumer_offset(self, group: str, topic: str, queue_id: int) -> int | None:
        """Committed offset, or None when the group never committed one for this queue. In memory."""

    def set_consumer_offset(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        """Record a committed offset; persisted by the store in the background (at most ~1 s later) and on close."""

    def commit_log_end(self) -> int:
        """The physical offset the next stored message gets (Apache's commit log max offset)."""

    def consumer_groups(self) -> list[str]:
        """Every group with a committed offset, by name."""

    def consumer_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """All committed offsets of a group, keyed by (topic, queue_id)."""

    async def earliest_message_time(self) -> int:
        """Store timestamp (ms) of the oldest stored message, 0 when the store is empty."""

    async def due_scheduled(self, now_ms: int, limit: int) -> list[ScheduledEntry]:
        """Scheduled messages due at or before ``now_ms``, earliest first (an index range scan)."""

    async def next_due_ms(self) -> int | None:
        """Due time of the earliest scheduled message, or None when nothing is scheduled."""

    async def unschedule(self, phys_offset: int) -> bool:
        """Remove a message from the schedule without delivering it (it stays stored under its schedule topic);
        False when it was not (or no longer) scheduled."""

    async def scheduled_count(self) -> int:
        """How many messages wait in the schedule."""

    async def pending_half_messages(self) -> list[HalfMessage]:
        """Every half message still waiting for its commit or rollback."""

    async def half_message(self, phys_offset: int) -> HalfMessage | None:
        """The half message stored at this physical offset, in any state, or None."""

    async def update_half(
        self, phys_offset: int, *, state: str, check_times: int, next_check_ms: int, now_ms: int
    ) -> bool:
        """Change a pending half message (a check was sent, or it was rolled back or discarded); False when it is
        no longer pending. Durable when this returns."""

    async def save_subscription(
        self, group: str, topic: str, expression_type: str, expression: str, sub_version: int
    ) -> None:
        """Remember a group's subscription to a topic (replacing the previous one)."""

    async def load_subscriptions(self) -> list[tuple[str, str, str, str, int]]:
        """Every remembered subscription: (group, topic, expression type, expression, subVersion)."""

    async def pop_offset(self, group: str, topic: str, queue_id: int) -> int | None:
        """The next offset of the queue a POP group has not looked at yet; None before its first receive."""

    async def in_flight(self, group: str, topic: str, queue_id: int, limit: int) -> list[InFlight]:
        """The group's in-flight (and waiting) messages of the queue, lowest offset first."""

    async def save_pop(
        self, group: str, topic: str, queue_id: int, pop_offset: int | None, rows: Sequence[InFlight]
    ) -> None:
        """One receive, durable before it is answered: insert or replace ``rows`` and move the pop offset (None:
        unchanged)."""

    async def settle_pop(self, group: str, topic: str, keys: Sequence[tuple[int, int, int]]) -> list[bool]:
        """Ack (or dead-letter) in one transaction: per (queue id, queue offset, generation), forget the in-flight
        message if that generation is still its current one (True), else change nothing for it (False)."""

    async def move_pop(
        self, group: str, topic: str, queue_id: int, queue_offset: int, generation: int, new_generation: int,
        visible_ms: int,
    ) -> bool:  # fmt: skip
        """Change the invisible time of an in-flight message whose current generation is ``generation``."""

    async def subscription_groups(self) -> dict[str, str]:
        """Every saved subscription group config (JSON), by group name."""

    async def save_subscription_group(self, group: str, config_json: str) -> None: ...

    async def delete_subscription_group(self, group: str) -> None: ...

    async def load_topics(self) -> list[TopicConfig]:
        """Every persisted topic config."""

    async def save_topic(self, config: TopicConfig) -> None:
        """Insert or replace a topic config (durable when this returns)."""

    async def delete_topic(self, topic: str) -> None:
        """Remove a topic's config, messages and consumer offsets."""

    async def expire(self, stored_before_ms: int, max_bytes: int, *, regardless_of_age: bool = False) -> Expired:
        """Retention: delete the oldest messages stored before ``stored_before_ms`` (the oldest whatever their age
        with ``regardless_of_age``), at most about ``max_bytes`` of them; each queue's minimum offset advances past
        what went. Every queue keeps its newest messages as a run, so its offsets never go back, and messages still
        awaiting delivery (scheduled, pending half messages) stay with what was stored after them."""

    def space(self) -> tuple[int, int]:
        """(bytes the store takes on disk, bytes of it free for reuse)."""
