"""The live trace through the admin API: on without a file, GET /api/trace/recent after a number, with filters and a
limit, its refusals; a file trace feeds it too; off takes everything out; ``pocketmq trace on`` and ``--follow``."""

from __future__ import annotations

import functools
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

from pocketmq import cli
from pocketmq.admin_client import AdminClient
from pocketmq.trace_follow import follow
from pocketmq.trace_print import TraceFilter

pytestmark = pytest.mark.timeout(60)


async def api(broker: Any, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
    client = AdminClient(f"http://127.0.0.1:{broker.http_port}")
    if body is None:
        return await anyio.to_thread.run_sync(functools.partial(client.get, path, **query))
    return await anyio.to_thread.run_sync(client.post, path, body)


async def refusal(broker: Any, query: str) -> tuple[int, str]:
    """The status and error message of GET /api/trace/recent?<query>."""

    def get() -> tuple[int, str]:
        url = f"http://127.0.0.1:{broker.http_port}/api/trace/recent?{query}"
        try:
            urllib.request.urlopen(url, timeout=10).close()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())["error"]
        return 200, ""

    return await anyio.to_thread.run_sync(get)


async def test_live_trace_of_sends(http_broker: Any, open_broker_client: Any) -> None:
    bc = await open_broker_client(http_broker)
    await bc.heartbeat("live-client", "", {}, producer_group="pg")
    status = await api(http_broker, "/api/trace/on", {"live": True})
    assert status["on"] is True and "file" not in status and status["live"]["capacity"] == 1000
    assert http_broker.server.dispatch._interceptor is not None
    for i in range(3):
        await bc.send_ok("LiveT" if i < 2 else "OtherT", b"x" * (10 + i))

    everything = await api(http_broker, "/api/trace/recent")
    entries = everything["entries"]
    assert [(e["dir"], e["name"]) for e in entries] == [("request", "SEND_MESSAGE_V2"), ("response", "SUCCESS")] * 3
    assert [e["seq"] for e in entries] == list(range(1, 7)) and everything["seq"] == 6
    assert (everything["on"], everything["oldest"], everything["missed"], everything["more"]) == (True, 1, 0, 0)
    request, response = entries[0], entries[1]
    assert (request["topic"], request["group"], request["client"], request["body"]) == ("LiveT", "pg",
                                                                                        "live-client", 10)  # fmt: skip
    assert request["time"].endswith("Z") and request["fields"]["b"] == "LiveT" and request["lang"] == "JAVA"
    assert (response["requestName"], response["opaque"], response["code"]) == ("SEND_MESSAGE_V2", request["opaque"], 0)
    assert response["latencyMs"] >= 0 and "queueOffset" in response["fields"]

    later = await api(http_broker, "/api/trace/recent", after=4)
    assert [e["seq"] for e in later["entries"]] == [5, 6] and later["entries"][0]["topic"] == "OtherT"
    assert (await api(http_broker, "/api/trace/recent", after=6))["entries"] == []
    newest = await api(http_broker, "/api/trace/recent", limit=2)
    assert [e["seq"] for e in newest["entries"]] == [5, 6] and newest["more"] == 4
    only = await api(http_broker, "/api/trace/recent", q="livet")
    assert [e["seq"] for e in only["entries"]] == [1, 2, 3, 4] and only["seq"] == 6
    assert (await api(http_broker, "/api/trace/recent", proto="grpc"))["entries"] == []
    assert len((await api(http_broker, "/api/trace/recent", proto="remoting", q="SEND_MESSAGE"))["entries"]) == 6

    off = await api(http_broker, "/api/trace/off", {})
    assert off["on"] is False and off["live"] == {"seq": 6, "held": 6, "capacity": 1000}
    assert http_broker.server.dispatch._interceptor is None  # off: nothing installed
    await bc.send_ok("LiveT")
    kept = await api(http_broker, "/api/trace/recent", after=4)
    assert kept["on"] is False and [e["seq"] for e in kept["entries"]] == [5, 6]  # kept, and nothing added


async def test_bad_parameters_are_refused_by_name(http_broker: Any) -> None:
    assert await refusal(http_broker, "after=-1") == (
        400,
        "after must be a whole number 0 or more (the seq of the last entry seen), not '-1'",
    )
    assert await refusal(http_broker, "after=x") == (
        400,
        "after must be a whole number 0 or more (the seq of the last entry seen), not 'x'",
    )
    assert await refusal(http_broker, "limit=0") == (
        400,
        "limit must be a whole number 1..1000 (entries to return), not '0'",
    )
    assert (await refusal(http_broker, "limit=1001"))[0] == 400
    assert await refusal(http_broker, "proto=http") == (400, "proto must be remoting or grpc, not 'http'")
    assert await refusal(http_broker, "q=" + "a" * 201) == (400, "q is 201 characters, more than 200")
    assert await refusal(http_broker, "topic=T") == (
        400,
        "unknown parameter 'topic'; /api/trace/recent takes after, limit, q, proto",
    )
    assert await refusal(http_broker, "after=0&limit=1000&q=&proto=") == (200, "")
    for body, message in (({}, "file is required"), ({"live": "yes"}, "live must be true or false, not 'yes'"),
                          ({"live": False}, "file is required")):  # fmt: skip
        with pytest.raises(Exception, match=f"^400 Bad Request: {message}"):
            await api(http_broker, "/api/trace/on", body)
    assert http_broker.hooks.tracing is False


async def test_a_file_trace_feeds_the_live_one(http_broker: Any, open_broker_client: Any, tmp_path: Path) -> None:
    bc = await open_broker_client(http_broker)
    status = await api(http_broker, "/api/trace/on", {"live": True})
    assert status["on"] and status["live"]["seq"] == 0
    path = tmp_path / "both.jsonl"
    status = await api(http_broker, "/api/trace/on", {"file": str(path)})
    assert status["file"] == str(path)
    assert (await api(http_broker, "/api/trace/on", {"live": True}))["file"] == str(path)  # the file trace goes on
    await bc.send_ok("BothT")
    off = await api(http_broker, "/api/trace/off", {})
    assert off["on"] is False and off["written"] == 2
    file_lines = [json.loads(x) for x in path.read_text().splitlines()]
    live = (await api(http_broker, "/api/trace/recent"))["entries"]
    assert [{k: v for k, v in e.items() if k != "seq"} for e in live] == file_lines


async def test_the_cli_turns_the_live_trace_on_and_follows_it(http_broker: Any, open_broker_client: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    http = ["--http", f"127.0.0.1:{http_broker.http_port}"]

    async def pocketmq(*argv: str) -> int:
        args = cli.parser().parse_args(list(argv))
        return await anyio.to_thread.run_sync(functools.partial(cli.cli_hooks.run, args))

    assert await pocketmq("trace", *http) == 2
    assert "--follow" in capsys.readouterr().err
    assert await pocketmq("trace", "on", *http) == 0
    assert json.loads(capsys.readouterr().out)["on"] is True and http_broker.hooks.trace is None
    bc = await open_broker_client(http_broker)
    await bc.send_ok("FollowT")
    await bc.send_ok("Elsewhere")

    client = AdminClient(f"http://127.0.0.1:{http_broker.http_port}")
    out, err, slept = io.StringIO(), io.StringIO(), []
    wanted = TraceFilter(topic="FollowT")
    printed = await anyio.to_thread.run_sync(lambda: follow(client, wanted, out, err, polls=2, sleep=slept.append))
    lines = out.getvalue().splitlines()
    assert printed == 2 and len(lines) == 2 and slept == [0.5], out.getvalue()
    assert "-> SEND_MESSAGE_V2(310)" in lines[0] and "topic=FollowT" in lines[0]
    assert "<- SUCCESS(0)" in lines[1] and "for SEND_MESSAGE_V2" in lines[1]
    assert err.getvalue() == ""

    assert await pocketmq("trace", "off", *http) == 0
    capsys.readouterr()
    out, err = io.StringIO(), io.StringIO()
    assert await anyio.to_thread.run_sync(lambda: follow(client, wanted, out, err, polls=1)) == 2
    assert err.getvalue().startswith("the trace is off")
