"""Fault rules for gRPC calls (``method``): parsing, refusals that name the problem, matching, and the injector
keeping them apart from remoting rules."""

from __future__ import annotations

from typing import Any

import pytest

from codec.codes import GRPC_METHODS, RequestCode
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from remoting.fault_rules import Action, CallFacts, FaultRuleError, parse_rule
from remoting.faults import FaultInjector


def facts(method: str = "SendMessage", topic: str | None = "T", group: str | None = None, **kw: Any) -> CallFacts:
    return CallFacts(method, topic, group, kw.get("client_id"), kw.get("language"))


def test_a_rule_with_method_is_a_grpc_rule() -> None:
    rule = parse_rule({"method": "sendmessage,ReceiveMessage", "respond": "too_many_requests", "times": 1}, 4)
    assert (rule.grpc, rule.methods, rule.codes) == (True, {"SendMessage", "ReceiveMessage"}, None)
    assert rule.response_code == d.TOO_MANY_REQUESTS == 42900
    assert rule.injected_remark() == "[pocketmq fault rule 4] injected TOO_MANY_REQUESTS"
    assert rule.to_json() == {
        "id": 4, "action": "respond", "method": ["SendMessage", "ReceiveMessage"], "respond": "TOO_MANY_REQUESTS",
        "times": 1, "matched": 0, "injected": 0, "exhausted": False,
    }  # fmt: skip
    numbered = parse_rule({"method": ["AckMessage"], "respond": 50001, "remark": "busy"}, 5)
    assert numbered.to_json()["respond"] == "INTERNAL_SERVER_ERROR"
    assert numbered.injected_remark() == "[pocketmq fault rule 5] injected INTERNAL_SERVER_ERROR: busy"
    odd = parse_rule({"method": "*", "respond": "12345"}, 6)
    assert (odd.methods, odd.to_json()["method"], odd.to_json()["respond"]) == (None, "*", 12345)
    remoting = parse_rule({"respond": "SYSTEM_BUSY"}, 7)  # as before: no method, a remoting rule
    assert (remoting.grpc, remoting.to_json().get("method")) == (False, None)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"method": "Send", "respond": "OK"}, r"method: MessagingService has no method 'Send'; it has QueryRoute, "),
        ({"method": 5, "drop": True}, r"method must be a gRPC method's name, not int"),
        ({"method": " , ", "drop": True}, r"method: name at least one gRPC method \(or \* for any\)"),
        ({"method": "SendMessage", "code": "SEND_MESSAGE", "drop": True}, r"remoting requests \(code\) or for gRPC"),
        ({"method": "SendMessage", "respond": "SYSTEM_BUSY"}, r"that is a remoting response code: gRPC rules answer"),
        ({"method": "SendMessage", "respond": "NOPE"}, r"respond: no apache.rocketmq.v2.Code named 'NOPE' \(e.g. TOO_"),
        ({"method": "SendMessage", "respond": True}, r"respond must be an apache.rocketmq.v2.Code"),
        ({"method": "SendMessage", "respond": 1 << 31}, r"respond 2147483648 is outside the int32 range"),
        ({"method": "SendMessage", "respond": "OK", "header": {"a": "1"}}, r"header is for remoting answers"),
        ({"method": "Telemetry", "topic": "T", "drop": True}, r"Telemetry call starts before its first message"),
        ({"method": "SendMessage", "language": "KLINGON", "drop": True}, r"language: 'KLINGON' is none of JAVA"),
        ({"code": "SEND_MESSAGE", "respond": "TOO_MANY_REQUESTS"}, r"no ResponseCode named 'TOO_MANY_REQUESTS' \(a v2"),
    ],
)
def test_bad_grpc_rules_are_refused_with_the_reason(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(FaultRuleError, match=error):
        parse_rule(fields, 1)


def test_matching_a_call() -> None:
    rule = parse_rule({"method": "SendMessage", "topic": "T", "clientId": "c1", "language": "java", "drop": True}, 1)
    assert rule.matches_call(facts(client_id="c1", language="JAVA"))
    assert not rule.matches_call(facts("ReceiveMessage", client_id="c1", language="JAVA"))
    assert not rule.matches_call(facts(topic="U", client_id="c1", language="JAVA"))
    assert not rule.matches_call(facts(client_id="c2", language="JAVA"))
    assert not rule.matches_call(facts(client_id="c1", language="GO"))
    grouped = parse_rule({"method": "*", "group": "G", "drop": True}, 2)
    assert grouped.matches_call(facts("AckMessage", group="G")) and not grouped.matches_call(facts("AckMessage"))


def test_the_injector_keeps_the_protocols_apart() -> None:
    changes: list[tuple[int, int]] = []
    injector = FaultInjector()
    injector.on_change = lambda: changes.append((len(injector.remoting_rules), len(injector.grpc_rules)))
    remoting = injector.add({"respond": "SYSTEM_BUSY"})  # every remoting request
    grpc = injector.add({"method": "*", "respond": "TOO_MANY_REQUESTS", "times": 2})
    assert changes == [(1, 0), (1, 1)]
    assert injector.choose_call(facts()) is grpc and injector.choose_call(facts("QueryRoute")) is grpc
    assert injector.choose_call(facts()) is None  # exhausted after 2
    assert (grpc.matched, grpc.injected, remoting.matched) == (2, 2, 0)
    assert injector.remove(remoting.id) is remoting and changes[-1] == (0, 1)
    assert injector.injected_counts() == {(grpc.id, Action.RESPOND.value): 2}
    injector.clear()
    assert changes[-1] == (0, 0)


def test_a_remoting_rule_never_matches_a_call_nor_a_grpc_rule_a_request() -> None:
    injector = FaultInjector()
    injector.add({"method": "SendMessage", "drop": True})
    assert injector.remoting_rules == []  # what the remoting interceptor checks (and is installed for)
    injector.clear()
    injector.add({"code": RequestCode.SEND_MESSAGE_V2, "drop": True})
    assert injector.choose_call(facts()) is None and injector.grpc_rules == []


def test_the_method_list_is_the_services() -> None:
    served = {m.name for m in s.DESCRIPTOR.services_by_name["MessagingService"].methods}
    assert set(GRPC_METHODS) <= served
    assert served - set(GRPC_METHODS) == {"SyncLiteSubscription"}  # in the proto, not served (UNIMPLEMENTED)
