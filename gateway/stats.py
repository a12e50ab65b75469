"""Runtime statistics (Apache's BrokerStatsManager and StoreStatsService): put and get counts per broker, topic and
group, their rates over the last 10 s / 1 min / 10 min, the last minute / hour / day as ``mqadmin statsAll`` reads
them, and the totals at this and the previous local midnight (``brokerStatus``).

A counter keeps its running total and samples of it: one per second in which it changed (the last ~11 minutes)
and one per minute (the last ~25 hours). A rate over a window is the growth of the total since the last sample
at or before the window's start, so nothing runs on a timer and an idle counter costs nothing.
"""

from __future__ import annotations

import datetime
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

SECOND_SAMPLES = 700  # a little over 10 minutes of seconds
MINUTE_SAMPLES = 1500  # a little over 25 hours of minutes
MAX_KEYS = 100_000  # counters per statistic; past it new keys are not counted (one client cannot grow it unbounded)

TOPIC_PUT_NUMS = "TOPIC_PUT_NUMS"
TOPIC_PUT_SIZE = "TOPIC_PUT_SIZE"
GROUP_GET_NUMS = "GROUP_GET_NUMS"
GROUP_GET_SIZE = "GROUP_GET_SIZE"
BROKER_PUT_NUMS = "BROKER_PUT_NUMS"
BROKER_GET_NUMS = "BROKER_GET_NUMS"
NAMES = (TOPIC_PUT_NUMS, TOPIC_PUT_SIZE, GROUP_GET_NUMS, GROUP_GET_SIZE, BROKER_PUT_NUMS, BROKER_GET_NUMS)


@dataclass(slots=True)
class Counter:
    total: int = 0
    times: int = 0  # how many increments (for an average per increment)
    _second: int = -1
    _minute: int = -1
    _seconds: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=SECOND_SAMPLES))
    _minutes: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=MINUTE_SAMPLES))

    def add(self, value: int, now_s: int) -> None:
        if now_s != self._second:
            self._second = now_s
            self._seconds.append((now_s, self.total, self.times))  # the total as the second began
            minute = now_s // 60
            if minute != self._minute:
                self._minute = minute
                self._minutes.append((minute * 60, self.total, self.times))
        self.total += value
        self.times += 1

    def _at(self, start_s: int) -> tuple[int, int]:
        """(total, increments) as second ``start_s`` began: the first sample at or after it (there were no
        increments between them), else what there is now (every increment came before)."""
        seconds = self._seconds  # complete while not full; else it reaches back to its first sample only
        samples = seconds if len(seconds) < SECOND_SAMPLES or seconds[0][0] <= start_s else self._minutes
        for second, total, times in samples:
            if second >= start_s:
                return total, times
        return self.total, self.times

    def _since(self, start_s: int) -> tuple[int, int]:
        total, times = self._at(start_s)
        return self.total - total, self.times - times

    def rate(self, seconds: int, now_s: int) -> float:
        grown, _ = self._since(now_s - seconds)
        return grown / seconds

    def window(self, seconds: int, now_s: int) -> dict[str, float]:
        """StatsSnapshot as BrokerStatsData carries it: sum, tps and the average per increment."""
        grown, times = self._since(now_s - seconds)
        return {"sum": grown, "tps": grown / seconds, "avgpt": grown / times if times else 0.0}


class BrokerStats:
    def __init__(self, now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.now_ms = now_ms
        self.counters: dict[str, dict[str, Counter]] = {name: {} for name in NAMES}
        self._day: datetime.date | None = None
        self._day_ends_ms = 0  # local midnight after self._day
        self.today_morning = {"put": 0, "get": 0}
        self.yesterday_morning = {"put": 0, "get": 0}

    def _counter(self, name: str, key: str) -> Counter | None:
        per_key = self.counters[name]
        counter = per_key.get(key)
        if counter is None and len(per_key) < MAX_KEYS:
            counter = per_key[key] = Counter()
        return counter

    def _add(self, name: str, key: str, value: int, now_s: int) -> None:
        counter = self._counter(name, key)
        if counter is not None:
            counter.add(value, now_s)

    def _roll_day(self) -> None:
        """At the first count or look of a local day, its morning totals are the totals so far (nothing was
        counted since the last one); the previous day's become yesterday's."""
        now_ms = self.now_ms()
        if now_ms < self._day_ends_ms:  # the usual case: one int comparison per count
            return
        today = datetime.date.fromtimestamp(now_ms / 1000)
        tomorrow = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time())
        self._day_ends_ms = int(tomorrow.timestamp() * 1000)
        if today == self._day:
            return
        now = {"put": self.total("put"), "get": self.total("get")}
        next_day = self._day is not None and today - self._day == datetime.timedelta(days=1)
        self.yesterday_morning = dict(self.today_morning) if next_day else dict(now)
        self.today_morning = now
        self._day = today

    def put(self, topic: str, count: int, size: int) -> None:
        """``count`` messages of ``size`` bytes in all stored to ``topic``."""
        self._roll_day()
        now_s = self.now_ms() // 1000
        self._add(TOPIC_PUT_NUMS, topic, count, now_s)
        self._add(TOPIC_PUT_SIZE, topic, size, now_s)
        self._add(BROKER_PUT_NUMS, "", count, now_s)

    def got(self, topic: str, group: str, count: int, size: int) -> None:
        """``count`` messages of ``size`` bytes handed to ``group`` from ``topic`` (pull or receive)."""
        self._roll_day()
        now_s = self.now_ms() // 1000
        key = f"{topic}@{group}"
        self._add(GROUP_GET_NUMS, key, count, now_s)
        self._add(GROUP_GET_SIZE, key, size, now_s)
        self._add(BROKER_GET_NUMS, "", count, now_s)

    def total(self, kind: str) -> int:
        counter = self.counters[BROKER_PUT_NUMS if kind == "put" else BROKER_GET_NUMS].get("")
        return counter.total if counter is not None else 0

    def tps_text(self, kind: str) -> str:
        """``putTps`` / ``getTransferredTps``: the rates over 10 s, 1 min and 10 min (StoreStatsService)."""
        counter = self.counters[BROKER_PUT_NUMS if kind == "put" else BROKER_GET_NUMS].get("")
        now_s = self.now_ms() // 1000
        rates = [counter.rate(w, now_s) if counter is not None else 0.0 for w in (10, 60, 600)]
        return " ".join(f"{r:.2f}" for r in rates)

    def day_totals(self) -> dict[str, int]:
        self._roll_day()
        return {
            "msgPutTotalTodayNow": self.total("put"), "msgGetTotalTodayNow": self.total("get"),
            "msgPutTotalTodayMorning": self.today_morning["put"], "msgGetTotalTodayMorning": self.today_morning["get"],
            "msgPutTotalYesterdayMorning": self.yesterday_morning["put"],
            "msgGetTotalYesterdayMorning": self.yesterday_morning["get"],
        }  # fmt: skip

    def stats_data(self, name: str, key: str) -> dict[str, dict[str, float]] | None:
        """BrokerStatsData for VIEW_BROKER_STATS_DATA: the last minute, hour and day; None for an unknown key."""
        counter = self.counters.get(name, {}).get(key)
        if counter is None:
            return None
        now_s = self.now_ms() // 1000
        return {
            "statsMinute": counter.window(60, now_s),
            "statsHour": counter.window(3600, now_s),
            "statsDay": counter.window(86400, now_s),
        }
