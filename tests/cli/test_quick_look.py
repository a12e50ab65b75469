"""``pocketmq send``, ``peek`` and ``groups`` against a running pocketmq (in a thread of this process), as a user
types them."""

from __future__ import annotations

import anyio
import pytest

from codec.codes import RequestCode, ResponseCode
from codec.command import request
from pocketmq.cli import main
from pocketmq.testing import Endpoints, serve
from remoting.client import RemotingClient


@pytest.fixture(scope="module")
def mq() -> Endpoints:
    with serve(in_process=True, grpc=False) as endpoints:
        yield endpoints


def run(capsys: pytest.CaptureFixture[str], mq: Endpoints, *argv: str) -> str:
    capsys.readouterr()
    main([*argv, "--http", mq.http_endpoint or ""])
    return capsys.readouterr().out


def commit_offset(mq: Endpoints, group: str, topic: str, queue_id: int, offset: int) -> None:
    async def commit() -> None:
        host, port = mq.broker_addr.split(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            fields = {"consumerGroup": group, "topic": topic, "queueId": str(queue_id), "commitOffset": str(offset)}
            answer = await client.invoke(request(RequestCode.UPDATE_CONSUMER_OFFSET, fields))
            assert answer.code == ResponseCode.SUCCESS, answer.remark
        finally:
            await client.aclose()

    anyio.run(commit)


def test_send_then_peek_shows_the_messages(capsys: pytest.CaptureFixture[str], mq: Endpoints) -> None:
    sent = run(capsys, mq, "send", "QuickLook", "first line\nsecond line", "--tag", "TagA", "--key", "order-1",
               "--property", "region=eu")  # fmt: skip
    assert sent.startswith("sent ") and " to QuickLook queue " in sent
    for i in range(3):
        run(capsys, mq, "send", "QuickLook", f"more {i}")
    shown = run(capsys, mq, "peek", "QuickLook")
    assert "4 message(s) of QuickLook shown" in shown
    first = next(line for line in shown.splitlines() if "first line" in line)
    assert "tag=TagA" in first and "keys=order-1" in first and "second line" not in first
    whole = run(capsys, mq, "peek", "QuickLook", "--body")
    assert "second line" in whole


def test_peek_one_queue_from_an_offset(capsys: pytest.CaptureFixture[str], mq: Endpoints) -> None:
    lines = [run(capsys, mq, "send", "Peek1", f"m{i}") for i in range(8)]  # 8 over 4 queues: one gets 2 or more
    queues = [int(line.split(" queue ")[1].split()[0]) for line in lines]
    queue = max(set(queues), key=queues.count)
    second = [line for line in lines if f" queue {queue} " in line][1]
    shown = run(capsys, mq, "peek", "Peek1", "--queue", str(queue), "--offset", "1", "--count", "1")
    assert f"[{queue}:1]" in shown and "1 message(s)" in shown
    assert second.split()[1] in shown  # the message id the second send to that queue answered


def test_groups_show_clients_and_lag(capsys: pytest.CaptureFixture[str], mq: Endpoints) -> None:
    for i in range(5):
        run(capsys, mq, "send", "Lagging", f"m{i}")
    commit_offset(mq, "cg-quick", "Lagging", 0, 0)
    shown = run(capsys, mq, "groups")
    assert "cg-quick: lag " in shown and "none online" in shown and "Lagging: lag" in shown


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str], mq: Endpoints) -> None:
    with pytest.raises(SystemExit, match="illegal characters"):
        run(capsys, mq, "send", "bad topic", "x")
    with pytest.raises(SystemExit, match="no topic 'Nothing'"):
        run(capsys, mq, "peek", "Nothing")
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        run(capsys, mq, "send", "QuickLook", "x", "--property", "novalue")
    with pytest.raises(SystemExit, match="cannot reach pocketmq"):
        main(["groups", "--http", "127.0.0.1:1"])
