"""The invariant checker inside a running broker, over the wire: an orderly consumer's order broken on purpose (a
pull that skips messages of a locked queue) is detected, logged, counted in /metrics and listed by
/api/invariants; a normal orderly run, a retried message that ends as a dead letter and a delayed message are
not flagged."""

from __future__ import annotations

import json
import socket
import time

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from codec import jsonbody
from codec.codes import PullSysFlag, RequestCode
from codec.message_id import decode_offset_msg_id
from gateway.clock import FakeClock

pytestmark = pytest.mark.timeout(60)

TOPIC, GROUP = "Ordered", "og"


def _http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2]


async def lock(bc, client: str = "orderly-1", queues: tuple[int, ...] = (0,)) -> None:  # type: ignore[no-untyped-def]
    mqs = [{"brokerName": "broker-a", "queueId": q, "topic": TOPIC} for q in queues]
    body = json.dumps({"clientId": client, "consumerGroup": GROUP, "mqSet": mqs}).encode()
    response = await bc.invoke(RequestCode.LOCK_BATCH_MQ, body=body)
    assert len(json.loads(response.body)["lockOKMQSet"]) == len(queues)


async def test_a_pull_that_skips_messages_of_a_locked_queue_is_caught(http_broker, open_broker_client, caplog):  # type: ignore[no-untyped-def]
    bc = await open_broker_client(http_broker)
    for i in range(10):
        await bc.send_ok(TOPIC, f"step-{i}".encode(), properties={"__SHARDINGKEY": "order-7"})
    await lock(bc)
    first = await bc.pull_records(TOPIC, 0, 0, group=GROUP, max_nums=4)
    assert [m.queue_offset for m in first] == [0, 1, 2, 3]
    # Broken on purpose: the consumer jumps to offset 8, so steps 4..7 of order-7 are never delivered.
    await bc.pull_records(TOPIC, 0, 8, group=GROUP)

    report = jsonbody.loads(await anyio.to_thread.run_sync(_http_get, http_broker.http_port, "/api/invariants"))
    assert report["total"] == 1 and report["counts"]["orderly_skip"] == 1
    [violation] = report["recent"]
    assert (violation["group"], violation["topic"], violation["queue"]) == (GROUP, TOPIC, 0)
    assert (violation["pullOffset"], violation["frontier"]) == (8, 4) and "4..7" in violation["message"]
    assert "invariant orderly_skip violated" in caplog.text

    metrics = (await anyio.to_thread.run_sync(_http_get, http_broker.http_port, "/metrics")).decode()
    samples = {
        s.labels.get("invariant"): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "pocketmq_invariant_violations_total"
    }
    assert samples["orderly_skip"] == 1 and samples["half_delivered"] == 0


async def test_a_commit_riding_on_the_pull_does_not_excuse_a_skip(broker, bc):  # type: ignore[no-untyped-def]
    for i in range(10):
        await bc.send_ok(TOPIC, f"m{i}".encode())
    await lock(bc)
    assert len(await bc.pull_records(TOPIC, 0, 0, group=GROUP, max_nums=3)) == 3
    # What a Java consumer does after a wrong nextBeginOffset: it commits the offset it was told and pulls there.
    await bc.pull(TOPIC, 0, 7, group=GROUP, sys_flag=PullSysFlag.COMMIT_OFFSET, commit_offset=7, suspend_ms=0)
    [violation] = broker.ctx.invariants.snapshot()["recent"]
    assert violation["invariant"] == "orderly_skip" and (violation["pullOffset"], violation["frontier"]) == (7, 3)


async def test_a_normal_orderly_run_with_redelivery_and_commits_is_clean(broker, bc):  # type: ignore[no-untyped-def]
    for i in range(10):
        await bc.send_ok(TOPIC, f"m{i}".encode())
    await lock(bc)
    assert len(await bc.pull_records(TOPIC, 0, 0, group=GROUP, max_nums=6)) == 6
    assert len(await bc.pull_records(TOPIC, 0, 2, group=GROUP, max_nums=6)) == 6  # 2..5 again after a failure
    commit = {"consumerGroup": GROUP, "topic": TOPIC, "queueId": "0", "commitOffset": "8"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, commit)).code == 0
    unlock = {"clientId": "orderly-1", "consumerGroup": GROUP, "mqSet": [{"brokerName": "broker-a", "queueId": 0,
              "topic": TOPIC}]}  # fmt: skip
    assert (await bc.invoke(RequestCode.UNLOCK_BATCH_MQ, body=json.dumps(unlock).encode())).code == 0
    await lock(bc, "orderly-2")  # a rebalance: the other member goes on from the committed offset
    assert len(await bc.pull_records(TOPIC, 0, 8, group=GROUP)) == 2
    response = await bc.pull(TOPIC, 0, 10, group=GROUP, suspend_ms=0)
    assert response.code != 0  # nothing new
    assert broker.ctx.invariants.total == 0


async def test_retries_dead_letters_and_delayed_messages_are_clean(cluster, namesrv, open_broker_client):  # type: ignore[no-untyped-def]
    clock = FakeClock(start_ms=int(time.time() * 1000))
    broker = await cluster.start_broker(clock=clock)
    bc = await open_broker_client(broker)
    sent = await bc.send_ok("Late", b"in 5 s", properties={"DELAY": "2"})  # level 2 = 5 s
    timed = await bc.send_ok("Late", b"at", properties={"TIMER_DELIVER_MS": str(clock.now_ms() + 3_000)})
    assert sent and timed
    clock.advance(5_000)
    with anyio.fail_after(5):
        while await bc.max_offset("Late", 0) < 2:  # noqa: ASYNC110 - handed over by the scheduler's task
            await anyio.sleep(0.02)
    assert len(await bc.pull_records("Late", 0, 0, group="lg")) == 2

    failing = await bc.send_ok("Work", b"fails")
    _, _, phys = decode_offset_msg_id(failing.ext_fields["msgId"])
    back = {"offset": str(phys), "group": "wg", "delayLevel": "0", "originMsgId": "", "maxReconsumeTimes": "0"}
    assert (await bc.invoke(RequestCode.CONSUMER_SEND_MSG_BACK, back)).code == 0
    [dead] = await bc.pull_records("%DLQ%wg", 0, 0, group="dlq-reader")
    assert dead.body == b"fails"
    assert broker.ctx.invariants.total == 0, broker.ctx.invariants.snapshot()
