"""SqliteStore specifics: protocol conformance, pragmas, schema migrations, query plans, group commit,
failed transactions, background offset flushing, concurrency of reads with writes, and kill -9 safety.

Independent ``sqlite3`` connections look at the database file from outside the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import pathlib
import re
import signal
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest

from codec.record import StoredMessage, decode_record, encode_record, set_offsets
from store import background, migrations
from store import sqlite as store_sqlite
from store.api import AppendRequest, MessageStore, RecordRun
from store.errors import StoreError
from store.sqlite import SqliteStore

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "nested" / "dir" / "store.db"


@contextlib.contextmanager
def raw(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def opened(
    path: pathlib.Path, *, sync_flush: bool = False, offset_flush_interval: float = 1.0
) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, sync_flush=sync_flush, offset_flush_interval=offset_flush_interval)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def test_implements_the_protocol_exactly() -> None:
    members = [name for name, _ in inspect.getmembers(MessageStore, inspect.isfunction) if not name.startswith("_")]
    assert len(members) == 44
    for name in members:
        ours, theirs = getattr(SqliteStore, name), getattr(MessageStore, name)
        assert str(inspect.signature(ours)) == str(inspect.signature(theirs)), name
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name


@pytest.mark.parametrize("sync_flush", [False, True])
async def test_wal_and_synchronous_pragmas(db_path: pathlib.Path, sync_flush: bool, new_request) -> None:
    async with opened(db_path, sync_flush=sync_flush) as store:
        assert store._conn is not None
        # NORMAL (1) in both modes: SYNC_FLUSH acknowledges only after an fsync of the WAL in the background.
        assert store._conn.execute("PRAGMA synchronous").fetchall() == [(1,)]
        assert store._background is not None
        before = store._background.fsyncs
        await store.append([new_request()])
        assert store._background.fsyncs == before + (1 if sync_flush else 0)
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(migrations.MIGRATIONS),)


async def test_migrations_run_step_by_step(db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with opened(db_path):
        pass
    current = len(migrations.MIGRATIONS)
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (current,)

    step = "CREATE TABLE added_next (x INTEGER); INSERT INTO added_next VALUES (42);"
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    async with opened(db_path):
        pass
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (current + 1,)
        assert conn.execute("SELECT x FROM added_next").fetchall() == [(42,)]


def _version_4_store(path: pathlib.Path) -> list[tuple[int, int, bytes]]:
    """A store as the previous pocketmq wrote it (schema version 4, one row per message): three messages in two
    queues, one with a key, one scheduled, one a pending half message. Returns (queue, offset, record) each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, written, phys = [], [], 0
    for queue_id, offset, body, ts in ((0, 0, b"first", 100), (1, 0, b"second", 200), (0, 1, b"third", 300)):
        record = encode_record(StoredMessage(topic="Old", queue_id=queue_id, body=body, store_timestamp=ts))
        set_offsets(record, offset, phys)
        rows.append((phys, "Old", queue_id, offset, 7, ts, bytes(record)))
        written.append((queue_id, offset, bytes(record)))
        phys += len(record)
    with raw(path) as conn:
        for script in migrations.MIGRATIONS[:4]:
            assert isinstance(script, str)
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 4")
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("INSERT INTO message_keys VALUES ('Old', 'key-2', 200, ?)", (rows[1][0],))
        conn.execute("INSERT INTO schedule VALUES (?, 5)", (rows[2][0],))
        conn.execute("INSERT INTO half_messages VALUES (?, 'pg', 'tx', 'pending', 0, 0, 0, NULL)", (rows[0][0],))
    return written


async def test_a_version_4_store_is_migrated_keeping_every_message(db_path: pathlib.Path, new_request) -> None:
    written = _version_4_store(db_path)
    async with opened(db_path) as store:
        for queue_id, offset, record in written:
            [entry] = await store.read_queue("Old", queue_id, offset, 1)
            assert (entry.queue_offset, entry.tags_code, entry.record) == (offset, 7, record)
            assert await store.get_by_phys_offset(decode_record(record)[0].phys_offset) == record
        assert (store.max_offset("Old", 0), store.max_offset("Old", 1)) == (2, 1)
        assert await store.query_by_key("Old", "key-2", 10, 0, 10**15) == [written[1][2]]
        assert [e.record for e in await store.due_scheduled(10, 10)] == [written[2][2]]
        assert [h.transaction_id for h in await store.pending_half_messages()] == ["tx"]
        assert await store.search_offset_by_timestamp("Old", 0, 250, "lower") == 1
        [after] = await store.append([new_request("Old", 0)])
        assert after.queue_offset == 2
        assert after.phys_offset == sum(len(r) for _q, _o, r in written)
    with raw(db_path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'messages'").fetchall() == []


async def test_an_interrupted_move_to_chunks_resumes(db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _version_4_store(db_path)
    monkeypatch.setattr(migrations, "MOVE_BATCH", 1)
    original = migrations._to_chunks

    def interrupted(conn: sqlite3.Connection) -> None:
        calls = []

        def commit_then_stop(*_args: object) -> int:
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # killed after the first batch was moved
            return 0

        conn.create_function("stop_here", 0, commit_then_stop)
        conn.execute("CREATE TEMP TRIGGER stop AFTER INSERT ON chunks BEGIN SELECT stop_here(); END")
        original(conn)

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS[:4], interrupted])
    with pytest.raises((KeyboardInterrupt, sqlite3.OperationalError)):
        await SqliteStore(db_path).open()
    monkeypatch.undo()
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
    async with opened(db_path) as store:
        for queue_id, offset, record in written:
            [entry] = await store.read_queue("Old", queue_id, offset, 1)
            assert entry.record == record


async def test_failed_migration_leaves_the_version(db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with opened(db_path):
        pass
    broken = "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;"
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(db_path).open()
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(migrations.MIGRATIONS) - 1,)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []


async def test_refuses_a_newer_schema(db_path: pathlib.Path) -> None:
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore(db_path).open()


def test_per_request_reads_use_indexes() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(conn)
    for sql in store_sqlite.PER_REQUEST_READS:
        numbered = [int(n) for n in re.findall(r"\?(\d+)", sql)]
        params = (0,) * (max(numbered) if numbered else sql.count("?"))
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        assert all(step.startswith(("SEARCH", "SCALAR SUBQUERY")) for step in plan), (sql, plan)


async def test_phys_offsets_are_commit_log_byte_offsets(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        requests = [new_request(body=b"x" * n) for n in (1, 10, 100)]
        results = await store.append(requests)
    assert results[0].phys_offset == 0
    for prev, cur, request in zip(results, results[1:], requests, strict=False):
        assert cur.phys_offset == prev.phys_offset + len(request.record)


async def test_group_commit_batches_concurrent_appends(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        results = await asyncio.gather(*(store.append([new_request(queue_id=i % 4)]) for i in range(200)))
        assert len({r.phys_offset for [r] in results}) == 200
        assert 1 <= store.transactions_committed <= 10
        # One at a time, every append is its own transaction.
        before = store.transactions_committed
        for _ in range(5):
            await store.append([new_request()])
        assert store.transactions_committed == before + 5


async def test_answered_only_after_commit(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        [result] = await store.append([new_request(keys=("k",))])
        with raw(db_path) as conn:  # an outside reader sees the committed chunk right away
            rows = conn.execute("SELECT first_offset FROM chunks WHERE first_phys = ?", (result.phys_offset,))
            assert rows.fetchall() == [(0,)]
            assert conn.execute("SELECT topic, first_phys FROM chunk_keys").fetchall() == [("TopicA", 0)]


async def test_one_chunk_per_queue_per_group_commit(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        results = await asyncio.gather(*(store.append([new_request(queue_id=i % 2)]) for i in range(10)))
        assert store.transactions_committed == 1
        with raw(db_path) as conn:
            chunks = conn.execute("SELECT queue_id, first_offset, length(idx) / 20 FROM chunks ORDER BY 1").fetchall()
        assert chunks == [(0, 0, 5), (1, 0, 5)]
        # Physical offsets are contiguous within each queue's chunk.
        by_queue = sorted((r.queue_offset, r.phys_offset) for [r] in results[0::2])
        assert [p for _o, p in by_queue] == sorted(p for _o, p in by_queue)
        for entry in await store.read_queue("TopicA", 0, 0, 10):
            assert decode_record(entry.record)[0].queue_offset == entry.queue_offset


async def test_failed_transaction_fails_every_caller_and_changes_nothing(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        await store.append([new_request(queue_id=0), new_request(queue_id=1)])
        phys_before = store._next_phys
        squat = "INSERT INTO chunks VALUES (?, 'TopicA', 1, 1, x'', x'00')"
        with raw(db_path) as conn:  # squat on the next offset of queue 1: the next insert there will conflict
            conn.execute(squat, (phys_before + 1_000_000,))

        victims = [new_request(queue_id=0), new_request(queue_id=1)]
        originals = [bytes(r.record) for r in victims]
        outcomes = await asyncio.gather(store.append([victims[0]]), store.append([victims[1]]), return_exceptions=True)
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes
        assert isinstance(outcomes[0].__cause__, sqlite3.IntegrityError)
        assert (store.max_offset("TopicA", 0), store.max_offset("TopicA", 1)) == (1, 1)
        assert store._next_phys == phys_before
        assert [bytes(r.record) for r in victims] == originals  # offsets not patched in after all
        assert len(await store.read_queue("TopicA", 0, 0, 10)) == 1

        # An atomic multi-message append is all or nothing.
        with pytest.raises(StoreError):
            await store.append([new_request(queue_id=2), new_request(queue_id=1)])
        assert not store.queue_exists("TopicA", 2)
        with raw(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM chunks WHERE queue_id = 2").fetchone() == (0,)
            conn.execute("DELETE FROM chunks WHERE first_phys = ?", (phys_before + 1_000_000,))

        # With the conflict gone, the same offsets are handed out.
        results = await store.append(victims)
        assert [(r.queue_offset, r.phys_offset) for r in results] == [
            (1, phys_before),
            (1, phys_before + len(victims[0].record)),
        ]


async def test_bad_request_fails_only_its_caller(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        bad = new_request()
        bad.record = bytearray(b"short")
        good, failed = await asyncio.gather(store.append([new_request()]), store.append([bad]), return_exceptions=True)
        assert isinstance(failed, ValueError)
        assert good[0].queue_offset == 0


async def test_writer_survives_a_group_that_cannot_be_staged(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        broken = new_request()
        broken.half = SimpleNamespace(producer_group="pg", transaction_id="t")  # type: ignore[assignment]
        with pytest.raises(StoreError):
            await store.append([new_request(), broken])
        assert not store.queue_exists("TopicA", 0)
        [result] = await store.append([new_request()])
        assert (result.queue_offset, result.phys_offset) == (0, 0)


async def test_cancelled_before_commit_is_not_written(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        task = asyncio.create_task(store.append([new_request()]))
        await asyncio.sleep(0)  # queued, but the writer has not run yet
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [result] = await store.append([new_request()])
        assert result.queue_offset == 0


async def test_consumer_offsets_flush_in_background_only_when_dirty(db_path: pathlib.Path) -> None:
    query = "SELECT committed_offset FROM consumer_offsets WHERE consumer_group = 'g'"
    async with opened(db_path, offset_flush_interval=0.02) as store:
        store.set_consumer_offset("g", "TopicA", 0, 11)
        await asyncio.sleep(0.2)
        with raw(db_path) as conn:
            assert conn.execute(query).fetchall() == [(11,)]
            conn.execute("UPDATE consumer_offsets SET committed_offset = -7")
        store.set_consumer_offset("g", "TopicA", 0, 11)  # unchanged: not dirty, not rewritten
        await asyncio.sleep(0.2)
        with raw(db_path) as conn:
            assert conn.execute(query).fetchall() == [(-7,)]
        store.set_consumer_offset("g", "TopicA", 0, 12)
    with raw(db_path) as conn:  # close() flushed the last change
        assert conn.execute(query).fetchall() == [(12,)]


async def test_an_outside_reader_blocks_neither_appends_nor_reads(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        await store.append([new_request()])
        with raw(db_path) as outsider:
            outsider.execute("BEGIN")
            assert outsider.execute("SELECT count(*) FROM chunks").fetchone() == (1,)  # holds a read snapshot
            [result] = await store.append([new_request()])
            assert result.queue_offset == 1
            assert len(await store.read_queue("TopicA", 0, 0, 10)) == 2
            assert outsider.execute("SELECT count(*) FROM chunks").fetchone() == (1,)  # its snapshot is kept
            outsider.execute("ROLLBACK")


_KILL_CHILD = textwrap.dedent(
    """
    import asyncio, pathlib, sys
    from codec.record import StoredMessage, encode_record
    from store.api import AppendRequest
    from store.sqlite import SqliteStore

    async def main(path: str, sync_flush: bool) -> None:
        store = SqliteStore(pathlib.Path(path), sync_flush=sync_flush)
        await store.open()

        async def appender(queue_id: int) -> None:
            for i in range(1_000_000):
                body = f"{queue_id}-{i}"
                msg = StoredMessage(topic="Kill", queue_id=queue_id, body=body.encode(), store_timestamp=i)
                request = AppendRequest("Kill", queue_id, encode_record(msg), 0, (body,), i)
                [result] = await store.append([request])
                print("acked", queue_id, i, result.queue_offset, result.phys_offset, flush=True)

        await asyncio.gather(*(appender(q) for q in range(4)))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "sync"))
    """
)


@pytest.mark.parametrize("sync_flush", [False, True])
async def test_every_acked_append_survives_kill_9(
    tmp_path: pathlib.Path, db_path: pathlib.Path, sync_flush: bool, new_request
) -> None:
    script = tmp_path / "child.py"
    script.write_text(_KILL_CHILD)
    mode = "sync" if sync_flush else "async"
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(db_path), mode,
        stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert child.stdout is not None
    acked = []
    while len(acked) < 300:
        line = await child.stdout.readline()
        assert line, f"child exited early with {await child.wait()}"
        acked.append(line.decode())
    child.send_signal(signal.SIGKILL)
    tail = (await child.stdout.read()).decode()  # acks printed before the kill count too...
    acked += tail.split("\n")[:-1]  # ...when their line is whole (the kill may land mid-line)
    assert await child.wait() == -signal.SIGKILL

    async with opened(db_path) as store:
        for line in acked:
            _, queue_id, i, queue_offset, phys_offset = line.split()
            [entry] = await store.read_queue("Kill", int(queue_id), int(queue_offset), 1)
            msg, _ = decode_record(entry.record)
            assert (msg.body, msg.phys_offset) == (f"{queue_id}-{i}".encode(), int(phys_offset))
            assert await store.get_by_phys_offset(int(phys_offset)) == entry.record
        last_acked_phys = max(int(line.split()[4]) for line in acked)
        highest = {q: max(int(line.split()[3]) for line in acked if line.split()[1] == str(q)) for q in range(4)}
        for queue_id in range(4):
            assert store.max_offset("Kill", queue_id) >= highest[queue_id] + 1
            # Counters continue after whatever was committed, acked or not.
            entries = await store.read_queue("Kill", queue_id, 0, 1_000_000)
            assert [e.queue_offset for e in entries] == list(range(store.max_offset("Kill", queue_id)))
        [after] = await store.append([new_request("Kill", 0)])
        assert after.queue_offset == store.max_offset("Kill", 0) - 1
        assert after.phys_offset > last_acked_phys


_T0 = 1_700_000_000_000


async def test_one_key_row_per_chunk_and_newest_first_across_chunks(db_path: pathlib.Path, new_request) -> None:
    path = db_path
    async with opened(path) as store:
        first = [new_request(body=b"%d" % i, keys=("k", f"u{i}"), store_timestamp=_T0 + i) for i in range(50)]
        await store.append(first)  # one chunk
        big = b"x" * (200 * 1024)
        await store.append([new_request(body=big, keys=("k",), store_timestamp=_T0 + 100)])
        await store.append([new_request(body=big, keys=("other",), store_timestamp=_T0 + 101)])  # second chunk
        with raw(path) as conn:
            rows = conn.execute("SELECT first_phys, length(digests), length(slots) FROM chunk_keys").fetchall()
        assert [(d, s) for _, d, s in rows] == [(100 * 8, 100 * 2), (8, 2), (8, 2)]  # 8-byte digests, 2-byte slots
        found = await store.query_by_key("TopicA", "k", 3, 0, _T0 + 1000)
        assert [decode_record(r)[0].body[:3] for r in found] == [b"xxx", b"49", b"48"]
        assert [decode_record(r)[0].body for r in await store.query_by_key("TopicA", "u7", 32, 0, _T0 + 1000)] == [b"7"]
        assert await store.query_by_key("TopicA", "u7", 32, _T0 + 8, _T0 + 1000) == []
        assert len(await store.query_by_key("TopicA", "k", 100, 0, _T0 + 1000)) == 51
        assert await store.query_by_key("TopicB", "k", 100, 0, _T0 + 1000) == []
        await store.delete_topic("TopicA")
        with raw(path) as conn:
            assert conn.execute("SELECT count(*) FROM chunk_keys").fetchone() == (0,)


def _run_of(requests: list[AppendRequest]) -> RecordRun:
    """The requests' records as one run, as the batch path builds it."""
    ends = list(itertools.accumulate(len(r.record) for r in requests))
    records = bytearray(b"".join(r.record for r in requests))
    first = requests[0]
    return RecordRun(
        first.topic, first.queue_id, records, ends, [r.tags_code for r in requests], [r.keys for r in requests],
        first.store_timestamp,
    )  # fmt: skip


async def test_a_run_is_stored_like_its_records_in_arrival_order(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        before = new_request(body=b"before")
        items = [new_request(body=b"item %d" % i, keys=(f"k{i}",), tags_code=i) for i in range(5)]
        after = new_request(body=b"after")
        run = _run_of(items)
        queued = [store.append_nowait([before]), store.append_run_nowait(run), store.append_nowait([after])]
        one, first, last = await asyncio.gather(*queued)
        assert store.transactions_committed == 1
        assert (one[0].queue_offset, first.queue_offset, last[0].queue_offset) == (0, 1, 6)
        assert first.phys_offset == len(before.record)
        pulled = store.pull("TopicA", 0, 0, 32, 1 << 20)
        bodies = [decode_record(r)[0].body for r in pulled.records]
        assert bodies == [b"before", *(b"item %d" % i for i in range(5)), b"after"]
        for i, record in enumerate(pulled.records[1:6]):
            message = decode_record(record)[0]
            assert (message.queue_offset, message.phys_offset) == (1 + i, first.phys_offset + run.ends[i] - len(record))
            assert await store.get_by_phys_offset(message.phys_offset) == record
        assert bytes(run.records) == b"".join(pulled.records[1:6])  # patched in place
        assert [decode_record(r)[0].body for r in await store.query_by_key("TopicA", "k3", 8, 0, 2**62)] == [b"item 3"]
        tags = store.pull("TopicA", 0, 0, 32, 1 << 20, accept=lambda code, _r: code == 2)
        assert [decode_record(r)[0].body for r in tags.records] == [b"item 2"]


async def test_a_run_over_the_chunk_size_is_split_into_chunks(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        items = [new_request(body=bytes([i]) * 100_000, keys=(f"k{i}",)) for i in range(7)]
        first = await store.append_run_nowait(_run_of(items))
        assert first == (0, 0)
        with raw(db_path) as conn:
            chunks = conn.execute("SELECT first_offset, length(records) FROM chunks ORDER BY first_phys").fetchall()
            assert [offset for offset, _ in chunks] == [0, 2, 4, 6]
            assert all(size <= store_sqlite.CHUNK_MAX_BYTES for _, size in chunks)
        pulled = store.pull("TopicA", 0, 3, 32, 1 << 30)
        assert [decode_record(r)[0].body[:1] for r in pulled.records] == [bytes([i]) for i in range(3, 7)]
        for i in range(7):
            [found] = await store.query_by_key("TopicA", f"k{i}", 8, 0, 2**62)
            assert decode_record(found)[0].queue_offset == i


async def test_a_failed_run_leaves_its_offsets_zero(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        await store.append([new_request()])
        await store.set_max_size(0)
        run = _run_of([new_request(body=b"x" * 3000) for _ in range(200)])
        original = bytes(run.records)
        with pytest.raises(StoreError):
            await store.append_run_nowait(run)
        assert bytes(run.records) == original
        assert store.max_offset("TopicA", 0) == 1


async def test_a_run_that_does_not_add_up_is_refused_at_once(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        run = _run_of([new_request(), new_request()])
        run.ends[-1] += 1
        with pytest.raises(ValueError, match="does not end where its records do"):
            store.append_run_nowait(run)
        run = _run_of([new_request(), new_request()])
        run.tags_codes.pop()
        with pytest.raises(ValueError, match="not as many tags or keys"):
            store.append_run_nowait(run)


async def test_the_wal_starts_over_under_a_steady_load(
    db_path: pathlib.Path, new_request, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the background thread holding the commits for a moment, a checkpoint never ends between two
    group commits and the WAL grows without end; with it, the WAL is rewritten from its start."""
    monkeypatch.setattr(background, "RESTART_WAL_BYTES", 256 * 1024)
    monkeypatch.setattr(background, "CHECKPOINT_INTERVAL_S", 0.01)
    wal = pathlib.Path(f"{db_path}-wal")
    async with opened(db_path) as store:
        assert store._background is not None
        written, offsets = 0, []
        while written < 8 * 1024 * 1024:  # 32 times the restart size
            batch = [new_request(queue_id=i % 4, body=os.urandom(2000)) for i in range(16)]
            offsets += [r.queue_offset for r in await store.append(batch)]
            written += sum(len(r.record) for r in batch)
            await asyncio.sleep(0)  # let the release in, as a busy broker does between requests
        assert store._background.restarts >= 2
        assert _size(wal) < 4 * 1024 * 1024, "the WAL kept growing"
        assert sorted(offsets) == [q for q in range(len(offsets) // 4) for _ in range(4)]
    async with opened(db_path) as store:  # and nothing was lost on the way
        assert [store.max_offset("TopicA", q) for q in range(4)] == [len(offsets) // 4] * 4


async def _write_under_load(store: SqliteStore, new_request, megabytes: int) -> None:
    written = 0
    while written < megabytes * 1024 * 1024:
        batch = [new_request(queue_id=i % 4, body=os.urandom(2000)) for i in range(16)]
        await store.append(batch)
        written += sum(len(r.record) for r in batch)
        await asyncio.sleep(0)


@pytest.mark.parametrize(("force_factor", "restarts"), [(1 << 20, 0), (2, 1)])
async def test_commits_are_held_only_once_the_checkpoints_caught_up_or_the_wal_is_far_too_big(
    db_path: pathlib.Path, new_request, monkeypatch: pytest.MonkeyPatch, force_factor: int, restarts: int
) -> None:
    """Holding the commits while a long checkpoint copies stalls every sender; when catching up fails (here it is
    never tried), the restart waits for a later round, unless the WAL is past the forced limit."""
    monkeypatch.setattr(background, "RESTART_WAL_BYTES", 256 * 1024)
    monkeypatch.setattr(background, "FORCE_RESTART_FACTOR", force_factor)
    monkeypatch.setattr(background, "CHECKPOINT_INTERVAL_S", 0.01)
    monkeypatch.setattr(background, "CATCH_UP_ROUNDS", 0)
    async with opened(db_path) as store:
        assert store._background is not None
        await _write_under_load(store, new_request, 4)
        assert (store._background.restarts >= 1) == bool(restarts)


async def test_catching_up_syncs_the_database_file_between_checkpoints(
    db_path: pathlib.Path, new_request, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite syncs the database file only in a checkpoint that reaches the end of the WAL; the catching up does it
    after each of its checkpoints so that the one under the hold has little left to write out."""
    synced: list[pathlib.Path] = []
    real_sync = background._sync_file
    monkeypatch.setattr(background, "_sync_file", lambda path: (synced.append(path), real_sync(path)))
    monkeypatch.setattr(background, "RESTART_WAL_BYTES", 256 * 1024)
    monkeypatch.setattr(background, "FORCE_RESTART_FACTOR", 1 << 20)  # never forced: every restart catches up first
    monkeypatch.setattr(background, "CHECKPOINT_INTERVAL_S", 0.01)
    async with opened(db_path) as store:
        assert store._background is not None
        await _write_under_load(store, new_request, 4)
        assert store._background.restarts >= 1
    assert synced and set(synced) == {db_path}


def _size(path: pathlib.Path) -> int:
    return path.stat().st_size


async def test_held_commits_wait_for_the_release_but_not_a_topic_deletion(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        held = threading.Event()
        store.hold_commits(held)
        assert held.is_set()
        kept = store.append_nowait([new_request("Kept")])
        await asyncio.sleep(0.05)
        assert not kept.done()  # waits for the release
        gone = store.append_nowait([new_request("Gone")])
        await store.delete_topic("Gone")  # commits what is queued first, held or not
        assert gone.done() and kept.done()
        assert (store.max_offset("Gone", 0), store.max_offset("Kept", 0)) == (0, 1)
        store.release_commits()
        later = await store.append([new_request("Kept")])
        assert later[0].queue_offset == 1
