"""``pocketmq up`` as a user runs it: start-up lines, a send, graceful shutdown on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from codec.codes import RequestCode, ResponseCode
from codec.command import request
from codec.headers import SendMessageRequestHeader, encode_send_header_v2
from compat_tests.harness import free_port
from remoting.client import RemotingClient


def start(data_dir: Path) -> tuple[subprocess.Popen[str], list[str], int]:
    ns_port, broker_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(data_dir),
         "--namesrv-port", str(ns_port), "--broker-port", str(broker_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    while not (lines and lines[-1].startswith("namesrvAddr=")):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        lines.append(line.strip())
    return proc, lines, broker_port


async def max_offset(port: int) -> int:
    client = await RemotingClient.connect("127.0.0.1", port)
    response = await client.invoke(request(RequestCode.GET_MAX_OFFSET, {"topic": "CliTopic", "queueId": "0"}))
    await client.aclose()
    return int(response.ext_fields["offset"])


def stop(proc: subprocess.Popen[str], signum: signal.Signals) -> str:
    proc.send_signal(signum)
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        errors = proc.stderr.read()
        proc.stderr.close()
    return errors


async def send_one(port: int, body: bytes) -> str:
    client = await RemotingClient.connect("127.0.0.1", port)
    header = SendMessageRequestHeader(
        producer_group="pg", topic="CliTopic", default_topic="TBW102", default_topic_queue_nums=4,
        queue_id=0, sys_flag=0, born_timestamp=0, flag=0, properties="KEYS\x01k\x02",
    )  # fmt: skip
    response = await client.invoke(request(RequestCode.SEND_MESSAGE_V2, encode_send_header_v2(header), body))
    await client.aclose()
    assert response.code == ResponseCode.SUCCESS, response.remark
    return response.ext_fields["msgId"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_up_prints_listeners_accepts_a_send_and_shuts_down_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    proc, lines, broker_port = start(tmp_path / "data")
    try:
        assert lines[0].startswith("pocketmq name server listening on 127.0.0.1:")
        assert lines[1].startswith("pocketmq broker broker-a (DefaultCluster) listening on 127.0.0.1:")
        assert lines[2].startswith("namesrvAddr=127.0.0.1:")
        anyio.run(send_one, broker_port, b"hello")
    finally:
        errors = stop(proc, signum)
    assert "Traceback" not in errors
    # Restarted on the same data dir, the acknowledged message is still there.
    proc, _, broker_port = start(tmp_path / "data")
    try:
        assert anyio.run(max_offset, broker_port) == 1
    finally:
        stop(proc, signal.SIGTERM)
