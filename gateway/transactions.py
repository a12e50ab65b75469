"""Transactional half messages: the state machine and the check timing. Pure rules, time passed in.

A half message is stored invisible (under RMQ_SYS_TRANS_HALF_TOPIC) and is *pending* until the producer commits
or rolls it back with END_TRANSACTION. A pending one older than ``transactionTimeOut`` (or its own
``CHECK_IMMUNITY_TIME_IN_SECONDS``) is checked: CHECK_TRANSACTION_STATE to a live producer of its group, again
every ``transactionCheckInterval``, at most ``transactionCheckMax`` times, then discarded (Apache's behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from codec.codes import PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS, ResponseCode


class HalfState(StrEnum):
    PENDING = "pending"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    DISCARDED = "discarded"


class HalfEvent(StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"
    UNKNOWN = "unknown"  # END_TRANSACTION with TRANSACTION_NOT_TYPE: nothing changes
    CHECKED = "checked"  # a check was sent
    CHECKS_EXHAUSTED = "checks_exhausted"


# (state, event) -> next state. Resolved states accept nothing: a second COMMIT must not deliver twice.
TRANSITIONS: dict[tuple[HalfState, HalfEvent], HalfState] = {
    (HalfState.PENDING, HalfEvent.COMMIT): HalfState.COMMITTED,
    (HalfState.PENDING, HalfEvent.ROLLBACK): HalfState.ROLLED_BACK,
    (HalfState.PENDING, HalfEvent.UNKNOWN): HalfState.PENDING,
    (HalfState.PENDING, HalfEvent.CHECKED): HalfState.PENDING,
    (HalfState.PENDING, HalfEvent.CHECKS_EXHAUSTED): HalfState.DISCARDED,
}


class TransitionRefused(Exception):
    def __init__(self, state: HalfState, event: HalfEvent) -> None:
        super().__init__(f"the transaction is already {state.value.replace('_', ' ')}; {event.value} refused")
        self.state = state
        self.event = event
        self.response_code = ResponseCode.SYSTEM_ERROR


def next_state(state: HalfState, event: HalfEvent) -> HalfState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionRefused(state, event) from None


@dataclass(slots=True, frozen=True)
class CheckPolicy:
    timeout_ms: int  # transactionTimeOut
    interval_ms: int  # transactionCheckInterval
    max_checks: int  # transactionCheckMax

    def first_check_ms(self, stored_ms: int, props: dict[str, str]) -> int:
        """When a new half message is first checked: after the timeout, or after its own immunity time."""
        return stored_ms + self.immunity_ms(props)

    def immunity_ms(self, props: dict[str, str]) -> int:
        raw = props.get(PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS)
        if raw is not None:
            try:
                seconds = int(raw.strip())
            except ValueError:
                seconds = -1
            if seconds >= 0:
                return seconds * 1000
        return self.timeout_ms

    def after_check(self, check_times: int, now_ms: int) -> tuple[int, int]:
        """Check count and next check time once a check has been sent."""
        return check_times + 1, now_ms + self.interval_ms

    def exhausted(self, check_times: int) -> bool:
        return check_times >= self.max_checks
