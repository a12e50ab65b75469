"""Fault rules and the trace through the admin API, the CLI and /metrics; the trace lines of a real exchange."""

from __future__ import annotations

import functools
import json
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

from codec.codes import RequestCode, ResponseCode
from pocketmq import cli
from pocketmq.admin_client import AdminClient, AdminError

pytestmark = pytest.mark.timeout(60)


async def api(broker: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    client = AdminClient(f"http://127.0.0.1:{broker.http_port}")
    if body is None:
        return await anyio.to_thread.run_sync(client.get, path)
    return await anyio.to_thread.run_sync(client.post, path, body)


async def test_rules_through_the_api(http_broker: Any, open_broker_client: Any) -> None:
    bc = await open_broker_client(http_broker)
    added = await api(http_broker, "/api/faults", {"code": "SEND_MESSAGE_V2", "respond": "SYSTEM_BUSY", "times": 1})
    assert added["id"] >= 1 and added["respond"] == "SYSTEM_BUSY" and added["code"] == ["SEND_MESSAGE_V2"]
    assert (await bc.send("ApiFaults")).code == ResponseCode.SYSTEM_BUSY
    [listed] = (await api(http_broker, "/api/faults"))["rules"]
    assert (listed["matched"], listed["injected"], listed["exhausted"]) == (1, 1, True)
    scrape = await anyio.to_thread.run_sync(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{http_broker.http_port}/metrics", timeout=10).read()
    )
    labels = f'action="respond",broker="broker-a",cluster="DefaultCluster",rule="{added["id"]}"'
    wanted = f"pocketmq_faults_injected_total{{{labels}}} 1.0"
    assert wanted in scrape.decode(), [x for x in scrape.decode().splitlines() if "fault" in x]
    removed = await api(http_broker, "/api/faults/remove", {"id": added["id"]})
    assert removed["id"] == added["id"]
    assert (await api(http_broker, "/api/faults"))["injected"] == {str(added["id"]): 1}  # counts outlive the rule
    with pytest.raises(AdminError, match="no fault rule"):
        await api(http_broker, "/api/faults/remove", {"id": added["id"]})
    with pytest.raises(AdminError, match=r"^400 Bad Request: code: no RequestCode named 'nope'$"):
        await api(http_broker, "/api/faults", {"code": "nope", "respond": "SYSTEM_BUSY"})
    await api(http_broker, "/api/faults", {"drop": True})
    assert (await api(http_broker, "/api/faults/clear", {}))["removed"] == 1
    await bc.send_ok("ApiFaults")


async def test_the_cli_adds_lists_and_clears(http_broker: Any, capsys: pytest.CaptureFixture[str]) -> None:
    http = ["--http", f"127.0.0.1:{http_broker.http_port}"]

    async def pocketmq(*argv: str) -> int:
        args = cli.parser().parse_args(list(argv))
        return await anyio.to_thread.run_sync(functools.partial(cli.cli_hooks.run, args))

    assert await pocketmq("fault", "add", "--code", "SEND_MESSAGE_V2", "--topic", "T", "--respond", "SYSTEM_BUSY",
                          "--times", "3", *http) == 0  # fmt: skip
    assert "rule 1: " in capsys.readouterr().out
    assert await pocketmq("fault", "add", "--code", "PULL_MESSAGE", "--delay-ms", "10", "--fraction", "0.5", *http) == 0
    assert await pocketmq("fault", "list", *http) == 0
    listed = capsys.readouterr().out
    assert '"topic": "T"' in listed and '"fraction": 0.5' in listed and "matched 0, injected 0" in listed
    assert await pocketmq("fault", "add", "--respond", "BUSY", *http) == 1
    assert "no ResponseCode named 'BUSY'" in capsys.readouterr().err
    assert await pocketmq("fault", "add", "--drop", "--fraction", "2", *http) == 1
    assert "fraction must be in (0, 1]" in capsys.readouterr().err
    assert await pocketmq("fault", "add", "--respond", "PULL_NOT_FOUND", "--header", "nextBeginOffset=10",
                          "--header", "minOffset=0", "--after", "1", *http) == 0  # fmt: skip
    added = capsys.readouterr().out
    assert '"header": {"nextBeginOffset": "10", "minOffset": "0"}' in added and '"after": 1' in added
    assert await pocketmq("fault", "add", "--respond", "PULL_NOT_FOUND", "--header", "nextBeginOffset", *http) == 1
    assert "--header takes NAME=VALUE, not 'nextBeginOffset'" in capsys.readouterr().err
    assert await pocketmq("fault", "clear", *http) == 0
    assert "removed 3 rule(s)" in capsys.readouterr().out
    assert http_broker.server.dispatch._interceptor is None


async def test_trace_of_a_send_and_a_heartbeat(broker: Any, bc: Any, tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    broker.hooks.trace_on(path)
    await bc.heartbeat("client-T", "", {}, producer_group="pg")
    await bc.send_ok("TraceT", b"twelve bytes")
    await anyio.to_thread.run_sync(broker.hooks.trace_off().close)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    heartbeat_request, heartbeat_response, send, answer = lines
    assert heartbeat_request["name"] == "HEART_BEAT" and heartbeat_request["client"] is None
    assert heartbeat_response["name"] == "SUCCESS" and heartbeat_response["client"] is None
    assert send["dir"] == "request" and send["proto"] == "remoting" and send["server"] == "broker"
    assert (send["code"], send["name"], send["topic"], send["group"]) == (310, "SEND_MESSAGE_V2", "TraceT", "pg")
    assert (send["client"], send["lang"], send["ver"], send["body"]) == ("client-T", "JAVA", 479, 12)
    assert send["fields"]["b"] == "TraceT" and send["conn"] == answer["conn"] and send["opaque"] == answer["opaque"]
    assert send["time"].endswith("Z") and send["time"][:4].isdigit()
    assert (answer["dir"], answer["code"], answer["name"], answer["requestName"]) == ("response", 0, "SUCCESS",
                                                                                       "SEND_MESSAGE_V2")  # fmt: skip
    assert answer["topic"] == "TraceT" and answer["latencyMs"] >= 0 and "queueOffset" in answer["fields"]
    assert broker.server.dispatch._interceptor is None  # off again: nothing installed


async def test_trace_shows_injected_and_missing_answers(broker: Any, bc: Any, tmp_path: Path, wire: Any) -> None:
    path = tmp_path / "trace.jsonl"
    broker.hooks.trace_on(path)
    broker.hooks.faults.add({"code": "SEND_MESSAGE_V2", "respond": "SYSTEM_BUSY", "times": 1})
    broker.hooks.faults.add({"code": "SEND_MESSAGE_V2", "drop": True, "times": 1})
    assert (await bc.send("TraceT")).code == ResponseCode.SYSTEM_BUSY
    with pytest.raises(TimeoutError):
        await bc.invoke(RequestCode.SEND_MESSAGE_V2, wire.send_fields("TraceT"), b"x", timeout=0.3)
    broker.hooks.faults.clear()
    await anyio.to_thread.run_sync(broker.hooks.trace_off().close)
    answers = [json.loads(x) for x in path.read_text().splitlines() if '"response"' in x]
    assert [a["name"] for a in answers] == ["SYSTEM_BUSY", "NO_ANSWER"]
    assert "[pocketmq fault rule 1] injected SYSTEM_BUSY" in answers[0]["remark"]


async def test_trace_on_through_the_api_only_writes_jsonl(http_broker: Any, tmp_path: Path) -> None:
    with pytest.raises(AdminError, match=r"must end in \.jsonl"):
        await api(http_broker, "/api/trace/on", {"file": str(tmp_path / "x.sh")})
    with pytest.raises(AdminError, match="cannot write the trace"):
        await api(http_broker, "/api/trace/on", {"file": str(tmp_path / "missing" / "x.jsonl")})
    status = await api(http_broker, "/api/trace/on", {"file": "relative.jsonl"})
    assert status["on"] and status["file"] == str(http_broker.config.data_dir / "relative.jsonl")
    assert (await api(http_broker, "/api/trace"))["on"]
    off = await api(http_broker, "/api/trace/off", {})
    assert off["on"] is False and off["dropped"] == 0
    assert (await api(http_broker, "/api/trace/off", {}))["on"] is False
