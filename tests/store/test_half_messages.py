"""Transactional half messages in the store: entered with their append, committed exactly once, checked, resolved."""

from __future__ import annotations

import dataclasses

import pytest

from store.api import HalfMessage, MessageStore
from store.errors import AlreadyResolved


def half(group: str = "pg", tid: str = "T1", next_check_ms: int = 6_000) -> HalfMessage:
    return HalfMessage(0, group, tid, "pending", 0, next_check_ms, created_ms=0)


async def store_half(store: MessageStore, new_request, **kw) -> int:
    request = dataclasses.replace(new_request("RMQ_SYS_TRANS_HALF_TOPIC", 0, b"h"), half=half(**kw))
    [result] = await store.append([request])
    return result.phys_offset


async def test_a_half_message_is_pending_after_its_append(store: MessageStore, new_request) -> None:
    phys = await store_half(store, new_request)
    [pending] = await store.pending_half_messages()
    assert (pending.phys_offset, pending.producer_group, pending.transaction_id, pending.state) == (
        phys, "pg", "T1", "pending"
    )  # fmt: skip
    assert await store.half_message(phys) == pending


async def test_commit_is_exactly_once(store: MessageStore, new_request) -> None:
    phys = await store_half(store, new_request)
    commit = dataclasses.replace(new_request("Real", 0, b"h", store_timestamp=77), commits_half=phys)
    await store.append([commit])
    assert (await store.half_message(phys)).state == "committed"
    assert (await store.half_message(phys)).resolved_ms == 77
    with pytest.raises(AlreadyResolved, match="no longer pending"):
        await store.append([dataclasses.replace(new_request("Real", 0, b"h"), commits_half=phys)])
    assert store.max_offset("Real", 0) == 1
    assert await store.pending_half_messages() == []


async def test_checks_rollback_and_discard_only_apply_while_pending(store: MessageStore, new_request) -> None:
    phys = await store_half(store, new_request)
    assert await store.update_half(phys, state="pending", check_times=1, next_check_ms=36_000, now_ms=6_000)
    [pending] = await store.pending_half_messages()
    assert (pending.check_times, pending.next_check_ms, pending.resolved_ms) == (1, 36_000, None)
    assert await store.update_half(phys, state="rolled_back", check_times=1, next_check_ms=0, now_ms=7_000)
    assert not await store.update_half(phys, state="discarded", check_times=2, next_check_ms=0, now_ms=8_000)
    resolved = await store.half_message(phys)
    assert (resolved.state, resolved.resolved_ms) == ("rolled_back", 7_000)


async def test_half_messages_survive_a_restart(make_store, new_request) -> None:
    store = await make_store()
    phys = await store_half(store, new_request, tid="T9")
    await store.close()
    reopened = await make_store()
    [pending] = await reopened.pending_half_messages()
    assert (pending.phys_offset, pending.transaction_id) == (phys, "T9")
