"""The SQLite message store: aiosqlite, WAL, group commit.

One writer task puts every append queued while the previous transaction was being written into a single
transaction, and answers its callers only after the commit. Reads use a second connection, so pulls never
wait behind writes (WAL lets readers run alongside the writer). Per-queue offset counters live in memory
and advance only after a commit; consumer offsets live in memory and are flushed in the background.

Physical offsets are commit-log byte offsets, as in RocketMQ: each message's physical offset is the
previous one plus the previous record's length, starting at 0.

This is the only module that imports aiosqlite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import aiosqlite

from codec.record import PHYS_OFFSET_POS, QUEUE_OFFSET_POS, set_offsets
from runtime.logs import RateLimitedLogs
from store.api import AppendRequest, AppendResult, HalfMessage, ScheduledEntry, StoredEntry, TopicConfig
from store.errors import AlreadyResolved, StorageUnavailable, StoreClosed, StoreError, UnstorableValue

_log = logging.getLogger(__name__)

# MIGRATIONS[i] upgrades a database from user_version i to i + 1 in one transaction. Append new steps as
# SQL scripts; never edit a released one.
MIGRATIONS: list[str] = [
    resources.files("store").joinpath("schema.sql").read_text(encoding="utf-8"),
    # 2: the schedule of deferred messages (delay levels, timers, retries), by due time.
    """
    CREATE TABLE schedule (
        phys_offset INTEGER PRIMARY KEY,  -- the scheduled message, stored in messages under a schedule topic
        due_ms      INTEGER NOT NULL
    );
    CREATE INDEX schedule_by_due ON schedule (due_ms, phys_offset);
    """,
    # 3: transactional half messages and their resolution.
    """
    CREATE TABLE half_messages (
        phys_offset    INTEGER PRIMARY KEY,  -- the half message, stored under RMQ_SYS_TRANS_HALF_TOPIC
        producer_group TEXT    NOT NULL,
        transaction_id TEXT    NOT NULL,
        state          TEXT    NOT NULL,     -- pending, committed, rolled_back, discarded
        check_times    INTEGER NOT NULL,
        next_check_ms  INTEGER NOT NULL,
        created_ms     INTEGER NOT NULL,
        resolved_ms    INTEGER
    );
    CREATE INDEX half_messages_pending ON half_messages (state, next_check_ms);
    """,
    # 4: the last subscription of every (group, topic), so filters apply right after a restart
    # (Apache keeps SQL92 filter data in consumerFilter.json for the same reason).
    """
    CREATE TABLE subscriptions (
        consumer_group  TEXT    NOT NULL,
        topic           TEXT    NOT NULL,
        expression_type TEXT    NOT NULL,
        expression      TEXT    NOT NULL,
        sub_version     INTEGER NOT NULL,
        PRIMARY KEY (consumer_group, topic)
    ) WITHOUT ROWID;
    """,
]

_OFFSET_BYTES = slice(QUEUE_OFFSET_POS, PHYS_OFFSET_POS + 8)
_BUSY_TIMEOUT_MS = 5000
_INT64 = range(-(2**63), 2**63)
_LOG_INTERVAL_S = 10.0  # at most one warning per kind of failure per interval

# What the disk says when it is full. SQLite's unix VFS turns a short write with ENOSPC into SQLITE_FULL (also
# what PRAGMA max_page_count produces); other failures to write, grow, truncate or sync a file (ENOSPC from
# fallocate, EDQUOT, EIO) arrive as the SQLITE_IOERR family (SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE, _SHMSIZE...).
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
# Failures tied to the values of one row rather than to the database: retried one row at a time.
_ROW_ERRORS = (UnicodeEncodeError, OverflowError, sqlite3.ProgrammingError, sqlite3.InterfaceError)

QueueKey = tuple[str, int]
OffsetKey = tuple[str, str, int]  # (group, topic, queue_id)
_Step = tuple[str, Sequence[Sequence[Any]]]

INSERT_MESSAGE = (
    "INSERT INTO messages (phys_offset, topic, queue_id, queue_offset, tags_code, store_timestamp, record)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SAVE_SUBSCRIPTION = (
    "INSERT OR REPLACE INTO subscriptions (consumer_group, topic, expression_type, expression, sub_version)"
    " VALUES (?, ?, ?, ?, ?)"
)
INSERT_SCHEDULE = "INSERT INTO schedule (phys_offset, due_ms) VALUES (?, ?)"
INSERT_HALF = (
    "INSERT INTO half_messages (phys_offset, producer_group, transaction_id, state, check_times, next_check_ms,"
    " created_ms) VALUES (?, ?, ?, 'pending', 0, ?, ?)"
)
COMMIT_HALF = (
    "UPDATE half_messages SET state = 'committed', resolved_ms = ? WHERE phys_offset = ? AND state = 'pending'"
)
UPDATE_HALF = (
    "UPDATE half_messages SET state = ?, check_times = ?, next_check_ms = ?, resolved_ms = ?"
    " WHERE phys_offset = ? AND state = 'pending'"
)
HALF_COLUMNS = "phys_offset, producer_group, transaction_id, state, check_times, next_check_ms, created_ms, resolved_ms"
DELETE_SCHEDULE = "DELETE FROM schedule WHERE phys_offset = ?"
# OR IGNORE: a message may carry the same key twice (in KEYS and as its UNIQ_KEY, say).
INSERT_KEY = "INSERT OR IGNORE INTO message_keys (topic, msg_key, store_timestamp, phys_offset) VALUES (?, ?, ?, ?)"
UPSERT_CONSUMER_OFFSET = (
    "INSERT INTO consumer_offsets (consumer_group, topic, queue_id, committed_offset) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (consumer_group, topic, queue_id) DO UPDATE SET committed_offset = excluded.committed_offset"
)
SET_META = "INSERT OR REPLACE INTO store_meta (name, value) VALUES (?, ?)"
SAVE_TOPIC = (
    "INSERT OR REPLACE INTO topics (topic_name, read_queue_nums, write_queue_nums, perm, topic_filter_type,"
    " topic_sys_flag, is_order) VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# Per-request reads: each is an index range scan or point lookup (tests/store checks the query plans).
READ_QUEUE = (
    "SELECT queue_offset, tags_code, record FROM messages"
    " WHERE topic = ? AND queue_id = ? AND queue_offset >= ? AND queue_offset < ?"
    " ORDER BY queue_offset LIMIT ?"
)
RECORD_AT_PHYS = "SELECT record FROM messages WHERE phys_offset = ?"
STORE_TIME_AT = "SELECT store_timestamp FROM messages WHERE topic = ? AND queue_id = ? AND queue_offset = ?"
QUERY_BY_KEY = (
    "SELECT m.record FROM message_keys AS k JOIN messages AS m ON m.phys_offset = k.phys_offset"
    " WHERE k.topic = ? AND k.msg_key = ? AND k.store_timestamp BETWEEN ? AND ?"
    " ORDER BY k.store_timestamp DESC, k.phys_offset DESC LIMIT ?"
)
DUE_SCHEDULED = (
    "SELECT s.phys_offset, s.due_ms, m.record FROM schedule AS s JOIN messages AS m ON m.phys_offset = s.phys_offset"
    " WHERE s.due_ms <= ? ORDER BY s.due_ms, s.phys_offset LIMIT ?"
)
NEXT_DUE = "SELECT MIN(due_ms) FROM schedule"  # answered from the due-time index
PER_REQUEST_READS = (READ_QUEUE, RECORD_AT_PHYS, STORE_TIME_AT, QUERY_BY_KEY, DUE_SCHEDULED, NEXT_DUE)

# Only at open: every queue's lowest and highest stored offset, in O(queues) index seeks rather than one pass
# over every message (the cost that grew start-up with the store). A recursive skip-scan over messages_by_queue
# walks the distinct (topic, queue_id) pairs: the next queue of the same topic, else the first queue of the next
# topic, each a single MIN() seek. Row-value comparisons, (topic, queue_id) > (?, ?), would read more naturally,
# but SQLite 3.40 seeks only on their first column and scans the rest of the topic. The MIN/MAX subqueries are
# separate so each is answered by one seek (one aggregate per query is what SQLite's min/max shortcut takes).
_LOAD_QUEUE_BOUNDS = """
WITH RECURSIVE queues (topic, queue_id) AS (
    SELECT topic, queue_id FROM (SELECT topic, queue_id FROM messages ORDER BY topic, queue_id LIMIT 1)
    UNION ALL
    SELECT
        COALESCE(
            (SELECT q.topic FROM messages AS m WHERE m.topic = q.topic AND m.queue_id > q.queue_id LIMIT 1),
            (SELECT MIN(m.topic) FROM messages AS m WHERE m.topic > q.topic)
        ),
        COALESCE(
            (SELECT MIN(m.queue_id) FROM messages AS m WHERE m.topic = q.topic AND m.queue_id > q.queue_id),
            (SELECT MIN(m.queue_id) FROM messages AS m
             WHERE m.topic = (SELECT MIN(n.topic) FROM messages AS n WHERE n.topic > q.topic))
        )
    FROM queues AS q WHERE q.topic IS NOT NULL
)
SELECT
    topic, queue_id,
    (SELECT MIN(m.queue_offset) FROM messages AS m WHERE m.topic = q.topic AND m.queue_id = q.queue_id),
    (SELECT MAX(m.queue_offset) FROM messages AS m WHERE m.topic = q.topic AND m.queue_id = q.queue_id)
FROM queues AS q WHERE q.topic IS NOT NULL
"""
_LAST_RECORD_END = (
    "SELECT phys_offset + length(record) FROM messages WHERE phys_offset = (SELECT MAX(phys_offset) FROM messages)"
)


def check_text(field: str, value: object) -> None:
    """Raise ``UnstorableValue`` unless ``value`` is a str that encodes as UTF-8 (as SQLite stores text)."""
    if type(value) is str and value.isascii():  # the common case, and always encodable
        return
    if not isinstance(value, str):
        raise UnstorableValue(field, value, f"not text but {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UnstorableValue(field, value, f"not encodable as UTF-8 ({err.reason} at index {err.start})") from err


def check_int(field: str, value: object) -> None:
    """Raise ``UnstorableValue`` unless ``value`` is an int in SQLite's signed 64-bit range."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnstorableValue(field, value, f"not an integer but {type(value).__name__}")
    if value not in _INT64:
        raise UnstorableValue(field, value, "outside the signed 64-bit range")


@dataclass(slots=True)
class _Pending:
    requests: tuple[AppendRequest, ...]
    future: asyncio.Future[list[AppendResult]]


@dataclass(slots=True)
class _Staged:
    """One group-commit transaction: offsets assigned, rows built, nothing committed yet."""

    next_phys: int
    next_offsets: dict[QueueKey, int] = field(default_factory=dict)
    message_rows: list[tuple[Any, ...]] = field(default_factory=list)
    key_rows: list[tuple[str, str, int, int]] = field(default_factory=list)
    schedule_rows: list[tuple[int, int]] = field(default_factory=list)
    handed_over: list[tuple[int]] = field(default_factory=list)
    half_rows: list[tuple[int, str, str, int, int]] = field(default_factory=list)
    committed_halves: list[tuple[int, int]] = field(default_factory=list)
    original_offsets: list[tuple[bytearray, bytes]] = field(default_factory=list)  # restored on failure
    answers: list[list[AppendResult]] = field(default_factory=list)


class SqliteStore:
    """A ``store.api.MessageStore`` in one SQLite database file."""

    def __init__(self, path: pathlib.Path, *, sync_flush: bool = False, offset_flush_interval: float = 1.0) -> None:
        self.path = pathlib.Path(path)
        self.sync_flush = sync_flush  # True: synchronous=FULL (survives power loss); False: NORMAL
        self.offset_flush_interval = offset_flush_interval
        self.transactions_committed = 0  # append (group-commit) transactions only
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: list[_Pending] = []
        self._work = asyncio.Event()
        self._stop_flushing = asyncio.Event()
        # Every write transaction holds this, so appends, offset flushes and topic changes never interleave.
        self._write_lock = asyncio.Lock()
        self._next_offset: dict[QueueKey, int] = {}
        self._min_offset: dict[QueueKey, int] = {}
        self._next_phys = 0
        self._offsets: dict[str, dict[QueueKey, int]] = {}
        self._dirty: set[OffsetKey] = set()
        self.warnings = RateLimitedLogs(_log, interval_s=_LOG_INTERVAL_S)
        self._failed_writes = 0  # writes refused by the disk since the last one that succeeded

    # ---- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema and load the per-queue counters and consumer offsets."""
        if self._state != "new":
            raise StoreError(f"open() on a store that is {self._state}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The writer's transactions begin implicitly (BEGIN IMMEDIATE before the first write) rather
            # than with an explicit BEGIN: one round trip to the SQLite thread less per transaction.
            self._writer = await self._connect("IMMEDIATE")
            (mode,) = await _fetch_one(self._writer, "PRAGMA journal_mode = WAL")
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot use WAL journal mode (got {mode!r})")
            await self._writer.execute(f"PRAGMA synchronous = {'FULL' if self.sync_flush else 'NORMAL'}")
            await _migrate(self._writer)
            await self._load()
            self._reader = await self._connect(None)
            await self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await self._close_connections()
            self._state = "closed"
            raise
        self._state = "open"
        self._tasks = [
            asyncio.create_task(self._run_writer(), name=f"store-writer:{self.path.name}"),
            asyncio.create_task(self._run_offset_flusher(), name=f"store-offsets:{self.path.name}"),
        ]

    async def close(self) -> None:
        """Write every queued append, flush consumer offsets and close both connections."""
        if self._state == "new":
            self._state = "closed"
        if self._state != "open":
            return
        self._state = "closing"
        self._work.set()
        self._stop_flushing.set()
        try:
            await asyncio.gather(*self._tasks)
            try:
                await self._flush_offsets()
            except Exception as err:  # e.g. a full disk; consumers then resume from the last flushed offsets
                _log.error("consumer offsets of %d queue(s) not saved at close: %s", len(self._dirty), err)
        finally:
            await self._close_connections()
            self._state = "closed"

    async def _connect(self, isolation_level: Literal["IMMEDIATE"] | None) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=isolation_level)
        await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return conn

    async def _close_connections(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def _load(self) -> None:
        conn = self._writing_conn()
        for topic, queue_id, low, high in await conn.execute_fetchall(_LOAD_QUEUE_BOUNDS):
            self._min_offset[(topic, queue_id)] = low
            self._next_offset[(topic, queue_id)] = high + 1
        row = await _fetch_one(conn, _LAST_RECORD_END)
        saved = await _fetch_one(conn, "SELECT value FROM store_meta WHERE name = 'next_phys_offset'")
        self._next_phys = max(row[0] if row else 0, saved[0] if saved else 0)
        query = "SELECT consumer_group, topic, queue_id, committed_offset FROM consumer_offsets"
        for group, topic, queue_id, offset in await conn.execute_fetchall(query):
            self._offsets.setdefault(group, {})[(topic, queue_id)] = offset

    def _writing_conn(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreClosed(f"store {self.path} is not open")
        return self._writer

    def _reading_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreClosed(f"store {self.path} is not open")
        return self._reader

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read on the reading connection; a read that the store's closing cuts short is StoreClosed
        (retriable), not the driver's "closed database" error."""
        conn = self._reading_conn()
        try:
            return list(await conn.execute_fetchall(sql, params))
        except (sqlite3.ProgrammingError, ValueError) as err:
            if self._state != "open":
                raise StoreClosed(f"store {self.path} closed during a read") from err
            raise

    async def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._read(sql, params)
        return rows[0] if rows else None

    def _require_open(self) -> None:
        if self._state != "open":
            raise StoreClosed(f"store {self.path} is {self._state}")

    async def _transact(
        self,
        kind: str,
        steps: Sequence[_Step],
        expect_changed: Sequence[tuple[str, Sequence[Sequence[Any]], str]] = (),
        *,
        rejected: list[tuple[Sequence[Any], Exception]] | None = None,
    ) -> list[int]:
        """Run ``executemany`` steps (empty ones skipped) as one write transaction and return each step's count
        of changed rows; the caller holds the write lock. The transaction begins implicitly with the first
        statement (see ``open``). Every write of the store goes through here.

        Each ``expect_changed`` step must change one row per parameter set, or everything is rolled back: a
        scheduled message is handed over only while its schedule entry exists, a half message is committed only
        while it is pending. That is what makes both happen exactly once.

        A disk that refuses the write raises ``StorageUnavailable`` (logged here, at most once per 10 s per
        ``kind``: appends, offsets, topics...).

        With a ``rejected`` list, ``steps`` run one row at a time, and a row that fails because of its own values
        (``_ROW_ERRORS``: nothing of it was written) is added to the list with its error instead of failing the
        transaction."""
        conn = self._writing_conn()
        changed = []
        try:
            for sql, rows in steps:
                if rejected is None:
                    changed.append((await conn.executemany(sql, rows)).rowcount if rows else 0)
                    continue
                count = 0
                for row in rows:
                    try:
                        count += (await conn.execute(sql, row)).rowcount
                    except _ROW_ERRORS as err:
                        rejected.append((row, err))
                changed.append(count)
            for sql, rows, problem in expect_changed:
                if rows:
                    cursor = await conn.executemany(sql, rows)
                    if cursor.rowcount != len(rows):
                        raise AlreadyResolved(f"{len(rows) - cursor.rowcount} {problem}")
            await conn.commit()
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):  # keep the original error if the rollback fails too
                await conn.rollback()  # a no-op if SQLite already rolled back
            unavailable = self._unavailable(err)
            if unavailable is None:
                raise
            self._failed_writes += 1
            self.warnings.warning(f"unavailable:{kind}", "%s write refused: %s", kind, unavailable)
            raise unavailable from err
        if self._failed_writes:
            _log.warning("%s: writes succeed again after %d refused by the disk", self.path, self._failed_writes)
            self._failed_writes = 0
        return changed

    def _unavailable(self, err: BaseException) -> StorageUnavailable | None:
        """The ``StorageUnavailable`` that a SQLite error means, or None when it is not the disk refusing."""
        if not isinstance(err, sqlite3.Error):
            return None
        code = getattr(err, "sqlite_errorcode", None)
        name = getattr(err, "sqlite_errorname", None) or "no error name"
        if code is None:
            return None
        if code & 0xFF == _SQLITE_FULL:
            return StorageUnavailable(
                f"the broker's disk is full: {err} ({self.path.name}); messages are refused until space is freed"
            )
        if code & 0xFF == _SQLITE_IOERR:
            return StorageUnavailable(
                f"the broker cannot write to its disk: {err} [{name}] ({self.path.name}); the disk may be full or"
                " failing; messages are refused until writes succeed again"
            )
        return None

    async def set_max_size(self, max_bytes: int | None) -> int:
        """Cap the database file at ``max_bytes`` (rounded down to whole pages, but never below its current size),
        or lift the cap with None; return the cap now in force, in bytes.

        Writes that would grow the file past the cap fail as on a full disk (``StorageUnavailable``), which is how
        the tests exercise that path; it also works as a size quota. It is SQLite's ``max_page_count`` on the
        writer connection, so it lasts until the store is closed."""
        self._require_open()
        conn = self._writing_conn()
        (page_size,) = await _fetch_one(conn, "PRAGMA page_size")
        # SQLite's largest page count (its default); a larger value is clamped to it.
        pages = 0xFFFFFFFE if max_bytes is None else max(1, max_bytes // page_size)
        async with self._write_lock:
            (pages,) = await _fetch_one(conn, f"PRAGMA max_page_count = {int(pages)}")
        return int(pages) * int(page_size)

    # ---- appends (group commit) ------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Store messages atomically and return their offsets once the transaction has committed."""
        self._require_open()
        for request in requests:
            # Checked here so one malformed request fails only its caller, not a whole group.
            if not isinstance(request.record, bytearray) or len(request.record) < _OFFSET_BYTES.stop:
                raise ValueError(f"record for {request.topic}:{request.queue_id} is not a stored-record bytearray")
            check_text("topic", request.topic)
            if not isinstance(request.keys, tuple | list):
                raise UnstorableValue("message keys", request.keys, "not a sequence of text")
            for key in request.keys:
                check_text("message key", key)
            if request.half is not None:
                check_text("producer group", request.half.producer_group)
                check_text("transaction id", request.half.transaction_id)
        if not requests:
            return []
        future: asyncio.Future[list[AppendResult]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(tuple(requests), future))
        self._work.set()
        return await future

    async def _run_writer(self) -> None:
        while True:
            if not self._pending:
                if self._state != "open":
                    return
                self._work.clear()
                await self._work.wait()
                continue
            batch, self._pending = self._pending, []
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        # A caller cancelled before its turn came gets nothing written.
        batch = [p for p in batch if not p.future.done()]
        if not batch:
            return
        async with self._write_lock:
            staged = _Staged(self._next_phys)
            try:
                self._stage(batch, staged)
                await self._transact(
                    "append",
                    [
                        (INSERT_MESSAGE, staged.message_rows),
                        (INSERT_KEY, staged.key_rows),
                        (INSERT_SCHEDULE, staged.schedule_rows),
                        (INSERT_HALF, staged.half_rows),
                    ],
                    expect_changed=[
                        (DELETE_SCHEDULE, staged.handed_over, "scheduled message(s) were already handed over"),
                        (COMMIT_HALF, staged.committed_halves, "half message(s) are no longer pending"),
                    ],
                )
            except BaseException as err:
                for record, original in staged.original_offsets:
                    record[_OFFSET_BYTES] = original
                for pending in batch:
                    _fail(pending.future, err)
                if not isinstance(err, Exception):
                    raise
                if not isinstance(err, StorageUnavailable):  # that one is logged where it is raised
                    self.warnings.warning(
                        f"append:{type(err).__name__}",
                        "append transaction of %d messages failed: %r",
                        len(staged.message_rows),
                        err,
                    )
                return
            for queue, next_offset in staged.next_offsets.items():
                self._min_offset.setdefault(queue, self._next_offset.get(queue, 0))
                self._next_offset[queue] = next_offset
            self._next_phys = staged.next_phys
            self.transactions_committed += 1
        for pending, results in zip(batch, staged.answers, strict=True):
            if not pending.future.done():
                pending.future.set_result(results)

    def _stage(self, batch: list[_Pending], staged: _Staged) -> None:
        """Assign offsets in queue order and patch them into the records; counters stay untouched."""
        for pending in batch:
            results = []
            for r in pending.requests:
                queue = (r.topic, r.queue_id)
                queue_offset = staged.next_offsets.get(queue, self._next_offset.get(queue, 0))
                staged.next_offsets[queue] = queue_offset + 1
                phys = staged.next_phys
                staged.original_offsets.append((r.record, bytes(r.record[_OFFSET_BYTES])))
                set_offsets(r.record, queue_offset, phys)
                staged.message_rows.append(
                    (phys, r.topic, r.queue_id, queue_offset, r.tags_code, r.store_timestamp, r.record)
                )
                staged.key_rows.extend((r.topic, key, r.store_timestamp, phys) for key in r.keys if key)
                if r.due_ms is not None:
                    staged.schedule_rows.append((phys, r.due_ms))
                if r.hands_over is not None:
                    staged.handed_over.append((r.hands_over,))
                if r.half is not None:
                    r.half.phys_offset = phys
                    staged.half_rows.append(
                        (phys, r.half.producer_group, r.half.transaction_id, r.half.next_check_ms, r.half.created_ms)
                    )
                if r.commits_half is not None:
                    staged.committed_halves.append((r.store_timestamp, r.commits_half))
                results.append(AppendResult(queue_offset, phys))
                staged.next_phys = phys + len(r.record)
            staged.answers.append(results)

    # ---- per-queue counters (memory only) --------------------------------------------------------

    def max_offset(self, topic: str, queue_id: int) -> int:
        """Next queue offset to be written (0 for an unknown queue)."""
        return self._next_offset.get((topic, queue_id), 0)

    def min_offset(self, topic: str, queue_id: int) -> int:
        """Smallest queue offset still stored (0 for an unknown queue)."""
        return self._min_offset.get((topic, queue_id), 0)

    def queue_exists(self, topic: str, queue_id: int) -> bool:
        """Whether any message was ever stored in this queue (since it was last deleted)."""
        return (topic, queue_id) in self._next_offset

    # ---- reads -----------------------------------------------------------------------------------

    async def read_queue(self, topic: str, queue_id: int, offset: int, max_count: int) -> list[StoredEntry]:
        """Messages with queue offset >= ``offset``, ascending, at most ``max_count``."""
        self._require_open()
        start = max(offset, self.min_offset(topic, queue_id))
        # Bounded by the in-memory counter, so a pull never sees past max_offset() and an empty or
        # caught-up queue costs no I/O at all.
        end = self.max_offset(topic, queue_id)
        if start >= end or max_count <= 0:
            return []
        rows = await self._read(READ_QUEUE, (topic, queue_id, start, end, max_count))
        return [StoredEntry(queue_offset, tags_code, record) for queue_offset, tags_code, record in rows]

    async def get_by_phys_offset(self, phys_offset: int) -> bytes | None:
        """The record stored at this physical offset, or None."""
        row = await self._read_one(RECORD_AT_PHYS, (phys_offset,))
        return row[0] if row else None

    async def query_by_key(self, topic: str, key: str, max_num: int, begin_ts: int, end_ts: int) -> list[bytes]:
        """Records of ``topic`` carrying ``key`` stored within [begin_ts, end_ts], newest first."""
        self._require_open()
        if max_num <= 0:
            return []
        rows = await self._read(QUERY_BY_KEY, (topic, key, begin_ts, end_ts, max_num))
        return [record for (record,) in rows]

    async def search_offset_by_timestamp(
        self, topic: str, queue_id: int, timestamp: int, boundary: Literal["lower", "upper"]
    ) -> int:
        """lower: first offset stored at or after ``timestamp`` (max offset if none);
        upper: last offset stored at or before ``timestamp`` (min offset if none).

        A binary search over queue offsets with indexed point lookups, as RocketMQ's consume queue does;
        it assumes store timestamps do not decrease along a queue.
        """
        if boundary not in ("lower", "upper"):
            raise ValueError(f"boundary must be 'lower' or 'upper', not {boundary!r}")
        low, high = self.min_offset(topic, queue_id), self.max_offset(topic, queue_id)
        first = low
        # Find the first offset whose timestamp is >= (lower) or > (upper) the target.
        while low < high:
            mid = (low + high) // 2
            row = await self._read_one(STORE_TIME_AT, (topic, queue_id, mid))
            # A missing row only happens when the topic is deleted meanwhile; treat it as "later".
            later = row is None or (row[0] >= timestamp if boundary == "lower" else row[0] > timestamp)
            if later:
                high = mid
            else:
                low = mid + 1
        if boundary == "lower":
            return low
        return max(low - 1, first)

    async def earliest_store_time(self, topic: str, queue_id: int) -> int:
        """Store timestamp of the message at min offset, or -1 when the queue is empty."""
        self._require_open()
        low = self.min_offset(topic, queue_id)
        if low >= self.max_offset(topic, queue_id):
            return -1
        row = await self._read_one(STORE_TIME_AT, (topic, queue_id, low))
        return row[0] if row else -1

    # ---- the schedule of deferred messages ---------------------------------------------------------

    async def due_scheduled(self, now_ms: int, limit: int) -> list[ScheduledEntry]:
        """Scheduled messages due at or before ``now_ms``, earliest first."""
        rows = await self._read(DUE_SCHEDULED, (now_ms, limit))
        return [ScheduledEntry(phys, due, bytes(record)) for phys, due, record in rows]

    async def next_due_ms(self) -> int | None:
        row = await self._read_one(NEXT_DUE)
        return row[0] if row and row[0] is not None else None

    # ---- transactional half messages ---------------------------------------------------------------

    async def pending_half_messages(self) -> list[HalfMessage]:
        sql = f"SELECT {HALF_COLUMNS} FROM half_messages WHERE state = 'pending' ORDER BY next_check_ms"
        return [HalfMessage(*row) for row in await self._read(sql)]

    async def half_message(self, phys_offset: int) -> HalfMessage | None:
        sql = f"SELECT {HALF_COLUMNS} FROM half_messages WHERE phys_offset = ?"
        row = await self._read_one(sql, (phys_offset,))
        return HalfMessage(*row) if row else None

    async def update_half(
        self, phys_offset: int, *, state: str, check_times: int, next_check_ms: int, now_ms: int
    ) -> bool:
        self._require_open()
        resolved = now_ms if state != "pending" else None
        async with self._write_lock:
            [changed] = await self._transact(
                "half message", [(UPDATE_HALF, [(state, check_times, next_check_ms, resolved, phys_offset)])]
            )
        return changed == 1

    # ---- subscriptions ----------------------------------------------------------------------------

    async def save_subscription(
        self, group: str, topic: str, expression_type: str, expression: str, sub_version: int
    ) -> None:
        self._require_open()
        for name, value in (("consumer group", group), ("topic", topic), ("expression type", expression_type),
                            ("subscription expression", expression)):  # fmt: skip
            check_text(name, value)
        check_int("subVersion", sub_version)
        row = (group, topic, expression_type, expression, sub_version)
        async with self._write_lock:
            await self._transact("subscription", [(SAVE_SUBSCRIPTION, [row])])

    async def load_subscriptions(self) -> list[tuple[str, str, str, str, int]]:
        sql = "SELECT consumer_group, topic, expression_type, expression, sub_version FROM subscriptions"
        return [tuple(row) for row in await self._read(sql)]

    async def unschedule(self, phys_offset: int) -> None:
        self._require_open()
        async with self._write_lock:
            await self._transact("schedule", [(DELETE_SCHEDULE, [(phys_offset,)])])

    async def scheduled_count(self) -> int:
        (count,) = await self._read_one("SELECT COUNT(*) FROM schedule")
        return int(count)

    # ---- consumer offsets (memory, flushed in the background) ------------------------------------

    def get_consumer_offset(self, group: str, topic: str, queue_id: int) -> int | None:
        """Committed offset, or None when the group never committed one for this queue."""
        return self._offsets.get(group, {}).get((topic, queue_id))

    def set_consumer_offset(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        """Record a committed offset; written within ``offset_flush_interval`` seconds and on close.

        Raises ``UnstorableValue`` for a group or topic that is not valid text, or a number beyond 64 bits, so
        nothing unwritable ever waits among the offsets flushed together."""
        self._require_open()
        check_text("consumer group", group)
        check_text("topic", topic)
        check_int("queue id", queue_id)
        check_int("offset", offset)
        per_group = self._offsets.setdefault(group, {})
        if per_group.get((topic, queue_id)) != offset:
            per_group[(topic, queue_id)] = offset
            self._dirty.add((group, topic, queue_id))

    def consumer_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """All committed offsets of a group, keyed by (topic, queue_id)."""
        return dict(self._offsets.get(group, {}))

    async def _run_offset_flusher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_flushing.wait(), self.offset_flush_interval)
            if self._stop_flushing.is_set():
                return  # close() does the final flush
            try:
                await self._flush_offsets()
            except StorageUnavailable:
                pass  # logged where raised; the offsets stay dirty and the next round retries
            except Exception as err:
                self.warnings.warning(
                    f"offsets:{type(err).__name__}",
                    "flushing consumer offsets to %s failed; retrying: %r",
                    self.path,
                    err,
                )

    async def _flush_offsets(self) -> None:
        """Write every changed consumer offset in one transaction.

        If that fails because of some row's values (see ``_ROW_ERRORS``), the rows are written one at a time so
        that the others are kept and the bad ones are dropped for good: one bad row must never stop the offsets
        of every group from reaching the disk. Any other failure (a full disk, a busy database) leaves them all
        dirty for the next flush, and is raised."""
        async with self._write_lock:
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, set()
            # In primary-key order: each b-tree page is visited once, and the order does not depend on hashing.
            rows = [
                (group, topic, queue_id, self._offsets[group][(topic, queue_id)])
                for group, topic, queue_id in sorted(dirty)
            ]
            try:
                await self._transact("consumer offsets", [(UPSERT_CONSUMER_OFFSET, rows)])
            except _ROW_ERRORS:
                pass
            except BaseException:
                self._dirty |= dirty
                raise
            else:
                return
            rejected: list[tuple[Sequence[Any], Exception]] = []
            try:
                await self._transact("consumer offsets", [(UPSERT_CONSUMER_OFFSET, rows)], rejected=rejected)
            except BaseException:
                self._dirty |= dirty
                raise
            finally:
                for row, err in rejected:
                    group, topic, queue_id, offset = row
                    _log.error(
                        "dropped the consumer offset of group %s topic %s queue %s (offset %s), which cannot be"
                        " stored: %r",
                        ascii(group), ascii(topic), ascii(queue_id), ascii(offset), err,
                    )  # fmt: skip
                    per_group = self._offsets.get(group, {})
                    if per_group.get((topic, queue_id)) == offset:  # not set again meanwhile: forget it entirely
                        del per_group[(topic, queue_id)]
                        self._dirty.discard((group, topic, queue_id))

    # ---- topics ----------------------------------------------------------------------------------

    async def load_topics(self) -> list[TopicConfig]:
        """Every persisted topic config, by name."""
        rows = await self._read(
            "SELECT topic_name, read_queue_nums, write_queue_nums, perm, topic_filter_type, topic_sys_flag,"
            " is_order FROM topics ORDER BY topic_name"
        )
        return [TopicConfig(*row[:6], order=bool(row[6])) for row in rows]

    async def save_topic(self, config: TopicConfig) -> None:
        """Insert or replace a topic config; durable when this returns."""
        self._require_open()
        check_text("topic", config.topic_name)
        check_text("topic filter type", config.topic_filter_type)
        for name in ("read_queue_nums", "write_queue_nums", "perm", "topic_sys_flag"):
            check_int(name, getattr(config, name))
        row = (
            config.topic_name, config.read_queue_nums, config.write_queue_nums, config.perm,
            config.topic_filter_type, config.topic_sys_flag, int(config.order),
        )  # fmt: skip
        async with self._write_lock:
            await self._transact("topic", [(SAVE_TOPIC, [row])])

    async def delete_topic(self, topic: str) -> None:
        """Remove a topic's config, messages, key index rows and consumer offsets; reset its counters."""
        self._require_open()
        check_text("topic", topic)
        async with self._write_lock:
            await self._transact("topic", [
                ("DELETE FROM topics WHERE topic_name = ?", [(topic,)]),
                ("DELETE FROM messages WHERE topic = ?", [(topic,)]),
                ("DELETE FROM message_keys WHERE topic = ?", [(topic,)]),
                ("DELETE FROM consumer_offsets WHERE topic = ?", [(topic,)]),
                # The deleted messages may have been the newest; keep physical offsets increasing anyway.
                (SET_META, [("next_phys_offset", self._next_phys)]),
            ])  # fmt: skip
            for counters in (self._next_offset, self._min_offset):
                for queue in [q for q in counters if q[0] == topic]:
                    del counters[queue]
            for per_group in self._offsets.values():
                for queue in [q for q in per_group if q[0] == topic]:
                    del per_group[queue]
            self._dirty = {key for key in self._dirty if key[1] != topic}


async def _fetch_one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = list(await conn.execute_fetchall(sql, params))
    return rows[0] if rows else None


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Bring the schema to ``len(MIGRATIONS)`` one step (one transaction) at a time."""
    (version,) = await _fetch_one(conn, "PRAGMA user_version")
    if version > len(MIGRATIONS):
        raise StoreError(f"database schema version {version} is newer than this pocketmq ({len(MIGRATIONS)})")
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        try:
            await conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;")
        except BaseException:
            await conn.rollback()
            raise
        _log.info("migrated store schema to version %d", target)


def _fail(future: asyncio.Future[list[AppendResult]], cause: BaseException) -> None:
    if future.done():
        return
    if isinstance(cause, StorageUnavailable | AlreadyResolved):  # one instance per caller, each raises its own
        error: StoreError = type(cause)(str(cause))
        error.__cause__ = cause.__cause__
        future.set_exception(error)
    elif isinstance(cause, Exception):
        error = StoreError(f"append transaction failed: {cause}")
        error.__cause__ = cause
        future.set_exception(error)
    else:
        future.set_exception(StoreClosed("the store writer stopped before this append was committed"))
