"""The invariant checker's rules, one by one: each violation is detected, and the legitimate look-alikes
(re-delivery, rebalance, commits and resets, filtering, retries) are not flagged."""

from __future__ import annotations

import logging

import pytest

from codec.properties import encode_properties
from codec.record import StoredMessage, encode_record, set_offsets
from gateway.invariants import MAX_TRACKED, RECENT_VIOLATIONS, InvariantChecker, enabled_by_env

NOW = 1_700_000_000_000


@pytest.fixture
def checker() -> InvariantChecker:
    return InvariantChecker(lambda: NOW)


def records(
    offsets: range | list[int], props: dict[str, str] | None = None, store_ms: int = NOW, sys_flag: int = 0
) -> list[bytes]:
    out = []
    for o in offsets:
        msg = StoredMessage("T", 0, b"x", encode_properties(props or {}), sys_flag=sys_flag, store_timestamp=store_ms)
        record = encode_record(msg)
        set_offsets(record, o, 1000 + o)
        out.append(bytes(record))
    return out


def pull(checker: InvariantChecker, offset: int, answered: list[bytes], next_offset: int, *, locked: bool = True,
         group: str = "g", lo: int = 0, hi: int = 100, filtered: bool = False) -> None:  # fmt: skip
    checker.pull_served(group, "T", 0, offset, locked, lo, hi, next_offset, answered, filtered)


def only(checker: InvariantChecker) -> str:
    [violation] = checker.recent
    return violation.invariant


# ---- orderly_skip ---------------------------------------------------------------------------------------------


def test_an_orderly_pull_past_undelivered_messages_is_a_skip(checker, caplog) -> None:
    pull(checker, 0, records(range(0, 10)), 10)
    with caplog.at_level(logging.ERROR, "pocketmq.invariants"):
        pull(checker, 15, records(range(15, 20)), 20)
    assert only(checker) == "orderly_skip" and checker.counts["orderly_skip"] == 1
    evidence = checker.recent[0].evidence
    assert (evidence["group"], evidence["pullOffset"], evidence["frontier"]) == ("g", 15, 10)
    assert "10..14" in caplog.text and "orderly_skip" in caplog.text


def test_going_back_is_redelivery_not_a_violation(checker) -> None:
    pull(checker, 0, records(range(0, 10)), 10)
    pull(checker, 3, records(range(3, 10)), 10)  # a failed batch consumed again, a rebalance, a restart
    pull(checker, 10, records(range(10, 12)), 12)
    pull(checker, 12, [], 12, hi=12)  # caught up: a pull at the end
    assert checker.total == 0


def test_a_stale_pull_of_another_member_does_not_move_the_check_backwards(checker) -> None:
    pull(checker, 0, records(range(0, 50)), 50)  # member A
    pull(checker, 20, records(range(20, 30)), 30)  # member B after a rebalance, from the committed offset
    pull(checker, 50, records(range(50, 60)), 60)  # A's pull still in flight: the group was handed 0..49
    assert checker.total == 0


def test_commits_resets_and_retention_explain_a_jump(checker) -> None:
    pull(checker, 0, records(range(0, 10)), 10)
    checker.offset_committed("g", "T", 0, 40)  # the group committed ahead (skipped on purpose)
    pull(checker, 40, records(range(40, 41)), 41)
    checker.offsets_reset("g", "T")  # admin: skip to the end
    pull(checker, 90, records(range(90, 91)), 91, lo=0)
    pull(checker, 95, records(range(95, 96)), 96, lo=95)  # 91..94 deleted by retention
    assert checker.total == 0


def test_unlocked_groups_and_filtered_skips_are_not_orderly_skips(checker) -> None:
    pull(checker, 0, records(range(0, 5)), 5, locked=False, group="concurrent")
    pull(checker, 50, records(range(50, 51)), 51, locked=False, group="concurrent")  # a pull consumer may seek
    pull(checker, 0, records([3, 7]), 12, filtered=True)  # tags filtered 0..2, 4..6, 8..11 out
    pull(checker, 12, records(range(12, 13)), 13)
    assert checker.total == 0


def test_a_skip_to_the_end_of_the_queue_counts_too(checker) -> None:
    pull(checker, 0, records(range(0, 10)), 10)
    pull(checker, 100, [], 100, hi=100)
    assert only(checker) == "orderly_skip"


# ---- delivery_gap ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "answered", "next_offset"),
    [(5, range(6, 8), 8), (5, range(5, 8), 9), (5, [5, 7], 8)],
    ids=["starts-late", "next-too-far", "hole"],
)
def test_an_unfiltered_pull_answer_with_a_gap(checker, offset, answered, next_offset) -> None:
    pull(checker, offset, records(answered), next_offset, locked=False)
    assert only(checker) == "delivery_gap"


def test_a_filtered_answer_may_leave_gaps_but_not_go_back(checker) -> None:
    pull(checker, 5, records([6, 9]), 12, filtered=True, locked=False)
    assert checker.total == 0
    pull(checker, 5, records([4]), 6, filtered=True, locked=False)
    assert only(checker) == "delivery_gap"


def test_an_acked_send_lies_below_the_max_offset(checker) -> None:
    checker.send_acked("T", 0, 9, 10)
    assert checker.total == 0
    checker.send_acked("T", 0, 10, 10)
    assert only(checker) == "delivery_gap"


# ---- half messages --------------------------------------------------------------------------------------------


def test_a_delivered_half_message_is_flagged_a_committed_one_is_not(checker) -> None:
    committed = records(range(0, 1), props={"UNIQ_KEY": "C"}, sys_flag=0x8)
    half = records(range(1, 2), props={"TRAN_MSG": "true", "UNIQ_KEY": "H", "PGROUP": "pg"}, sys_flag=0x4)
    pull(checker, 0, committed, 1, locked=False)
    legacy_retry = StoredMessage("T", 0, b"x", encode_properties({"TRAN_MSG": "true"}), reconsume_times=1)
    checker.delivered("g", legacy_retry)  # a pre-4.6.1 client's retry of a transactional message: a normal one
    assert checker.total == 0
    pull(checker, 1, half, 2, locked=False)
    assert only(checker) == "half_delivered" and checker.recent[0].evidence["uniqKey"] == "H"


def test_a_commit_after_a_rollback_or_a_second_commit(checker) -> None:
    checker.half_resolved(100, committed=True)
    checker.half_resolved(200, committed=False)
    assert checker.total == 0
    checker.half_resolved(200, committed=True)
    checker.half_resolved(100, committed=True)
    assert [v.evidence["before"] for v in checker.recent] == ["rolled back", "committed"]
    assert checker.counts["half_resolved_twice"] == 2


# ---- delayed messages -----------------------------------------------------------------------------------------


def test_a_hand_over_before_the_due_time(checker) -> None:
    checker.handed_over("T", 0, due_ms=NOW, now_ms=NOW, phys_offset=1)
    checker.handed_over("T", 0, due_ms=NOW - 5, now_ms=NOW, phys_offset=2)
    assert checker.total == 0
    checker.handed_over("T", 0, due_ms=NOW + 1000, now_ms=NOW, phys_offset=3)
    assert only(checker) == "delayed_early"


def test_a_timed_message_stored_or_delivered_before_its_time(checker) -> None:
    on_time = StoredMessage("T", 0, b"x", encode_properties({"TIMER_DELIVER_MS": str(NOW)}), store_timestamp=NOW)
    checker.delivered("g", on_time)
    checker.stored_for_delivery("T", 0, str(NOW - 1), NOW)  # a delivery time already past: stored at once
    assert checker.total == 0
    early = StoredMessage("T", 0, b"x", encode_properties({"TIMER_DELIVER_MS": str(NOW + 60_000)}), store_timestamp=NOW)
    checker.delivered("g", early)
    checker.stored_for_delivery("T", 0, str(NOW + 60_000), NOW)
    assert [v.invariant for v in checker.recent] == ["delayed_early", "delayed_early"]
    assert checker.recent[0].evidence["deliverMs"] == NOW + 60_000


# ---- dead letters ---------------------------------------------------------------------------------------------


def test_dead_letters_only_after_the_maximum_attempts(checker) -> None:
    checker.dead_lettered("g", "T", attempts=16, max_attempts=16, forced=False)
    checker.dead_lettered("g", "T", attempts=0, max_attempts=16, forced=True)  # the client asked (level < 0)
    assert checker.total == 0
    checker.dead_lettered("g", "T", attempts=3, max_attempts=16, forced=False)
    assert only(checker) == "dead_letter_early"


# ---- 5.x FIFO message groups ----------------------------------------------------------------------------------


def test_fifo_a_later_message_while_an_earlier_one_is_in_flight(checker) -> None:
    checker.fifo_handed("g", "T", 0, "order-1", 4, visible_ms=NOW + 30_000, now_ms=NOW)
    checker.fifo_handed("g", "T", 0, "order-2", 5, visible_ms=NOW + 30_000, now_ms=NOW)  # another message group
    assert checker.total == 0
    checker.fifo_handed("g", "T", 0, "order-1", 6, visible_ms=NOW + 30_000, now_ms=NOW)
    assert only(checker) == "fifo_group_order"
    assert checker.recent[0].evidence["inFlightOffset"] == 4


def test_fifo_after_an_ack_an_expiry_or_a_redelivery_is_in_order(checker) -> None:
    checker.fifo_handed("g", "T", 0, "k", 4, visible_ms=NOW + 30_000, now_ms=NOW)
    checker.fifo_handed("g", "T", 0, "k", 4, visible_ms=NOW + 60_000, now_ms=NOW + 30_000)  # redelivered
    checker.fifo_settled("g", "T", 0, 4)  # acked
    checker.fifo_handed("g", "T", 0, "k", 5, visible_ms=NOW + 30_000, now_ms=NOW)
    checker.fifo_handed("g", "T", 0, "k", 6, visible_ms=NOW + 90_000, now_ms=NOW + 30_001)  # 5 visible again
    checker.fifo_handed("g2", "T", 0, "k", 9, visible_ms=NOW + 30_000, now_ms=NOW)  # another consumer group
    assert checker.total == 0


# ---- the checker itself ---------------------------------------------------------------------------------------


def test_off_means_nothing_is_checked() -> None:
    off = InvariantChecker(lambda: NOW, enabled=False)
    off.dead_lettered("g", "T", attempts=0, max_attempts=16, forced=False)
    pull(off, 0, records(range(0, 2)), 2)
    pull(off, 9, records(range(9, 10)), 10)
    assert off.total == 0
    assert not enabled_by_env({"POCKETMQ_INVARIANTS": "off"}) and enabled_by_env({})


def test_memory_stays_bounded(checker) -> None:
    for i in range(MAX_TRACKED + 10):
        pull(checker, 0, [], 0, group=f"g{i}", hi=0)
    assert len(checker._frontiers) == MAX_TRACKED
    for _ in range(RECENT_VIOLATIONS + 5):
        checker.dead_lettered("g", "T", attempts=0, max_attempts=1, forced=False)
    snapshot = checker.snapshot()
    assert len(snapshot["recent"]) == RECENT_VIOLATIONS and snapshot["counts"]["dead_letter_early"] == 105
