"""Moving the virtual clock (``pocketmq clock advance``): step by step through everything due on the way.

An advance of 2 h with a delayed message due at +10 s, a transaction check at +6 s and a ``deleteWhen`` hour at
+40 min moves the clock to +6 s, +10 s, +40 min and +2 h in turn. At each step it waits until the parts that act on
time have acted on it ("settled"): the scheduler has handed over every message due by then (stored with that
step's time), the transaction checker has sent every check due by then, and retention has made a pass (which
deletes only in a ``deleteWhen`` hour, as the periodic one does). It does not wait for clients: a consumer may
still be pulling what was handed over, and a producer's answer to a check is applied when it arrives (at the
clock's time by then).

POP invisibility and queue locks need no step: both compare stored times with the clock when they are next asked
(a receive, a lock request), so they follow the clock wherever it is; held receives are woken at the end so they
look again at once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import anyio

from gateway.clock import VirtualClock, check_advance_ms
from gateway.context import BrokerContext
from gateway.retention import HOUR_MS, is_time_to_delete

SETTLE_TIMEOUT_S = 20.0  # per step, under the HTTP API's 30 s: a step hangs only when the store does


class ClockError(RuntimeError):
    """The clock cannot be moved (not a virtual clock, or a step did not settle)."""


@dataclass(slots=True)
class Advanced:
    """What one advance did."""

    from_ms: int
    now_ms: int
    steps: int  # clock positions visited, the end included
    delivered: int  # scheduled messages (delays, timers, retry back-offs) handed over to their queues
    checks_sent: int  # transaction back-checks sent to producers
    expired: int  # messages deleted by retention

    def json(self) -> dict[str, Any]:
        return {
            "fromMs": self.from_ms, "nowMs": self.now_ms, "now": iso_time(self.now_ms),
            "advancedMs": self.now_ms - self.from_ms, "steps": self.steps,
            "delivered": self.delivered, "checksSent": self.checks_sent, "expired": self.expired,
        }  # fmt: skip


def iso_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat(timespec="milliseconds")


def next_delete_hour_start(delete_when: str, after_ms: int) -> int | None:
    """The first start of a ``deleteWhen`` hour (local time, as retention reads it) after ``after_ms``."""
    hour = datetime.datetime.fromtimestamp(after_ms / 1000).replace(minute=0, second=0, microsecond=0)
    for _ in range(48):  # two days cover every hour, whatever a daylight-saving change does
        hour = datetime.datetime.fromtimestamp(hour.timestamp() + HOUR_MS / 1000)
        if is_time_to_delete(delete_when, hour.hour):
            return int(hour.timestamp() * 1000)
    return None


class ClockControl:
    def __init__(self, ctx: BrokerContext) -> None:
        if not isinstance(ctx.clock, VirtualClock):
            raise ClockError("the broker runs on the system clock; start it with --clock virtual to move time")
        self.ctx = ctx
        self.clock: VirtualClock = ctx.clock

    async def advance(self, ms: int) -> Advanced:
        """Move the clock ``ms`` forward through every due time on the way; return once all of it is settled."""
        check_advance_ms(ms)
        ctx = self.ctx
        async with self.clock.moving:
            start = self.clock.now_ms()
            target = start + ms
            delivered, checks = ctx.scheduler.delivered, ctx.transactions.checks_sent
            expired = ctx.retention.deleted_messages
            steps = 0
            while True:
                now = self.clock.now_ms()
                step = min(await self._next_due_after(now), target)
                self.clock.set_now(step)
                steps += 1
                await self._settle(step)
                if step >= target:
                    break
            ctx.waits.wake_all()
            return Advanced(
                start, target, steps, ctx.scheduler.delivered - delivered, ctx.transactions.checks_sent - checks,
                ctx.retention.deleted_messages - expired,
            )  # fmt: skip

    async def _next_due_after(self, now: int) -> int:
        """The earliest time after ``now`` at which something acts (a very large number when nothing does)."""
        ctx = self.ctx
        candidates = [
            await ctx.store.next_due_ms(),
            ctx.transactions.next_check_after(now),
            next_delete_hour_start(ctx.config.delete_when, now),
        ]
        # A due time at or before now is one the scheduler could not hand over (logged there): not a step.
        return min((c for c in candidates if c is not None and c > now), default=2**62)

    async def _settle(self, now: int) -> None:
        ctx = self.ctx
        try:
            with anyio.fail_after(SETTLE_TIMEOUT_S):
                await ctx.scheduler.caught_up(now)
                await ctx.transactions.caught_up(now)
                await ctx.retention.run_once()  # deletes only in a deleteWhen hour (or on a full disk)
        except TimeoutError:
            raise ClockError(
                f"the clock stopped at {iso_time(now)}: scheduled delivery or transaction checks did not catch up "
                f"within {SETTLE_TIMEOUT_S:.0f} s (see the broker log)"
            ) from None
