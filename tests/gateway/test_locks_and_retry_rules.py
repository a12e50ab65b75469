"""Queue locks (injected clock), retry and dead-letter rules, and the consumer group table. Pure state."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from codec.heartbeat import ConsumerData, make_subscription
from gateway.clients import ClientChannel, ClientRegistry
from gateway.locks import QueueLockTable
from gateway.retry import dead_letter_for_resend, decide_send_back, max_reconsume_times

MQ0 = ("T", "broker-a", 0)
MQ1 = ("T", "broker-a", 1)


def test_a_queue_is_locked_by_one_client_until_it_expires() -> None:
    locks = QueueLockTable(max_live_ms=60_000)
    assert locks.try_lock("g", "c1", [MQ0, MQ1], now_ms=0) == [MQ0, MQ1]
    assert locks.try_lock("g", "c2", [MQ0, MQ1], now_ms=59_999) == []
    assert locks.holder("g", MQ0, 59_999) == "c1"
    assert locks.try_lock("g", "c2", [MQ0], now_ms=60_001) == [MQ0]  # expired: taken over
    assert locks.holder("g", MQ0, 60_001) == "c2"


def test_renewal_keeps_the_lock_alive() -> None:
    locks = QueueLockTable(max_live_ms=1_000)
    locks.try_lock("g", "c1", [MQ0], now_ms=0)
    locks.try_lock("g", "c1", [MQ0], now_ms=900)  # renew
    assert locks.try_lock("g", "c2", [MQ0], now_ms=1_800) == []
    assert locks.try_lock("g", "c2", [MQ0], now_ms=1_901) == [MQ0]


def test_unlock_releases_only_the_callers_locks() -> None:
    locks = QueueLockTable()
    locks.try_lock("g", "c1", [MQ0], 0)
    locks.try_lock("g", "c2", [MQ1], 0)
    locks.unlock("g", "c2", [MQ0, MQ1])
    assert locks.holder("g", MQ0, 1) == "c1"
    assert locks.holder("g", MQ1, 1) is None
    assert locks.try_lock("g", "c3", [MQ1], 2) == [MQ1]


def test_groups_are_independent() -> None:
    locks = QueueLockTable()
    assert locks.try_lock("g1", "c1", [MQ0], 0) == [MQ0]
    assert locks.try_lock("g2", "c2", [MQ0], 0) == [MQ0]
    assert locks.holds_any("g1", 1) and not locks.holds_any("g3", 1)


@given(st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["lock", "unlock"]),
                          st.integers(0, 3), st.integers(0, 2_000)), max_size=40))  # fmt: skip
def test_never_two_holders(ops: list[tuple[str, str, int, int]]) -> None:
    """Whatever clients do, at any time a queue has at most one live holder and it is the last one granted."""
    locks = QueueLockTable(max_live_ms=500)
    now = 0
    granted: dict[int, tuple[str, int]] = {}
    for client, op, queue, step in ops:
        now += step
        mq = ("T", "b", queue)
        if op == "lock":
            if locks.try_lock("g", client, [mq], now):
                granted[queue] = (client, now)
            else:
                holder, since = granted[queue]
                assert holder != client and now - since <= 500
        else:
            locks.unlock("g", client, [mq])
            if queue in granted and granted[queue][0] == client:
                del granted[queue]
        for q, (holder, since) in granted.items():
            expected = holder if now - since <= 500 else None
            assert locks.holder("g", ("T", "b", q), now) == expected


def test_send_back_levels_and_dead_letters() -> None:
    assert decide_send_back("g", 0, 0, 16) == decide_send_back("g", 0, 3, 16)  # level 3 + reconsumeTimes
    retry = decide_send_back("g", 2, 0, 16)
    assert (retry.topic, retry.delay_level, retry.dead_letter) == ("%RETRY%g", 5, False)
    assert decide_send_back("g", 1, 7, 16).delay_level == 7  # the level the client asks for
    dead = decide_send_back("g", 16, 0, 16)
    assert (dead.topic, dead.delay_level, dead.dead_letter) == ("%DLQ%g", 0, True)
    assert decide_send_back("g", 0, -1, 16).dead_letter  # a negative level goes straight to the DLQ


def test_max_reconsume_times_needs_a_new_enough_client() -> None:
    assert max_reconsume_times(2, client_version=401) == 2
    assert max_reconsume_times(2, client_version=63) == 16  # C++ 1.x sends version 63: the group default
    assert max_reconsume_times(None, client_version=479) == 16


def test_client_resends_to_retry_topics_dead_letter_at_the_limit() -> None:
    assert dead_letter_for_resend("%RETRY%g", 1, 2) is None
    assert dead_letter_for_resend("%RETRY%g", 2, 2) == "%DLQ%g"
    assert dead_letter_for_resend("Orders", 99, 2) is None


def channel(client_id: str, conn: int, at: int = 0) -> ClientChannel:
    return ClientChannel(client_id, conn, f"127.0.0.1:{conn}", "JAVA", 479, at)


def consumer(group: str = "g", topic: str = "T", expr: str = "*", model: str = "CLUSTERING") -> ConsumerData:
    sub = make_subscription(topic, expr, "TAG", 1)
    return ConsumerData(group, "CONSUME_PASSIVELY", model, "CONSUME_FROM_LAST_OFFSET", {topic: sub})


def test_group_membership_changes_are_reported() -> None:
    reg = ClientRegistry(expiry_ms=120_000)
    assert reg.register_consumer(consumer(), channel("c1", 1)) is True
    assert reg.register_consumer(consumer(), channel("c1", 1)) is False  # a plain heartbeat changes nothing
    assert reg.register_consumer(consumer(), channel("c2", 2)) is True
    assert reg.consumers["g"].client_ids() == ["c1", "c2"]
    assert reg.register_consumer(consumer(expr="a || b"), channel("c2", 2)) is False  # same topics: no notice
    assert reg.subscription("g", "T").expression == "a || b"
    assert reg.register_consumer(consumer(topic="U"), channel("c2", 2)) is True  # the topic set changed
    assert reg.connection_closed(2) == ["g"]
    assert reg.consumers["g"].client_ids() == ["c1"]
    assert reg.unregister(1, None, "g") == ["g"]
    assert "g" not in reg.consumers


def test_members_expire_after_120_s_without_heartbeat() -> None:
    reg = ClientRegistry(expiry_ms=120_000)
    reg.register_consumer(consumer(), channel("c1", 1, at=0))
    reg.register_consumer(consumer(), channel("c2", 2, at=100_000))
    assert reg.expire(now_ms=120_000) == []
    assert reg.expire(now_ms=120_001) == ["g"]
    assert reg.consumers["g"].client_ids() == ["c2"]


def test_broadcasting_groups_are_kept_with_their_model() -> None:
    reg = ClientRegistry()
    reg.register_consumer(consumer(group="b", model="BROADCASTING"), channel("c1", 1))
    assert reg.consumers["b"].message_model == "BROADCASTING"
