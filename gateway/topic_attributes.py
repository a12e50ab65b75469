"""Topic attributes (Apache's TopicAttributes and AttributeParser) and the message types they allow.

``UPDATE_AND_CREATE_TOPIC`` carries ``attributes`` as ``+key=value`` (set) and ``-key`` (remove) entries joined by
commas, e.g. ``+message.type=FIFO``. ``message.type`` is what 5.x clients see: the route's accepted message types
and the check of every gRPC send. A topic without it accepts every type (Apache: NORMAL only): topics here are
mostly auto-created on first use, by producers of any kind (docs/compatibility.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from codec.codes import (
    PROPERTY_DELAY,
    PROPERTY_SHARDING_KEY,
    PROPERTY_TIMER_DELAY_MS,
    PROPERTY_TIMER_DELAY_SEC,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_TRAN_MSG,
)

MESSAGE_TYPE = "message.type"
MIXED = "MIXED"
UNSPECIFIED = "UNSPECIFIED"
MESSAGE_TYPES = ("NORMAL", "FIFO", "DELAY", "TRANSACTION")
# Every topic attribute Apache knows, with its allowed values.
SUPPORTED: dict[str, frozenset[str]] = {
    MESSAGE_TYPE: frozenset({UNSPECIFIED, *MESSAGE_TYPES, MIXED}),
    "queue.type": frozenset({"BatchCQ", "SimpleCQ"}),
    "cleanup.policy": frozenset({"DELETE", "COMPACTION"}),
}


class InvalidAttributes(ValueError):
    pass


def alter(current: Mapping[str, str], text: str | None) -> dict[str, str]:
    """``current`` changed by an ``attributes`` header; InvalidAttributes names the entry at fault."""
    out = dict(current)
    if not text:
        return out
    for entry in text.split(","):
        entry = entry.strip()
        if entry.startswith("-") and "=" not in entry:
            key = entry[1:]
            if key not in SUPPORTED:
                raise InvalidAttributes(f"unsupported topic attribute {key!r} (known: {', '.join(SUPPORTED)})")
            out.pop(key, None)
            continue
        key, sep, value = entry[1:].partition("=")
        if not entry.startswith("+") or not sep:
            raise InvalidAttributes(f"topic attribute {entry!r} is neither +key=value nor -key")
        if key not in SUPPORTED:
            raise InvalidAttributes(f"unsupported topic attribute {key!r} (known: {', '.join(SUPPORTED)})")
        if value not in SUPPORTED[key]:
            allowed = ", ".join(sorted(SUPPORTED[key]))
            raise InvalidAttributes(f"topic attribute {key} cannot be {value!r} (allowed: {allowed})")
        out[key] = value
    return out


def message_type_of(props: Mapping[str, str]) -> str:
    """TopicMessageType.parseFromMessageProperty."""
    if props.get(PROPERTY_TRAN_MSG) == "true":
        return "TRANSACTION"
    if any(
        k in props
        for k in (PROPERTY_DELAY, PROPERTY_TIMER_DELIVER_MS, PROPERTY_TIMER_DELAY_SEC, PROPERTY_TIMER_DELAY_MS)
    ):
        return "DELAY"
    if PROPERTY_SHARDING_KEY in props:
        return "FIFO"
    return "NORMAL"


def accepted_types(attributes: Mapping[str, str]) -> tuple[str, ...]:
    """The message types a topic takes (RouteActivity.parseTopicMessageType; no attribute: all of them)."""
    topic_type = attributes.get(MESSAGE_TYPE, MIXED)
    if topic_type == MIXED:
        return MESSAGE_TYPES
    if topic_type == UNSPECIFIED:
        return ()
    return (topic_type,)


def type_refused(attributes: Mapping[str, str], actual: str) -> str | None:
    """DefaultTopicMessageTypeValidator: why a message of type ``actual`` may not go to the topic, or None."""
    expected = attributes.get(MESSAGE_TYPE, MIXED)
    if expected in (MIXED, actual):
        return None
    return f"TopicMessageType validate failed, the expected type is {expected}, but actual type is {actual}"
