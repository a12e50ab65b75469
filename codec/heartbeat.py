"""HeartbeatData bodies, normalised across clients (C++ ordinals and string subVersion, missing arrays).

A heartbeat is checked before any work is done for it: at most MAX_HEARTBEAT_GROUPS producer and consumer
groups, MAX_HEARTBEAT_SUBSCRIPTIONS subscriptions and MAX_HEARTBEAT_SQL92_CHARS characters of SQL92 expressions
(compiling costs about a microsecond per character), and every name must be a string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codec import jsonbody
from codec.errors import CodecError
from codec.sql92 import SqlFilter, SqlSyntaxError, compile_sql92
from codec.tags import TagFilter, parse_tag_expression

CONSUME_TYPES = ("CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP")
MESSAGE_MODELS = ("BROADCASTING", "CLUSTERING")
MAX_HEARTBEAT_GROUPS = 10_000  # producer plus consumer groups of one client instance
MAX_HEARTBEAT_SUBSCRIPTIONS = 10_000  # over all its consumer groups
MAX_HEARTBEAT_SQL92_CHARS = 256 * 1024  # over all its SQL92 subscriptions
_INT64 = (-(1 << 63), (1 << 63) - 1)

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
        if upper.isascii() and upper.isdigit() and len(upper) < 10:
            return table.get(int(upper), default)
    return default


def _int(value: Any) -> int:
    """A Java long from a number or its decimal text (C++ sends subVersion as a string); else, or beyond 64 bits, 0."""
    if isinstance(value, str) and len(value) > 40:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if _INT64[0] <= number <= _INT64[1] else 0


def _text(value: Any, field: str, group: str | None = None, topic: str | None = None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    where = f" of group {group[:64]!r}" if group is not None else ""
    where += f" on topic {topic[:64]!r}" if topic is not None else ""
    raise CodecError(f"heartbeat field {field}{where} is not a string but {type(value).__name__}")


def _objects(value: Any, what: str) -> list[dict[str, Any]]:
    """The objects of a JSON array field (a missing or null array is empty; non-objects in it are skipped)."""
    if not value:
        return []
    if not isinstance(value, list):
        raise CodecError(f"heartbeat {what} is not an array but {type(value).__name__}")
    return [item for item in value if isinstance(item, dict)]


def make_subscription(
    topic: str, expression: str | None, expression_type: str | None, sub_version: int
) -> Subscription:
    """A subscription as the broker keeps it. A SQL92 expression is compiled here; one that does not compile is
    kept with its error (pulls then answer SUBSCRIPTION_PARSE_FAILED), as the broker must still register it.
    An expression or type that is not a string raises CodecError."""
    if not isinstance(expression, str | None) or not isinstance(expression_type, str | None):
        kinds = f"{type(expression).__name__} and {type(expression_type).__name__}"
        raise CodecError(f"a subscription's expression and its type must be text, not {kinds}")
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
        error = f"bad SQL92 expression {expr[:200]!r}: {err}"  # the start of a long one is enough to recognise it
        return Subscription(topic, expr, etype, sub_version, match_all, error=error)


def parse_heartbeat(body: bytes) -> Heartbeat:
    """Parse a HEART_BEAT body. Raises CodecError naming what is wrong or which limit it exceeds."""
    data = jsonbody.loads(body)
    if not isinstance(data, dict):
        raise CodecError("heartbeat body is not a JSON object")
    client_id = data.get("clientID")
    if not isinstance(client_id, str) or not client_id:
        raise CodecError("heartbeat body has no clientID")
    producer_data = _objects(data.get("producerDataSet"), "producerDataSet")
    consumer_data = _objects(data.get("consumerDataSet"), "consumerDataSet")
    if len(producer_data) + len(consumer_data) > MAX_HEARTBEAT_GROUPS:
        raise CodecError(
            f"heartbeat carries {len(producer_data) + len(consumer_data)} groups, more than {MAX_HEARTBEAT_GROUPS}"
        )
    producers = [p.get("groupName") for p in producer_data]
    # Check every consumer group and subscription before compiling any expression.
    checked = []
    subscription_count = sql_chars = 0
    for c in consumer_data:
        group = _text(c.get("groupName"), "groupName")
        if not group:
            continue
        subs = []
        for s in _objects(c.get("subscriptionDataSet"), "subscriptionDataSet"):
            topic = _text(s.get("topic"), "topic", group)
            if not topic:
                continue
            expression = _text(s.get("subString"), "subString", group, topic)
            etype = _text(s.get("expressionType"), "expressionType", group, topic)
            if etype is not None and etype.upper() == "SQL92" and expression:
                sql_chars += len(expression)
                if sql_chars > MAX_HEARTBEAT_SQL92_CHARS:
                    raise CodecError(f"heartbeat carries more than {MAX_HEARTBEAT_SQL92_CHARS} characters of SQL92")
            subscription_count += 1
            if subscription_count > MAX_HEARTBEAT_SUBSCRIPTIONS:
                raise CodecError(f"heartbeat carries more than {MAX_HEARTBEAT_SUBSCRIPTIONS} subscriptions")
            subs.append((topic, expression, etype, _int(s.get("subVersion"))))
        checked.append((group, c, subs))
    consumers = []
    for group, c, subs in checked:
        subscriptions = {}
        for topic, expression, etype, sub_version in subs:
            subscriptions[topic] = make_subscription(topic, expression, etype, sub_version)
        consumers.append(
            ConsumerData(
                group=group,
                consume_type=_enum_name(c.get("consumeType"), CONSUME_TYPES, "CONSUME_PASSIVELY"),
                message_model=_enum_name(c.get("messageModel"), MESSAGE_MODELS, "CLUSTERING"),
                consume_from_where=_enum_name(c.get("consumeFromWhere"), CONSUME_FROM, "CONSUME_FROM_LAST_OFFSET"),
                subscriptions=subscriptions,
            )
        )
    return Heartbeat(client_id, [g for g in producers if isinstance(g, str) and g], consumers)
