"""A stored record as the console and the JSON API show it: ids, keys, tags, properties, the body as text (UTF-8
with replacement characters) and base64, hosts and times. Pure: bytes in, a JSON-ready dict out."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from codec.codes import (
    PROPERTY_KEYS,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_TAGS,
    PROPERTY_UNIQ_KEY,
    CompressionType,
    MessageSysFlag,
)
from codec.compression import compression_type
from codec.errors import CodecError
from codec.properties import decode_properties
from codec.record import StoredMessage, decode_record

BROWSE_BODY_BYTES = 16 * 1024  # of each message in a browsed page
DETAIL_BODY_BYTES = 1024 * 1024  # of one message looked up by id


def message_json(record: bytes, msg_id: str, body_limit: int) -> dict[str, Any]:
    """The record's fields; ``body_limit`` caps the body shown (``bodyTruncated`` says so)."""
    try:
        msg, _end = decode_record(record)
    except CodecError as err:
        return {"msgId": msg_id, "error": f"the stored record cannot be decoded: {err}"}
    props = decode_properties(msg.properties)
    body, note = _plain_body(msg, body_limit)
    shown = body[:body_limit]
    return {
        "msgId": msg_id,
        "uniqKey": props.get(PROPERTY_UNIQ_KEY, ""),
        "topic": msg.topic,
        "queueId": msg.queue_id,
        "queueOffset": msg.queue_offset,
        "physOffset": msg.phys_offset,
        "realTopic": props.get(PROPERTY_REAL_TOPIC, msg.topic),
        "realQueueId": int(props.get(PROPERTY_REAL_QUEUE_ID, msg.queue_id)),
        "tags": props.get(PROPERTY_TAGS, ""),
        "keys": [k for k in props.get(PROPERTY_KEYS, "").split(" ") if k],
        "properties": props,
        "bodySize": len(msg.body),
        "bodyText": shown.decode("utf-8", "replace"),
        "bodyBase64": base64.b64encode(shown).decode("ascii"),
        "bodyTruncated": len(body) > body_limit,
        "bodyNote": note,
        "bornTimestamp": msg.born_timestamp,
        "bornHost": f"{msg.born_host}:{msg.born_port}",
        "storeTimestamp": msg.store_timestamp,
        "storeHost": f"{msg.store_host}:{msg.store_port}",
        "reconsumeTimes": msg.reconsume_times,
        "sysFlag": msg.sys_flag,
        "flag": msg.flag,
    }


def _plain_body(msg: StoredMessage, limit: int) -> tuple[bytes, str]:
    """The body as the consumer reads it, at most ``limit`` + 1 bytes of it (a zlib body is inflated no further,
    whatever it would inflate to), and a note when it is not the body as stored."""
    if not msg.sys_flag & MessageSysFlag.COMPRESSED:
        return msg.body, ""
    kind = compression_type(msg.sys_flag)
    if kind is not CompressionType.ZLIB:
        return msg.body, f"stored compressed ({kind.name if kind else 'unknown type'}); shown as stored"
    try:
        return zlib.decompressobj().decompress(msg.body, limit + 1), "stored compressed (zlib); shown inflated"
    except zlib.error as err:
        return msg.body, f"stored compressed but does not inflate ({err}); shown as stored"
