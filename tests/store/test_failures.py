"""Failures that must stay contained: a full disk, and values the store cannot write.

A full disk is simulated with SQLite's ``max_page_count`` on the writer connection (``SqliteStore.set_max_size``),
which fails writes with SQLITE_FULL exactly where ENOSPC would. Bad values are ones a broken client could send:
a lone surrogate in a group or topic name, or a number beyond 64 bits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from codec.codes import ResponseCode
from codec.record import decode_record
from runtime.logs import RateLimitedLogs
from store.api import HalfMessage, TopicConfig
from store.errors import StorageUnavailable, StoreClosed, StoreError, UnstorableValue
from store.sqlite import SqliteStore

BAD = "\ud800"  # a lone surrogate: a str, but not encodable as UTF-8
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


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until the background offset flusher made ``condition`` true (polling; generous on a loaded machine)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state owned by the store's background flusher
            await asyncio.sleep(0.01)


def store_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == _STORE_LOG and text in r.getMessage()]


def test_every_store_error_carries_its_response_code() -> None:
    assert StoreError("x").response_code == ResponseCode.SYSTEM_ERROR
    assert StoreClosed("x").response_code == ResponseCode.SERVICE_NOT_AVAILABLE
    assert StorageUnavailable("x").response_code == ResponseCode.SERVICE_NOT_AVAILABLE
    err = UnstorableValue("consumer group", BAD, "not encodable as UTF-8")
    assert (err.response_code, err.field) == (ResponseCode.SYSTEM_ERROR, "consumer group")
    assert str(err) == "consumer group '\\ud800' cannot be stored: not encodable as UTF-8"
    assert isinstance(err, StoreError)
    assert len(str(UnstorableValue("topic", "x" * 1000, "too long"))) < 150


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
            store._flush_offsets()
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
        store._flush_offsets()
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
        await eventually(lambda: store.warnings.suppressed("unavailable:consumer offsets") >= 10)
        assert len(store._dirty) == 300
        assert len(store_warnings(caplog, "disk is full")) == 1  # for 11 or more failed flushes
        assert not [r for r in caplog.records if r.exc_info]
        await store.set_max_size(None)
        await eventually(lambda: not store._dirty)
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
    log = RateLimitedLogs(logging.getLogger("test.ratelimit"), interval_s=10.0, clock=lambda: now[0])
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


# ---- values that cannot be stored --------------------------------------------------------------------------------


async def test_set_consumer_offset_refuses_what_it_could_not_flush(tmp_path: pathlib.Path) -> None:
    async with opened(tmp_path / "store.db") as store:
        cases = [
            ((BAD, "T", 0, 1), "consumer group"),
            (("g", "T" + BAD, 0, 1), "topic"),
            (("g", "T", 2**63, 1), "queue id"),
            (("g", "T", 0, -(2**63) - 1), "offset"),
            (("g", "T", 0, "5"), "offset"),
            ((None, "T", 0, 1), "consumer group"),
        ]
        for args, field in cases:
            with pytest.raises(UnstorableValue) as caught:
                store.set_consumer_offset(*args)
            assert caught.value.field == field, args
        with pytest.raises(UnstorableValue) as caught:
            store.set_consumer_offset(BAD, "T", 0, 1)
        assert str(caught.value) == (
            "consumer group '\\ud800' cannot be stored: not encodable as UTF-8 (surrogates not allowed at index 0)"
        )
        assert not store._dirty and store.consumer_offsets(BAD) == {}
        store.set_consumer_offset("größe-グループ", "T", 0, 2**63 - 1)  # any valid text and the whole int64 range
        store._flush_offsets()
        assert not store._dirty


async def test_other_entry_points_refuse_unstorable_text(tmp_path: pathlib.Path, new_request) -> None:
    async with opened(tmp_path / "store.db") as store:
        with pytest.raises(UnstorableValue, match="subscription expression"):
            await store.save_subscription("g", "T", "TAG", "a || " + BAD, 1)
        with pytest.raises(UnstorableValue, match="consumer group"):
            await store.save_subscription(BAD, "T", "TAG", "*", 1)
        with pytest.raises(UnstorableValue, match="topic"):
            await store.save_topic(TopicConfig(BAD))
        with pytest.raises(UnstorableValue, match="perm"):
            await store.save_topic(TopicConfig("T", perm=2**64))
        with pytest.raises(UnstorableValue, match="topic"):
            await store.delete_topic(BAD)

        bad_topic = new_request()
        bad_topic.topic = BAD
        bad_key = new_request(keys=("fine", "k" + BAD))
        bad_half = new_request()
        bad_half.half = HalfMessage(0, BAD, "tx", "pending", 0, 0, 0)
        good = new_request()
        # Refused before joining a group commit: the others in the same round are stored.
        outcomes = await asyncio.gather(
            store.append([bad_topic]), store.append([good]), store.append([new_request(), bad_key]),
            store.append([bad_half]), return_exceptions=True,
        )  # fmt: skip
        assert [type(o).__name__ for o in outcomes] == ["UnstorableValue", "list", "UnstorableValue", "UnstorableValue"]
        assert [o.field for o in outcomes if isinstance(o, UnstorableValue)] == [
            "topic",
            "message key",
            "producer group",
        ]
        assert outcomes[1][0].queue_offset == 0
        assert store.max_offset("TopicA", 0) == 1
        assert await store.load_topics() == [] and await store.load_subscriptions() == []


def _sneak_in(store: SqliteStore, group: str, topic: str, queue_id: int, offset: int) -> None:
    """A dirty offset that bypassed set_consumer_offset's checks (as before they existed)."""
    store._offsets.setdefault(group, {})[(topic, queue_id)] = offset
    store._dirty.add((group, topic, queue_id))


async def test_one_bad_offset_row_never_stops_the_others(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.db"
    async with opened(path, offset_flush_interval=0.01) as store:
        for i in range(20):
            store.set_consumer_offset(f"g{i}", "T", i % 4, 100 + i)
        _sneak_in(store, BAD, "T", 0, 7)  # UnicodeEncodeError
        _sneak_in(store, "g-huge", "T", 0, 2**64)  # OverflowError
        _sneak_in(store, "g-type", "T", 0, [1])  # type: ignore[arg-type]  # sqlite3.ProgrammingError
        await eventually(lambda: not store._dirty)
        await asyncio.sleep(0.1)  # more background flushes: the dropped rows are not retried
        dropped = store_warnings(caplog, "dropped the consumer offset")
        assert len(dropped) == 3  # once each, never retried
        assert any("group '\\ud800' topic 'T' queue 0 (offset 7)" in r.getMessage() for r in dropped)
        assert all(r.exc_info is None for r in dropped)
        assert store.consumer_offsets(BAD) == {} and store.consumer_offsets("g-huge") == {}
        store.set_consumer_offset("g0", "T", 0, 555)  # and flushing goes on
        await eventually(lambda: not store._dirty)
    with raw(path) as conn:
        rows = dict(conn.execute("SELECT consumer_group, committed_offset FROM consumer_offsets"))
    assert rows == {**{f"g{i}": 100 + i for i in range(20)}, "g0": 555}


async def test_close_never_raises_because_of_a_bad_row(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path, offset_flush_interval=3600)
    await store.open()
    store.set_consumer_offset("good", "T", 1, 42)
    _sneak_in(store, BAD, "T", 1, 43)
    await store.close()
    async with opened(path) as reopened:
        assert reopened.get_consumer_offset("good", "T", 1) == 42


async def test_a_bad_row_is_dropped_even_when_the_disk_is_full_and_the_rest_wait(tmp_path: pathlib.Path) -> None:
    async with opened(tmp_path / "store.db") as store:
        await store.set_max_size(0)
        for i in range(300):
            # U+FF21 sorts after the lone surrogate, so the flush (in key order) meets the bad row first.
            store.set_consumer_offset(f"\uff21group-{i:03d}-" + "g" * 100, "T", 0, i)
        _sneak_in(store, BAD, "T", 0, 1)
        with pytest.raises(StorageUnavailable):
            store._flush_offsets()
        assert len(store._dirty) == 300 and (BAD, "T", 0) not in store._dirty
        assert store.consumer_offsets(BAD) == {}
        await store.set_max_size(None)
        store._flush_offsets()
        assert not store._dirty
