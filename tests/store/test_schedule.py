"""The schedule of deferred messages: entered with an append, read by due time, handed over exactly once."""

from __future__ import annotations

import dataclasses

import pytest

from store.api import MessageStore
from store.errors import AlreadyResolved


async def test_scheduled_messages_are_read_back_by_due_time(store: MessageStore, new_request) -> None:
    requests = [
        dataclasses.replace(new_request("SCHEDULE_TOPIC_XXXX", 0, body), due_ms=due)
        for body, due in ((b"late", 3000), (b"early", 1000), (b"middle", 2000))
    ]
    results = await store.append(requests)
    assert await store.next_due_ms() == 1000
    assert await store.scheduled_count() == 3
    assert await store.due_scheduled(999, 10) == []
    due = await store.due_scheduled(2000, 10)
    assert [(e.phys_offset, e.due_ms) for e in due] == [(results[1].phys_offset, 1000), (results[2].phys_offset, 2000)]
    assert due[0].record == await store.get_by_phys_offset(results[1].phys_offset)
    assert len(await store.due_scheduled(10_000, 1)) == 1  # the limit applies


async def test_hand_over_delivers_and_unschedules_in_one_transaction(store: MessageStore, new_request) -> None:
    [scheduled] = await store.append([dataclasses.replace(new_request("SCHEDULE_TOPIC_XXXX", 0, b"x"), due_ms=5)])
    delivered = dataclasses.replace(new_request("Real", 1, b"x"), hands_over=scheduled.phys_offset)
    await store.append([delivered])
    assert await store.scheduled_count() == 0
    assert await store.next_due_ms() is None
    assert store.max_offset("Real", 1) == 1


async def test_a_second_hand_over_of_the_same_message_is_refused_and_stores_nothing(
    store: MessageStore, new_request
) -> None:
    [scheduled] = await store.append([dataclasses.replace(new_request("SCHEDULE_TOPIC_XXXX", 0, b"x"), due_ms=5)])
    await store.append([dataclasses.replace(new_request("Real", 0, b"x"), hands_over=scheduled.phys_offset)])
    with pytest.raises(AlreadyResolved, match="already handed over"):
        await store.append([dataclasses.replace(new_request("Real", 0, b"x"), hands_over=scheduled.phys_offset)])
    assert store.max_offset("Real", 0) == 1


async def test_schedule_survives_a_restart(make_store, new_request) -> None:
    store = await make_store()
    await store.append([dataclasses.replace(new_request("SCHEDULE_TOPIC_XXXX", 2, b"later"), due_ms=42)])
    await store.close()
    reopened = await make_store()
    [entry] = await reopened.due_scheduled(100, 10)
    assert entry.due_ms == 42


async def test_unschedule_removes_without_delivering(store: MessageStore, new_request) -> None:
    [scheduled] = await store.append([dataclasses.replace(new_request("SCHEDULE_TOPIC_XXXX", 0, b"x"), due_ms=5)])
    assert await store.unschedule(scheduled.phys_offset) is True
    assert await store.unschedule(scheduled.phys_offset) is False
    assert await store.scheduled_count() == 0
    assert await store.get_by_phys_offset(scheduled.phys_offset) is not None
