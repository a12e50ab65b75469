"""DispatchTable.guard: the check runs before every handler (plain and coroutine) and for unknown codes, keeps
each handler's kind, and answers a refusal as Apache 4.9 answers an AclException."""

from __future__ import annotations

import inspect
from typing import Any

from codec.codes import ResponseCode
from codec.command import RemotingCommand, request
from remoting.acl_guard import AclGuard
from remoting.server import DispatchTable


class FakeConnection:
    peer = ("127.0.0.1", 40000)
    peer_text = "127.0.0.1:40000"


def plain(cmd: RemotingCommand, conn: Any) -> RemotingCommand:
    return cmd.response(ResponseCode.SUCCESS, "plain")


async def coroutine(cmd: RemotingCommand, conn: Any) -> RemotingCommand:
    return cmd.response(ResponseCode.SUCCESS, "coroutine")


def table() -> DispatchTable:
    t = DispatchTable()
    t.register(1, plain)
    t.register(2, coroutine)
    return t


def test_refusals_and_pass_through() -> None:
    seen: list[tuple[int, str]] = []

    def decide(code: int, fields: Any, body: bytes, ip: str) -> str | None:
        seen.append((code, ip))
        return None if fields.get("ok") else "No accessKey is configured"

    t = table()
    AclGuard(decide).install(t)
    conn: Any = FakeConnection()
    for code, is_async in ((1, False), (2, True), (999, False)):
        handler, kind = t.resolve(code)
        assert kind is is_async
        refused = handler(request(code, {}), conn)
        assert isinstance(refused, RemotingCommand)
        assert refused.code == ResponseCode.SYSTEM_ERROR
        assert refused.remark == "org.apache.rocketmq.acl.common.AclException: No accessKey is configured"
    assert t.resolve(1)[0](request(1, {"ok": "1"}), conn).remark == "plain"
    pending = t.resolve(2)[0](request(2, {"ok": "1"}), conn)
    assert inspect.iscoroutine(pending)
    pending.close()
    assert seen[0] == (1, "127.0.0.1")


def test_only_the_named_codes_are_checked() -> None:
    t = table()
    AclGuard(lambda *_: "refused", codes=[2]).install(t)
    conn: Any = FakeConnection()
    assert t.resolve(1)[0](request(1, {}), conn).remark == "plain"
    assert "refused" in t.resolve(2)[0](request(2, {}), conn).remark


def test_a_table_without_a_guard_keeps_its_handlers() -> None:
    t = table()
    assert t.resolve(1)[0] is plain and t.resolve(2)[0] is coroutine
