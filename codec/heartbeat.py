"""HeartbeatData bodies, normalised across clients (C++ ordinals and string subVersion, missing arrays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codec import jsonbody
from codec.errors import CodecError
from codec.sql92 import SqlFilter, SqlSyntaxError, compile_sql92
from codec.tags import TagFilter, parse_tag_expression

CONSUME_TYPES = ("CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP")
MESSAGE_MODELS = ("BROADCASTING", "CLUSTERING")
CONSUME_FROM = {
    0: "CONSUME_FROM_LAST_OFFSET",
    1: "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
    2: "CONSUME_FROM_MIN_OFFSET",
    3: "CONSUME_FROM_MAX_OFFSET",
    4: "CONSUME_FROM_FIRST_OFFSET",
    5: "CONSUME_FROM_TIMESTAMP",
}


@dataclass(slots=True, frozen=True)
class Subscription:
    topic: str
    expression: str
    expression_type: str  # "TAG" or "SQL92"
    sub_version: int
    tag_filter: TagFilter
    sql: SqlFilter | None = None  # the compiled selector of a SQL92 subscription
    error: str | None = None  # why a SQL92 expression did not compile

    def to_json(self) -> dict[str, Any]:
        tags = sorted(self.tag_filter.tags)
        return {
            "classFilterMode": False,
            "codeSet": sorted(self.tag_filter.codes()),
            "expressionType": self.expression_type,
            "subString": self.expression,
            "subVersion": self.sub_version,
            "tagsSet": tags,
            "topic": self.topic,
        }


@dataclass(slots=True)
class ConsumerData:
    group: str
    consume_type: str
    message_model: str
    consume_from_where: str
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


@dataclass(slots=True)
class Heartbeat:
    client_id: str
    producer_groups: list[str]
    consumers: list[ConsumerData]


def _enum_name(value: Any, names: tuple[str, ...] | dict[int, str], default: str) -> str:
    table = names if isinstance(names, dict) else dict(enumerate(names))
    if isinstance(value, int) and not isinstance(value, bool):
        return table.get(value, default)
    if isinstance(value, str):
        upper = value.upper()
        if upper in table.values():
            return upper
        if upper.isdigit():
            return table.get(int(upper), default)
    return default


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def make_subscription(
    topic: str, expression: str | None, expression_type: str | None, sub_version: int
) -> Subscription:
    """A subscription as the broker keeps it. A SQL92 expression is compiled here; one that does not compile is
    kept with its error (pulls then answer SUBSCRIPTION_PARSE_FAILED), as the broker must still register it."""
    etype = (expression_type or "TAG").upper()
    expr = expression if expression is not None else "*"
    if etype == "TAG":
        tag_filter = parse_tag_expression(expr)
        return Subscription(topic, tag_filter.expression, etype, sub_version, tag_filter)
    match_all = parse_tag_expression("*")
    if etype != "SQL92":
        return Subscription(topic, expr, etype, sub_version, match_all, error=f"unknown expression type {etype}")
    try:
        return Subscription(topic, expr, etype, sub_version, match_all, sql=compile_sql92(expr))
    except SqlSyntaxError as err:
        return Subscription(topic, expr, etype, sub_version, match_all, error=f"bad SQL92 expression {expr!r}: {err}")


def parse_heartbeat(body: bytes) -> Heartbeat:
    data = jsonbody.loads(body)
    if not isinstance(data, dict):
        raise CodecError("heartbeat body is not a JSON object")
    client_id = data.get("clientID")
    if not isinstance(client_id, str) or not client_id:
        raise CodecError("heartbeat body has no clientID")
    producers = [p.get("groupName") for p in data.get("producerDataSet") or [] if isinstance(p, dict)]
    consumers = []
    for c in data.get("consumerDataSet") or []:
        if not isinstance(c, dict) or not c.get("groupName"):
            continue
        subs = {}
        for s in c.get("subscriptionDataSet") or []:
            if isinstance(s, dict) and s.get("topic"):
                sub = make_subscription(
                    s["topic"], s.get("subString"), s.get("expressionType"), _int(s.get("subVersion"))
                )
                subs[sub.topic] = sub
        consumers.append(
            ConsumerData(
                group=c["groupName"],
                consume_type=_enum_name(c.get("consumeType"), CONSUME_TYPES, "CONSUME_PASSIVELY"),
                message_model=_enum_name(c.get("messageModel"), MESSAGE_MODELS, "CLUSTERING"),
                consume_from_where=_enum_name(c.get("consumeFromWhere"), CONSUME_FROM, "CONSUME_FROM_LAST_OFFSET"),
                subscriptions=subs,
            )
        )
    return Heartbeat(client_id, [g for g in producers if isinstance(g, str) and g], consumers)
