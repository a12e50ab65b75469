"""Turning a message to store into what the store takes (one place for send, send-back and hand-over)."""

from __future__ import annotations

from codec.codes import MAX_PROPERTIES_SIZE, PROPERTY_TAGS, ResponseCode
from codec.properties import query_keys
from codec.record import StoredMessage, encode_record
from codec.tags import tags_code
from remoting.errors import RequestError
from store.api import AppendRequest


def properties_too_large(size: int) -> str:
    return f"the message properties are {size} bytes, more than {MAX_PROPERTIES_SIZE}"


def append_request(
    msg: StoredMessage, props: dict[str, str], *, due_ms: int | None = None, hands_over: int | None = None
) -> AppendRequest:
    """Encode ``msg`` (offsets left for the store) with its tag hash and query keys taken from ``props``."""
    size = len(msg.properties.encode())
    if size > MAX_PROPERTIES_SIZE:  # PROPERTIES_SIZE_EXCEEDED: not retryable, unlike SYSTEM_ERROR
        raise RequestError(ResponseCode.MESSAGE_ILLEGAL, properties_too_large(size))
    return AppendRequest(
        topic=msg.topic,
        queue_id=msg.queue_id,
        record=encode_record(msg),
        tags_code=tags_code(props.get(PROPERTY_TAGS)),
        keys=query_keys(props),
        store_timestamp=msg.store_timestamp,
        due_ms=due_ms,
        hands_over=hands_over,
    )
