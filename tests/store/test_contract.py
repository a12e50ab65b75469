"""The MessageStore contract, run against every implementation (``make_store`` in conftest.py).

Only behaviour visible through ``store.api.MessageStore`` is checked here; implementation details
(SQL, group-commit counters, crash safety) live in the implementation's own test module.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.record import decode_record
from store.api import MessageStore, TopicConfig
from store.errors import StoreClosed

T0 = 1_700_000_000_000
_example_ids = itertools.count()


def _decoded(record: bytes) -> tuple[int, int, bytes]:
    msg, _ = decode_record(record)
    return msg.queue_offset, msg.phys_offset, msg.body


async def test_append_then_read_back(store: MessageStore, new_request) -> None:
    requests = [new_request(body=b"m%d" % i, tags_code=100 + i) for i in range(3)]
    results = [(await store.append([r]))[0] for r in requests]

    assert [r.queue_offset for r in results] == [0, 1, 2]
    entries = await store.read_queue("TopicA", 0, 0, 10)
    assert [e.queue_offset for e in entries] == [0, 1, 2]
    assert [e.tags_code for e in entries] == [100, 101, 102]
    for i, (entry, result, request) in enumerate(zip(entries, results, requests, strict=True)):
        assert _decoded(entry.record) == (result.queue_offset, result.phys_offset, b"m%d" % i)
        # The caller's record was patched in place and is exactly what a pull returns.
        assert bytes(request.record) == entry.record


async def test_queue_offsets_are_consecutive_per_queue(store: MessageStore, new_request) -> None:
    queues = [("TopicA", 0), ("TopicA", 1), ("TopicB", 0)]
    results = await asyncio.gather(
        *(store.append([new_request(topic, queue_id, b"%d" % i)]) for i in range(30) for topic, queue_id in queues)
    )
    per_queue: dict[tuple[str, int], list[int]] = {q: [] for q in queues}
    for i, [result] in enumerate(results):
        per_queue[queues[i % 3]].append(result.queue_offset)
    for queue, offsets in per_queue.items():
        assert sorted(offsets) == list(range(30)), queue
        assert store.max_offset(*queue) == 30
        assert store.min_offset(*queue) == 0
        assert store.queue_exists(*queue)
    assert not store.queue_exists("TopicA", 2)
    assert store.max_offset("nope", 0) == store.min_offset("nope", 0) == 0


async def test_phys_offsets_unique_and_increasing(store: MessageStore, new_request) -> None:
    sequential = [(await store.append([new_request(body=b"x" * i)]))[0].phys_offset for i in range(10)]
    assert sequential == sorted(set(sequential))
    concurrent = await asyncio.gather(*(store.append([new_request("TopicB", i % 4)]) for i in range(50)))
    phys = [r.phys_offset for [r] in concurrent]
    assert len(set(phys + sequential)) == 60
    assert min(phys) > max(sequential)
    # Within a queue, a later queue offset always has a larger physical offset.
    for queue_id in range(4):
        queue_phys = [_decoded(e.record)[1] for e in await store.read_queue("TopicB", queue_id, 0, 100)]
        assert len(queue_phys) > 1
        assert queue_phys == sorted(queue_phys)


async def test_multi_message_append_is_one_consecutive_block(store: MessageStore, new_request) -> None:
    await store.append([new_request(queue_id=0)])

    async def noise() -> None:
        for _ in range(20):
            await store.append([new_request(queue_id=0), new_request(queue_id=1)])

    batch = [new_request(queue_id=0, body=b"a%d" % i) for i in range(5)] + [new_request(queue_id=1, body=b"b")]
    noisy = asyncio.create_task(noise())
    await asyncio.sleep(0)
    results = await store.append(batch)
    await noisy

    queue0 = [r.queue_offset for r in results[:5]]
    assert queue0 == list(range(queue0[0], queue0[0] + 5))
    phys = [r.phys_offset for r in results]
    assert phys == sorted(phys)
    entries = await store.read_queue("TopicA", 0, queue0[0], 5)
    assert [_decoded(e.record)[2] for e in entries] == [b"a%d" % i for i in range(5)]


async def test_empty_append_returns_nothing(store: MessageStore) -> None:
    assert await store.append([]) == []


async def test_read_queue_limits(store: MessageStore, new_request) -> None:
    await store.append([new_request(body=b"%d" % i) for i in range(10)])

    assert [e.queue_offset for e in await store.read_queue("TopicA", 0, 3, 4)] == [3, 4, 5, 6]
    assert [e.queue_offset for e in await store.read_queue("TopicA", 0, 8, 32)] == [8, 9]
    assert [e.queue_offset for e in await store.read_queue("TopicA", 0, -5, 2)] == [0, 1]
    assert await store.read_queue("TopicA", 0, 10, 32) == []
    assert await store.read_queue("TopicA", 0, 99, 32) == []
    assert await store.read_queue("TopicA", 0, 0, 0) == []
    assert await store.read_queue("TopicA", 1, 0, 32) == []
    assert await store.read_queue("Unknown", 0, 0, 32) == []


async def test_get_by_phys_offset(store: MessageStore, new_request) -> None:
    requests = [new_request(body=b"first"), new_request("TopicB", 3, b"second")]
    results = await store.append(requests)
    for request, result in zip(requests, results, strict=True):
        assert await store.get_by_phys_offset(result.phys_offset) == bytes(request.record)
    assert await store.get_by_phys_offset(results[-1].phys_offset + 10_000) is None
    assert await store.get_by_phys_offset(-1) is None


async def test_query_by_key(store: MessageStore, new_request) -> None:
    await store.append([
        new_request(body=b"a", keys=("order-1", "user-7", "UNIQ-A"), store_timestamp=T0),
        new_request(body=b"b", keys=("order-1", "UNIQ-B"), store_timestamp=T0 + 1000),
        new_request(queue_id=2, body=b"c", keys=("order-1",), store_timestamp=T0 + 2000),
        new_request("TopicB", body=b"other topic", keys=("order-1",), store_timestamp=T0),
    ])  # fmt: skip

    def bodies(records: list[bytes]) -> set[bytes]:
        return {_decoded(r)[2] for r in records}

    assert bodies(await store.query_by_key("TopicA", "order-1", 32, 0, T0 + 10_000)) == {b"a", b"b", b"c"}
    assert bodies(await store.query_by_key("TopicA", "user-7", 32, 0, T0 + 10_000)) == {b"a"}
    assert bodies(await store.query_by_key("TopicA", "UNIQ-B", 32, 0, T0 + 10_000)) == {b"b"}
    assert bodies(await store.query_by_key("TopicA", "order-1", 32, T0 + 500, T0 + 1000)) == {b"b"}
    assert bodies(await store.query_by_key("TopicA", "order-1", 32, T0 + 2000, T0 + 2000)) == {b"c"}
    assert len(await store.query_by_key("TopicA", "order-1", 2, 0, T0 + 10_000)) == 2
    assert await store.query_by_key("TopicA", "order-1", 0, 0, T0 + 10_000) == []
    assert await store.query_by_key("TopicA", "missing", 32, 0, T0 + 10_000) == []
    assert await store.query_by_key("TopicA", "order-1", 32, T0 + 3000, T0 + 9000) == []
    assert bodies(await store.query_by_key("TopicB", "order-1", 32, 0, T0 + 10_000)) == {b"other topic"}


async def test_search_offset_by_timestamp(store: MessageStore, new_request) -> None:
    stamps = [1000, 2000, 2000, 3000, 4000]
    await store.append([new_request(store_timestamp=ts) for ts in stamps])

    async def lower(ts: int) -> int:
        return await store.search_offset_by_timestamp("TopicA", 0, ts, "lower")

    async def upper(ts: int) -> int:
        return await store.search_offset_by_timestamp("TopicA", 0, ts, "upper")

    assert [await lower(ts) for ts in (0, 1000, 1500, 2000, 2001, 4000)] == [0, 0, 1, 1, 3, 4]
    assert await lower(4001) == 5  # none at or after: the max offset
    assert [await upper(ts) for ts in (1000, 1999, 2000, 2500, 4000, 9999)] == [0, 0, 2, 2, 4, 4]
    assert await upper(999) == 0  # none at or before: the min offset
    for boundary in ("lower", "upper"):
        assert await store.search_offset_by_timestamp("TopicA", 7, 1500, boundary) == 0


async def test_search_offset_by_timestamp_agrees_with_linear_scan(store: MessageStore, new_request) -> None:
    stamps = sorted((i * 37) % 23 * 10 for i in range(41))
    await store.append([new_request(store_timestamp=ts) for ts in stamps])
    for target in range(-5, 240, 5):
        at_or_after = [i for i, ts in enumerate(stamps) if ts >= target]
        at_or_before = [i for i, ts in enumerate(stamps) if ts <= target]
        assert await store.search_offset_by_timestamp("TopicA", 0, target, "lower") == (
            at_or_after[0] if at_or_after else len(stamps)
        )
        assert await store.search_offset_by_timestamp("TopicA", 0, target, "upper") == (
            at_or_before[-1] if at_or_before else 0
        )


async def test_earliest_store_time(store: MessageStore, new_request) -> None:
    assert await store.earliest_store_time("TopicA", 0) == -1
    assert await store.earliest_message_time() == 0
    await store.append([new_request(store_timestamp=T0 + 5), new_request(store_timestamp=T0 + 9)])
    assert await store.earliest_store_time("TopicA", 0) == T0 + 5
    assert await store.earliest_store_time("TopicA", 1) == -1
    await store.append([new_request(topic="TopicB", store_timestamp=T0 + 20)])
    assert await store.earliest_message_time() == T0 + 5


async def test_consumer_offsets_in_memory_and_across_reopen(make_store) -> None:
    store = await make_store()
    assert store.get_consumer_offset("g1", "TopicA", 0) is None
    store.set_consumer_offset("g1", "TopicA", 0, 5)
    store.set_consumer_offset("g1", "TopicA", 1, 7)
    store.set_consumer_offset("g1", "TopicA", 0, 6)
    store.set_consumer_offset("g2", "TopicB", 3, 1)
    assert store.get_consumer_offset("g1", "TopicA", 0) == 6
    assert store.consumer_offsets("g1") == {("TopicA", 0): 6, ("TopicA", 1): 7}
    assert store.consumer_offsets("nobody") == {}
    await store.close()

    reopened = await make_store()
    assert reopened.consumer_offsets("g1") == {("TopicA", 0): 6, ("TopicA", 1): 7}
    assert reopened.get_consumer_offset("g2", "TopicB", 3) == 1
    reopened.set_consumer_offset("g2", "TopicB", 3, 2)
    await reopened.close()
    assert (await make_store()).get_consumer_offset("g2", "TopicB", 3) == 2


async def test_topic_config_crud(make_store) -> None:
    store = await make_store()
    assert await store.load_topics() == []
    a = TopicConfig("TopicA", read_queue_nums=8, write_queue_nums=8, perm=6, order=True)
    b = TopicConfig("TopicB", topic_sys_flag=3, topic_filter_type="MULTI_TAG")
    await store.save_topic(b)
    await store.save_topic(a)
    assert await store.load_topics() == [a, b]
    a2 = TopicConfig("TopicA", read_queue_nums=2, write_queue_nums=2, perm=4)
    await store.save_topic(a2)
    assert await store.load_topics() == [a2, b]
    await store.delete_topic("TopicB")
    await store.close()
    assert await (await make_store()).load_topics() == [a2]


async def test_reopen_keeps_everything_and_counters_continue(make_store, new_request) -> None:
    store = await make_store()
    await store.save_topic(TopicConfig("TopicA"))
    first = await store.append([new_request(queue_id=q, keys=("k",), store_timestamp=T0 + q) for q in (0, 0, 1)])
    await store.close()

    store = await make_store()
    assert (store.max_offset("TopicA", 0), store.max_offset("TopicA", 1)) == (2, 1)
    assert store.queue_exists("TopicA", 1)
    assert [e.record for e in await store.read_queue("TopicA", 0, 0, 10)] == [
        await store.get_by_phys_offset(r.phys_offset) for r in first[:2]
    ]
    assert len(await store.query_by_key("TopicA", "k", 10, 0, T0 + 10)) == 3
    assert await store.earliest_store_time("TopicA", 1) == T0 + 1
    assert await store.load_topics() == [TopicConfig("TopicA")]
    [after] = await store.append([new_request(queue_id=0)])
    assert after.queue_offset == 2
    assert after.phys_offset > max(r.phys_offset for r in first)


async def test_delete_topic(make_store, new_request) -> None:
    store = await make_store()
    await store.save_topic(TopicConfig("TopicA"))
    await store.save_topic(TopicConfig("TopicB"))
    [a, _] = await store.append([new_request(keys=("k",)), new_request(queue_id=1, keys=("k",))])
    [b] = await store.append([new_request("TopicB", keys=("k",))])
    store.set_consumer_offset("g", "TopicA", 0, 1)
    store.set_consumer_offset("g", "TopicB", 0, 1)

    await store.delete_topic("TopicA")

    assert [t.topic_name for t in await store.load_topics()] == ["TopicB"]
    assert not store.queue_exists("TopicA", 0)
    assert store.max_offset("TopicA", 0) == store.min_offset("TopicA", 1) == 0
    assert await store.read_queue("TopicA", 0, 0, 10) == []
    assert await store.get_by_phys_offset(a.phys_offset) is None
    assert await store.query_by_key("TopicA", "k", 10, 0, T0 + 1) == []
    assert store.get_consumer_offset("g", "TopicA", 0) is None
    assert store.consumer_offsets("g") == {("TopicB", 0): 1}
    assert store.consumer_groups() == ["g"]
    assert store.commit_log_end() > b.phys_offset, "physical offsets never go back"
    # The other topic is untouched.
    assert await store.get_by_phys_offset(b.phys_offset) is not None
    assert len(await store.query_by_key("TopicB", "k", 10, 0, T0 + 1)) == 1

    [again] = await store.append([new_request()])
    assert again.queue_offset == 0
    assert again.phys_offset > b.phys_offset
    await store.close()

    store = await make_store()
    assert store.consumer_offsets("g") == {("TopicB", 0): 1}
    assert store.max_offset("TopicA", 0) == 1
    assert store.max_offset("TopicA", 1) == 0
    [last] = await store.append([new_request("TopicB")])
    assert last.phys_offset > again.phys_offset


async def test_close_waits_for_queued_appends(make_store, new_request) -> None:
    store = await make_store()
    pending = [asyncio.create_task(store.append([new_request(queue_id=i % 2)])) for i in range(50)]
    await asyncio.sleep(0)  # let them enqueue
    await store.close()
    assert all(t.done() and not t.exception() for t in pending)

    store = await make_store()
    assert store.max_offset("TopicA", 0) + store.max_offset("TopicA", 1) == 50


async def test_append_after_close_raises(make_store, new_request) -> None:
    store = await make_store()
    await store.close()
    with pytest.raises(StoreClosed):
        await store.append([new_request()])
    with pytest.raises(StoreClosed):
        await store.read_queue("TopicA", 0, 0, 1)
    await store.close()  # idempotent


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(
        st.lists(st.tuples(st.sampled_from(["X", "Y"]), st.integers(0, 2)), min_size=1, max_size=4),
        min_size=1,
        max_size=12,
    ),
)
async def test_concurrent_appends_match_a_model(store: MessageStore, new_request, calls) -> None:
    # Each example uses fresh topic names, so one store serves every example.
    prefix = f"P{next(_example_ids)}-"
    results = await asyncio.gather(
        *(
            store.append([new_request(prefix + t, q, b"%d.%d" % (c, i)) for i, (t, q) in enumerate(call)])
            for c, call in enumerate(calls)
        )
    )
    expected: dict[tuple[str, int], dict[int, tuple[int, bytes]]] = {}  # queue -> offset -> (phys, body)
    for c, (call, call_results) in enumerate(zip(calls, results, strict=True)):
        per_call: dict[tuple[str, int], list[int]] = {}
        for i, ((t, q), result) in enumerate(zip(call, call_results, strict=True)):
            expected.setdefault((prefix + t, q), {})[result.queue_offset] = (result.phys_offset, b"%d.%d" % (c, i))
            per_call.setdefault((t, q), []).append(result.queue_offset)
        for offsets in per_call.values():  # one call's messages are consecutive in each queue
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    all_phys = [phys for by_offset in expected.values() for phys, _ in by_offset.values()]
    assert len(set(all_phys)) == len(all_phys)
    for (topic, queue_id), by_offset in expected.items():
        entries = await store.read_queue(topic, queue_id, 0, 100)
        assert [e.queue_offset for e in entries] == list(range(len(by_offset)))
        assert [_decoded(e.record)[1:] for e in entries] == [by_offset[o] for o in range(len(by_offset))]
        assert store.max_offset(topic, queue_id) == len(by_offset)


async def test_subscriptions_are_remembered_across_a_restart(make_store) -> None:
    store = await make_store()
    await store.save_subscription("g", "T", "SQL92", "a > 1", 5)
    await store.save_subscription("g", "T", "SQL92", "a > 2", 6)  # replaces
    await store.save_subscription("g", "U", "TAG", "x || y", 1)
    await store.close()
    reopened = await make_store()
    assert sorted(await reopened.load_subscriptions()) == [
        ("g", "T", "SQL92", "a > 2", 6),
        ("g", "U", "TAG", "x || y", 1),
    ]


async def test_reopen_restores_the_bounds_of_many_queues_around_deleted_topics(make_store, new_request) -> None:
    store = await make_store()
    counts = {(f"T{t:02d}", q): (t * 7 + q * 3) % 5 for t in range(12) for q in range(8)}  # 0..4 per queue
    await store.append([new_request(topic, q, b"%d" % i) for (topic, q), n in counts.items() for i in range(n)])
    deleted = {"T00", "T03", "T04", "T11"}  # first, adjacent pair and last in index order
    for topic in sorted(deleted):
        await store.delete_topic(topic)
    await store.close()

    store = await make_store()
    for (topic, q), n in counts.items():
        kept = n if topic not in deleted else 0
        assert (store.min_offset(topic, q), store.max_offset(topic, q)) == (0, kept), (topic, q)
        assert store.queue_exists(topic, q) == (kept > 0), (topic, q)
    [again] = await store.append([new_request("T03", 5)])
    [more] = await store.append([new_request("T05", 1)])
    assert (again.queue_offset, more.queue_offset) == (0, counts[("T05", 1)])
