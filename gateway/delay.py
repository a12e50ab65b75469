"""When a message is due, and how a due message becomes a normal one. Pure rules, no I/O.

Delay levels follow ScheduleMessageService (``DELAY`` = 1..N of ``messageDelayLevel``; above N is clamped to N);
exact times follow the 5.x timer properties (``TIMER_DELIVER_MS``, ``TIMER_DELAY_SEC``, ``TIMER_DELAY_MS``) and
the TDMQ/ONS ``__STARTDELIVERTIME``. A deferred message is stored under a schedule topic with ``REAL_TOPIC`` and
``REAL_QID``; at its due time it is handed over to its real topic and queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codec.codes import (
    PROPERTY_DELAY,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_START_DELIVER_TIME,
    PROPERTY_TIMER_DELAY_MS,
    PROPERTY_TIMER_DELAY_SEC,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_WAIT,
    SCHEDULE_TOPIC,
    TIMER_TOPIC,
    ResponseCode,
)
from codec.properties import append_properties, decode_properties, remove_properties
from codec.record import StoredMessage
from remoting.errors import RequestError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_LEVEL = re.compile(r"^(\d+)(ms|s|m|h|d)$")


def parse_delay_levels(text: str) -> tuple[int, ...]:
    """``messageDelayLevel`` ("1s 5s ... 2h") as milliseconds per level."""
    levels = []
    for token in text.split():
        match = _LEVEL.match(token.strip())
        if match is None:
            raise ValueError(f"bad delay level {token!r} in messageDelayLevel (use e.g. 500ms, 1s, 5m, 2h, 1d)")
        levels.append(int(match.group(1)) * _UNITS_MS[match.group(2)])
    if not levels:
        raise ValueError("messageDelayLevel has no level")
    return tuple(levels)


@dataclass(slots=True, frozen=True)
class Deferral:
    due_ms: int
    schedule_topic: str
    schedule_queue: int


def _number(props: dict[str, str], name: str) -> int:
    try:
        return int(props[name].strip())
    except ValueError:
        raise RequestError(ResponseCode.MESSAGE_ILLEGAL, f"property {name}={props[name]!r} is not a number") from None


class DelayPolicy:
    def __init__(self, levels: tuple[int, ...], max_delay_ms: int) -> None:
        self.levels = levels
        self.max_delay_ms = max_delay_ms

    def plan(self, props: dict[str, str], now_ms: int) -> Deferral | None:
        """The deferral a message asks for, or None to deliver it now (no delay, or a time already past)."""
        if PROPERTY_DELAY in props:
            level = _number(props, PROPERTY_DELAY)
            if level > 0:
                level = min(level, len(self.levels))
                return Deferral(now_ms + self.levels[level - 1], SCHEDULE_TOPIC, level - 1)
        due = self._timer_due(props, now_ms)
        if due is None or due <= now_ms:
            return None
        if due - now_ms > self.max_delay_ms:
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL,
                f"timer message illegal: delivery {due - now_ms} ms from now exceeds the maximum delay "
                f"of {self.max_delay_ms} ms",
            )
        return Deferral(due, TIMER_TOPIC, 0)

    @staticmethod
    def _timer_due(props: dict[str, str], now_ms: int) -> int | None:
        if PROPERTY_TIMER_DELIVER_MS in props:
            return _number(props, PROPERTY_TIMER_DELIVER_MS)
        if PROPERTY_TIMER_DELAY_SEC in props:
            return now_ms + _number(props, PROPERTY_TIMER_DELAY_SEC) * 1000
        if PROPERTY_TIMER_DELAY_MS in props:
            return now_ms + _number(props, PROPERTY_TIMER_DELAY_MS)
        if PROPERTY_START_DELIVER_TIME in props:
            return _number(props, PROPERTY_START_DELIVER_TIME)
        return None


def defer(msg: StoredMessage, deferral: Deferral) -> None:
    """Turn a message into its scheduled form: remember the real topic and queue, store under the schedule topic."""
    real = {PROPERTY_REAL_TOPIC: msg.topic, PROPERTY_REAL_QUEUE_ID: str(msg.queue_id)}
    msg.properties = append_properties(remove_properties(msg.properties, frozenset(real)), real)
    msg.topic = deferral.schedule_topic
    msg.queue_id = deferral.schedule_queue


_LEVEL_DROPPED = frozenset({PROPERTY_DELAY, PROPERTY_WAIT})
_TIMER_DROPPED = frozenset({PROPERTY_REAL_TOPIC, PROPERTY_REAL_QUEUE_ID})


def due_message(scheduled: StoredMessage, now_ms: int) -> StoredMessage:
    """The message to append to its real topic when a scheduled one is due (ScheduleMessageService.messageTimeup,
    TimerMessageStore.convertMessage): delay-level messages keep REAL_TOPIC/REAL_QID, lose DELAY and say WAIT=false;
    timer messages lose REAL_TOPIC/REAL_QID."""
    props = decode_properties(scheduled.properties)
    try:
        topic, queue_id = props[PROPERTY_REAL_TOPIC], int(props[PROPERTY_REAL_QUEUE_ID])
    except (KeyError, ValueError) as err:
        raise ValueError(f"scheduled message at {scheduled.phys_offset} has no valid REAL_TOPIC/REAL_QID") from err
    if scheduled.topic == SCHEDULE_TOPIC:
        properties = append_properties(
            remove_properties(scheduled.properties, _LEVEL_DROPPED), {PROPERTY_WAIT: "false"}
        )
    else:
        properties = remove_properties(scheduled.properties, _TIMER_DROPPED)
    return StoredMessage(
        topic=topic,
        queue_id=queue_id,
        body=scheduled.body,
        properties=properties,
        flag=scheduled.flag,
        sys_flag=scheduled.sys_flag,
        born_timestamp=scheduled.born_timestamp,
        born_host=scheduled.born_host,
        born_port=scheduled.born_port,
        store_timestamp=now_ms,
        store_host=scheduled.store_host,
        store_port=scheduled.store_port,
        reconsume_times=scheduled.reconsume_times,
        prepared_transaction_offset=scheduled.prepared_transaction_offset,
    )
