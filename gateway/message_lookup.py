"""Finding stored messages for an administrator: a queue's page by offset, by key, by message id (the offset
message id a send answered with, or the client's UNIQ_KEY), and what waits (delayed and half messages). Every
answer is capped, so a lookup never reads more than a page of records."""

from __future__ import annotations

from typing import Any

from codec.codes import SCHEDULE_TOPIC
from codec.errors import CodecError
from codec.message_id import decode_offset_msg_id
from codec.record import PHYS_OFFSET_POS
from gateway.context import BrokerContext
from gateway.message_view import BROWSE_BODY_BYTES, DETAIL_BODY_BYTES, message_json

MAX_BROWSE = 32  # messages per browsed page
MAX_FOUND = 32  # messages per key lookup (QUERY_MESSAGE allows 64)
MAX_BY_ID = 4  # messages per id lookup (a UNIQ_KEY names one message, or its copies: delayed, retried)
MAX_PENDING = 100  # delayed or half messages listed
ALL_TIME = (0, 1 << 62)


def _phys_offset(record: bytes) -> int:
    return int.from_bytes(record[PHYS_OFFSET_POS : PHYS_OFFSET_POS + 8], "big", signed=True)


def view(ctx: BrokerContext, record: bytes, body_limit: int = BROWSE_BODY_BYTES) -> dict[str, Any]:
    return message_json(record, ctx.msg_id(_phys_offset(record)), body_limit)


async def browse(ctx: BrokerContext, topic: str, queue_id: int, offset: int, count: int) -> list[dict[str, Any]]:
    entries = await ctx.store.read_queue(topic, queue_id, max(offset, 0), max(1, min(count, MAX_BROWSE)))
    return [view(ctx, e.record) for e in entries]


async def by_key(ctx: BrokerContext, topic: str, key: str) -> list[dict[str, Any]]:
    records = await ctx.store.query_by_key(topic, key, MAX_FOUND, *ALL_TIME)
    return [view(ctx, r) for r in records]


async def records_by_id(ctx: BrokerContext, msg_id: str, topic: str | None) -> list[bytes]:
    """An offset message id of this broker's store is read at its physical offset; anything else is looked up as
    a UNIQ_KEY, in ``topic`` or else in every topic (both spellings are 32 hex digits for IPv4)."""
    try:
        host, _port, phys = decode_offset_msg_id(msg_id)
    except CodecError:
        host, phys = "", -1
    if host == ctx.store_host and phys >= 0:
        record = await ctx.store.get_by_phys_offset(phys)
        if record is not None and _phys_offset(record) == phys:
            return [record]
    found: list[bytes] = []
    for name in [topic] if topic else sorted(ctx.topics.topics):
        found += await ctx.store.query_by_key(name, msg_id, MAX_BY_ID - len(found), *ALL_TIME)
        if len(found) >= MAX_BY_ID:
            break
    return found


async def by_id(ctx: BrokerContext, msg_id: str, topic: str | None) -> list[dict[str, Any]]:
    return [view(ctx, record, DETAIL_BODY_BYTES) for record in await records_by_id(ctx, msg_id, topic)]


async def pending_delayed(ctx: BrokerContext) -> dict[str, Any]:
    """The earliest ``MAX_PENDING`` scheduled messages (delay levels, timers, retries) with their due time."""
    entries = await ctx.store.due_scheduled(ALL_TIME[1], MAX_PENDING)
    rows = []
    for entry in entries:
        row = view(ctx, entry.record, 1024)
        row["dueTimestamp"] = entry.due_ms
        row["delayLevel"] = row["queueId"] + 1 if row.get("topic") == SCHEDULE_TOPIC else None
        rows.append(row)
    return {"total": await ctx.store.scheduled_count(), "messages": rows}


async def pending_half(ctx: BrokerContext) -> dict[str, Any]:
    """The oldest ``MAX_PENDING`` half messages waiting for a commit or rollback, with their checks."""
    pending = sorted(ctx.transactions.pending.values(), key=lambda h: h.created_ms)
    rows = []
    for half in pending[:MAX_PENDING]:
        record = await ctx.store.get_by_phys_offset(half.phys_offset)
        row = view(ctx, record, 1024) if record is not None else {"msgId": ctx.msg_id(half.phys_offset)}
        row.update(
            producerGroup=half.producer_group, transactionId=half.transaction_id, checkTimes=half.check_times,
            nextCheckTimestamp=half.next_check_ms, createdTimestamp=half.created_ms,
        )  # fmt: skip
        rows.append(row)
    return {"total": len(pending), "messages": rows}
