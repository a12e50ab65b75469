"""The SQLite message store: WAL, group commit, chunks, all on the event-loop thread.

Everything the broker asks of the store runs inline on the event loop with the standard ``sqlite3`` module: a
commit in WAL mode with ``synchronous=NORMAL`` is a write into the OS page cache (durable across ``kill -9``), and
a read of a recent chunk is a few page-cache hits, both far cheaper than waking a thread to do them (see
store.background for the numbers). Checkpoints, and for SYNC_FLUSH the fsync of the WAL, run in the background.

Appends are group-committed: every append made while the event loop handles one round of I/O is queued, and one
callback at the end of that round writes them all in a single transaction, then answers each caller. A queue's
records of one transaction become one chunk row (store.chunks): records back to back, queue offsets consecutive,
physical (commit-log) offsets contiguous, as in RocketMQ where each message's physical offset is the previous one
plus the previous record's length. Per-queue offset counters live in memory and advance only after a commit;
consumer offsets live in memory and are flushed about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import pathlib
import sqlite3
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from codec.record import PHYS_OFFSET_POS, QUEUE_OFFSET_POS
from runtime.completion import Completion
from runtime.logs import RateLimitedLogs
from store.api import (
    AppendRequest,
    AppendResult,
    Expired,
    HalfMessage,
    InFlight,
    PulledRecords,
    RecordRun,
    ScheduledEntry,
    StoredEntry,
    TopicConfig,
)
from store.background import Background
from store.chunks import (
    CHUNK_MAX_BYTES,
    INDEX_ENTRY,
    Chunk,
    find_digest,
    key_digest,
    pack_index,
    pack_run_index,
    pack_slots,
    unpack_slots,
)
from store.errors import AlreadyResolved, FlushFailed, StorageUnavailable, StoreClosed, StoreError, UnstorableValue
from store.migrations import migrate

_F = TypeVar("_F", asyncio.Future[Any], Completion[Any])

_log = logging.getLogger(__name__)

_OFFSET_BYTES = slice(QUEUE_OFFSET_POS, PHYS_OFFSET_POS + 8)
_OFFSETS = struct.Struct(">qq")  # queueOffset, physicalOffset at QUEUE_OFFSET_POS (codec.record.set_offsets)
_ZERO_OFFSETS = bytes(16)
# The loop waits this long at most for a lock held by another process (a `pocketmq transactions` reading, say).
_BUSY_TIMEOUT_MS = 1000
_INT64 = range(-(2**63), 2**63)
_LOG_INTERVAL_S = 10.0  # at most one warning per kind of failure per interval
_INDEX_SIZE = INDEX_ENTRY.size
RECENT_CHUNKS = 64  # queues whose last-read chunk stays in memory (at most 256 KiB each)
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

INSERT_CHUNK = "INSERT INTO chunks (first_phys, topic, queue_id, first_offset, idx, records) VALUES (?, ?, ?, ?, ?, ?)"
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
INSERT_KEYS = "INSERT INTO chunk_keys (topic, first_phys, digests, slots) VALUES (?, ?, ?, ?)"
UPSERT_CONSUMER_OFFSET = (
    "INSERT INTO consumer_offsets (consumer_group, topic, queue_id, committed_offset) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (consumer_group, topic, queue_id) DO UPDATE SET committed_offset = excluded.committed_offset"
)
SET_META = "INSERT OR REPLACE INTO store_meta (name, value) VALUES (?, ?)"
SAVE_TOPIC = (
    "INSERT OR REPLACE INTO topics (topic_name, read_queue_nums, write_queue_nums, perm, topic_filter_type,"
    " topic_sys_flag, is_order, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
POP_OFFSET = "SELECT pop_offset FROM pop_offsets WHERE consumer_group = ? AND topic = ? AND queue_id = ?"
UPSERT_POP_OFFSET = (
    "INSERT OR REPLACE INTO pop_offsets (consumer_group, topic, queue_id, pop_offset) VALUES (?, ?, ?, ?)"
)
IN_FLIGHT = (
    "SELECT queue_offset, visible_ms, attempt, generation, message_group FROM pop_in_flight"
    " WHERE consumer_group = ? AND topic = ? AND queue_id = ? ORDER BY queue_offset LIMIT ?"
)
UPSERT_IN_FLIGHT = (
    "INSERT OR REPLACE INTO pop_in_flight (consumer_group, topic, queue_id, queue_offset, visible_ms, attempt,"
    " generation, message_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_IN_FLIGHT_KEY = "consumer_group = ? AND topic = ? AND queue_id = ? AND queue_offset = ? AND generation = ?"
SETTLE_IN_FLIGHT = f"DELETE FROM pop_in_flight WHERE {_IN_FLIGHT_KEY}"
MOVE_IN_FLIGHT = f"UPDATE pop_in_flight SET visible_ms = ?, generation = ? WHERE {_IN_FLIGHT_KEY}"

# Per-request reads: each is an index range scan or point lookup (tests/store checks the query plans).
# The chunks of a queue from the one holding ?3 on, in offset order.
READ_CHUNKS = (
    "SELECT first_phys, first_offset, idx, records FROM chunks WHERE topic = ?1 AND queue_id = ?2 AND first_offset"
    " >= COALESCE((SELECT first_offset FROM chunks WHERE topic = ?1 AND queue_id = ?2 AND first_offset <= ?3"
    " ORDER BY first_offset DESC LIMIT 1), ?3) ORDER BY first_offset LIMIT ?4"
)
# Only the index of the chunk holding an offset: the records' overflow pages are not read.
INDEX_AT = (
    "SELECT first_offset, idx FROM chunks WHERE topic = ? AND queue_id = ? AND first_offset <= ?"
    " ORDER BY first_offset DESC LIMIT 1"
)
CHUNK_AT_PHYS = (
    "SELECT first_phys, first_offset, idx, records FROM chunks WHERE first_phys <= ? ORDER BY first_phys DESC LIMIT 1"
)
KEYS_OF_TOPIC = "SELECT first_phys, digests, slots FROM chunk_keys WHERE topic = ? ORDER BY first_phys DESC"
CHUNK_STARTING_AT = "SELECT first_phys, first_offset, idx, records FROM chunks WHERE first_phys = ?"
# The keys of messages stored before schema version 6, one row per key.
QUERY_BY_KEY = (
    "SELECT phys_offset FROM message_keys WHERE topic = ? AND msg_key = ? AND store_timestamp BETWEEN ? AND ?"
    " ORDER BY store_timestamp DESC, phys_offset DESC LIMIT ?"
)
DUE_SCHEDULED = "SELECT phys_offset, due_ms FROM schedule WHERE due_ms <= ? ORDER BY due_ms, phys_offset LIMIT ?"
NEXT_DUE = "SELECT MIN(due_ms) FROM schedule"  # answered from the due-time index
PER_REQUEST_READS = (
    READ_CHUNKS,
    INDEX_AT,
    CHUNK_AT_PHYS,
    KEYS_OF_TOPIC,
    CHUNK_STARTING_AT,
    QUERY_BY_KEY,
    DUE_SCHEDULED,
    NEXT_DUE,
    POP_OFFSET,
    IN_FLIGHT,
)

# Only at open: every queue's lowest and next offset, in O(queues) index seeks rather than one pass over every
# chunk (the cost that grew start-up with the store). A recursive skip-scan over chunks_by_queue walks the
# distinct (topic, queue_id) pairs: the next queue of the same topic, else the first queue of the next topic, each
# a single MIN() seek. Row-value comparisons, (topic, queue_id) > (?, ?), would read more naturally, but SQLite
# 3.40 seeks only on their first column and scans the rest of the topic. The bound subqueries are separate so each
# is answered by one seek.
_LOAD_QUEUE_BOUNDS = f"""
WITH RECURSIVE queues (topic, queue_id) AS (
    SELECT topic, queue_id FROM (SELECT topic, queue_id FROM chunks ORDER BY topic, queue_id LIMIT 1)
    UNION ALL
    SELECT
        COALESCE(
            (SELECT q.topic FROM chunks AS m WHERE m.topic = q.topic AND m.queue_id > q.queue_id LIMIT 1),
            (SELECT MIN(m.topic) FROM chunks AS m WHERE m.topic > q.topic)
        ),
        COALESCE(
            (SELECT MIN(m.queue_id) FROM chunks AS m WHERE m.topic = q.topic AND m.queue_id > q.queue_id),
            (SELECT MIN(m.queue_id) FROM chunks AS m
             WHERE m.topic = (SELECT MIN(n.topic) FROM chunks AS n WHERE n.topic > q.topic))
        )
    FROM queues AS q WHERE q.topic IS NOT NULL
)
SELECT
    topic, queue_id,
    (SELECT MIN(m.first_offset) FROM chunks AS m WHERE m.topic = q.topic AND m.queue_id = q.queue_id),
    (SELECT m.first_offset + length(m.idx) / {_INDEX_SIZE} FROM chunks AS m
     WHERE m.topic = q.topic AND m.queue_id = q.queue_id ORDER BY m.first_offset DESC LIMIT 1)
FROM queues AS q WHERE q.topic IS NOT NULL
"""
# Retention: the oldest chunks in commit-log order, without their records (the index is before them in the row, so
# the records' overflow pages are not read).
OLDEST_CHUNKS = (
    "SELECT first_phys, topic, queue_id, first_offset, idx, length(records) FROM chunks WHERE first_phys >= ?"
    " ORDER BY first_phys LIMIT ?"
)
AWAITING_DELIVERY = (
    "SELECT EXISTS (SELECT 1 FROM schedule WHERE phys_offset >= ?1 AND phys_offset < ?2)"
    " OR EXISTS (SELECT 1 FROM half_messages WHERE phys_offset >= ?1 AND phys_offset < ?2 AND state = 'pending')"
)
_LAST_RECORD_END = "SELECT first_phys + length(records) FROM chunks ORDER BY first_phys DESC LIMIT 1"


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


def _check_keys(keys: object) -> None:
    """Checked when appended, so that one malformed request fails only its caller, not a whole group."""
    if type(keys) is not tuple and not isinstance(keys, tuple | list):
        raise UnstorableValue("message keys", keys, "not a sequence of text")
    for key in keys:
        if type(key) is not str or not key.isascii():
            check_text("message key", key)


@dataclass(slots=True)
class _Pending:
    requests: Sequence[AppendRequest] | RecordRun
    future: asyncio.Future[Any] | Completion[Any]  # list[AppendResult], or AppendResult for a RecordRun


@dataclass(slots=True)
class _Staged:
    """One group-commit transaction: offsets assigned, rows built, nothing committed yet."""

    next_phys: int
    next_offsets: dict[QueueKey, int] = field(default_factory=dict)
    chunk_rows: list[tuple[Any, ...]] = field(default_factory=list)
    key_rows: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    schedule_rows: list[tuple[int, int]] = field(default_factory=list)
    handed_over: list[tuple[int]] = field(default_factory=list)
    half_rows: list[tuple[int, str, str, int, int]] = field(default_factory=list)
    committed_halves: list[tuple[int, int]] = field(default_factory=list)
    patched: list[bytearray] = field(default_factory=list)  # records whose offsets were set; zeroed on failure
    patched_runs: list[RecordRun] = field(default_factory=list)  # the same for runs
    answers: list[list[AppendResult]] = field(default_factory=list)
    messages: int = 0


class SqliteStore:
    """A ``store.api.MessageStore`` in one SQLite database file."""

    def __init__(self, path: pathlib.Path, *, sync_flush: bool = False, offset_flush_interval: float = 1.0) -> None:
        self.path = pathlib.Path(path)
        self.sync_flush = sync_flush  # True: acknowledged only once the WAL is fsynced (survives power loss)
        self.offset_flush_interval = offset_flush_interval
        self.transactions_committed = 0  # append (group-commit) transactions only
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._conn: sqlite3.Connection | None = None
        self._background: Background | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._pending: list[_Pending] = []
        # Called after each group commit has answered its appends: the broker writes the answers out then.
        self.after_answers: list[Callable[[], None]] = []
        self._commit_scheduled = False
        self._held = False  # commits wait while the background thread lets the WAL start over
        self._released = asyncio.Event()  # set whenever commits are not held
        self._released.set()
        self._unflushed = 0  # commits waiting for their WAL fsync (SYNC_FLUSH)
        self._flushed = asyncio.Event()
        self._stop_flushing = asyncio.Event()
        self._next_offset: dict[QueueKey, int] = {}
        self._min_offset: dict[QueueKey, int] = {}
        self._recent: OrderedDict[QueueKey, Chunk] = OrderedDict()  # the last chunk read of recently read queues
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
        self._loop = asyncio.get_running_loop()
        try:
            self._conn = conn = self._connect()
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot use WAL journal mode (got {mode!r})")
            # NORMAL in both modes: SYNC_FLUSH fsyncs the WAL in the background before acknowledging instead.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run in the background thread
            migrate(conn)
            self._load()
        except BaseException:
            self._close_connection()
            self._state = "closed"
            raise
        self._background = Background(self.path, self._loop, _BUSY_TIMEOUT_MS, self)
        self._background.start()
        self._state = "open"
        self._flusher = asyncio.create_task(self._run_offset_flusher(), name=f"store-offsets:{self.path.name}")

    async def close(self) -> None:
        """Write every queued append, flush consumer offsets, checkpoint and close."""
        if self._state == "new":
            self._state = "closed"
        if self._state != "open":
            return
        self._state = "closing"
        self._stop_flushing.set()
        try:
            if self._flusher is not None:
                await self._flusher
            self._commit_pending()
            while self._unflushed:
                self._flushed.clear()
                await self._flushed.wait()
            try:
                self._flush_offsets()
            except Exception as err:  # e.g. a full disk; consumers then resume from the last flushed offsets
                _log.error("consumer offsets of %d queue(s) not saved at close: %s", len(self._dirty), err)
        finally:
            if self._background is not None:
                self._background.stop()
            self._close_connection()
            self._state = "closed"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        return conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _load(self) -> None:
        conn = self._connection()
        for topic, queue_id, low, end in conn.execute(_LOAD_QUEUE_BOUNDS):
            self._min_offset[(topic, queue_id)] = low
            self._next_offset[(topic, queue_id)] = end
        row = conn.execute(_LAST_RECORD_END).fetchone()
        saved = conn.execute("SELECT value FROM store_meta WHERE name = 'next_phys_offset'").fetchone()
        self._next_phys = max(row[0] if row else 0, saved[0] if saved else 0)
        query = "SELECT consumer_group, topic, queue_id, committed_offset FROM consumer_offsets"
        for group, topic, queue_id, offset in conn.execute(query):
            self._offsets.setdefault(group, {})[(topic, queue_id)] = offset

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosed(f"store {self.path} is not open")
        return self._conn

    def _require_open(self) -> None:
        if self._state != "open":
            raise StoreClosed(f"store {self.path} is {self._state}")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._connection().execute(sql, params).fetchall()

    def _read_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._connection().execute(sql, params).fetchone()

    def _transact(
        self,
        kind: str,
        steps: Sequence[_Step],
        expect_changed: Sequence[tuple[str, Sequence[Sequence[Any]], str]] = (),
        *,
        rejected: list[tuple[Sequence[Any], Exception]] | None = None,
    ) -> list[int]:
        """Run ``executemany`` steps (empty ones skipped) as one write transaction and return each step's count of
        changed rows. Every write of the store goes through here.

        Each ``expect_changed`` step must change one row per parameter set, or everything is rolled back: a
        scheduled message is handed over only while its schedule entry exists, a half message is committed only
        while it is pending. That is what makes both happen exactly once.

        A disk that refuses the write raises ``StorageUnavailable`` (logged here, at most once per 10 s per
        ``kind``: appends, offsets, topics...).

        With a ``rejected`` list, ``steps`` run one row at a time, and a row that fails because of its own values
        (``_ROW_ERRORS``: nothing of it was written) is added to the list with its error instead of failing the
        transaction."""
        conn = self._connection()
        changed = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, rows in steps:
                if rejected is None:
                    if not rows:
                        changed.append(0)
                    elif len(rows) == 1:
                        changed.append(conn.execute(sql, rows[0]).rowcount)
                    else:
                        changed.append(conn.executemany(sql, rows).rowcount)
                    continue
                count = 0
                for row in rows:
                    try:
                        count += conn.execute(sql, row).rowcount
                    except _ROW_ERRORS as err:
                        rejected.append((row, err))
                changed.append(count)
            for sql, rows, problem in expect_changed:
                if rows:
                    cursor = conn.executemany(sql, rows)
                    if cursor.rowcount != len(rows):
                        raise AlreadyResolved(f"{len(rows) - cursor.rowcount} {problem}")
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # keep the original error if the rollback fails too
                    conn.execute("ROLLBACK")
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
        store's connection, so it lasts until the store is closed."""
        self._require_open()
        conn = self._connection()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        # SQLite's largest page count (its default); a larger value is clamped to it.
        pages = 0xFFFFFFFE if max_bytes is None else max(1, max_bytes // page_size)
        (pages,) = conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone()
        return int(pages) * int(page_size)

    # ---- appends (group commit) ------------------------------------------------------------------

    def append_nowait(self, requests: Sequence[AppendRequest]) -> asyncio.Future[list[AppendResult]]:
        """Queue messages for the next group commit; the future holds their offsets once it has committed (and,
        with SYNC_FLUSH, once the WAL is on disk). Raises at once for a request that cannot be stored."""
        self._check_requests(requests)
        if not requests:
            assert self._loop is not None
            done: asyncio.Future[list[AppendResult]] = self._loop.create_future()
            done.set_result([])
            return done
        return self._enqueue(requests, self._new_future())

    def append_then(self, requests: Sequence[AppendRequest], done: Completion[list[AppendResult]]) -> None:
        """``append_nowait`` that sets ``done`` from within the commit instead of a future one round later
        (runtime.completion says why). ``requests`` must not be empty."""
        self._check_requests(requests)
        if not requests:
            raise ValueError("nothing to append")
        self._enqueue(requests, done)

    def _check_requests(self, requests: Sequence[AppendRequest]) -> None:
        self._require_open()
        checked_topic = None
        for request in requests:
            # Checked here so one malformed request fails only its caller, not a whole group.
            if type(request.record) is not bytearray or len(request.record) < _OFFSET_BYTES.stop:
                raise ValueError(f"record for {request.topic}:{request.queue_id} is not a stored-record bytearray")
            if request.topic is not checked_topic:
                check_text("topic", request.topic)
                checked_topic = request.topic
            _check_keys(request.keys)
            if request.half is not None:
                check_text("producer group", request.half.producer_group)
                check_text("transaction id", request.half.transaction_id)

    def append_run_nowait(self, run: RecordRun) -> asyncio.Future[AppendResult]:
        """Queue a run of records (a batch) for the next group commit; the future holds the offsets of its first
        record. Raises at once for a run that cannot be stored."""
        self._check_run(run)
        return self._enqueue(run, self._new_future())

    def append_run_then(self, run: RecordRun, done: Completion[AppendResult]) -> None:
        """``append_run_nowait`` that sets ``done`` from within the commit."""
        self._check_run(run)
        self._enqueue(run, done)

    def _check_run(self, run: RecordRun) -> None:
        self._require_open()
        ends, count = run.ends, len(run.ends)
        if type(run.records) is not bytearray or not count or ends[-1] != len(run.records):
            raise ValueError(f"run for {run.topic}:{run.queue_id} does not end where its records do")
        if len(run.tags_codes) != count or len(run.keys) != count:
            raise ValueError(f"run for {run.topic}:{run.queue_id} has {count} records but not as many tags or keys")
        check_text("topic", run.topic)
        for keys in run.keys:
            _check_keys(keys)

    def _new_future(self) -> asyncio.Future[Any]:
        assert self._loop is not None
        return self._loop.create_future()

    def _enqueue(self, requests: Sequence[AppendRequest] | RecordRun, future: _F) -> _F:
        assert self._loop is not None
        self._pending.append(_Pending(requests, future))
        if not self._commit_scheduled:
            self._commit_scheduled = True
            # After the callbacks of this round of I/O: everything they appended goes into one transaction.
            self._loop.call_soon(self._commit_pending)
        return future

    async def append(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """Store messages atomically and return their offsets once the transaction has committed."""
        return await self.append_nowait(requests)

    def hold_commits(self, held: threading.Event) -> None:
        """``CommitGate``: commits run on this thread, so none is running now; the next waits for the release."""
        self._held = True
        self._released.clear()
        held.set()

    def release_commits(self) -> None:
        self._held = False
        self._released.set()
        if self._pending and not self._commit_scheduled:
            self._commit_pending()

    def _commit_pending(self, *, even_if_held: bool = False) -> None:
        self._commit_scheduled = False
        if self._held and self._state == "open" and not even_if_held:
            return  # release_commits commits what is pending
        # A caller cancelled before its turn came gets nothing written.
        batch = [p for p in self._pending if not p.future.done()]
        self._pending = []
        if not batch or self._conn is None:
            for pending in batch:
                _fail(pending.future, StoreClosed("the store closed before this append was committed"))
            return
        staged = _Staged(self._next_phys)
        try:
            self._stage(batch, staged)
            self._transact(
                "append",
                [
                    (INSERT_CHUNK, staged.chunk_rows),
                    (INSERT_KEYS, staged.key_rows),
                    (INSERT_SCHEDULE, staged.schedule_rows),
                    (INSERT_HALF, staged.half_rows),
                ],
                expect_changed=[
                    (DELETE_SCHEDULE, staged.handed_over, "scheduled message(s) were already handed over"),
                    (COMMIT_HALF, staged.committed_halves, "half message(s) are no longer pending"),
                ],
            )
        except Exception as err:
            for record in staged.patched:  # records arrive with both offsets zero (store.api); leave them so
                record[_OFFSET_BYTES] = _ZERO_OFFSETS
            for run in staged.patched_runs:
                for start in (0, *run.ends[:-1]):
                    run.records[start + QUEUE_OFFSET_POS : start + PHYS_OFFSET_POS + 8] = _ZERO_OFFSETS
            for pending in batch:
                _fail(pending.future, err)
            self._answered()
            if not isinstance(err, StorageUnavailable):  # that one is logged where it is raised
                self.warnings.warning(
                    f"append:{type(err).__name__}",
                    "append transaction of %d messages failed: %r",
                    staged.messages,
                    err,
                )
            return
        for queue, next_offset in staged.next_offsets.items():
            self._min_offset.setdefault(queue, self._next_offset.get(queue, 0))
            self._next_offset[queue] = next_offset
        self._next_phys = staged.next_phys
        self.transactions_committed += 1
        if self.sync_flush and self._background is not None:
            self._unflushed += 1
            self._background.fsync_wal(lambda error: self._flush_done(batch, staged.answers, error))
        else:
            _answer(batch, staged.answers)
            self._answered()

    def _answered(self) -> None:
        for listener in self.after_answers:
            try:
                listener()
            except Exception:
                _log.exception("a listener after a group commit failed: %r", listener)

    def _flush_done(
        self, batch: list[_Pending], answers: list[list[AppendResult]], error: BaseException | None
    ) -> None:
        self._unflushed -= 1
        self._flushed.set()
        if error is None:
            _answer(batch, answers)
            self._answered()
            return
        failure = FlushFailed(f"stored, but the fsync of {self.path.name}-wal failed: {error}")
        self.warnings.warning("fsync", "%s", failure)
        for pending in batch:
            _fail(pending.future, failure)
        self._answered()

    def _stage(self, batch: list[_Pending], staged: _Staged) -> None:
        """Assign offsets, patch them into the records and build one chunk per queue; counters stay untouched."""
        # Requests grouped by queue, in order; a run of requests to one queue (a batch) is one list entry.
        # A RecordRun is an entry of its own, at -1.
        by_queue: dict[QueueKey, list[tuple[list[AppendResult], int, Sequence[AppendRequest] | RecordRun]]] = {}
        for pending in batch:
            requests = pending.requests
            if isinstance(requests, RecordRun):
                answer = [None]  # type: ignore[list-item]
                staged.answers.append(answer)
                by_queue.setdefault((requests.topic, requests.queue_id), []).append((answer, -1, requests))
                continue
            answer: list[AppendResult] = [None] * len(requests)  # type: ignore[list-item]
            staged.answers.append(answer)
            start = 0
            while start < len(requests):
                first = requests[start]
                stop = start + 1
                while (
                    stop < len(requests)
                    and requests[stop].queue_id == first.queue_id
                    and (requests[stop].topic == first.topic)
                ):
                    stop += 1
                by_queue.setdefault((first.topic, first.queue_id), []).append((answer, start, requests[start:stop]))
                start = stop
        phys = staged.next_phys
        pack_into, patched = _OFFSETS.pack_into, staged.patched
        for queue, runs in by_queue.items():
            offset = self._next_offset.get(queue, 0)
            records: list[bytearray] = []
            index: list[tuple[int, int, int]] = []
            digests: list[bytes] = []
            slots: list[int] = []  # below 2**16: a chunk of 256 KiB holds fewer records (each is over 90 bytes)
            first_phys, first_offset, size = phys, offset, 0
            for answer, at, run in runs:
                if isinstance(run, RecordRun):  # chunks of its own, after what came before it
                    if records:
                        _add_chunk(staged, queue, first_phys, first_offset, index, records, digests, slots)
                        records, index, digests, slots = [], [], [], []
                    answer[0] = AppendResult(offset, phys)
                    self._stage_run(run, offset, phys, staged)
                    offset += len(run.ends)
                    phys += len(run.records)
                    first_phys, first_offset, size = phys, offset, 0
                    continue
                for r in run:
                    record = r.record
                    length = len(record)
                    if size + length > CHUNK_MAX_BYTES and records:
                        _add_chunk(staged, queue, first_phys, first_offset, index, records, digests, slots)
                        records, index, digests, slots = [], [], [], []
                        first_phys, first_offset, size = phys, offset, 0
                    pack_into(record, QUEUE_OFFSET_POS, offset, phys)
                    patched.append(record)
                    records.append(record)
                    size += length
                    for key in r.keys:
                        if key:
                            digests.append(key_digest(key))
                            slots.append(len(index))
                    index.append((size, r.tags_code, r.store_timestamp))
                    if (
                        r.due_ms is not None
                        or r.hands_over is not None
                        or r.half is not None
                        or r.commits_half is not None
                    ):
                        self._stage_special(r, phys, staged)
                    answer[at] = AppendResult(offset, phys)
                    at += 1
                    offset += 1
                    phys += length
                staged.messages += len(run)
            if records:
                _add_chunk(staged, queue, first_phys, first_offset, index, records, digests, slots)
            staged.next_offsets[queue] = offset
        staged.next_phys = phys

    @staticmethod
    def _stage_run(run: RecordRun, offset: int, phys: int, staged: _Staged) -> None:
        """Patch a run's offsets in place and make its chunks (one, unless it is over CHUNK_MAX_BYTES)."""
        records, ends, tags, keys, timestamp = run.records, run.ends, run.tags_codes, run.keys, run.store_timestamp
        pack_into, count = _OFFSETS.pack_into, len(ends)
        start = 0
        for i, end in enumerate(ends):
            pack_into(records, start + QUEUE_OFFSET_POS, offset + i, phys + start)
            start = end
        staged.patched_runs.append(run)
        staged.messages += count
        first, first_byte = 0, 0
        while first < count:
            last = first + 1  # the chunk's records are [first, last)
            while last < count and ends[last] - first_byte <= CHUNK_MAX_BYTES:
                last += 1
            end_byte = ends[last - 1]
            if first == 0 and last == count:  # the whole run: the common case
                blob, chunk_ends, chunk_tags, chunk_keys = records, ends, tags, keys
            else:
                blob = memoryview(records)[first_byte:end_byte]
                chunk_ends = [e - first_byte for e in ends[first:last]]
                chunk_tags, chunk_keys = tags[first:last], keys[first:last]
            chunk_phys = phys + first_byte
            index = pack_run_index(chunk_ends, chunk_tags, timestamp)
            staged.chunk_rows.append((chunk_phys, run.topic, run.queue_id, offset + first, index, blob))
            key_row = _key_row(chunk_keys)
            if key_row is not None:
                staged.key_rows.append((run.topic, chunk_phys, *key_row))
            first, first_byte = last, end_byte

    @staticmethod
    def _stage_special(r: AppendRequest, phys: int, staged: _Staged) -> None:
        """The rows of a message that is scheduled, hands a scheduled one over, or is or commits a half message."""
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

    def _chunks(self, topic: str, queue_id: int, offset: int, limit: int) -> Iterator[Chunk]:
        """The chunks of a queue from the one holding ``offset`` on, read one at a time as the caller iterates; the
        last chunk read of each queue comes from memory (consecutive pulls mostly read the same chunk again)."""
        queue = (topic, queue_id)
        cached = self._recent.get(queue)
        if cached is not None and cached.first_offset <= offset < cached.first_offset + cached.count:
            self._recent.move_to_end(queue)
            yield cached
            offset, limit = cached.first_offset + cached.count, limit - 1
            if limit <= 0:
                return
        cursor = self._connection().execute(READ_CHUNKS, (topic, queue_id, offset, limit))
        try:
            while (row := cursor.fetchone()) is not None:
                chunk = Chunk(*row)
                self._remember(queue, chunk)
                yield chunk
        finally:
            cursor.close()  # a statement left open would keep a read snapshot open

    def _remember(self, queue: QueueKey, chunk: Chunk) -> None:
        self._recent[queue] = chunk
        self._recent.move_to_end(queue)
        if len(self._recent) > RECENT_CHUNKS:
            self._recent.popitem(last=False)

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
        """Records from ``offset`` on: at most ``max_count`` of them and ``max_bytes`` (the first always goes),
        those ``accept(tags_code, record)`` takes (all when None), examining at most ``max_scan``. Inline: reads
        only whole chunks, and no more of them than needed."""
        self._require_open()
        start = max(offset, self.min_offset(topic, queue_id))
        end = self.max_offset(topic, queue_id)
        taken: list[bytes] = []
        size = 0
        examined = 0
        next_offset = start
        while next_offset < end and examined < max_scan and len(taken) < max_count:
            chunks = self._chunks(topic, queue_id, next_offset, 8)
            before = next_offset
            for chunk in chunks:
                index, records = chunk.index, chunk.records
                i = next_offset - chunk.first_offset
                if i < 0:
                    break  # a gap (topic deleted and re-created meanwhile): stop here
                count = len(index) // _INDEX_SIZE
                begin = INDEX_ENTRY.unpack_from(index, (i - 1) * _INDEX_SIZE)[0] if i else 0
                while i < count and next_offset < end:
                    finish, tags, _ts = INDEX_ENTRY.unpack_from(index, i * _INDEX_SIZE)
                    examined += 1
                    record = records[begin:finish]
                    if accept is None or accept(tags, record):
                        if taken and size + (finish - begin) > max_bytes:
                            return PulledRecords(taken, next_offset, examined - 1)
                        taken.append(record)
                        size += finish - begin
                    begin = finish
                    i += 1
                    next_offset += 1
                    if len(taken) >= max_count or examined >= max_scan:
                        return PulledRecords(taken, next_offset, examined)
                if next_offset >= end:
                    break
            if next_offset == before:
                break  # nothing stored at next_offset (a topic deleted and re-created meanwhile)
        return PulledRecords(taken, next_offset, examined)

    async def read_queue(self, topic: str, queue_id: int, offset: int, max_count: int) -> list[StoredEntry]:
        """Messages with queue offset >= ``offset``, ascending, at most ``max_count``."""
        self._require_open()
        start = max(offset, self.min_offset(topic, queue_id))
        # Bounded by the in-memory counter, so a read never sees past max_offset() and an empty or caught-up queue
        # costs no I/O at all.
        end = self.max_offset(topic, queue_id)
        entries: list[StoredEntry] = []
        while start < end and len(entries) < max_count:
            chunks = self._chunks(topic, queue_id, start, max_count - len(entries))
            if not chunks:
                break
            for chunk in chunks:
                i = start - chunk.first_offset
                if i < 0:
                    return entries
                while i < chunk.count and start < end and len(entries) < max_count:
                    begin, finish, tags = chunk.entry(i)
                    entries.append(StoredEntry(start, tags, chunk.records[begin:finish]))
                    i += 1
                    start += 1
        return entries

    def _record_at_phys(self, phys_offset: int) -> bytes | None:
        row = self._read_one(CHUNK_AT_PHYS, (phys_offset,))
        if row is None:
            return None
        chunk = Chunk(*row)
        i = chunk.position_of(phys_offset)
        return chunk.record(i) if i is not None else None

    async def get_by_phys_offset(self, phys_offset: int) -> bytes | None:
        """The record stored at this physical offset, or None."""
        self._require_open()
        return self._record_at_phys(phys_offset)

    async def query_by_key(self, topic: str, key: str, max_num: int, begin_ts: int, end_ts: int) -> list[bytes]:
        """Records of ``topic`` carrying ``key`` stored within [begin_ts, end_ts], newest first."""
        self._require_open()
        if max_num <= 0:
            return []
        found = []
        digest = key_digest(key)
        for first_phys, digests, slots in self._connection().execute(KEYS_OF_TOPIC, (topic,)):
            matches = find_digest(digests, digest)
            if not matches:
                continue
            row = self._read_one(CHUNK_STARTING_AT, (first_phys,))
            if row is None:
                continue
            chunk, slot_of = Chunk(*row), unpack_slots(slots)
            for match in reversed(matches):
                i = slot_of[match]
                if begin_ts <= chunk.store_timestamp(i) <= end_ts:
                    found.append(chunk.record(i))
                    if len(found) >= max_num:
                        return found
        for (phys,) in self._read(QUERY_BY_KEY, (topic, key, begin_ts, end_ts, max_num - len(found))):
            record = self._record_at_phys(phys)
            if record is not None:
                found.append(record)
        return found

    def _store_time_at(self, topic: str, queue_id: int, offset: int) -> int | None:
        row = self._read_one(INDEX_AT, (topic, queue_id, offset))
        if row is None:
            return None
        first_offset, idx = row
        i = offset - first_offset
        if i * _INDEX_SIZE >= len(idx):
            return None
        return int(INDEX_ENTRY.unpack_from(idx, i * _INDEX_SIZE)[2])

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
        self._require_open()
        low, high = self.min_offset(topic, queue_id), self.max_offset(topic, queue_id)
        first = low
        # Find the first offset whose timestamp is >= (lower) or > (upper) the target.
        while low < high:
            mid = (low + high) // 2
            stored = self._store_time_at(topic, queue_id, mid)
            # A missing row only happens when the topic is deleted meanwhile; treat it as "later".
            later = stored is None or (stored >= timestamp if boundary == "lower" else stored > timestamp)
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
        stored = self._store_time_at(topic, queue_id, low)
        return stored if stored is not None else -1

    async def earliest_message_time(self) -> int:
        """Store timestamp of the oldest stored message (the first record of the lowest chunk), 0 when empty."""
        self._require_open()
        row = self._read_one("SELECT idx FROM chunks ORDER BY first_phys LIMIT 1")
        if row is None:
            return 0
        _end, _tags, stored = INDEX_ENTRY.unpack_from(row[0], 0)
        return int(stored)

    # ---- the schedule of deferred messages ---------------------------------------------------------

    async def due_scheduled(self, now_ms: int, limit: int) -> list[ScheduledEntry]:
        """Scheduled messages due at or before ``now_ms``, earliest first."""
        self._require_open()
        due = []
        for phys, due_ms in self._read(DUE_SCHEDULED, (now_ms, limit)):
            record = self._record_at_phys(phys)
            if record is None:
                _log.error("scheduled message at %d is not stored; dropping it from the schedule", phys)
                self._transact("schedule", [(DELETE_SCHEDULE, [(phys,)])])
                continue
            due.append(ScheduledEntry(phys, due_ms, record))
        return due

    async def next_due_ms(self) -> int | None:
        self._require_open()
        row = self._read_one(NEXT_DUE)
        return row[0] if row and row[0] is not None else None

    async def unschedule(self, phys_offset: int) -> bool:
        self._require_open()
        [changed] = self._transact("schedule", [(DELETE_SCHEDULE, [(phys_offset,)])])
        return changed == 1

    async def scheduled_count(self) -> int:
        self._require_open()
        (count,) = self._read_one("SELECT COUNT(*) FROM schedule")
        return int(count)

    # ---- transactional half messages ---------------------------------------------------------------

    async def pending_half_messages(self) -> list[HalfMessage]:
        self._require_open()
        sql = f"SELECT {HALF_COLUMNS} FROM half_messages WHERE state = 'pending' ORDER BY next_check_ms"
        return [HalfMessage(*row) for row in self._read(sql)]

    async def half_message(self, phys_offset: int) -> HalfMessage | None:
        self._require_open()
        row = self._read_one(f"SELECT {HALF_COLUMNS} FROM half_messages WHERE phys_offset = ?", (phys_offset,))
        return HalfMessage(*row) if row else None

    async def update_half(
        self, phys_offset: int, *, state: str, check_times: int, next_check_ms: int, now_ms: int
    ) -> bool:
        self._require_open()
        resolved = now_ms if state != "pending" else None
        [changed] = self._transact(
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
        self._transact(
            "subscription", [(SAVE_SUBSCRIPTION, [(group, topic, expression_type, expression, sub_version)])]
        )

    async def load_subscriptions(self) -> list[tuple[str, str, str, str, int]]:
        self._require_open()
        sql = "SELECT consumer_group, topic, expression_type, expression, sub_version FROM subscriptions"
        return [tuple(row) for row in self._read(sql)]

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

    def commit_log_end(self) -> int:
        """The physical offset the next stored message gets (Apache's commit log max offset)."""
        return self._next_phys

    def consumer_groups(self) -> list[str]:
        """Every group with a committed offset, by name."""
        return sorted(group for group, offsets in self._offsets.items() if offsets)

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
                self._flush_offsets()
            except StorageUnavailable:
                pass  # logged where raised; the offsets stay dirty and the next round retries
            except Exception as err:
                self.warnings.warning(
                    f"offsets:{type(err).__name__}",
                    "flushing consumer offsets to %s failed; retrying: %r",
                    self.path,
                    err,
                )

    def _flush_offsets(self) -> None:
        """Write every changed consumer offset in one transaction.

        If that fails because of some row's values (see ``_ROW_ERRORS``), the rows are written one at a time so
        that the others are kept and the bad ones are dropped for good: one bad row must never stop the offsets
        of every group from reaching the disk. Any other failure (a full disk, a busy database) leaves them all
        dirty for the next flush, and is raised."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        # In primary-key order: each b-tree page is visited once, and the order does not depend on hashing.
        rows = [
            (group, topic, queue_id, self._offsets[group][(topic, queue_id)])
            for group, topic, queue_id in sorted(dirty)
        ]
        try:
            self._transact("consumer offsets", [(UPSERT_CONSUMER_OFFSET, rows)])
        except _ROW_ERRORS:
            pass
        except BaseException:
            self._dirty |= dirty
            raise
        else:
            return
        rejected: list[tuple[Sequence[Any], Exception]] = []
        try:
            self._transact("consumer offsets", [(UPSERT_CONSUMER_OFFSET, rows)], rejected=rejected)
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

    # ---- POP consumption ---------------------------------------------------------------------------

    async def pop_offset(self, group: str, topic: str, queue_id: int) -> int | None:
        self._require_open()
        row = self._read_one(POP_OFFSET, (group, topic, queue_id))
        return None if row is None else int(row[0])

    async def in_flight(self, group: str, topic: str, queue_id: int, limit: int) -> list[InFlight]:
        self._require_open()
        return [InFlight(*row) for row in self._read(IN_FLIGHT, (group, topic, queue_id, limit))]

    async def save_pop(
        self, group: str, topic: str, queue_id: int, pop_offset: int | None, rows: Sequence[InFlight]
    ) -> None:
        self._require_open()
        for name, value in (("consumer group", group), ("topic", topic)):
            check_text(name, value)
        key = (group, topic, queue_id)
        self._transact("pop", [
            (UPSERT_IN_FLIGHT, [
                (*key, r.queue_offset, r.visible_ms, r.attempt, r.generation, r.message_group) for r in rows
            ]),
            (UPSERT_POP_OFFSET, [] if pop_offset is None else [(*key, pop_offset)]),
        ])  # fmt: skip

    async def settle_pop(self, group: str, topic: str, keys: Sequence[tuple[int, int, int]]) -> list[bool]:
        self._require_open()
        steps = [(SETTLE_IN_FLIGHT, [(group, topic, *key)]) for key in keys]
        return [changed == 1 for changed in self._transact("pop", steps)] if steps else []

    async def move_pop(
        self, group: str, topic: str, queue_id: int, queue_offset: int, generation: int, new_generation: int,
        visible_ms: int,
    ) -> bool:  # fmt: skip
        self._require_open()
        row = (visible_ms, new_generation, group, topic, queue_id, queue_offset, generation)
        [changed] = self._transact("pop", [(MOVE_IN_FLIGHT, [row])])
        return changed == 1

    # ---- subscription groups ---------------------------------------------------------------------

    async def subscription_groups(self) -> dict[str, str]:
        self._require_open()
        return dict(self._read("SELECT group_name, config FROM subscription_groups"))

    async def save_subscription_group(self, group: str, config_json: str) -> None:
        self._require_open()
        check_text("consumer group", group)
        check_text("subscription group config", config_json)
        self._transact(
            "subscription group",
            [("INSERT OR REPLACE INTO subscription_groups (group_name, config) VALUES (?, ?)", [(group, config_json)])],
        )

    async def delete_subscription_group(self, group: str) -> None:
        self._require_open()
        self._transact("subscription group", [
            ("DELETE FROM subscription_groups WHERE group_name = ?", [(group,)]),
            ("DELETE FROM pop_in_flight WHERE consumer_group = ?", [(group,)]),
            ("DELETE FROM pop_offsets WHERE consumer_group = ?", [(group,)]),
        ])  # fmt: skip

    # ---- topics ----------------------------------------------------------------------------------

    async def load_topics(self) -> list[TopicConfig]:
        """Every persisted topic config, by name."""
        self._require_open()
        rows = self._read(
            "SELECT topic_name, read_queue_nums, write_queue_nums, perm, topic_filter_type, topic_sys_flag,"
            " is_order, attributes FROM topics ORDER BY topic_name"
        )
        return [TopicConfig(*row[:6], order=bool(row[6]), attributes=json.loads(row[7])) for row in rows]

    async def save_topic(self, config: TopicConfig) -> None:
        """Insert or replace a topic config; durable when this returns."""
        self._require_open()
        check_text("topic", config.topic_name)
        check_text("topic filter type", config.topic_filter_type)
        for name in ("read_queue_nums", "write_queue_nums", "perm", "topic_sys_flag"):
            check_int(name, getattr(config, name))
        attributes = json.dumps(config.attributes, sort_keys=True)
        check_text("topic attributes", attributes)
        row = (
            config.topic_name, config.read_queue_nums, config.write_queue_nums, config.perm,
            config.topic_filter_type, config.topic_sys_flag, int(config.order), attributes,
        )  # fmt: skip
        self._transact("topic", [(SAVE_TOPIC, [row])])

    async def delete_topic(self, topic: str) -> None:
        """Remove a topic's config, messages, key index rows and consumer offsets; reset its counters."""
        self._require_open()
        check_text("topic", topic)
        # Appends queued for this topic land first and go with it (while the commits are held too: the WAL then
        # simply does not start over this time).
        self._commit_pending(even_if_held=True)
        self._transact("topic", [
            ("DELETE FROM topics WHERE topic_name = ?", [(topic,)]),
            ("DELETE FROM chunks WHERE topic = ?", [(topic,)]),
            ("DELETE FROM message_keys WHERE topic = ?", [(topic,)]),
            ("DELETE FROM chunk_keys WHERE topic = ?", [(topic,)]),
            ("DELETE FROM consumer_offsets WHERE topic = ?", [(topic,)]),
            ("DELETE FROM pop_offsets WHERE topic = ?", [(topic,)]),
            ("DELETE FROM pop_in_flight WHERE topic = ?", [(topic,)]),
            # The deleted messages may have been the newest; keep physical offsets increasing anyway.
            (SET_META, [("next_phys_offset", self._next_phys)]),
        ])  # fmt: skip
        for counters in (self._next_offset, self._min_offset, self._recent):
            for queue in [q for q in counters if q[0] == topic]:
                del counters[queue]
        for per_group in self._offsets.values():
            for queue in [q for q in per_group if q[0] == topic]:
                del per_group[queue]
        self._dirty = {key for key in self._dirty if key[1] != topic}

    # ---- retention -------------------------------------------------------------------------------

    async def expire(self, stored_before_ms: int, max_bytes: int, *, regardless_of_age: bool = False) -> Expired:
        """Delete whole chunks, oldest first (commit-log order, as Apache deletes commit-log files): those whose
        newest record was stored before ``stored_before_ms``, or any with ``regardless_of_age``, in one
        transaction of about ``max_bytes``. A queue's chunks go only as a prefix (its minimum offset then moves
        to the first record left) and never its newest chunk, so a queue's offsets survive a restart; a chunk
        holding a scheduled or pending half message stays, and with it the rest of its queue. The pages freed
        are reused by the next appends (``space()`` counts them as free)."""
        self._require_open()
        # A write while the background thread lets the WAL start over would keep it from starting over (under a
        # steady load with retention the WAL grew to 590 MB); wait for the release as the appends do.
        await self._released.wait()
        self._require_open()
        conn = self._connection()
        kept: set[QueueKey] = set()
        doomed: list[tuple[int, str, int, int, int, int]] = []  # first_phys, topic, queue, next min, count, bytes
        size = 0
        cursor_phys, more = 0, False
        while not more:
            rows = conn.execute(OLDEST_CHUNKS, (cursor_phys, 256)).fetchall()
            if not rows:
                break
            for first_phys, topic, queue_id, first_offset, idx, length in rows:
                cursor_phys = first_phys + 1
                count = len(idx) // _INDEX_SIZE
                newest = INDEX_ENTRY.unpack_from(idx, (count - 1) * _INDEX_SIZE)[2] if count else 0
                if newest >= stored_before_ms and not regardless_of_age:
                    return self._delete_chunks(doomed, more=False)
                queue = (topic, queue_id)
                if queue in kept:
                    continue
                if (
                    first_offset != self._min_offset.get(queue)
                    or first_offset + count >= self._next_offset.get(queue, 0)
                    or conn.execute(AWAITING_DELIVERY, (first_phys, first_phys + length)).fetchone()[0]
                ):
                    kept.add(queue)
                    continue
                doomed.append((first_phys, topic, queue_id, first_offset + count, count, length))
                self._min_offset[queue] = first_offset + count  # provisional: the next chunk's check needs it
                size += length
                if size >= max_bytes:
                    more = True
                    break
        return self._delete_chunks(doomed, more=more)

    def _delete_chunks(self, doomed: list[tuple[int, str, int, int, int, int]], *, more: bool) -> Expired:
        firsts: dict[QueueKey, int] = {}
        for _phys, topic, queue_id, next_min, count, _length in doomed:
            firsts.setdefault((topic, queue_id), next_min - count)
        try:
            self._transact("retention", [
                ("DELETE FROM chunks WHERE first_phys = ?", [(d[0],) for d in doomed]),
                ("DELETE FROM chunk_keys WHERE topic = ? AND first_phys = ?", [(d[1], d[0]) for d in doomed]),
                (
                    "DELETE FROM half_messages WHERE phys_offset >= ? AND phys_offset < ?",
                    [(d[0], d[0] + d[5]) for d in doomed],
                ),
                (
                    "DELETE FROM pop_in_flight WHERE topic = ? AND queue_id = ? AND queue_offset < ?",
                    [(d[1], d[2], d[3]) for d in doomed],
                ),
            ])  # fmt: skip
        except BaseException:
            self._min_offset.update(firsts)  # nothing was deleted
            raise
        for queue in firsts:
            cached = self._recent.get(queue)
            if cached is not None and cached.first_offset < self._min_offset[queue]:
                del self._recent[queue]
        if doomed and self._read_one("SELECT EXISTS (SELECT 1 FROM message_keys)")[0]:
            # Keys of messages stored before schema version 6, below the oldest record left.
            self._transact("retention", [(
                "DELETE FROM message_keys WHERE phys_offset < COALESCE((SELECT MIN(first_phys) FROM chunks), 0)",
                [()],
            )])  # fmt: skip
        return Expired(
            chunks=len(doomed), messages=sum(d[4] for d in doomed), bytes=sum(d[5] for d in doomed), more=more
        )

    def space(self) -> tuple[int, int]:
        """(bytes of the database file and its WAL, bytes of free pages in the file that appends reuse)."""
        self._require_open()
        conn = self._connection()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (free_pages,) = conn.execute("PRAGMA freelist_count").fetchone()
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += (self.path.parent / (self.path.name + suffix)).stat().st_size
        return total, int(free_pages) * int(page_size)


def _add_chunk(
    staged: _Staged,
    queue: QueueKey,
    first_phys: int,
    first_offset: int,
    index: list[tuple[int, int, int]],
    records: list[bytearray],
    digests: list[bytes],
    slots: list[int],
) -> None:
    """The rows of one chunk made of single requests' records: the chunk, and its keys if it has any."""
    topic, queue_id = queue
    staged.chunk_rows.append((first_phys, topic, queue_id, first_offset, pack_index(index), b"".join(records)))
    if digests:
        staged.key_rows.append((topic, first_phys, b"".join(digests), pack_slots(slots)))


def _key_row(keys: Sequence[tuple[str, ...]]) -> tuple[bytes, bytes] | None:
    """(digests, slots) of the keys of a chunk's records, or None when they have none. The common batch, one key
    (its UNIQ_KEY) per record, is digested in one pass."""
    flat = list(itertools.chain.from_iterable(keys))
    if not flat:
        return None
    if list(map(len, keys)).count(1) == len(keys) and "" not in flat:
        return b"".join(map(key_digest, flat)), pack_slots(range(len(keys)))
    digests, slots = [], []
    for i, record_keys in enumerate(keys):
        for key in record_keys:
            if key:
                digests.append(key_digest(key))
                slots.append(i)
    return (b"".join(digests), pack_slots(slots)) if digests else None


def _answer(batch: list[_Pending], answers: list[list[AppendResult]]) -> None:
    for pending, results in zip(batch, answers, strict=True):
        if not pending.future.done():
            pending.future.set_result(results[0] if isinstance(pending.requests, RecordRun) else results)


def _fail(future: asyncio.Future[Any] | Completion[Any], cause: BaseException) -> None:
    if future.done():
        return
    if isinstance(cause, StoreError) and not isinstance(cause, UnstorableValue):
        error: StoreError = type(cause)(str(cause))  # one instance per caller: each raises its own
        error.__cause__ = cause.__cause__
        future.set_exception(error)
    elif isinstance(cause, Exception):
        error = StoreError(f"append transaction failed: {cause}")
        error.__cause__ = cause
        future.set_exception(error)
    else:
        future.set_exception(StoreClosed("the store stopped before this append was committed"))
