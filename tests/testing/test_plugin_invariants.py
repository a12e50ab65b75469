"""The pytest plugin fails a test during which pocketmq found a delivery invariant broken (here: an orderly consumer
that skips messages of its locked queue), at teardown and with the evidence; opting out per test or per run lets
it pass, and a clean test next to it passes. Run as an application's suite would run it: a pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)

SUITE = '''
import json, time
import anyio
import pytest

from codec.command import request
from codec.codes import RequestCode
from remoting.client import RemotingClient

TOPIC, GROUP = "Orders", "orderly-g"


def consume(broker_addr, offsets):
    """Send 8 messages, lock queue 0 as an orderly consumer does, then pull at each of ``offsets``."""

    async def run():
        host, port = broker_addr.split(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            for i in range(8):
                ext = {"producerGroup": "pg", "topic": TOPIC, "defaultTopic": "TBW102", "defaultTopicQueueNums": "1",
                       "queueId": "0", "sysFlag": "0", "bornTimestamp": str(int(time.time() * 1000)), "flag": "0",
                       "properties": "", "reconsumeTimes": "0"}
                assert (await client.invoke(request(RequestCode.SEND_MESSAGE, ext, b"step-%d" % i))).code == 0
            mq = {"brokerName": "broker-a", "queueId": 0, "topic": TOPIC}
            body = json.dumps({"clientId": "c1", "consumerGroup": GROUP, "mqSet": [mq]}).encode()
            assert (await client.invoke(request(RequestCode.LOCK_BATCH_MQ, {}, body))).code == 0
            for offset in offsets:
                ext = {"consumerGroup": GROUP, "topic": TOPIC, "queueId": "0", "queueOffset": str(offset),
                       "maxMsgNums": "2", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0",
                       "subscription": "", "subVersion": "0", "expressionType": "TAG"}
                assert (await client.invoke(request(RequestCode.PULL_MESSAGE, ext))).code == 0
        finally:
            await client.aclose()

    anyio.run(run)


def test_breaks_order(pocketmq):
    consume(pocketmq.broker_addr, [0, 5])  # steps 2..4 never delivered


@pytest.mark.pocketmq(check_invariants=False)
def test_breaks_order_on_purpose(pocketmq):
    consume(pocketmq.broker_addr, [0, 5])


def test_in_order(pocketmq):
    consume(pocketmq.broker_addr, [0, 2, 4, 2, 4, 6])  # 2 and 4 again: redelivery is allowed


def test_session_breaks_order(pocketmq_session):
    consume(pocketmq_session.broker_addr, [0, 6])


def test_session_after_it_is_clean(pocketmq_session):
    pass
'''


def run_suite(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_app.py").write_text(textwrap.dedent(SUITE))
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO)}
    env.pop("POCKETMQ_INVARIANTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "pocketmq.testing.plugin", "-p", "no:cacheprovider",
         "--pocketmq-in-process", "-rA", *options, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200,
    )  # fmt: skip


def test_a_test_that_broke_an_invariant_fails_at_teardown(tmp_path: Path) -> None:
    done = run_suite(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "5 passed, 2 errors" in out, out
    assert "ERROR at teardown of test_breaks_order " in out or "ERROR test_app.py::test_breaks_order -" in out, out
    assert "ERROR test_app.py::test_session_breaks_order" in out, out
    assert "orderly_skip: orderly group orderly-g pulled Orders:0 at 5, past messages 2..4" in out, out
    for clean in ("test_breaks_order_on_purpose", "test_in_order", "test_session_after_it_is_clean"):
        assert f"PASSED test_app.py::{clean}" in out, out
        assert f"ERROR test_app.py::{clean}" not in out, out


def test_the_check_can_be_turned_off_for_a_run(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "--pocketmq-no-invariants")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout
