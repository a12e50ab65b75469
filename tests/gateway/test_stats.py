"""Runtime statistics windows: rates over 10 s / 1 min / 10 min, the last minute / hour / day, day totals."""

from __future__ import annotations

import datetime

from gateway.clock import FakeClock
from gateway.stats import BROKER_PUT_NUMS, GROUP_GET_NUMS, TOPIC_PUT_NUMS, BrokerStats, Counter


def test_a_counter_rates_over_its_windows() -> None:
    c = Counter()
    for second in range(1000, 1060):  # one a second for a minute
        c.add(1, second)
    c.add(10, 1060)  # ten more in the last second
    assert c.total == 70
    assert c.rate(10, 1061) == (9 + 10) / 10  # 1051..1060: nine ones and the ten
    assert c.rate(60, 1061) == 69 / 60  # from 1001 on
    assert c.rate(600, 1061) == 70 / 600
    assert c.window(60, 1061) == {"sum": 69, "tps": 69 / 60, "avgpt": 69 / 60}
    assert c.rate(10, 1200) == 0.0, "idle since: nothing in the window"


def test_hours_and_days_use_the_minute_samples() -> None:
    c = Counter()
    for minute in range(120):  # 5 per minute for two hours
        c.add(5, 10_000 + minute * 60)
    now = 10_000 + 120 * 60
    assert c.window(3600, now)["sum"] == 300
    assert c.window(86400, now)["sum"] == 600
    assert c.window(86400, now)["avgpt"] == 5


def test_broker_stats_count_puts_and_gets_by_topic_and_group() -> None:
    clock = FakeClock(int(datetime.datetime(2026, 12, 1, 23, 59, 0).timestamp() * 1000))
    stats = BrokerStats(clock.now_ms)
    stats.put("T", 3, 300)
    stats.got("T", "g", 2, 200)
    assert stats.counters[TOPIC_PUT_NUMS]["T"].total == 3
    assert stats.counters[GROUP_GET_NUMS]["T@g"].total == 2
    assert stats.counters[BROKER_PUT_NUMS][""].total == 3
    assert stats.tps_text("put") == "0.30 0.05 0.01"
    assert stats.day_totals()["msgPutTotalTodayNow"] == 3
    clock.advance(120_000)  # past local midnight
    stats.put("T", 4, 400)
    totals = stats.day_totals()
    assert (totals["msgPutTotalTodayMorning"], totals["msgPutTotalYesterdayMorning"]) == (3, 0)
    assert (totals["msgPutTotalTodayNow"], totals["msgGetTotalTodayMorning"]) == (7, 2)
    data = stats.stats_data(TOPIC_PUT_NUMS, "T")
    assert data is not None and data["statsDay"]["sum"] == 7 and data["statsMinute"]["sum"] == 4
    assert stats.stats_data(TOPIC_PUT_NUMS, "Unknown") is None


def test_a_young_counter_rates_from_its_first_increment() -> None:
    c = Counter()
    c.add(5, 1_000_000)
    assert c.rate(10, 1_000_000) == 0.5, "all five fall in the last 10 s"
    assert c.window(86400, 1_000_000)["sum"] == 5
