"""POP consumption in the broker (gateway.pop): invisibility, acks by receipt handle, redelivery with the attempt
counted, dead letters after the group's retries, FIFO message groups, long polling and durability across a
restart. Time is a FakeClock, so an invisible duration passes at once."""

from __future__ import annotations

import anyio
import pytest

from codec import jsonbody
from codec.codes import PROPERTY_SHARDING_KEY, PROPERTY_TAGS, RequestCode, ResponseCode
from codec.tags import parse_tag_expression
from gateway.clock import FakeClock
from gateway.handlers.pull import acceptor
from gateway.pop import AUTO_RENEW_INVISIBLE_MS, OutOfDate, PopService, ReceiveRequest
from gateway.retry import dlq_topic

pytestmark = pytest.mark.timeout(30)
INVISIBLE_MS = 30_000


def request(
    group: str = "g", topic: str = "PopT", *, batch: int = 32, fifo: bool = False, attempts: int = 17, accept=None
):  # type: ignore[no-untyped-def]
    return ReceiveRequest(group, topic, accept, batch, INVISIBLE_MS, fifo, attempts)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pop_broker(cluster, namesrv, clock):  # type: ignore[no-untyped-def]
    return await cluster.start_broker(clock=clock)


@pytest.fixture
async def bc(open_broker_client, pop_broker):  # type: ignore[no-untyped-def]
    return await open_broker_client(pop_broker)


def bodies(popped) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [p.message.body for p in popped]


async def test_a_received_message_stays_invisible_until_acked_or_its_time_passes(pop_broker, bc, clock) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        await bc.send_ok("PopT", f"m{i}".encode(), queue_id=i)
    pop = PopService(pop_broker.ctx)
    first = await pop.receive_now(request())
    assert sorted(bodies(first)) == [b"m0", b"m1", b"m2"]
    assert {p.attempt for p in first} == {1}
    assert await pop.receive_now(request()) == [], "invisible to the group"
    assert sorted(bodies(await pop.receive_now(request("other-group")))) == [b"m0", b"m1", b"m2"], "groups are apart"
    by_body = {p.message.body: p for p in first}
    await pop.ack("g", "PopT", by_body[b"m0"].receipt.encode())
    with pytest.raises(OutOfDate):
        await pop.ack("g", "PopT", by_body[b"m0"].receipt.encode())
    clock.advance(INVISIBLE_MS - 1)
    assert await pop.receive_now(request()) == []
    clock.advance(1)
    again = await pop.receive_now(request())
    assert sorted(bodies(again)) == [b"m1", b"m2"], "not acked in time: delivered again, the acked one never"
    assert {p.attempt for p in again} == {2}
    with pytest.raises(OutOfDate):  # the handle of the first delivery no longer names the message
        await pop.ack("g", "PopT", by_body[b"m1"].receipt.encode())
    for p in again:
        await pop.ack("g", "PopT", p.receipt.encode())
    clock.advance(10 * INVISIBLE_MS)
    assert await pop.receive_now(request()) == []
    assert pop_broker.ctx.store.get_consumer_offset("g", "PopT", 1) == 1, "the group's progress, as admin tools see it"


async def test_changing_the_invisible_time_hands_it_out_again_then_and_renews_the_handle(pop_broker, bc, clock) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("PopT", b"nack-me")
    pop = PopService(pop_broker.ctx)
    [p] = await pop.receive_now(request())
    renewed = await pop.change_invisible("g", "PopT", p.receipt.encode(), 5_000)
    with pytest.raises(OutOfDate):
        await pop.ack("g", "PopT", p.receipt.encode())
    clock.advance(4_999)
    assert await pop.receive_now(request()) == []
    clock.advance(1)
    [again] = await pop.receive_now(request())
    assert again.attempt == 2 and again.message.body == b"nack-me"
    with pytest.raises(OutOfDate):
        await pop.ack("g", "PopT", renewed.encode())


async def test_after_the_groups_retries_the_message_goes_to_its_dead_letter_queue(pop_broker, bc, clock) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("PopT", b"poison", properties={PROPERTY_TAGS: "P"})
    pop = PopService(pop_broker.ctx)
    for attempt in (1, 2):
        [p] = await pop.receive_now(request(attempts=2))
        assert p.attempt == attempt
        await pop.change_invisible("g", "PopT", p.receipt.encode(), 0)
    assert await pop.receive_now(request(attempts=2)) == []
    [dead] = await bc.pull_records(dlq_topic("g"))
    assert dead.body == b"poison" and dead.reconsume_times == 2
    clock.advance(10 * INVISIBLE_MS)
    assert await pop.receive_now(request(attempts=2)) == [], "dead-lettered once, never handed out again"


async def test_forwarding_to_the_dead_letter_queue_settles_the_message(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("PopT", b"give-up")
    pop = PopService(pop_broker.ctx)
    [p] = await pop.receive_now(request())
    await pop.forward_to_dead_letter("g", "PopT", p.receipt.encode(), 17)
    [dead] = await bc.pull_records(dlq_topic("g"))
    assert dead.body == b"give-up"
    with pytest.raises(OutOfDate):
        await pop.ack("g", "PopT", p.receipt.encode())


async def test_a_fifo_group_gets_one_message_per_message_group_at_a_time_in_order(pop_broker, bc, clock) -> None:  # type: ignore[no-untyped-def]
    sends = [("A", b"a1"), ("A", b"a2"), ("B", b"b1"), ("A", b"a3"), ("B", b"b2")]
    for key, body in sends:
        await bc.send_ok("PopT", body, properties={PROPERTY_SHARDING_KEY: key})
    pop = PopService(pop_broker.ctx)
    fifo = request(fifo=True)
    first = await pop.receive_now(fifo)
    assert bodies(first) == [b"a1", b"b1"]
    assert await pop.receive_now(fifo) == []
    await pop.ack("g", "PopT", first[0].receipt.encode())
    [a2] = await pop.receive_now(fifo)
    assert a2.message.body == b"a2"
    clock.advance(INVISIBLE_MS)  # b1 was not acked: it comes back before b2, a2 likewise before a3
    again = await pop.receive_now(fifo)
    assert bodies(again) == [b"a2", b"b1"] and [p.attempt for p in again] == [2, 2]
    for p in again:
        await pop.ack("g", "PopT", p.receipt.encode())
    assert bodies(await pop.receive_now(fifo)) == [b"a3", b"b2"]
    concurrent = await pop.receive_now(request("plain-group"))
    assert bodies(concurrent) == [body for _, body in sends], "a group that is not FIFO gets them all at once"


async def test_filters_apply_and_skipped_messages_are_not_handed_out_later(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    for i, tag in enumerate(["A", "B", "A", "C"]):
        await bc.send_ok("PopT", f"m{i}".encode(), properties={PROPERTY_TAGS: tag})
    pop = PopService(pop_broker.ctx)
    only_a = request(accept=acceptor(parse_tag_expression("A")))
    assert bodies(await pop.receive_now(only_a)) == [b"m0", b"m2"]
    assert await pop.receive_now(only_a) == []


async def test_a_receive_waits_for_a_message_then_answers_at_once(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    pop = PopService(pop_broker.ctx)
    await bc.send_ok("PopT", b"first")  # the topic exists
    [p] = await pop.receive_now(request())
    await pop.ack("g", "PopT", p.receipt.encode())
    got = []
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            got.extend(await pop.receive(request(), 10_000))

        tg.start_soon(receive)
        await anyio.sleep(0.2)
        assert got == []
        started = anyio.current_time()
        await bc.send_ok("PopT", b"later", queue_id=3)
    assert bodies(got) == [b"later"]
    assert anyio.current_time() - started < 2
    with anyio.fail_after(3):
        assert await pop.receive(request(), 300) == [], "nothing comes: the poll ends at its time"


async def test_acks_and_deliveries_survive_a_restart(cluster, namesrv, clock, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    broker = await cluster.start_broker(clock=clock)
    bc = await open_broker_client(broker)
    for body in (b"acked", b"unacked"):
        await bc.send_ok("PopT", body)
    pop = PopService(broker.ctx)
    handed = {p.message.body: p for p in await pop.receive_now(request())}
    await pop.ack("g", "PopT", handed[b"acked"].receipt.encode())
    await cluster.stop(broker)
    broker = await cluster.start_broker(clock=clock)
    pop = PopService(broker.ctx)
    assert await pop.receive_now(request()) == [], "still invisible after the restart"
    with pytest.raises(OutOfDate):
        await pop.ack("g", "PopT", handed[b"acked"].receipt.encode())
    clock.advance(INVISIBLE_MS)
    [again] = await pop.receive_now(request())
    assert again.message.body == b"unacked" and again.attempt == 2


async def test_subscription_group_configs_are_kept_and_listed(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    config = {"groupName": "orderly-g", "consumeMessageOrderly": True, "retryMaxTimes": 3}
    answer = await bc.invoke(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, jsonbody.dumps(config))
    assert answer.code == 0, answer.remark
    assert pop_broker.ctx.groups.get("orderly-g").max_attempts == 4
    assert pop_broker.ctx.groups.get("orderly-g").orderly is True
    listed = await bc.invoke(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    table = jsonbody.loads(listed.body)["subscriptionGroupTable"]
    assert table["orderly-g"]["retryMaxTimes"] == 3 and table["orderly-g"]["consumeMessageOrderly"] is True
    bad = await bc.invoke(
        RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, b'{"groupName": "x", "retryMaxTimes": "3"}'
    )
    assert bad.code != 0 and "retryMaxTimes" in (bad.remark or "")
    deleted = await bc.invoke(RequestCode.DELETE_SUBSCRIPTIONGROUP, {"groupName": "orderly-g"})
    assert deleted.code == 0
    assert pop_broker.ctx.groups.get("orderly-g").orderly is False


async def test_a_nack_wakes_a_waiting_receive(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("PopT", b"nacked")
    pop = PopService(pop_broker.ctx)
    [p] = await pop.receive_now(request())
    got = []
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            got.extend(await pop.receive(request(), 10_000))

        tg.start_soon(receive)
        await anyio.sleep(0.2)
        started = anyio.current_time()
        await pop.change_invisible("g", "PopT", p.receipt.encode(), 0)
    assert [(x.message.body, x.attempt) for x in got] == [(b"nacked", 2)]
    assert anyio.current_time() - started < 2, "the receive slept out its poll"


async def test_auto_renew_keeps_a_delivery_with_its_connected_client(pop_broker, bc, clock) -> None:  # type: ignore[no-untyped-def]
    """A push consumer's receive (auto_renew) stays invisible past its 60 s while its client is connected, and the
    client's receipt handle stays good; once the client is gone the message comes back."""
    for body in (b"kept", b"orphaned"):
        await bc.send_ok("PopT", body)
    pop = PopService(pop_broker.ctx)
    connected = {"push-1"}
    pop.client_connected = lambda client_id: client_id in connected
    renewing = ReceiveRequest("g", "PopT", None, 32, AUTO_RENEW_INVISIBLE_MS, False, 17, renew_for="push-1")
    handed = {p.message.body: p for p in await pop.receive_now(renewing)}
    clock.advance(AUTO_RENEW_INVISIBLE_MS)
    assert await pop.receive_now(request()) == [], "renewed, not handed to anyone else"
    await pop.ack("g", "PopT", handed[b"kept"].receipt.encode())
    clock.advance(AUTO_RENEW_INVISIBLE_MS)
    assert await pop.receive_now(request()) == [], "renewed again"
    connected.clear()
    clock.advance(AUTO_RENEW_INVISIBLE_MS)
    [back] = await pop.receive_now(request())
    assert back.message.body == b"orphaned" and back.attempt == 2


async def test_consume_enable_false_refuses_pulls_and_receives(pop_broker, bc) -> None:  # type: ignore[no-untyped-def]
    await bc.send_ok("PopT", b"x")
    config = {"groupName": "closed-g", "consumeEnable": False}
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, jsonbody.dumps(config))).code == 0
    pulled = await bc.pull("PopT", 0, 0, group="closed-g", suspend_ms=0)
    assert pulled.code == ResponseCode.NO_PERMISSION and "no permission, closed-g" in (pulled.remark or "")
    assert (await bc.pull("PopT", 0, 0, group="open-g", suspend_ms=0)).code == 0
