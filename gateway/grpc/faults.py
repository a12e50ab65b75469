"""Fault rules for gRPC calls (rules with ``method``, docs/testing.md): the ``intercept`` of the broker's gRPC server.

A call is matched on its method, the topic and group its request names, and its ``x-mq-client-id`` and
``x-mq-language`` metadata. A ``respond`` rule answers as the Apache proxy answers a call it refuses (its flow
limit, GrpcMessagingApplication): the method's response message with only a ``status``; for ReceiveMessage that
one message, then the end of the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import Message

from codec.codes import GRPC_CLIENT_ID_METADATA, GRPC_LANGUAGE_METADATA
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from remoting.fault_rules import Action, CallFacts, FaultRule
from remoting.faults import FaultInjector
from remoting.grpc_server import CallContext, CallFault

_SERVICE = s.DESCRIPTOR.services_by_name["MessagingService"]
RESPONSE_TYPES: dict[str, type[Message]] = {m.name: getattr(s, m.output_type.name) for m in _SERVICE.methods}


def call_facts(method: str, request: Any, metadata: dict[str, str]) -> CallFacts:
    """The topic (a resource, a queue's, or a send's first message's) and group a request names, and who calls."""
    topic, group = _names(request) if request is not None else ("", "")
    language = metadata.get(GRPC_LANGUAGE_METADATA)
    return CallFacts(method, topic or None, group or None, metadata.get(GRPC_CLIENT_ID_METADATA),
                     language.upper() if language else None)  # fmt: skip


def _names(request: Any) -> tuple[str, str]:
    reader = _READERS.get(type(request))
    if reader is None:  # once per request type (a reflective look at its fields costs more than the reading)
        reader = _READERS[type(request)] = _names_reader(request.DESCRIPTOR.fields_by_name)
    return reader(request)


def _names_reader(fields: Mapping[str, Any]) -> Callable[[Any], tuple[str, str]]:
    def topic(r: Any) -> str:
        if "topic" in fields:
            return str(r.topic.name)
        if "message_queue" in fields:
            return str(r.message_queue.topic.name)
        if "messages" in fields and r.messages:
            return str(r.messages[0].topic.name)
        return ""

    has_group = "group" in fields
    return lambda r: (topic(r), r.group.name if has_group else "")


_READERS: dict[type, Callable[[Any], tuple[str, str]]] = {}  # by request type: the service's ~16


def injected_response(method: str, rule: FaultRule) -> Message:
    """The method's response carrying only the rule's status (the proxy's statusResponseCreator)."""
    return RESPONSE_TYPES[method](status=d.Status(code=rule.response_code, message=rule.injected_remark()))


class CallFaults:
    """Chooses the rule that acts on a call and says what it does (``GrpcServer.intercept``)."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    def __call__(self, context: CallContext, path: str, request: Any) -> CallFault | None:
        method = path.rsplit("/", 1)[-1]
        rule = self.faults.choose_call(call_facts(method, request, context.metadata))
        if rule is None:
            return None
        reason = f"fault rule {rule.id}"
        if rule.action is Action.RESPOND:
            return CallFault(rule.action, reason, responses=(injected_response(method, rule),))
        if rule.action is Action.DELAY:
            return CallFault(rule.action, reason, delay_s=rule.delay_ms / 1000)
        if rule.action is Action.CLOSE:
            return CallFault(rule.action, f"{reason} closes it")
        return CallFault(rule.action, reason)
