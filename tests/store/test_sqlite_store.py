"""SqliteStore specifics: protocol conformance, pragmas, schema migrations, query plans, group commit,
failed transactions, background offset flushing, concurrency of reads with writes, and kill -9 safety.

Independent ``sqlite3`` connections look at the database file from outside the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pathlib
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest

from codec.record import decode_record
from store import sqlite as store_sqlite
from store.api import MessageStore
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
    assert len(members) == 26
    for name in members:
        ours, theirs = getattr(SqliteStore, name), getattr(MessageStore, name)
        assert str(inspect.signature(ours)) == str(inspect.signature(theirs)), name
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name


@pytest.mark.parametrize(("sync_flush", "level"), [(False, 1), (True, 2)])  # NORMAL=1, FULL=2
async def test_wal_and_synchronous_pragmas(db_path: pathlib.Path, sync_flush: bool, level: int) -> None:
    async with opened(db_path, sync_flush=sync_flush) as store:
        assert store._writer is not None
        assert list(await store._writer.execute_fetchall("PRAGMA synchronous")) == [(level,)]
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(store_sqlite.MIGRATIONS),)


async def test_migrations_run_step_by_step(db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with opened(db_path):
        pass
    current = len(store_sqlite.MIGRATIONS)
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (current,)

    step = "CREATE TABLE added_next (x INTEGER); INSERT INTO added_next VALUES (42);"
    monkeypatch.setattr(store_sqlite, "MIGRATIONS", [*store_sqlite.MIGRATIONS, step])
    async with opened(db_path):
        pass
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (current + 1,)
        assert conn.execute("SELECT x FROM added_next").fetchall() == [(42,)]


async def test_a_version_1_database_is_migrated_keeping_its_messages(
    db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, new_request
) -> None:
    monkeypatch.setattr(store_sqlite, "MIGRATIONS", store_sqlite.MIGRATIONS[:1])
    async with opened(db_path) as store:
        await store.append([new_request("T", 0, b"kept")])
    monkeypatch.undo()
    async with opened(db_path) as store:
        assert [e.queue_offset for e in await store.read_queue("T", 0, 0, 10)] == [0]
        assert await store.scheduled_count() == 0


async def test_failed_migration_leaves_the_version(db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with opened(db_path):
        pass
    broken = "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;"
    monkeypatch.setattr(store_sqlite, "MIGRATIONS", [*store_sqlite.MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore(db_path).open()
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(store_sqlite.MIGRATIONS) - 1,)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []


async def test_refuses_a_newer_schema(db_path: pathlib.Path) -> None:
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore(db_path).open()


def test_per_request_reads_use_indexes() -> None:
    conn = sqlite3.connect(":memory:")
    for script in store_sqlite.MIGRATIONS:
        conn.executescript(script)
    for sql in store_sqlite.PER_REQUEST_READS:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (0,) * sql.count("?"))]
        assert all(step.startswith("SEARCH") for step in plan), (sql, plan)


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
        with raw(db_path) as conn:  # an outside reader sees the committed row right away
            rows = conn.execute("SELECT queue_offset FROM messages WHERE phys_offset = ?", (result.phys_offset,))
            assert rows.fetchall() == [(0,)]
            assert conn.execute("SELECT count(*) FROM message_keys").fetchone() == (1,)


async def test_failed_transaction_fails_every_caller_and_changes_nothing(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        await store.append([new_request(queue_id=0), new_request(queue_id=1)])
        phys_before = store._next_phys
        with raw(db_path) as conn:  # squat on the next offset of queue 1: the next insert there will conflict
            conn.execute("INSERT INTO messages VALUES (?, 'TopicA', 1, 1, 0, 0, x'00')", (phys_before + 1_000_000,))

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
            assert conn.execute("SELECT count(*) FROM messages WHERE queue_id = 2").fetchone() == (0,)
            conn.execute("DELETE FROM messages WHERE phys_offset = ?", (phys_before + 1_000_000,))

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


async def test_reads_do_not_wait_behind_writes(db_path: pathlib.Path, new_request) -> None:
    async with opened(db_path) as store:
        await store.append([new_request()])
        with raw(db_path) as outsider:
            outsider.execute("BEGIN IMMEDIATE")  # holds the write lock, so the store's writer must wait
            blocked = asyncio.create_task(store.append([new_request()]))
            await asyncio.sleep(0.2)
            assert not blocked.done()
            assert len(await store.read_queue("TopicA", 0, 0, 10)) == 1
            assert await store.search_offset_by_timestamp("TopicA", 0, 0, "lower") == 0
            assert not blocked.done()  # the reads finished while the append still waits
            outsider.execute("ROLLBACK")
        [result] = await blocked
        assert result.queue_offset == 1


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
    acked += (await child.stdout.read()).decode().splitlines()  # acks printed before the kill count too
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
