"""The store's POP tables: pop offsets, in-flight messages with generations, subscription group configs."""

from __future__ import annotations

import pathlib

from store.api import InFlight
from store.sqlite import SqliteStore


async def _open(path: pathlib.Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    return store


async def test_a_receive_is_durable_and_acks_need_the_current_generation(tmp_path: pathlib.Path) -> None:
    store = await _open(tmp_path / "store.db")
    try:
        assert await store.pop_offset("g", "T", 0) is None
        rows = [InFlight(5, 1_000, 1, 7), InFlight(6, 1_000, 1, 8, "order-1")]
        await store.save_pop("g", "T", 0, 7, rows)
        assert await store.settle_pop("g", "T", [(0, 5, 6)]) == [False], "an out-of-date generation settles nothing"
        assert await store.move_pop("g", "T", 0, 6, 8, 9, 2_000) is True
        assert await store.move_pop("g", "T", 0, 6, 8, 10, 3_000) is False, "the handle changed with the move"
    finally:
        await store.close()
    store = await _open(tmp_path / "store.db")  # after a restart
    try:
        assert await store.pop_offset("g", "T", 0) == 7
        assert await store.pop_offset("other", "T", 0) is None
        assert await store.in_flight("g", "T", 0, 10) == [InFlight(5, 1_000, 1, 7), InFlight(6, 2_000, 1, 9, "order-1")]
        assert await store.settle_pop("g", "T", [(0, 5, 7), (0, 6, 1), (0, 5, 7)]) == [True, False, False]
        assert await store.in_flight("g", "T", 0, 10) == [InFlight(6, 2_000, 1, 9, "order-1")]
        await store.save_pop("g", "T", 0, None, [InFlight(6, 5_000, 2, 11, "order-1")])  # a redelivery
        assert await store.in_flight("g", "T", 0, 1) == [InFlight(6, 5_000, 2, 11, "order-1")]
        assert await store.pop_offset("g", "T", 0) == 7
    finally:
        await store.close()


async def test_in_flight_lists_in_offset_order_up_to_the_limit(tmp_path: pathlib.Path) -> None:
    store = await _open(tmp_path / "store.db")
    try:
        await store.save_pop("g", "T", 1, 10, [InFlight(o, 0, 0, o) for o in (9, 3, 5)])
        assert [r.queue_offset for r in await store.in_flight("g", "T", 1, 2)] == [3, 5]
        assert await store.in_flight("g", "T", 0, 10) == []
    finally:
        await store.close()


async def test_deleting_a_topic_or_group_forgets_its_pop_state(tmp_path: pathlib.Path) -> None:
    store = await _open(tmp_path / "store.db")
    try:
        await store.save_pop("g", "T", 0, 3, [InFlight(1, 0, 1, 1)])
        await store.save_pop("h", "U", 0, 4, [InFlight(2, 0, 1, 2)])
        await store.save_subscription_group("h", '{"groupName": "h"}')
        await store.delete_topic("T")
        assert await store.pop_offset("g", "T", 0) is None and await store.in_flight("g", "T", 0, 9) == []
        assert await store.subscription_groups() == {"h": '{"groupName": "h"}'}
        await store.delete_subscription_group("h")
        assert await store.pop_offset("h", "U", 0) is None and await store.in_flight("h", "U", 0, 9) == []
        assert await store.subscription_groups() == {}
    finally:
        await store.close()
