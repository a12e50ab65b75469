"""The consumer scenarios every 5.x gRPC client driver runs: against ``pocketmq up`` (test_python5/java5/go5/node5)
and, with the Python client, side by side against the Apache 5.3.3 proxy (test_python5_vs_apache.py).

Each scenario asserts what the client must receive and returns its **outcome**: what was received, in what order,
how many times, normalised so that the outcomes of two servers compare equal exactly when a user could not tell
them apart (no ids, hosts or times; order only where the scenario promises one). A client is anything with the
drivers' ``produce`` / ``consume`` / ``start_consume`` / ``collect`` (and ``reports_message_type = False`` when the
client does not expose a message's type: the Java, Go and Node drivers derive it); a target is where it connects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from codec.codes import PROPERTY_KEYS, PROPERTY_TAGS, PROPERTY_UNIQ_KEY, PullSysFlag, RequestCode
from codec.command import request
from codec.properties import encode_properties
from codec.record import StoredMessage, decode_records
from compat_tests import harness, python5_driver
from compat_tests.python5_driver import CHECK_PROPERTY, ConsumeResult, Delivery, DriverRun, Message, ProduceResult
from remoting.client import RemotingClient

# System properties that Apache's proxy hands back among the user properties: a FIFO message's group (the broker's
# __SHARDINGKEY), and on a transaction message committed by a check its transaction id and the check count.
ECHOED_SYSTEM_PROPERTIES = frozenset({"__SHARDINGKEY", "__transactionId__", "TRANSACTION_CHECK_TIMES"})
Outcome = dict[str, Any]


class Client(Protocol):
    def produce(self, endpoints: str, topic: str, messages: list[Message], **kw: Any) -> ProduceResult: ...

    def consume(
        self, endpoints: str, topic: str, group: str, *, expect: int, timeout: float = 60, **kw: Any
    ) -> ConsumeResult: ...

    def start_consume(
        self, endpoints: str, topic: str, group: str, *, expect: int, timeout: float, **kw: Any
    ) -> DriverRun: ...

    def collect(self, proc: DriverRun, timeout: float) -> ConsumeResult: ...


@dataclass(frozen=True)
class GrpcTarget:
    """Where the 5.x client connects, and the broker behind it (remoting) where a test makes topics and groups."""

    name: str
    endpoints: str
    ca_file: Path | None  # the PEM a TLS client must trust
    broker: str
    namesrv: str

    def topic(self, topic: str, message_type: str = "NORMAL") -> str:
        python5_driver.create_topic(self.broker, self.namesrv, topic, message_type)
        return topic

    def group(self, group: str, *, fifo: bool = False, retry_max_times: int = 16) -> str:
        python5_driver.create_group(self.broker, group, fifo=fifo, retry_max_times=retry_max_times)
        return group


def pocketmq_target(server: harness.PocketMQ) -> GrpcTarget:
    return GrpcTarget(
        "pocketmq", server.grpc_endpoints, server.data_dir / "grpc-tls-cert.pem", server.broker_addr,
        server.namesrv_addr,
    )  # fmt: skip


async def _invoke(addr: str, code: int, ext: dict[str, str], body: bytes = b"") -> Any:
    host, _, port = addr.rpartition(":")
    client = await RemotingClient.connect(host, int(port))
    try:
        return await client.invoke(request(code, ext, body), timeout=10)
    finally:
        await client.aclose()


def pulled(target: GrpcTarget, topic: str, queues: int = 8) -> list[StoredMessage]:
    """Every message of ``topic`` as a remoting consumer pulls it from the broker, queue by queue. The pull carries
    its subscription (FLAG_SUBSCRIPTION): Apache refuses a pull of a group that never sent a heartbeat otherwise."""
    out: list[StoredMessage] = []
    for queue_id in range(queues):
        ext = {
            "consumerGroup": "grpc-check", "topic": topic, "queueId": str(queue_id), "queueOffset": "0",
            "maxMsgNums": "64", "sysFlag": str(int(PullSysFlag.SUBSCRIPTION)), "commitOffset": "0",
            "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0", "expressionType": "TAG",
        }  # fmt: skip
        response = anyio.run(_invoke, target.broker, RequestCode.PULL_MESSAGE, ext)
        if response.code == 0:
            out += decode_records(response.body)
    return out


def send_remoting(target: GrpcTarget, topic: str, body: bytes, props: dict[str, str]) -> None:
    """SEND_MESSAGE to the broker, as a 4.x producer sends it."""
    ext = {
        "producerGroup": "remoting-producer", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
        "queueId": "0", "sysFlag": "0", "bornTimestamp": str(int(time.time() * 1000)), "flag": "0",
        "properties": encode_properties(props), "reconsumeTimes": "0", "unitMode": "false", "batch": "false",
    }  # fmt: skip
    response = anyio.run(_invoke, target.broker, RequestCode.SEND_MESSAGE, ext, body)
    assert response.code == 0, (response.code, response.remark)


def user_properties(d: Delivery) -> dict[str, str]:
    return {k: v for k, v in d.properties.items() if k not in ECHOED_SYSTEM_PROPERTIES}


def once_each(deliveries: list[Delivery], sent_ids: list[str]) -> dict[str, Delivery]:
    """Every sent message delivered exactly once, nothing else; message id -> delivery."""
    ids = [d.message_id for d in deliveries]
    assert sorted(ids) == sorted(sent_ids), f"delivered {ids}, sent {sent_ids}"
    return {d.message_id: d for d in deliveries}


def _types(deliveries: list[Delivery]) -> list[str]:
    return sorted({d.message_type for d in deliveries})


def _seen(d: Delivery) -> dict[str, Any]:
    """What a user sees of one delivery, without ids, hosts and times."""
    return {
        "body": d.body.decode("utf-8", "replace"), "tag": d.tag, "keys": sorted(d.keys),
        "properties": user_properties(d), "message_group": d.message_group, "type": d.message_type,
        "attempt": d.delivery_attempt,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ scenarios


def simple_round_trip(target: GrpcTarget, client: Client) -> Outcome:
    """5 NORMAL messages with tags, keys and user properties come back intact, once each, through a SimpleConsumer
    that acks them; the message ids are the ones the sends reported."""
    topic = target.topic("PopNormal")
    messages = [
        Message(
            body=f"normal-{i} \u00fcn\u00efcode ".encode() + bytes([0, 255, i]),
            tag="TagA" if i % 2 == 0 else "TagB",
            keys=[f"key-{i}", "shared-key"],
            properties={"idx": str(i), "color": "red" if i < 3 else "blue"},
        )
        for i in range(5)
    ]
    sent = client.produce(target.endpoints, topic, messages)
    ids = [x["message_id"] for x in sent.sends]
    got = client.consume(target.endpoints, topic, "pop-normal", expect=5, timeout=40, linger=3)
    by_id = once_each(got.deliveries, ids)
    for message, message_id in zip(messages, ids, strict=True):
        d = by_id[message_id]
        assert (d.topic, d.body, d.tag) == (topic, message.body, message.tag)
        assert sorted(d.keys) == sorted(message.keys) and user_properties(d) == message.properties
        assert d.message_type == "NORMAL" and d.delivery_attempt == 1 and d.acked is True
    return {"deliveries": sorted((_seen(d) for d in got.deliveries), key=lambda x: x["body"])}


def tag_and_sql_filters(target: GrpcTarget, client: Client) -> Outcome:
    """A tag expression and a SQL92 expression, each on its own group, get exactly the matching messages."""
    topic = target.topic("PopFilter")
    tags = ["TagA", "TagB", "TagC", "TagA", "TagB"]
    messages = [Message(body=f"m{i}".encode(), tag=tag, properties={"n": str(i)}) for i, tag in enumerate(tags)]
    sent = client.produce(target.endpoints, topic, messages)
    ids = [x["message_id"] for x in sent.sends]
    by_tag = client.consume(
        target.endpoints, topic, "pop-tag", expect=3, timeout=40, linger=3, tag_expression="TagA || TagC"
    )
    once_each(by_tag.deliveries, [ids[0], ids[2], ids[3]])
    by_sql = client.consume(target.endpoints, topic, "pop-sql", expect=2, timeout=40, linger=3, sql="n >= 3")
    once_each(by_sql.deliveries, [ids[3], ids[4]])
    return {
        "tag": sorted(d.body.decode() for d in by_tag.deliveries),
        "sql": sorted(d.body.decode() for d in by_sql.deliveries),
    }


def fifo_group_in_order(target: GrpcTarget, client: Client) -> Outcome:
    """A FIFO topic, one message group of 5 (order create, pay, ship, ...), a FIFO consumer group: delivered once
    each, in send order."""
    topic = target.topic("PopFifo", "FIFO")
    group = target.group("pop-fifo", fifo=True)
    steps = ["create", "pay", "ship", "deliver", "refund"]
    messages = [Message(body=f"order-1 {s}".encode(), tag="F", message_group="order-1") for s in steps]
    sent = client.produce(target.endpoints, topic, messages, kind="fifo")
    ids = [x["message_id"] for x in sent.sends]
    got = client.consume(target.endpoints, topic, group, expect=5, timeout=40, linger=2)
    once_each(got.deliveries, ids)
    assert [d.message_id for d in got.deliveries] == ids, "not in send order"
    for d in got.deliveries:
        assert d.message_group == "order-1" and d.message_type == "FIFO" and user_properties(d) == {}
    return {"in_order": [_seen(d) for d in got.deliveries]}


def delay_not_before_due(target: GrpcTarget, client: Client) -> Outcome:
    """A DELAY message due 3 s after its send reaches a consumer that was waiting, not before it is due."""
    topic = target.topic("PopDelay", "DELAY")
    consumer = client.start_consume(target.endpoints, topic, "pop-delay", expect=1, timeout=40, linger=1)
    consumer.wait_until(lambda lines: any(x.get("ready") for x in lines), 30)
    sent = client.produce(target.endpoints, topic, [Message(body=b"later", delivery_delay_ms=3000)], kind="delay")
    send = sent.sends[0]
    due = send["delivery_timestamp_ms"]
    got = client.collect(consumer, 100)
    (d,) = once_each(got.deliveries, [send["message_id"]]).values()
    assert d.body == b"later" and d.message_type == "DELAY" and d.delivery_timestamp_ms == due
    assert d.received_at_ms >= due, f"delivered {due - d.received_at_ms} ms early"
    assert d.received_at_ms <= due + 15_000, "delivered far too late"
    return {"delivery": _seen(d), "on_time": True}


def delay_recalled_before_due(target: GrpcTarget, client: Client) -> Outcome:
    """Two DELAY messages due 4 s after their send; the producer recalls one right after its send (RecallMessage with
    the topic and its receipt's recall handle): a waiting consumer gets only the other, once and not before it is
    due, and nothing more in the seconds after the due time."""
    topic = target.topic("PopRecall", "DELAY")
    consumer = client.start_consume(target.endpoints, topic, "pop-recall", expect=1, timeout=60, linger=5)
    consumer.wait_until(lambda lines: any(x.get("ready") for x in lines), 30)
    messages = [
        Message(body=b"kept", tag="R", delivery_delay_ms=4000),
        Message(body=b"recalled", tag="R", delivery_delay_ms=4000, recall=True),
    ]
    sent = client.produce(target.endpoints, topic, messages, kind="delay")
    kept, recalled = sent.sends
    assert kept.get("recall_handle") and recalled.get("recall_handle"), (
        f"a delay receipt without a recall handle: {sent.sends}"
    )
    assert "recalled" not in kept, kept
    assert recalled.get("recalled") is True, f"the recall failed: {recalled.get('recall_error')}"
    assert recalled.get("recalled_message_id") == recalled["message_id"], recalled
    due = kept["delivery_timestamp_ms"]
    # The consumer stops 5 s after its one delivery (not before due): the recalled message, due with it, would come.
    got = client.collect(consumer, 120)
    (d,) = once_each(got.deliveries, [kept["message_id"]]).values()
    assert d.body == b"kept" and d.message_type == "DELAY" and d.delivery_timestamp_ms == due
    assert d.received_at_ms >= due, f"delivered {due - d.received_at_ms} ms early"
    assert d.received_at_ms <= due + 15_000, "delivered far too late"
    return {"delivered": [d.body.decode() for d in got.deliveries], "recalled": True}


def transactions_commit_rollback(target: GrpcTarget, client: Client) -> Outcome:
    """Half messages ended by the producer and one left to the checker: the committed ones (by the producer or by
    its checker's answer) are delivered, the rolled-back one never."""
    topic = target.topic("PopTx", "TRANSACTION")
    messages = [
        Message(body=b"tx-commit", tag="T", end="commit"),
        Message(body=b"tx-rollback", tag="T", end="rollback"),
        Message(body=b"tx-checked", tag="T", end="none", properties={CHECK_PROPERTY: "COMMIT"}),
    ]
    consumer = client.start_consume(target.endpoints, topic, "pop-tx", expect=2, timeout=90, linger=4)
    sent = client.produce(target.endpoints, topic, messages, kind="transaction", linger=30, timeout=120)
    ids = [x["message_id"] for x in sent.sends]
    got = client.collect(consumer, 150)
    # Apache checks at least once and may store a checked commit twice (docs/grpc.md); pocketmq exactly once.
    assert {d.message_id for d in got.deliveries} == {ids[0], ids[2]}, got.deliveries
    if getattr(client, "reports_message_type", True):
        assert all(d.message_type == "TRANSACTION" for d in got.deliveries), got.deliveries
    return {"delivered": sorted({d.body.decode() for d in got.deliveries}), "types": _types(got.deliveries)}


def push_retries_after_failure(target: GrpcTarget, client: Client) -> Outcome:
    """A PushConsumer whose listener fails each message's first delivery gets it again (delivery attempt 2)."""
    topic = target.topic("PopPush")
    sent = client.produce(target.endpoints, topic, [Message(body=f"push-{i}".encode()) for i in range(2)])
    ids = [x["message_id"] for x in sent.sends]
    got = client.consume(
        target.endpoints, topic, "pop-push", expect=2, timeout=90, linger=2, push=True, fail_first=True
    )
    attempts = {}
    for message_id in ids:
        attempts[message_id] = [(d.delivery_attempt, d.result) for d in got.deliveries if d.message_id == message_id]
        assert attempts[message_id] == [(1, "FAILURE"), (2, "SUCCESS")], got.deliveries
    return {"attempts": sorted(attempts.values())}


def push_dead_letter_after_max_attempts(target: GrpcTarget, client: Client) -> Outcome:
    """A group with retryMaxTimes 1 whose listener always fails: the message is delivered twice (attempts 1 and 2),
    then lands in %DLQ%<group> with its body, and is not delivered again. The consumer keeps receiving meanwhile:
    both servers move a message to the dead-letter queue when a receive finds it past its attempts."""
    topic = target.topic("PopDlq")
    group = target.group("pop-dlq", retry_max_times=1)
    sent = client.produce(target.endpoints, topic, [Message(body=b"poison", tag="P", properties={"k": "v"})])
    consumer = client.start_consume(target.endpoints, topic, group, expect=3, timeout=120, push=True, fail_always=True)
    dead: list[StoredMessage] = []
    deadline = time.monotonic() + 110
    while not dead and time.monotonic() < deadline and consumer.proc.poll() is None:
        time.sleep(1)
        dead = pulled(target, f"%DLQ%{group}", queues=1)
    time.sleep(3)  # a further delivery would come now
    consumer.stop()
    got = client.collect(consumer, 60)
    assert [m.body for m in dead] == [b"poison"], (dead, got.deliveries)
    assert [(d.delivery_attempt, d.result) for d in got.deliveries] == [(1, "FAILURE"), (2, "FAILURE")]
    assert {d.message_id for d in got.deliveries} == {sent.sends[0]["message_id"]}
    return {"attempts": [d.delivery_attempt for d in got.deliveries], "dead_letters": [m.body.decode() for m in dead]}


def redelivered_when_not_acked(target: GrpcTarget, client: Client) -> Outcome:
    """A SimpleConsumer that never acks (invisible duration 10 s, the least a receive may ask) gets the message
    again once that time passed, with delivery attempt 2."""
    topic = target.topic("PopNoAck")
    sent = client.produce(target.endpoints, topic, [Message(body=b"again", tag="N")])
    got = client.consume(
        target.endpoints, topic, "pop-noack", expect=2, timeout=40, linger=0, no_ack=True, invisible_s=10
    )
    assert [d.message_id for d in got.deliveries] == [sent.sends[0]["message_id"]] * 2
    first, second = got.deliveries
    assert [first.delivery_attempt, second.delivery_attempt] == [1, 2]
    gap = second.received_at_ms - first.received_at_ms
    assert 9_000 <= gap <= 25_000, f"delivered again after {gap} ms"
    return {"attempts": [d.delivery_attempt for d in got.deliveries], "body": second.body.decode()}


def remoting_send_received_over_grpc(target: GrpcTarget, client: Client) -> Outcome:
    """A message sent by a 4.x (remoting) producer reaches a 5.x SimpleConsumer intact: body, tag, keys, user
    properties, and its UNIQ_KEY as the message id."""
    topic = target.topic("PopCross")
    props = {PROPERTY_TAGS: "X", PROPERTY_KEYS: "k1 k2", PROPERTY_UNIQ_KEY: "7F0000010000AAAA0000000000000001"}
    send_remoting(target, topic, b"from remoting \x00\xff", {**props, "color": "green"})
    got = client.consume(target.endpoints, topic, "pop-cross", expect=1, timeout=40, linger=2)
    (d,) = once_each(got.deliveries, [props[PROPERTY_UNIQ_KEY]]).values()
    assert d.body == b"from remoting \x00\xff" and d.tag == "X" and sorted(d.keys) == ["k1", "k2"]
    assert user_properties(d) == {"color": "green"} and d.delivery_attempt == 1
    return {"delivery": _seen(d)}


SCENARIOS = {
    "simple_round_trip": simple_round_trip,
    "tag_and_sql_filters": tag_and_sql_filters,
    "fifo_group_in_order": fifo_group_in_order,
    "delay_not_before_due": delay_not_before_due,
    "delay_recalled_before_due": delay_recalled_before_due,
    "transactions_commit_rollback": transactions_commit_rollback,
    "push_retries_after_failure": push_retries_after_failure,
    "push_dead_letter_after_max_attempts": push_dead_letter_after_max_attempts,
    "redelivered_when_not_acked": redelivered_when_not_acked,
    "remoting_send_received_over_grpc": remoting_send_received_over_grpc,
}


def run_concurrently(
    jobs: list[tuple[GrpcTarget, str]], client: Client, workers: int = 5
) -> dict[tuple[str, str], Outcome | BaseException]:
    """Run (target, scenario) jobs side by side; (target name, scenario) -> its outcome, or what it raised.

    The scenarios mostly wait (long polls, back-offs, delays, client shutdowns), each on its own topics and groups,
    so running them together takes about as long as the longest one."""
    with ThreadPoolExecutor(workers, thread_name_prefix="scenario") as pool:
        futures = {(t.name, name): pool.submit(SCENARIOS[name], t, client) for t, name in jobs}
    return {key: future.exception() or future.result() for key, future in futures.items()}


def outcome_of(results: dict[tuple[str, str], Outcome | BaseException], target: str, scenario: str) -> Outcome:
    """The scenario's outcome, or its failure raised again (with its traceback)."""
    result = results[(target, scenario)]
    if isinstance(result, BaseException):
        raise result
    return result


def run_all(
    server: harness.PocketMQ, client: Client, scenarios: Iterable[str] | None = None
) -> dict[tuple[str, str], Outcome | BaseException]:
    """Every scenario (or those of ``scenarios``: a client that lacks what the others need) against ``server`` side
    by side (for a module-scoped fixture); the client is closed after."""
    target = pocketmq_target(server)
    names = list(SCENARIOS) if scenarios is None else [name for name in SCENARIOS if name in set(scenarios)]
    try:
        return run_concurrently([(target, name) for name in names], client)
    finally:
        getattr(client, "close", lambda: None)()


def receive_raw(endpoints: str, topic: str, group: str, *, invisible_s: int, batch: int = 32) -> list[Any]:
    """One ReceiveMessage with grpcio (no SDK): the messages (v2 Message objects) it handed out."""
    import grpc

    from codec.grpc_v2 import definition_pb2 as d
    from codec.grpc_v2 import service_pb2 as s

    with grpc.insecure_channel(endpoints) as channel:
        call = channel.unary_stream(
            "/apache.rocketmq.v2.MessagingService/ReceiveMessage",
            s.ReceiveMessageRequest.SerializeToString, s.ReceiveMessageResponse.FromString,
        )  # fmt: skip
        request = s.ReceiveMessageRequest(
            group=d.Resource(name=group), message_queue=d.MessageQueue(topic=d.Resource(name=topic), id=-1),
            filter_expression=d.FilterExpression(type=d.TAG, expression="*"), batch_size=batch,
        )  # fmt: skip
        request.invisible_duration.FromSeconds(invisible_s)
        request.long_polling_timeout.FromSeconds(5)
        answers = list(call(request, metadata=[("x-mq-client-id", "raw-consumer")], timeout=30))
    return [a.message for a in answers if a.HasField("message")]


def ack_raw(endpoints: str, topic: str, group: str, message: Any) -> None:
    import grpc

    from codec.grpc_v2 import definition_pb2 as d
    from codec.grpc_v2 import service_pb2 as s

    with grpc.insecure_channel(endpoints) as channel:
        call = channel.unary_unary(
            "/apache.rocketmq.v2.MessagingService/AckMessage",
            s.AckMessageRequest.SerializeToString, s.AckMessageResponse.FromString,
        )  # fmt: skip
        entry = s.AckMessageEntry(
            message_id=message.system_properties.message_id, receipt_handle=message.system_properties.receipt_handle
        )
        request = s.AckMessageRequest(group=d.Resource(name=group), topic=d.Resource(name=topic), entries=[entry])
        answer = call(request, metadata=[("x-mq-client-id", "raw-consumer")], timeout=10)
    assert answer.status.code == d.OK, answer.status
