"""The half-message state machine (Hypothesis over states x events) and the check timing rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.transactions import TRANSITIONS, CheckPolicy, HalfEvent, HalfState, TransitionRefused, next_state

POLICY = CheckPolicy(timeout_ms=6_000, interval_ms=30_000, max_checks=15)
RESOLVED = {HalfState.COMMITTED, HalfState.ROLLED_BACK, HalfState.DISCARDED}


@given(st.sampled_from(list(HalfState)), st.sampled_from(list(HalfEvent)))
def test_every_state_event_pair_is_defined_or_refused(state: HalfState, event: HalfEvent) -> None:
    if state in RESOLVED:
        with pytest.raises(TransitionRefused, match="already"):
            next_state(state, event)
    else:
        assert next_state(state, event) == TRANSITIONS[(state, event)]


@given(st.lists(st.sampled_from(list(HalfEvent)), max_size=30))
def test_a_message_is_resolved_at_most_once_and_delivered_only_when_committed(events: list[HalfEvent]) -> None:
    state = HalfState.PENDING
    deliveries = 0
    for event in events:
        try:
            new = next_state(state, event)
        except TransitionRefused:
            assert state in RESOLVED
            continue
        if new is HalfState.COMMITTED:
            deliveries += 1
        assert state is HalfState.PENDING or new is state
        state = new
    assert deliveries == (1 if state is HalfState.COMMITTED else 0)


def test_first_check_after_the_timeout_or_the_immunity_time() -> None:
    assert POLICY.first_check_ms(1_000, {}) == 7_000
    assert POLICY.first_check_ms(1_000, {"CHECK_IMMUNITY_TIME_IN_SECONDS": "60"}) == 61_000
    assert POLICY.first_check_ms(1_000, {"CHECK_IMMUNITY_TIME_IN_SECONDS": "oops"}) == 7_000


def test_checks_repeat_every_interval_up_to_the_maximum() -> None:
    assert POLICY.after_check(0, 7_000) == (1, 37_000)
    assert not POLICY.exhausted(14)
    assert POLICY.exhausted(15)
