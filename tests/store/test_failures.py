"""Failures that must stay contained: a full disk.

A full disk is simulated with SQLite's ``max_page_count`` on the writer connection (``SqliteStore.set_max_size``),
which fails writes with SQLITE_FULL exactly where ENOSPC would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import sqlite3
from collections.abc import AsyncIterator, Iterator

import pytest

from codec.codes import ResponseCode
from codec.record import decode_record
from store.api import TopicConfig
from store.errors import StorageUnavailable, StoreClosed, StoreError
from store.sqlite import RateLimitedLog, SqliteStore

_STORE_LOG = "store.sqlite"


@contextlib.asynccontextmanager
async def opened(path: pathlib.Path, offset_flush_interval: float = 3600.0) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, offset_flush_interval=offset_flush_interval)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def raw(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def store_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == _STORE_LOG and text in r.getMessage()]


def test_every_store_error_carries_its_response_code() -> None:
    assert StoreError("x").response_code == ResponseCode.SYSTEM_ERROR
    assert StoreClosed("x").response_code == ResponseCode.SERVICE_NOT_AVAILABLE
    assert StorageUnavailable("x").response_code == ResponseCode.SERVICE_NOT_AVAILABLE


# ---- a full disk -------------------------------------------------------------------------------------------------


async def test_a_full_disk_refuses_writes_retriably_and_they_resume_when_space_returns(
    tmp_path: pathlib.Path, new_request, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=_STORE_LOG)
    path = tmp_path / "store.db"
    acked: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}  # queue -> (queue offset, record)
    async with opened(path) as store:
        for i in range(10):
            request = new_request(queue_id=i % 2, body=b"before %d" % i)
            [result] = await store.append([request])
            acked[i % 2].append((result.queue_offset, bytes(request.record)))
        # Capped at its current size (the cap never goes below it): the next pages the file needs are refused.
        cap = await store.set_max_size(0)
        assert cap > 0
        full: StorageUnavailable | None = None
        for i in range(1000):  # whatever still fits in the last pages is stored and acknowledged
            request = new_request(queue_id=i % 2, body=b"%d" % i + b"x" * 2000)
            try:
                [result] = await store.append([request])
            except StorageUnavailable as err:
                full = err
                break
            acked[i % 2].append((result.queue_offset, bytes(request.record)))
        assert full is not None, "the capped store never filled up"
        assert full.response_code == ResponseCode.SERVICE_NOT_AVAILABLE
        assert "the broker's disk is full: database or disk is full (store.db)" in str(full)
        assert "refused until space is freed" in str(full)
        assert isinstance(full.__cause__, sqlite3.OperationalError)
        assert full.__cause__.sqlite_errorcode == 13  # SQLITE_FULL

        # Concurrent sends share a group-commit transaction; each caller gets its own error.
        outcomes = await asyncio.gather(
            *(store.append([new_request(queue_id=q % 2, body=b"y" * 3000)]) for q in range(6)), return_exceptions=True
        )
        assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
        assert len({id(o) for o in outcomes}) == 6
        # Every other write path says the same.
        with pytest.raises(StorageUnavailable):
            await store.save_topic(TopicConfig("T" * 9000))
        with pytest.raises(StorageUnavailable):
            await store.save_subscription("g", "TopicA", "SQL92", "a > 1 OR " * 1000 + "TRUE", 1)
        for i in range(300):
            store.set_consumer_offset(f"group-{i:03d}-" + "g" * 100, "TopicA", 0, i)
        with pytest.raises(StorageUnavailable):
            await store._flush_offsets()
        assert len(store._dirty) == 300  # kept for the next flush
        # Nothing failed used up an offset.
        for queue_id, entries in acked.items():
            assert store.max_offset("TopicA", queue_id) == len(entries)

        # One warning per kind of write, no tracebacks, however many sends failed.
        refused = store_warnings(caplog, "disk is full")
        assert sorted(r.getMessage().split(" write refused")[0] for r in refused) == [
            "append", "consumer offsets", "subscription", "topic"
        ]  # fmt: skip
        assert all(r.exc_info is None and r.levelno == logging.WARNING for r in refused)
        for _ in range(5):
            with pytest.raises(StorageUnavailable):
                await store.append([new_request(body=b"z" * 3000)])
        assert len(store_warnings(caplog, "disk is full")) == 4

        await store.set_max_size(None)  # space is back
        for i in range(4):
            request = new_request(queue_id=i % 2, body=b"after %d" % i)
            [result] = await store.append([request])
            acked[i % 2].append((result.queue_offset, bytes(request.record)))
        assert len(store_warnings(caplog, "writes succeed again after")) == 1
        await store._flush_offsets()
        assert not store._dirty
        await store.save_topic(TopicConfig("T" * 9000))

    async with opened(path) as store:  # everything acknowledged is on disk, and offsets have no gaps
        for queue_id, entries in acked.items():
            assert [offset for offset, _ in entries] == list(range(len(entries)))
            stored = await store.read_queue("TopicA", queue_id, 0, 10_000)
            assert [(e.queue_offset, e.record) for e in stored] == entries
            assert decode_record(stored[-1].record)[0].body == b"after %d" % (2 + queue_id)
        assert store.get_consumer_offset("group-299-" + "g" * 100, "TopicA", 0) == 299
        assert [t.topic_name for t in await store.load_topics()] == ["T" * 9000]


async def test_background_flushes_on_a_full_disk_log_one_line_and_catch_up(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.db"
    async with opened(path, offset_flush_interval=0.01) as store:
        await store.set_max_size(0)
        for i in range(300):
            store.set_consumer_offset(f"group-{i:03d}-" + "g" * 100, "T", 0, i)
        await asyncio.sleep(0.3)  # some 30 flushes fail
        assert len(store._dirty) == 300
        assert len(store_warnings(caplog, "disk is full")) == 1
        assert not [r for r in caplog.records if r.exc_info]
        await store.set_max_size(None)
        await asyncio.sleep(0.1)
        assert not store._dirty
    with raw(path) as conn:
        assert conn.execute("SELECT count(*) FROM consumer_offsets").fetchone() == (300,)


async def test_close_on_a_full_disk_logs_the_lost_offsets_instead_of_raising(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "store.db", offset_flush_interval=3600)
    await store.open()
    await store.set_max_size(0)
    for i in range(300):
        store.set_consumer_offset(f"group-{i:03d}-" + "g" * 100, "T", 0, i)
    await store.close()
    [lost] = store_warnings(caplog, "not saved at close")
    assert "300 queue(s)" in lost.getMessage() and "disk is full" in lost.getMessage()


def test_sqlite_errors_that_mean_the_disk_refuses(tmp_path: pathlib.Path) -> None:
    store = SqliteStore(tmp_path / "store.db")

    def error(code: int, name: str, text: str) -> sqlite3.Error:
        err = sqlite3.OperationalError(text)
        err.sqlite_errorcode, err.sqlite_errorname = code, name
        return err

    full = store._unavailable(error(13, "SQLITE_FULL", "database or disk is full"))
    assert full is not None and "disk is full" in str(full)
    for code, name in ((778, "SQLITE_IOERR_WRITE"), (1034, "SQLITE_IOERR_FSYNC"), (10, "SQLITE_IOERR")):
        ioerr = store._unavailable(error(code, name, "disk I/O error"))
        assert isinstance(ioerr, StorageUnavailable), name
        assert f"cannot write to its disk: disk I/O error [{name}] (store.db)" in str(ioerr)
    for code, name in ((5, "SQLITE_BUSY"), (19, "SQLITE_CONSTRAINT"), (2067, "SQLITE_CONSTRAINT_UNIQUE")):
        assert store._unavailable(error(code, name, "x")) is None
    assert store._unavailable(ValueError("x")) is None


def test_rate_limited_log_says_how_many_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=10.0, clock=lambda: now[0])
    log.warning("full", "disk full %s", 1)
    for i in range(5):
        now[0] += 1.0
        log.warning("full", "disk full %s", i)
    log.warning("other", "another kind")
    now[0] = 110.0
    log.warning("full", "disk full %s", "again")
    log.warning("full", "disk full %s", "suppressed")
    assert [r.getMessage() for r in caplog.records] == [
        "disk full 1",
        "another kind",
        "disk full again (5 more like this in the last 10 s)",
    ]
