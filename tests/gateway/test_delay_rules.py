"""Delay levels, exact delivery times and the hand-over transformation (pure rules, fake time)."""

from __future__ import annotations

import pytest

from codec.properties import decode_properties
from codec.record import StoredMessage
from gateway.delay import Deferral, DelayPolicy, defer, due_message, parse_delay_levels
from remoting.errors import RequestError

NOW = 1_700_000_000_000
LEVELS = parse_delay_levels("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h")
POLICY = DelayPolicy(LEVELS, max_delay_ms=40 * 86_400_000)


def test_default_levels() -> None:
    assert len(LEVELS) == 18
    assert (LEVELS[0], LEVELS[3], LEVELS[4], LEVELS[16], LEVELS[17]) == (1000, 30_000, 60_000, 3_600_000, 7_200_000)
    assert parse_delay_levels("500ms 1d") == (500, 86_400_000)
    with pytest.raises(ValueError, match="bad delay level"):
        parse_delay_levels("1s 5x")


@pytest.mark.parametrize(("level", "queue", "delay"), [(1, 0, 1000), (3, 2, 10_000), (18, 17, 7_200_000)])
def test_delay_levels(level: int, queue: int, delay: int) -> None:
    assert POLICY.plan({"DELAY": str(level)}, NOW) == Deferral(NOW + delay, "SCHEDULE_TOPIC_XXXX", queue)


def test_a_level_above_the_last_is_clamped_to_the_last() -> None:
    assert POLICY.plan({"DELAY": "99"}, NOW) == Deferral(NOW + 7_200_000, "SCHEDULE_TOPIC_XXXX", 17)


@pytest.mark.parametrize("props", [{}, {"DELAY": "0"}, {"DELAY": "-2"}])
def test_no_delay(props: dict[str, str]) -> None:
    assert POLICY.plan(props, NOW) is None


@pytest.mark.parametrize(
    ("props", "due"),
    [
        ({"TIMER_DELIVER_MS": str(NOW + 1234)}, NOW + 1234),
        ({"TIMER_DELAY_SEC": "7"}, NOW + 7000),
        ({"TIMER_DELAY_MS": "250"}, NOW + 250),
        ({"__STARTDELIVERTIME": str(NOW + 60_000)}, NOW + 60_000),
    ],
)
def test_exact_times(props: dict[str, str], due: int) -> None:
    assert POLICY.plan(props, NOW) == Deferral(due, "rmq_sys_wheel_timer", 0)


def test_a_time_in_the_past_delivers_at_once() -> None:
    assert POLICY.plan({"TIMER_DELIVER_MS": str(NOW - 1)}, NOW) is None
    assert POLICY.plan({"TIMER_DELIVER_MS": str(NOW)}, NOW) is None


def test_beyond_the_maximum_delay_is_a_clear_error() -> None:
    policy = DelayPolicy(LEVELS, max_delay_ms=3_600_000)
    assert policy.plan({"TIMER_DELAY_MS": "3600000"}, NOW) is not None
    with pytest.raises(RequestError) as err:
        policy.plan({"TIMER_DELAY_MS": "3600001"}, NOW)
    assert err.value.code == 13 and "maximum delay" in err.value.remark


def test_a_non_numeric_time_is_a_clear_error() -> None:
    with pytest.raises(RequestError, match="TIMER_DELIVER_MS"):
        POLICY.plan({"TIMER_DELIVER_MS": "tomorrow"}, NOW)


def test_delay_level_takes_precedence_over_timer_properties() -> None:
    deferral = POLICY.plan({"DELAY": "1", "TIMER_DELAY_MS": "999999"}, NOW)
    assert deferral is not None and deferral.schedule_topic == "SCHEDULE_TOPIC_XXXX"


def message(props: str) -> StoredMessage:
    return StoredMessage(topic="Orders", queue_id=3, body=b"pay", properties=props, born_timestamp=5, store_timestamp=6)


def test_delay_level_hand_over_keeps_real_topic_and_queue_and_drops_delay() -> None:
    msg = message("KEYS\x01k\x02DELAY\x012\x02WAIT\x01true\x02u\x01v\x02")
    defer(msg, Deferral(NOW + 5000, "SCHEDULE_TOPIC_XXXX", 1))
    assert (msg.topic, msg.queue_id) == ("SCHEDULE_TOPIC_XXXX", 1)
    delivered = due_message(msg, NOW + 5003)
    assert (delivered.topic, delivered.queue_id, delivered.body) == ("Orders", 3, b"pay")
    assert (delivered.born_timestamp, delivered.store_timestamp) == (5, NOW + 5003)
    props = decode_properties(delivered.properties)
    assert props == {"KEYS": "k", "u": "v", "REAL_TOPIC": "Orders", "REAL_QID": "3", "WAIT": "false"}
    assert delivered.properties.startswith("KEYS\x01k\x02u\x01v\x02")  # untouched pairs keep their bytes and order


def test_timer_hand_over_drops_real_topic_and_queue() -> None:
    msg = message(f"TIMER_DELIVER_MS\x01{NOW + 10}\x02u\x01v\x02")
    defer(msg, Deferral(NOW + 10, "rmq_sys_wheel_timer", 0))
    delivered = due_message(msg, NOW + 10)
    assert (delivered.topic, delivered.queue_id) == ("Orders", 3)
    assert decode_properties(delivered.properties) == {"TIMER_DELIVER_MS": str(NOW + 10), "u": "v"}


def test_a_scheduled_message_without_its_real_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="REAL_TOPIC"):
        due_message(StoredMessage(topic="SCHEDULE_TOPIC_XXXX", queue_id=0, body=b"", properties=""), NOW)
