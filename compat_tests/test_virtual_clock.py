"""The virtual clock with a stock client: a Java 4.9.8 producer sends with ``setDelayTimeLevel(18)`` (2 h) to
``pocketmq up --clock virtual``; nothing arrives while the clock stands still; the real ``pocketmq clock advance 2h``
command moves it, and the Java push consumer receives the message within seconds, stored at exactly its due time
(the broker's clock at the send + 2 h), with Apache's delivered-message properties.

Run: ``pytest compat_tests/test_virtual_clock.py -s``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat_tests import harness, java_driver
from compat_tests.harness import PocketMQ
from compat_tests.java_driver import JavaClient, Message

pytestmark = [pytest.mark.compat, pytest.mark.slow]

VERSION = "4.9.8"
TWO_HOURS_MS = 7_200_000
WARMUP = 4
STANDS_STILL_S = 3.0  # how long the test watches that nothing arrives before the advance
DELIVERED_WITHIN_MS = 5_000  # advance command started -> received by the Java consumer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PocketMQ]:
    mq = PocketMQ(data_dir=tmp_path / "data", extra_args=["--clock", "virtual"])
    mq.start()
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[JavaClient]:
    java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
    if java is None or mvn is None:
        pytest.skip("java and mvn are needed for the Java client compatibility tests")
    try:
        classpath = java_driver.build(mvn, VERSION)
    except java_driver.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)
    driver = JavaClient(java=java, version=VERSION, classpath=classpath, work_dir=tmp_path / "java")
    try:
        yield driver
    finally:
        driver.close()


def broker_clock_ms(server: PocketMQ) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/api/clock", timeout=10) as answer:
        shown = json.loads(answer.read())
    assert shown["mode"] == "virtual", shown
    return int(shown["nowMs"])


def test_a_java_two_hour_delay_arrives_after_pocketmq_clock_advance(client: JavaClient, server: PocketMQ) -> None:
    name = f"vclock-{os.getpid()}"
    topic, group = f"{name}-t", f"{name}-g"
    warmup = [Message(body=f"warm-{i}".encode(), keys=[f"{name}-warm-{i}"]) for i in range(WARMUP)]
    client.produce(server.namesrv_addr, topic, f"{group}-p", "sync", warmup)
    consumer = client.start_consume(server.namesrv_addr, topic, group, expect=WARMUP + 1, timeout=120)
    consumer.wait_ready()
    assert consumer.wait_bodies([m.body for m in warmup], timeout=60), consumer.describe()

    sent_at_broker = broker_clock_ms(server)  # the clock stands still: the send will read the same time
    later = Message(body=b"in two hours|" + bytes(range(256)), tags="late", keys=[f"{name}-late"],
                    props={"pmq": "vclock"}, delay_level=18)  # fmt: skip
    [result] = client.produce(server.namesrv_addr, topic, f"{group}-p", "sync", [later])
    assert not consumer.wait_bodies([later.body], timeout=STANDS_STILL_S), "delivered before the clock moved"

    started_ms = int(time.time() * 1000)
    advance = subprocess.run(
        [sys.executable, "-m", "pocketmq", "clock", "advance", "2h", "--http", f"127.0.0.1:{server.http_port}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert advance.returncode == 0, advance.stderr
    assert "1 delivered" in advance.stdout, advance.stdout
    assert consumer.wait_bodies([later.body], timeout=DELIVERED_WITHIN_MS / 1000), consumer.describe()
    [got] = [m for m in consumer.messages if m["body"] == base64.b64encode(later.body).decode()]
    lateness = got["receivedAt"] - started_ms
    print(f"\n[virtual clock] advance 2h took {advance.stdout.strip()!r}; received {lateness} ms after the command")
    assert lateness <= DELIVERED_WITHIN_MS
    assert got["storeTimestamp"] == sent_at_broker + TWO_HOURS_MS, "stored at its due time on the virtual clock"
    assert (got["topic"], got["tags"], got["keys"], got["props"]) == (topic, "late", later.keys, later.props)
    assert got["msgId"] == result["msgId"] and got["queueId"] == result["queueId"]
    props = got["allProps"]
    assert props.get("REAL_TOPIC") == topic and "DELAY" not in props, props
    assert broker_clock_ms(server) == sent_at_broker + TWO_HOURS_MS
