"""PULL_MESSAGE and LITE_PULL_MESSAGE with long polling (PullMessageProcessor + PullRequestHoldService)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from codec.codes import RETRY_GROUP_TOPIC_PREFIX, Perm, PullSysFlag, ResponseCode
from codec.command import RemotingCommand
from codec.headers import PullMessageRequestHeader, PullMessageResponseHeader, decode_header, encode_header
from codec.heartbeat import Subscription, make_subscription
from codec.properties import decode_properties
from codec.record import properties_of
from codec.sql92 import SqlFilter
from codec.tags import TagFilter, parse_tag_expression
from gateway.context import BrokerContext
from remoting.connection import Connection
from remoting.errors import RequestError

MessageFilter = TagFilter | SqlFilter
# Plain ints for the per-pull checks: an int & IntFlag goes through enum's Python-level __rand__.
_COMMIT_OFFSET = int(PullSysFlag.COMMIT_OFFSET)
_SUSPEND = int(PullSysFlag.SUSPEND)
_SUBSCRIPTION = int(PullSysFlag.SUBSCRIPTION)
_READABLE = int(Perm.READ)

MATCH_ALL = parse_tag_expression("*")
POSTED_CACHE_SIZE = 256  # compiled expressions posted with pulls
MAX_SCAN = 2048  # entries examined per pull before answering PULL_RETRY_IMMEDIATELY (maxFilterMessageCount-like)
MAX_TRANSFER_BYTES = 256 * 1024  # maxTransferBytesOnMessageInMemory; the first message always goes


def acceptor(message_filter: MessageFilter) -> Callable[[int, bytes], bool] | None:
    """What a pull checks per stored message, given its tags hash code and its record: the code, or (SQL92) the
    properties; None takes everything."""
    if isinstance(message_filter, SqlFilter):
        return lambda _tags, record: message_filter.matches(decode_properties(properties_of(record)))
    if message_filter.matches_all:
        return None
    codes = message_filter.codes()
    return lambda tags, _record: tags in codes


@dataclass(slots=True)
class PullOutcome:
    code: ResponseCode
    status: str  # the Java GetMessageStatus name, sent as remark
    next_offset: int
    min_offset: int
    max_offset: int
    body: bytes = b""


def _shutting_down() -> RequestError:
    """The answer to a long poll that found nothing while the broker shuts down. PULL_NOT_FOUND would make the
    client pull again at once, and a pull in flight when the connection closes can be left to its 30 s timeout (the
    Java client fails a request early only when it closes the channel itself); an error makes it wait (3 s in Java)."""
    return RequestError(ResponseCode.SYSTEM_BUSY, "the broker is shutting down; pull again later")


class PullHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._posted: dict[tuple[str, str], Subscription] = {}

    def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | Awaitable[RemotingCommand]:
        """Answered at once from the store (no task), or, when a suspended pull finds nothing, held."""
        h = decode_header(PullMessageRequestHeader, cmd.ext_fields)
        message_filter = self._filter(h)
        if h.sys_flag & _COMMIT_OFFSET:
            # Not an invariants.offset_committed: a consumer commits what it consumed, never more than it was
            # handed, so a commit riding on a pull does not excuse a pull past the orderly frontier.
            self.ctx.store.set_consumer_offset(h.consumer_group, h.topic, h.queue_id, h.commit_offset)
        outcome = self.read(h, message_filter)
        if outcome.code == ResponseCode.PULL_NOT_FOUND and h.sys_flag & _SUSPEND:
            if self.ctx.waits.closing:
                raise _shutting_down()
            hold_ms = min(max(h.suspend_timeout_millis, 0), self.ctx.config.max_long_poll_ms)
            if hold_ms > 0:
                return self._hold(cmd, h, message_filter, hold_ms)
        return self._respond(cmd, outcome)

    def _filter(self, h: PullMessageRequestHeader) -> MessageFilter:
        topic = self.ctx.topics.get(h.topic)
        if topic is None:
            raise RequestError(ResponseCode.TOPIC_NOT_EXIST, f"topic[{h.topic}] not exist, apply first please!")
        if not topic.perm & _READABLE:
            raise RequestError(ResponseCode.NO_PERMISSION, f"the topic[{h.topic}] pulling message is forbidden")
        self._check_group(h.consumer_group)
        if not 0 <= h.queue_id < topic.read_queue_nums:
            raise RequestError(
                ResponseCode.INVALID_PARAMETER,
                f"queueId[{h.queue_id}] is illegal, topic:[{h.topic}] topicConfig.readQueueNums:"
                f"[{topic.read_queue_nums}]",
            )
        if h.sys_flag & _SUBSCRIPTION:
            sub = self._posted_subscription(h)
        else:
            sub = self.ctx.clients.subscription(h.consumer_group, h.topic)
        if sub is None:
            # No heartbeat and nothing remembered for this group: serve unfiltered. TAG clients re-filter by tag
            # themselves; answering SUBSCRIPTION_NOT_EXIST would only stall them until their next heartbeat.
            return MATCH_ALL
        if sub.error is not None:
            raise RequestError(ResponseCode.SUBSCRIPTION_PARSE_FAILED, sub.error)
        if sub.sql is not None:
            # Retry topics are not SQL-filtered (filterSupportRetry=false): they hold only this group's failures.
            return MATCH_ALL if h.topic.startswith(RETRY_GROUP_TOPIC_PREFIX) else sub.sql
        return sub.tag_filter

    def _check_group(self, name: str) -> None:
        """The subscription group's switches (PullMessageProcessor): consumeEnable, consumeBroadcastEnable."""
        config = self.ctx.groups.configured.get(name)
        if config is None:
            return
        if not config.consume_enable:
            raise RequestError(ResponseCode.NO_PERMISSION, f"subscription group no permission, {name}")
        if not config.consume_broadcast_enable:
            group = self.ctx.clients.consumers.get(name)
            if group is not None and group.message_model == "BROADCASTING":
                raise RequestError(
                    ResponseCode.NO_PERMISSION, f"the consumer group[{name}] can not consume by broadcast way"
                )

    def _posted_subscription(self, h: PullMessageRequestHeader) -> Subscription:
        """The expression sent with the pull (C++, ali-ons, lite-pull consumers), compiled once per expression."""
        key = (h.expression_type or "TAG", h.subscription or "")
        sub = self._posted.get(key)
        if sub is None:
            sub = make_subscription(h.topic, h.subscription, h.expression_type, h.sub_version)
            if len(self._posted) >= POSTED_CACHE_SIZE:
                self._posted.pop(next(iter(self._posted)))
            self._posted[key] = sub
        return sub

    def read(self, h: PullMessageRequestHeader, message_filter: MessageFilter) -> PullOutcome:
        store = self.ctx.store
        lo = store.min_offset(h.topic, h.queue_id)
        hi = store.max_offset(h.topic, h.queue_id)
        o = h.queue_offset
        if hi == 0:
            code = ResponseCode.PULL_NOT_FOUND if o == 0 else ResponseCode.PULL_OFFSET_MOVED
            return PullOutcome(code, "NO_MESSAGE_IN_QUEUE", 0, lo, hi)
        if o < lo:
            return PullOutcome(ResponseCode.PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL", lo, lo, hi)
        if o == hi:
            if self.ctx.invariants.enabled:  # a pull at the end may still have skipped what came before it
                self.ctx.invariants.pull_served(h.consumer_group, h.topic, h.queue_id, o, self._locked(h), lo, hi, o,
                                                [], False)  # fmt: skip
            return PullOutcome(ResponseCode.PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE", o, lo, hi)
        if o > hi:
            return PullOutcome(ResponseCode.PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY", hi, lo, hi)
        max_count = max(1, min(h.max_msg_nums, 1024))
        max_bytes = h.max_msg_bytes if h.max_msg_bytes and h.max_msg_bytes > 0 else MAX_TRANSFER_BYTES
        accept = acceptor(message_filter)
        pulled = store.pull(h.topic, h.queue_id, o, max_count, max_bytes, accept, MAX_SCAN)
        invariants = self.ctx.invariants
        if invariants.enabled:
            invariants.pull_served(
                h.consumer_group, h.topic, h.queue_id, o, self._locked(h), lo, hi, pulled.next_offset,
                pulled.records, accept is not None,
            )  # fmt: skip
        if pulled.records:
            body = b"".join(pulled.records)
            self.ctx.stats.got(h.topic, h.consumer_group, len(pulled.records), len(body))
            return PullOutcome(ResponseCode.SUCCESS, "FOUND", pulled.next_offset, lo, hi, body)
        return PullOutcome(ResponseCode.PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE", pulled.next_offset, lo, hi)

    def _locked(self, h: PullMessageRequestHeader) -> bool:
        """Whether the group consumes this queue orderly: it holds the queue's lock (LOCK_BATCH_MQ)."""
        mq = (h.topic, self.ctx.config.broker_name, h.queue_id)
        return self.ctx.locks.holder(h.consumer_group, mq, self.ctx.clock.now_ms()) is not None

    def _respond(self, cmd: RemotingCommand, outcome: PullOutcome) -> RemotingCommand:
        ext = encode_header(
            PullMessageResponseHeader(
                suggest_which_broker_id=0,
                next_begin_offset=outcome.next_offset,
                min_offset=outcome.min_offset,
                max_offset=outcome.max_offset,
            )
        )
        return cmd.response(outcome.code, outcome.status, ext_fields=ext, body=outcome.body)

    async def _hold(
        self, cmd: RemotingCommand, h: PullMessageRequestHeader, message_filter: MessageFilter, hold_ms: int
    ) -> RemotingCommand:
        """Wait for a message in this queue (or the deadline), then answer like a fresh, non-suspended pull."""
        deadline = anyio.current_time() + hold_ms / 1000
        while True:
            event = self.ctx.waits.park(h.topic, h.queue_id)
            try:
                # A message may have landed between the read and the park.
                if self.ctx.store.max_offset(h.topic, h.queue_id) <= h.queue_offset:
                    with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                        await event.wait()
            finally:  # also when the connection closes and cancels us, or the waiter lingers until the next send
                self.ctx.waits.cancel(h.topic, h.queue_id, event)
            outcome = self.read(h, message_filter)
            timed_out = anyio.current_time() >= deadline or math.isclose(anyio.current_time(), deadline)
            timed_out = timed_out or self.ctx.waits.closing
            if outcome.code == ResponseCode.PULL_RETRY_IMMEDIATELY and not timed_out:
                # Only messages this subscription filters out arrived: skip them and keep holding, as Java does.
                h.queue_offset = outcome.next_offset
                continue
            if outcome.code == ResponseCode.PULL_NOT_FOUND and self.ctx.waits.closing:
                raise _shutting_down()
            if outcome.code != ResponseCode.PULL_NOT_FOUND or timed_out:
                return self._respond(cmd, outcome)
