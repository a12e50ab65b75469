"""Retention in the store (``expire``): whole chunks go oldest first, queue minimum offsets advance, every queue
keeps its newest chunk, messages awaiting delivery stay, and the freed pages are reused by the next appends."""

from __future__ import annotations

import pathlib

from store.api import HalfMessage
from store.sqlite import SqliteStore

HOUR = 3_600_000
T0 = 1_700_000_000_000


async def fill(store: SqliteStore, new_request, topic: str, queue_id: int, count: int, ts: int, size: int = 100):
    """``count`` messages, one group commit (one chunk) each."""
    for i in range(count):
        await store.append([new_request(topic, queue_id, bytes([i % 251]) * size, store_timestamp=ts + i)])


async def test_old_chunks_go_and_the_minimum_offset_advances(store: SqliteStore, new_request) -> None:
    await fill(store, new_request, "Old", 0, 5, T0)
    await fill(store, new_request, "Other", 1, 4, T0)
    await fill(store, new_request, "Old", 0, 3, T0 + 100 * HOUR)

    expired = await store.expire(T0 + 50 * HOUR, max_bytes=1 << 30)

    assert (expired.chunks, expired.messages, expired.more) == (8, 8, False)
    assert store.min_offset("Old", 0) == 5 and store.max_offset("Old", 0) == 8
    assert store.min_offset("Other", 1) == 3 and store.max_offset("Other", 1) == 4  # its newest chunk stays
    assert [e.queue_offset for e in await store.read_queue("Old", 0, 0, 10)] == [5, 6, 7]
    pulled = store.pull("Old", 0, 0, 10, 1 << 20)
    assert len(pulled.records) == 3 and pulled.next_offset == 8
    assert await store.earliest_store_time("Old", 0) == T0 + 100 * HOUR


async def test_nothing_newer_than_the_cutoff_goes(store: SqliteStore, new_request) -> None:
    await fill(store, new_request, "Fresh", 0, 4, T0)
    expired = await store.expire(T0, max_bytes=1 << 30)
    assert expired.messages == 0 and store.min_offset("Fresh", 0) == 0


async def test_the_scan_stops_at_the_first_newer_chunk_as_apache_stops_at_a_newer_file(
    store: SqliteStore, new_request
) -> None:
    await fill(store, new_request, "A", 0, 3, T0)
    await fill(store, new_request, "B", 0, 3, T0 + 100 * HOUR)
    await fill(store, new_request, "A", 0, 3, T0)  # stored later with an older timestamp (a clock step back)
    await store.expire(T0 + HOUR, max_bytes=1 << 30)
    assert store.min_offset("A", 0) == 3


async def test_a_step_stops_at_its_size_and_says_there_is_more(store: SqliteStore, new_request) -> None:
    await fill(store, new_request, "Big", 0, 10, T0, size=10_000)
    first = await store.expire(T0 + HOUR, max_bytes=25_000)
    assert first.more and first.chunks == 3
    rest = await store.expire(T0 + HOUR, max_bytes=1 << 30)
    assert not rest.more and rest.chunks == 6  # the newest of the queue stays
    assert store.min_offset("Big", 0) == 9


async def test_everything_goes_regardless_of_age_except_each_queues_newest(store: SqliteStore, new_request) -> None:
    await fill(store, new_request, "Now", 0, 6, T0 + 1000 * HOUR)
    expired = await store.expire(T0, max_bytes=1 << 30, regardless_of_age=True)
    assert expired.messages == 5 and store.min_offset("Now", 0) == 5


async def test_scheduled_and_pending_half_messages_stay_with_what_follows(store: SqliteStore, new_request) -> None:
    await fill(store, new_request, "SCHEDULE_TOPIC_XXXX", 2, 2, T0)
    delayed = new_request("SCHEDULE_TOPIC_XXXX", 2, b"later", store_timestamp=T0 + 2)
    delayed.due_ms = T0 + 500 * HOUR
    await store.append([delayed])
    await fill(store, new_request, "SCHEDULE_TOPIC_XXXX", 2, 3, T0 + 3)
    half = new_request("RMQ_SYS_TRANS_HALF_TOPIC", 0, b"half", store_timestamp=T0)
    half.half = HalfMessage(0, "pg", "tx-1", "pending", 0, T0, T0)
    await store.append([half])
    await fill(store, new_request, "RMQ_SYS_TRANS_HALF_TOPIC", 0, 2, T0 + 1)

    await store.expire(T0 + HOUR, max_bytes=1 << 30)

    assert store.min_offset("SCHEDULE_TOPIC_XXXX", 2) == 2  # up to the scheduled message
    assert await store.scheduled_count() == 1
    assert store.min_offset("RMQ_SYS_TRANS_HALF_TOPIC", 0) == 0
    assert len(await store.pending_half_messages()) == 1


async def test_resolved_half_messages_and_key_rows_go_with_their_chunks(store: SqliteStore, new_request) -> None:
    half = new_request("RMQ_SYS_TRANS_HALF_TOPIC", 0, b"half", keys=("k1",), store_timestamp=T0)
    half.half = HalfMessage(0, "pg", "tx-1", "pending", 0, T0, T0)
    [stored] = await store.append([half])
    await store.update_half(stored.phys_offset, state="rolled_back", check_times=0, next_check_ms=0, now_ms=T0)
    await fill(store, new_request, "RMQ_SYS_TRANS_HALF_TOPIC", 0, 2, T0 + 1)
    await store.expire(T0 + HOUR, max_bytes=1 << 30)
    assert await store.half_message(stored.phys_offset) is None
    assert await store.query_by_key("RMQ_SYS_TRANS_HALF_TOPIC", "k1", 10, 0, T0 + HOUR) == []
    assert store._read_one("SELECT COUNT(*) FROM chunk_keys")[0] == 0


async def test_offsets_survive_a_restart_after_everything_old_went(make_store, new_request) -> None:
    store = await make_store()
    await fill(store, new_request, "Restart", 3, 7, T0)
    await store.expire(T0 + HOUR, max_bytes=1 << 30)
    await store.close()
    reopened = await make_store()
    assert (reopened.min_offset("Restart", 3), reopened.max_offset("Restart", 3)) == (6, 7)
    [stored] = await reopened.append([new_request("Restart", 3, b"next", store_timestamp=T0 + 2 * HOUR)])
    assert stored.queue_offset == 7


async def test_freed_pages_are_reused_so_the_file_stays_flat(tmp_path: pathlib.Path, new_request) -> None:
    store = SqliteStore(tmp_path / "flat.db")
    await store.open()
    try:
        for round_ in range(4):
            base = T0 + round_ * 10 * HOUR
            for i in range(40):  # 40 chunks of 64 x 1 KiB per round, over two queues
                await store.append(
                    [new_request("Flat", i % 2, b"x" * 1024, store_timestamp=base + i) for _ in range(64)]
                )
            await store.expire(base + HOUR, max_bytes=1 << 30)
            store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size, reusable = store.space()
            if round_ == 1:
                after_two = size
            assert reusable > 0 if round_ else True
        assert size <= after_two * 1.1, (size, after_two)
        assert store.min_offset("Flat", 0) == 4 * 20 * 64 - 64
    finally:
        await store.close()
