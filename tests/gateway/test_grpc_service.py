"""MessagingService over gRPC (grpcio's client, the transport the 5.x SDKs use): routes, settings over Telemetry,
heartbeats, and sends that a remoting consumer pulls back intact."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import anyio
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from codec import jsonbody
from codec.codes import PROPERTY_KEYS, PROPERTY_SHARDING_KEY, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, RequestCode
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from codec.properties import decode_properties
from codec.record import decode_records

SERVICE = "/apache.rocketmq.v2.MessagingService/"
pytestmark = pytest.mark.timeout(60)


class Client:
    """A blocking grpcio channel used from worker threads."""

    def __init__(self, port: int, client_id: str = "test-client-1") -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.metadata = [("x-mq-client-id", client_id), ("x-mq-language", "PYTHON")]
        self.port = port

    def unary(self, method: str, request: Any, response_type: Any) -> Any:
        call = self.channel.unary_unary(SERVICE + method, type(request).SerializeToString, response_type.FromString)
        return call(request, metadata=self.metadata, timeout=5)

    def receive(self, request: s.ReceiveMessageRequest, timeout: float = 30) -> list[s.ReceiveMessageResponse]:
        call = self.channel.unary_stream(
            SERVICE + "ReceiveMessage", s.ReceiveMessageRequest.SerializeToString, s.ReceiveMessageResponse.FromString
        )
        return list(call(request, metadata=self.metadata, timeout=timeout))

    def telemetry(self, commands: list[s.TelemetryCommand], answers: int) -> list[s.TelemetryCommand]:
        outgoing: queue.Queue[s.TelemetryCommand | None] = queue.Queue()
        for c in commands:
            outgoing.put(c)
        call = self.channel.stream_stream(
            SERVICE + "Telemetry", s.TelemetryCommand.SerializeToString, s.TelemetryCommand.FromString
        )
        responses = call(iter(outgoing.get, None), metadata=self.metadata, timeout=5)
        received = [next(responses) for _ in range(answers)]
        outgoing.put(None)
        responses.cancel()
        return received


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


@pytest.fixture
async def grpc_broker(cluster):  # type: ignore[no-untyped-def]
    await cluster.start_namesrv()
    broker = await cluster.start_broker(grpc_port=0)
    with anyio.fail_after(10):
        await broker.grpc_settled.wait()
    assert broker.grpc_port
    return broker


def producer_settings(*topics: str) -> s.TelemetryCommand:
    return s.TelemetryCommand(
        settings=d.Settings(
            client_type=d.PRODUCER,
            publishing=d.Publishing(topics=[d.Resource(name=t) for t in topics]),
        )
    )


async def test_query_route_answers_with_the_address_the_client_used(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    answer = await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcT")), s.QueryRouteResponse
    )
    assert answer.status.code == d.OK
    assert [q.id for q in answer.message_queues] == [0, 1, 2, 3]
    queue0 = answer.message_queues[0]
    assert queue0.permission == d.READ_WRITE
    assert [(a.host, a.port) for a in queue0.broker.endpoints.addresses] == [("127.0.0.1", grpc_broker.grpc_port)]
    assert set(queue0.accept_message_types) == {d.NORMAL, d.FIFO, d.DELAY, d.TRANSACTION}
    empty = await in_thread(client.unary, "QueryRoute", s.QueryRouteRequest(), s.QueryRouteResponse)
    assert empty.status.code == d.ILLEGAL_TOPIC


async def test_settings_over_telemetry_then_heartbeats(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port, "producer-7")
    before = await in_thread(client.unary, "Heartbeat", s.HeartbeatRequest(client_type=d.PRODUCER), s.HeartbeatResponse)
    assert before.status.code == d.UNRECOGNIZED_CLIENT_TYPE  # no settings yet: a clear status, not a crash
    [answer] = await in_thread(client.telemetry, [producer_settings("GrpcT")], 1)
    assert answer.status.code == d.OK
    assert answer.settings.publishing.max_body_size == grpc_broker.config.max_message_size
    assert answer.settings.backoff_policy.max_attempts == 3
    assert [t.name for t in answer.settings.publishing.topics] == ["GrpcT"]
    after = await in_thread(client.unary, "Heartbeat", s.HeartbeatRequest(client_type=d.PRODUCER), s.HeartbeatResponse)
    assert after.status.code == d.OK


def _message(topic: str, body: bytes, message_id: str, **system: Any) -> d.Message:
    born = Timestamp()
    born.FromMilliseconds(1_700_000_000_123)
    return d.Message(
        topic=d.Resource(name=topic),
        body=body,
        user_properties={"color": "blue", "n": "1"},
        system_properties=d.SystemProperties(
            message_id=message_id, born_timestamp=born, born_host="10.0.0.9", message_type=d.NORMAL, **system
        ),
    )


async def test_a_grpc_send_is_pulled_intact_over_remoting(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    client, bc = Client(grpc_broker.grpc_port), await open_broker_client(grpc_broker)
    await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcT")), s.QueryRouteResponse
    )
    request = s.SendMessageRequest(
        messages=[_message("GrpcT", b"hello over grpc", "01AABBCCDD0000000000000001", tag="TagA", keys=["k1", "k 2"])]
    )
    answer = await in_thread(client.unary, "SendMessage", request, s.SendMessageResponse)
    assert answer.status.code == d.OK, answer
    [entry] = answer.entries
    assert entry.message_id == "01AABBCCDD0000000000000001"
    found = []
    for queue_id in range(4):
        response = await bc.pull("GrpcT", queue_id, 0)
        if response.code == 0:
            found += decode_records(response.body)
    [msg] = found
    assert msg.body == b"hello over grpc"
    props = decode_properties(msg.properties)
    assert props[PROPERTY_TAGS] == "TagA"
    assert props[PROPERTY_KEYS] == "k1 k 2"
    assert props[PROPERTY_UNIQ_KEY] == "01AABBCCDD0000000000000001"
    assert props["color"] == "blue" and props["n"] == "1"
    assert msg.born_timestamp == 1_700_000_000_123
    assert msg.queue_offset == entry.offset


async def test_a_message_group_keeps_to_one_queue(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    client, bc = Client(grpc_broker.grpc_port), await open_broker_client(grpc_broker)
    await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcFifo")), s.QueryRouteResponse
    )
    for i in range(6):
        message = _message("GrpcFifo", f"step {i}".encode(), f"01AABBCCDD00000000000000F{i}", message_group="order-42")
        answer = await in_thread(
            client.unary, "SendMessage", s.SendMessageRequest(messages=[message]), s.SendMessageResponse
        )
        assert answer.status.code == d.OK
    offsets = [grpc_broker.store.max_offset("GrpcFifo", q) for q in range(4)]
    assert sorted(offsets) == [0, 0, 0, 6]  # all six in one queue
    messages = decode_records((await bc.pull("GrpcFifo", offsets.index(6), 0)).body)
    assert [m.body for m in messages] == [f"step {i}".encode() for i in range(6)]
    assert {decode_properties(m.properties)[PROPERTY_SHARDING_KEY] for m in messages} == {"order-42"}


async def test_bad_sends_get_a_status_that_names_the_problem(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    no_id = await in_thread(
        client.unary, "SendMessage", s.SendMessageRequest(messages=[_message("GrpcT", b"x", "")]), s.SendMessageResponse
    )
    assert (no_id.status.code, no_id.status.message) == (d.ILLEGAL_MESSAGE_ID, "message id cannot be empty")
    system_key = _message("GrpcT", b"x", "01AA")
    system_key.user_properties["UNIQ_KEY"] = "mine"
    refused = await in_thread(
        client.unary, "SendMessage", s.SendMessageRequest(messages=[system_key]), s.SendMessageResponse
    )
    assert refused.status.code == d.ILLEGAL_MESSAGE_PROPERTY_KEY
    assert "UNIQ_KEY" in refused.status.message
    empty = await in_thread(client.unary, "SendMessage", s.SendMessageRequest(), s.SendMessageResponse)
    assert empty.status.code == d.MESSAGE_CORRUPTED
    unknown = client.channel.unary_unary(SERVICE + "NoSuchMethod", lambda m: m, lambda b: b)
    with pytest.raises(grpc.RpcError) as err:
        await in_thread(lambda: unknown(b"", timeout=5))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_end_transaction_names_what_is_wrong(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    unknown = await in_thread(
        client.unary,
        "EndTransaction",
        s.EndTransactionRequest(
            topic=d.Resource(name="GrpcTx"), message_id="01AB", transaction_id="01AB", resolution=d.COMMIT
        ),
        s.EndTransactionResponse,
    )
    assert (unknown.status.code, unknown.status.message) == (
        d.INVALID_TRANSACTION_ID,
        "transaction 01AB is not pending on this broker",
    )
    unresolved = await in_thread(
        client.unary, "EndTransaction", s.EndTransactionRequest(transaction_id="01AB"), s.EndTransactionResponse
    )
    assert unresolved.status.code == d.BAD_REQUEST


async def test_a_grpc_half_message_is_committed_by_end_transaction(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    client, bc = Client(grpc_broker.grpc_port), await open_broker_client(grpc_broker)
    await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcTx")), s.QueryRouteResponse
    )
    half = _message("GrpcTx", b"half", "01AABBCCDD00000000000000A1")
    half.system_properties.message_type = d.TRANSACTION
    sent = await in_thread(client.unary, "SendMessage", s.SendMessageRequest(messages=[half]), s.SendMessageResponse)
    assert sent.status.code == d.OK
    assert [grpc_broker.store.max_offset("GrpcTx", q) for q in range(4)] == [0, 0, 0, 0]  # invisible until committed
    end = s.EndTransactionRequest(
        topic=d.Resource(name="GrpcTx"),
        message_id=sent.entries[0].message_id,
        transaction_id=sent.entries[0].transaction_id,
        resolution=d.COMMIT,
        source=d.SOURCE_CLIENT,
    )
    answer = await in_thread(client.unary, "EndTransaction", end, s.EndTransactionResponse)
    assert answer.status.code == d.OK, answer
    again = await in_thread(client.unary, "EndTransaction", end, s.EndTransactionResponse)
    assert again.status.code == d.INVALID_TRANSACTION_ID  # resolved: never delivered twice
    [queue] = [q for q in range(4) if grpc_broker.store.max_offset("GrpcTx", q) == 1]
    [msg] = decode_records((await bc.pull("GrpcTx", queue, 0)).body)
    assert msg.body == b"half"


# ---- consumers (POP) --------------------------------------------------------------------------------------


def _receive_request(
    topic: str, group: str, *, invisible_s: int = 30, poll_s: int = 5, **kw: Any
) -> s.ReceiveMessageRequest:
    return s.ReceiveMessageRequest(
        group=d.Resource(name=group),
        message_queue=d.MessageQueue(topic=d.Resource(name=topic), id=-1),
        filter_expression=kw.pop("filter_expression", d.FilterExpression(type=d.TAG, expression="*")),
        batch_size=kw.pop("batch_size", 32),
        invisible_duration=Duration(seconds=invisible_s),
        long_polling_timeout=Duration(seconds=poll_s),
        **kw,
    )


async def _send(client: Client, topic: str, *bodies: bytes, **system: Any) -> None:
    for i, body in enumerate(bodies):
        message = _message(topic, body, f"01AABBCCDD{i:016X}", **system)
        answer = await in_thread(
            client.unary, "SendMessage", s.SendMessageRequest(messages=[message]), s.SendMessageResponse
        )
        assert answer.status.code == d.OK, answer


async def test_receive_ack_and_change_invisible_duration(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    await _send(client, "GrpcPop", b"one", b"two", tag="TagA", keys=["k1"])
    responses = await in_thread(client.receive, _receive_request("GrpcPop", "pop-g"))
    assert responses[0].status.code == d.OK
    assert responses[-1].HasField("delivery_timestamp"), "every receive ends with the time of delivery"
    messages = [r.message for r in responses[1:-1]]
    assert sorted(m.body for m in messages) == [b"one", b"two"]
    for m in messages:
        system = m.system_properties
        assert system.tag == "TagA" and list(system.keys) == ["k1"] and system.delivery_attempt == 1
        assert system.receipt_handle and system.invisible_duration.seconds == 30
        assert m.user_properties == {"color": "blue", "n": "1"}
    one, two = sorted(messages, key=lambda m: m.body)
    ack = s.AckMessageRequest(
        group=d.Resource(name="pop-g"), topic=d.Resource(name="GrpcPop"),
        entries=[s.AckMessageEntry(message_id=one.system_properties.message_id,
                                   receipt_handle=one.system_properties.receipt_handle)],
    )  # fmt: skip
    acked = await in_thread(client.unary, "AckMessage", ack, s.AckMessageResponse)
    assert acked.status.code == d.OK and [e.status.code for e in acked.entries] == [d.OK]
    again = await in_thread(client.unary, "AckMessage", ack, s.AckMessageResponse)
    assert again.entries[0].status.code == d.INVALID_RECEIPT_HANDLE
    nack = s.ChangeInvisibleDurationRequest(
        group=d.Resource(name="pop-g"), topic=d.Resource(name="GrpcPop"),
        receipt_handle=two.system_properties.receipt_handle, invisible_duration=Duration(seconds=0),
        message_id=two.system_properties.message_id,
    )  # fmt: skip
    changed = await in_thread(client.unary, "ChangeInvisibleDuration", nack, s.ChangeInvisibleDurationResponse)
    assert changed.status.code == d.OK and changed.receipt_handle != two.system_properties.receipt_handle
    redelivered = await in_thread(client.receive, _receive_request("GrpcPop", "pop-g"))
    assert [r.message.body for r in redelivered[1:-1]] == [b"two"]
    assert redelivered[1].message.system_properties.delivery_attempt == 2


async def test_receive_refusals_name_the_problem(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    await _send(client, "GrpcPopBad", b"x")
    short = await in_thread(client.receive, _receive_request("GrpcPopBad", "g", invisible_s=1))
    assert [r.status.code for r in short[:-1]] == [d.ILLEGAL_INVISIBLE_TIME] and "10000" in short[0].status.message
    sql = d.FilterExpression(type=d.SQL, expression="a >")
    bad_filter = await in_thread(client.receive, _receive_request("GrpcPopBad", "g", filter_expression=sql))
    assert [r.status.code for r in bad_filter[:-1]] == [d.ILLEGAL_FILTER_EXPRESSION]
    bad_group = await in_thread(client.receive, _receive_request("GrpcPopBad", "g" * 256))
    assert [r.status.code for r in bad_group[:-1]] == [d.ILLEGAL_CONSUMER_GROUP]
    assert "255" in bad_group[0].status.message
    odd_group = await in_thread(client.receive, _receive_request("GrpcPopBad", "a group"))
    assert [r.status.code for r in odd_group[:-1]] == [d.ILLEGAL_CONSUMER_GROUP]
    missing = await in_thread(client.receive, _receive_request("NoSuchTopic", "g"))
    assert [r.status.code for r in missing[:-1]] == [d.TOPIC_NOT_FOUND]
    ack = s.AckMessageRequest(
        group=d.Resource(name="g"), topic=d.Resource(name="GrpcPopBad"),
        entries=[s.AckMessageEntry(message_id="x", receipt_handle="not a handle")],
    )  # fmt: skip
    answer = await in_thread(client.unary, "AckMessage", ack, s.AckMessageResponse)
    assert (
        answer.entries[0].status.code == d.INVALID_RECEIPT_HANDLE and "not issued" in answer.entries[0].status.message
    )


async def test_an_empty_receive_waits_out_its_long_poll(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    await _send(client, "GrpcPopEmpty", b"x")
    await in_thread(client.receive, _receive_request("GrpcPopEmpty", "g"))
    started = anyio.current_time()
    answer, stamp = await in_thread(client.receive, _receive_request("GrpcPopEmpty", "g", poll_s=5))
    assert stamp.HasField("delivery_timestamp")
    assert answer.status.code == d.MESSAGE_NOT_FOUND
    assert 4.5 <= anyio.current_time() - started < 8


async def test_group_config_reaches_settings_and_assignments(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(grpc_broker)
    config = {"groupName": "fifo-g", "consumeMessageOrderly": True, "retryMaxTimes": 2}
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, jsonbody.dumps(config))).code == 0
    client = Client(grpc_broker.grpc_port, "consumer-1")
    settings = s.TelemetryCommand(settings=d.Settings(
        client_type=d.SIMPLE_CONSUMER,
        subscription=d.Subscription(group=d.Resource(name="fifo-g")),
    ))  # fmt: skip
    [answer] = await in_thread(client.telemetry, [settings], 1)
    assert answer.settings.subscription.fifo is True and answer.settings.backoff_policy.max_attempts == 3
    await _send(client, "GrpcPopFifo", b"x")
    query = s.QueryAssignmentRequest(topic=d.Resource(name="GrpcPopFifo"), group=d.Resource(name="fifo-g"))
    fifo = await in_thread(client.unary, "QueryAssignment", query, s.QueryAssignmentResponse)
    assert [a.message_queue.id for a in fifo.assignments] == [0, 1, 2, 3]
    query.group.name = "plain-g"
    plain = await in_thread(client.unary, "QueryAssignment", query, s.QueryAssignmentResponse)
    assert [a.message_queue.id for a in plain.assignments] == [-1]
    assert plain.assignments[0].message_queue.broker.endpoints.addresses[0].port == grpc_broker.grpc_port


# ---- recall, pull-style methods -------------------------------------------------------------------------------


async def test_a_timed_message_can_be_recalled_before_its_time(grpc_broker) -> None:  # type: ignore[no-untyped-def]
    client = Client(grpc_broker.grpc_port)
    due = Timestamp()
    due.FromMilliseconds(grpc_broker.ctx.clock.now_ms() + 60_000)
    message = _message("GrpcRecall", b"never", "01AABBCCDD00000000000000AA", delivery_timestamp=due)
    message.system_properties.message_type = d.DELAY
    sent = await in_thread(client.unary, "SendMessage", s.SendMessageRequest(messages=[message]), s.SendMessageResponse)
    [entry] = sent.entries
    assert entry.recall_handle
    assert await grpc_broker.ctx.store.scheduled_count() == 1

    def recall(topic: str, handle: str) -> s.RecallMessageResponse:
        request = s.RecallMessageRequest(topic=d.Resource(name=topic), recall_handle=handle)
        return client.unary("RecallMessage", request, s.RecallMessageResponse)

    wrong_topic = await in_thread(recall, "OtherTopic", entry.recall_handle)
    assert wrong_topic.status.code == d.BAD_REQUEST and "GrpcRecall" in wrong_topic.status.message
    garbage = await in_thread(recall, "GrpcRecall", "bm90IGEgaGFuZGxl")
    assert garbage.status.code == d.BAD_REQUEST and "not issued" in garbage.status.message
    recalled = await in_thread(recall, "GrpcRecall", entry.recall_handle)
    assert recalled.status.code == d.OK and recalled.message_id == "01AABBCCDD00000000000000AA"
    assert await grpc_broker.ctx.store.scheduled_count() == 0, "never delivered"
    again = await in_thread(recall, "GrpcRecall", entry.recall_handle)
    assert again.status.code == d.MESSAGE_NOT_FOUND


async def test_pull_style_methods_read_queues_and_offsets(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(grpc_broker)
    for i, tag in enumerate(["A", "B", "A"]):
        await bc.send_ok("GrpcPull", f"m{i}".encode(), properties={PROPERTY_TAGS: tag})
    client = Client(grpc_broker.grpc_port)
    queue = d.MessageQueue(topic=d.Resource(name="GrpcPull"), id=0)
    group = d.Resource(name="pull-g")

    def query(policy: int) -> int:
        request = s.QueryOffsetRequest(message_queue=queue, query_offset_policy=policy)
        return client.unary("QueryOffset", request, s.QueryOffsetResponse).offset

    assert await in_thread(query, d.BEGINNING) == 0 and await in_thread(query, d.END) == 3

    def pull(offset: int, expression: str = "*", wait_s: int = 0) -> list[s.PullMessageResponse]:
        request = s.PullMessageRequest(
            group=group, message_queue=queue, offset=offset, batch_size=2,
            filter_expression=d.FilterExpression(type=d.TAG, expression=expression),
            long_polling_timeout=Duration(seconds=wait_s),
        )  # fmt: skip
        call = client.channel.unary_stream(
            SERVICE + "PullMessage", s.PullMessageRequest.SerializeToString, s.PullMessageResponse.FromString
        )
        return list(call(request, metadata=client.metadata, timeout=10))

    first = await in_thread(pull, 0)
    assert first[0].status.code == d.OK
    assert [r.message.body for r in first[1:-1]] == [b"m0", b"m1"] and first[-1].next_offset == 2
    only_a = await in_thread(pull, 1, "A")
    assert [r.message.body for r in only_a[1:-1]] == [b"m2"] and only_a[-1].next_offset == 3
    started = anyio.current_time()
    at_end = await in_thread(pull, 3, "*", 1)
    assert at_end[0].status.code == d.MESSAGE_NOT_FOUND and at_end[-1].next_offset == 3
    assert anyio.current_time() - started >= 0.9, "a pull at the end waits its long-polling time"

    missing = await in_thread(
        client.unary, "GetOffset", s.GetOffsetRequest(group=group, message_queue=queue), s.GetOffsetResponse
    )
    assert missing.status.code == d.OFFSET_NOT_FOUND
    update = s.UpdateOffsetRequest(group=group, message_queue=queue, offset=2)
    assert (await in_thread(client.unary, "UpdateOffset", update, s.UpdateOffsetResponse)).status.code == d.OK
    got = await in_thread(
        client.unary, "GetOffset", s.GetOffsetRequest(group=group, message_queue=queue), s.GetOffsetResponse
    )
    assert (got.status.code, got.offset) == (d.OK, 2)
    assert grpc_broker.ctx.store.get_consumer_offset("pull-g", "GrpcPull", 0) == 2, "the offset remoting sees"


async def test_a_time_out_of_range_is_a_clear_refusal(grpc_broker, caplog) -> None:  # type: ignore[no-untyped-def]
    """The Python 5.1.2 client puts a delivery time's milliseconds into Timestamp.seconds; that is the sender's
    error (ILLEGAL_DELIVERY_TIME naming the field), not a traceback in the broker's log."""
    client = Client(grpc_broker.grpc_port)
    far = Timestamp(seconds=1_796_211_305_111)
    message = _message("GrpcBadTime", b"x", "01AABBCCDD00000000000000BB", delivery_timestamp=far)
    answer = await in_thread(
        client.unary, "SendMessage", s.SendMessageRequest(messages=[message]), s.SendMessageResponse
    )
    assert answer.status.code == d.ILLEGAL_DELIVERY_TIME and "delivery_timestamp" in answer.status.message
    query = s.QueryOffsetRequest(
        message_queue=d.MessageQueue(topic=d.Resource(name="GrpcBadTime"), id=0),
        query_offset_policy=d.TIMESTAMP, timestamp=far,
    )  # fmt: skip
    await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcBadTime")), s.QueryRouteResponse
    )
    refused = await in_thread(client.unary, "QueryOffset", query, s.QueryOffsetResponse)
    assert refused.status.code == d.BAD_REQUEST and "not a valid time" in refused.status.message
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "no traceback for a client's bad value"


async def test_a_typed_topic_takes_only_its_message_type(grpc_broker, open_broker_client) -> None:  # type: ignore[no-untyped-def]
    bc = await open_broker_client(grpc_broker)
    ext = {
        "topic": "GrpcFifoOnly", "defaultTopic": "TBW102", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6",
        "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false", "attributes": "+message.type=FIFO",
    }  # fmt: skip
    assert (await bc.invoke(RequestCode.UPDATE_AND_CREATE_TOPIC, ext)).code == 0
    client = Client(grpc_broker.grpc_port)
    route = await in_thread(
        client.unary, "QueryRoute", s.QueryRouteRequest(topic=d.Resource(name="GrpcFifoOnly")), s.QueryRouteResponse
    )
    assert {tuple(q.accept_message_types) for q in route.message_queues} == {(d.FIFO,)}
    normal = _message("GrpcFifoOnly", b"plain", "01AABBCCDD00000000000000C1")
    refused = await in_thread(
        client.unary, "SendMessage", s.SendMessageRequest(messages=[normal]), s.SendMessageResponse
    )
    assert refused.status.code == d.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE
    assert "expected type is FIFO, but actual type is NORMAL" in refused.status.message
    fifo = _message("GrpcFifoOnly", b"grouped", "01AABBCCDD00000000000000C2", message_group="order-1")
    fifo.system_properties.message_type = d.FIFO
    accepted = await in_thread(
        client.unary, "SendMessage", s.SendMessageRequest(messages=[fifo]), s.SendMessageResponse
    )
    assert accepted.status.code == d.OK
