"""pocketmq.testing: ``serve()`` as a subprocess and in a thread, ``--ready-file``, and the pytest plugin's fixtures
used by a test suite of its own (a pytest subprocess, as an application's suite would run)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import anyio
import grpc
import pytest

from codec.codes import RequestCode, ResponseCode
from codec.command import request
from pocketmq.testing import Endpoints, ServeError, serve
from remoting.client import RemotingClient

REPO = Path(__file__).resolve().parents[2]


def route_brokers(namesrv_addr: str, topic: str = "TBW102") -> list[str]:
    """The broker addresses the name server routes ``topic`` to."""

    async def ask() -> list[str]:
        host, port = namesrv_addr.split(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            answer = await client.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}))
        finally:
            await client.aclose()
        assert answer.code == ResponseCode.SUCCESS, answer.remark
        route = json.loads(answer.body)
        return [addr for data in route["brokerDatas"] for addr in data["brokerAddrs"].values()]

    return anyio.run(ask)


def api(endpoints: Endpoints, path: str) -> dict:
    assert endpoints.http_endpoint is not None
    with urllib.request.urlopen(endpoints.http_endpoint + path, timeout=5) as answer:
        return json.loads(answer.read())


def refuses(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


@pytest.mark.parametrize("in_process", [False, True], ids=["subprocess", "in-process"])
def test_serve_is_ready_when_it_yields_and_gone_after(in_process: bool) -> None:
    with serve(in_process=in_process, broker_conf={"brokerName": "broker-t"}) as mq:
        assert route_brokers(mq.namesrv_addr) == [mq.broker_addr]
        assert api(mq, "/api/broker")["brokerName"] == "broker-t"
        assert mq.grpc_endpoint is not None
        with grpc.insecure_channel(mq.grpc_endpoint) as channel:  # an HTTP/2 connection made, then closed
            grpc.channel_ready_future(channel).result(timeout=10)
        data_dir = mq.data_dir
        assert (data_dir / "store.db").exists()
    assert refuses(mq.broker_addr) and refuses(mq.namesrv_addr)
    assert not data_dir.exists()  # its temporary directory went with it


def test_a_broker_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    with pytest.raises(ServeError, match="exited"), serve(data_dir=tmp_path, timeout=20):
        pass


def test_the_ready_file_of_pocketmq_up(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(tmp_path / "data"), "--namesrv-port", "0",
           "--broker-port", "0", "--grpc-port", "-1", "--http-port", "0", "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1000):
            if ready.exists() or proc.poll() is not None:
                break
            anyio.run(anyio.sleep, 0.02)
        data = json.loads(ready.read_text())
        assert data["grpcEndpoint"] is None and data["pid"] == proc.pid
        assert route_brokers(data["namesrvAddr"]) == [data["brokerAddr"]]
        assert data["httpEndpoint"].startswith("http://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_pytest_plugin_fixtures_in_a_suite_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import json, urllib.request
            import pytest

            def get(mq, path):
                with urllib.request.urlopen(mq.http_endpoint + path, timeout=5) as answer:
                    return json.loads(answer.read())

            def test_session_server(pocketmq_session):
                assert pocketmq_session.namesrv_addr.startswith("127.0.0.1:")

            def test_same_session_server(pocketmq_session):
                assert get(pocketmq_session, "/api/broker")["brokerName"] == "broker-a"

            @pytest.mark.pocketmq(broker_conf={"brokerName": "broker-own"})
            def test_own_server(pocketmq, pocketmq_session):
                assert pocketmq.broker_addr != pocketmq_session.broker_addr
                assert get(pocketmq, "/api/broker")["brokerName"] == "broker-own"
            """
        )
    )
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO)}
    for mode in ([], ["--pocketmq-in-process"]):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "pocketmq.testing.plugin", "-p", "no:cacheprovider",
             *mode, str(tmp_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout
