"""pocketmq.testing's fault and trace helpers against a served pocketmq: rules reach the name server too."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from codec.codes import RequestCode, ResponseCode
from codec.command import request
from pocketmq.testing import AdminError, add_fault, clear_faults, faults, serve, trace_off, trace_on
from remoting.client import RemotingClient

pytestmark = pytest.mark.timeout(60)


def route_code(namesrv_addr: str, topic: str) -> tuple[int, str | None]:
    async def ask() -> tuple[int, str | None]:
        host, port = namesrv_addr.split(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            answer = await client.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}))
        finally:
            await client.aclose()
        return answer.code, answer.remark

    return anyio.run(ask)


def test_fault_and_trace_helpers(tmp_path: Path) -> None:
    # A subprocess: serve(in_process=True) leaves a server-side socket for the garbage collector (also on main),
    # which a later test then reports as an unraisable ResourceWarning.
    with serve(grpc=False) as mq:
        rule = add_fault(mq, code="GET_ROUTEINFO_BY_TOPIC", topic="TBW102", respond="SYSTEM_BUSY", times=1)
        trace = tmp_path / "trace.jsonl"
        trace_on(mq, trace)
        code, remark = route_code(mq.namesrv_addr, "TBW102")
        assert code == ResponseCode.SYSTEM_BUSY and remark == f"[pocketmq fault rule {rule['id']}] injected SYSTEM_BUSY"
        assert route_code(mq.namesrv_addr, "TBW102")[0] == ResponseCode.SUCCESS
        assert trace_off(mq)["written"] == 4
        [listed] = faults(mq)
        assert (listed["matched"], listed["injected"]) == (1, 1)
        assert clear_faults(mq) == 1 and faults(mq) == []
        with pytest.raises(AdminError, match="exactly one action"):
            add_fault(mq, code="SEND_MESSAGE")
        grpc_rule = add_fault(mq, method="sendmessage", respond="TOO_MANY_REQUESTS", times=1)
        assert (grpc_rule["method"], grpc_rule["respond"]) == (["SendMessage"], "TOO_MANY_REQUESTS")
        with pytest.raises(AdminError, match="MessagingService has no method 'Send'"):
            add_fault(mq, method="Send", drop=True)
    lines = [json.loads(x) for x in trace.read_text().splitlines()]
    assert [(x["server"], x["dir"], x["name"]) for x in lines] == [
        ("namesrv", "request", "GET_ROUTEINFO_BY_TOPIC"), ("namesrv", "response", "SYSTEM_BUSY"),
        ("namesrv", "request", "GET_ROUTEINFO_BY_TOPIC"), ("namesrv", "response", "SUCCESS"),
    ]  # fmt: skip
    assert lines[0]["topic"] == "TBW102"
