"""Fault rules on a running broker, over the wire: each action, times and fractions, matching on topic, group,
client id and language, counts, and the interceptor coming and going with the rules."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from codec.codes import RequestCode, ResponseCode
from codec.command import request
from remoting.fault_rules import FaultRuleError


def rule(broker: Any, **fields: Any) -> Any:
    return broker.hooks.faults.add(fields)


async def test_no_rule_no_interceptor(broker: Any, bc: Any) -> None:
    plain = broker.server.dispatch.handlers[RequestCode.SEND_MESSAGE_V2]
    added = rule(broker, code="SEND_MESSAGE_V2", respond="SYSTEM_BUSY")
    assert broker.server.dispatch.handlers[RequestCode.SEND_MESSAGE_V2] is not plain
    broker.hooks.faults.remove(added.id)
    assert broker.server.dispatch.handlers[RequestCode.SEND_MESSAGE_V2] is plain
    await bc.send_ok("FaultsT")


async def test_respond_for_the_next_n_matches(broker: Any, bc: Any) -> None:
    added = rule(broker, code="SEND_MESSAGE_V2", topic="FaultsT", respond="SYSTEM_BUSY", times=2)
    for _ in range(2):
        response = await bc.send("FaultsT")
        assert response.code == ResponseCode.SYSTEM_BUSY
        assert response.remark == f"[pocketmq fault rule {added.id}] injected SYSTEM_BUSY"
    await bc.send_ok("FaultsT")
    assert (added.matched, added.injected, added.exhausted) == (2, 2, True)
    assert await bc.max_offset("FaultsT", 0) + sum([await bc.max_offset("FaultsT", q) for q in (1, 2, 3)]) == 1


async def test_after_n_matches_an_answer_with_the_header_given(broker: Any, bc: Any) -> None:
    header = {"suggestWhichBrokerId": "0", "nextBeginOffset": "7", "minOffset": "0", "maxOffset": "9"}
    added = rule(broker, code="GET_MAX_OFFSET", respond="PULL_NOT_FOUND", header=header, after=1, times=1)
    assert await bc.max_offset("FaultsHeaderT", 0) == 0  # the first match goes through
    response = await bc.invoke(RequestCode.GET_MAX_OFFSET, {"topic": "FaultsHeaderT", "queueId": "0"})
    assert (response.code, response.ext_fields) == (ResponseCode.PULL_NOT_FOUND, header)
    assert await bc.max_offset("FaultsHeaderT", 0) == 0  # exhausted: served again
    assert (added.matched, added.injected, added.exhausted) == (2, 1, True)


async def test_matches_only_its_topic_group_and_language(broker: Any, bc: Any) -> None:
    rule(broker, topic="Other", respond=ResponseCode.SERVICE_NOT_AVAILABLE)
    rule(broker, group="some-group", respond="SYSTEM_ERROR")
    rule(broker, language="GO", respond="SYSTEM_ERROR")
    await bc.send_ok("FaultsT")  # topic FaultsT, group pg, language JAVA: none of them
    response = await bc.send("Other")
    assert response.code == ResponseCode.SERVICE_NOT_AVAILABLE


async def test_matches_the_client_id_of_the_connection(broker: Any, bc: Any) -> None:
    rule(broker, clientId="client-A", code=RequestCode.SEND_MESSAGE_V2, respond="SYSTEM_BUSY", remark="slow down")
    await bc.send_ok("FaultsT")  # no heartbeat yet: the connection's client is unknown
    assert (await bc.heartbeat("client-A", "", {}, producer_group="pg")).code == ResponseCode.SUCCESS
    response = await bc.send("FaultsT")
    assert response.code == ResponseCode.SYSTEM_BUSY and response.remark.endswith("injected SYSTEM_BUSY: slow down")


async def test_a_fraction_is_repeatable_with_its_seed(broker: Any, bc: Any) -> None:
    outcomes = []
    for _ in range(2):
        added = rule(broker, code="GET_MAX_OFFSET", fraction=0.5, seed=42, respond="SYSTEM_BUSY")
        codes = [(await bc.invoke(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"})).code for _ in range(40)]
        outcomes.append(codes)
        assert added.matched == 40 and added.injected == codes.count(ResponseCode.SYSTEM_BUSY)
        broker.hooks.faults.clear()
    assert outcomes[0] == outcomes[1]
    assert 8 < outcomes[0].count(ResponseCode.SYSTEM_BUSY) < 32


async def test_delay_holds_the_answer_not_the_connection(broker: Any, bc: Any, open_broker_client: Any) -> None:
    rule(broker, code="SEND_MESSAGE_V2", delayMs=400, times=1)
    other = await open_broker_client(broker)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bc.send_ok, "FaultsT")
        await anyio.sleep(0.05)
        await other.send_ok("FaultsT")  # not delayed: the rule fired once
        assert time.monotonic() - started < 0.3
    assert time.monotonic() - started >= 0.4


async def test_delay_of_a_coroutine_handler(broker: Any, bc: Any, wire: Any) -> None:
    rule(broker, code="HEART_BEAT", delayMs=300)
    started = time.monotonic()
    assert (await bc.heartbeat("client-B", "cg", {"T": "*"})).code == ResponseCode.SUCCESS
    assert time.monotonic() - started >= 0.3
    assert "cg" in broker.ctx.clients.consumers  # handled before the answer was held


async def test_drop_serves_the_request_and_never_answers(broker: Any, bc: Any, wire: Any) -> None:
    rule(broker, code="SEND_MESSAGE_V2", drop=True, times=1)
    with pytest.raises(TimeoutError):
        await bc.invoke(RequestCode.SEND_MESSAGE_V2, wire.send_fields("FaultsT"), b"hello", timeout=0.5)
    total = sum([await bc.max_offset("FaultsT", q) for q in range(4)])
    assert total == 1  # stored: only its answer was lost
    await bc.send_ok("FaultsT")


async def test_close_closes_the_connection(broker: Any, bc: Any, open_broker_client: Any) -> None:
    added = rule(broker, code="GET_MAX_OFFSET", close=True, times=1)
    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError)):
        await bc.invoke(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"}, timeout=2)
    assert added.injected == 1
    fresh = await open_broker_client(broker)
    assert await fresh.max_offset("T") == 0


async def test_a_oneway_request_gets_no_injected_answer(broker: Any, bc: Any) -> None:
    added = rule(broker, code="GET_MAX_OFFSET", respond="SYSTEM_BUSY", times=1)
    await bc.client.oneway(request(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"}))
    assert await bc.max_offset("T") == 0  # the next answer is this request's own, not an injected one
    assert added.injected == 1


def test_bad_rules_are_refused_with_a_reason(tmp_path: Any) -> None:
    from remoting.faults import FaultInjector

    faults = FaultInjector()
    for fields, words in (
        ({"code": "SEND_MESAGE", "respond": "SYSTEM_BUSY"}, "no RequestCode named"),
        ({"respond": "BUSY"}, "no ResponseCode named"),
        ({"respond": 2, "fraction": 1.5}, "fraction must be in (0, 1]"),
        ({"respond": 2, "fraction": "half"}, "fraction must be a number"),
        ({"respond": 2, "times": 0}, "times must be 1.."),
        ({"respond": 2, "drop": True}, "exactly one action"),
        ({}, "exactly one action"),
        ({"respond": 2, "language": "COBOL"}, "language"),
        ({"respond": 2, "colour": "red"}, "unknown field"),
    ):
        with pytest.raises(FaultRuleError) as err:
            faults.add(fields)
        assert words in str(err.value), (fields, str(err.value))
    assert faults.rules == []
