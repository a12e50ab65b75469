"""A stored message as a 5.x client receives it (the proxy's GrpcConverter.buildMessage)."""

from __future__ import annotations

import hashlib

from google.protobuf.timestamp_pb2 import Timestamp

from codec.codes import (
    KEY_SEPARATOR,
    PROPERTY_BORN_HOST,
    PROPERTY_DELAY,
    PROPERTY_KEYS,
    PROPERTY_SHARDING_KEY,
    PROPERTY_TAGS,
    PROPERTY_TIMER_DELAY_SEC,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_TRACE_CONTEXT,
    PROPERTY_TRAN_MSG,
    PROPERTY_UNIQ_KEY,
    SYSTEM_PROPERTY_NAMES,
    TRANSACTION_TYPE_MASK,
    MessageSysFlag,
)
from codec.grpc_v2 import definition_pb2 as d
from codec.properties import decode_properties
from codec.record import StoredMessage


def _timestamp(ms: int) -> Timestamp:
    out = Timestamp()
    out.FromMilliseconds(ms)
    return out


def message_type(props: dict[str, str], sys_flag: int = 0) -> int:
    """GrpcConverter's rule. A committed transaction message keeps TRAN_MSG in Apache (EndTransactionProcessor
    clears it after it built the stored property string); pocketmq drops it and keeps the commit type in sysFlag."""
    committed = sys_flag & TRANSACTION_TYPE_MASK == MessageSysFlag.TRANSACTION_COMMIT
    if committed or props.get(PROPERTY_TRAN_MSG) == "true":
        return d.TRANSACTION
    if PROPERTY_DELAY in props or PROPERTY_TIMER_DELIVER_MS in props or PROPERTY_TIMER_DELAY_SEC in props:
        return d.DELAY
    if PROPERTY_SHARDING_KEY in props:
        return d.FIFO
    return d.NORMAL


def to_v2_message(
    msg: StoredMessage, offset_msg_id: str, *, receipt_handle: str | None = None, now_ms: int = 0
) -> d.Message:
    """``msg`` with its properties split as the proxy splits them: those named in MessageConst's system set become
    system properties (or are dropped), every other one is a user property (the sharding key and trace context
    too, as in Apache)."""
    props = decode_properties(msg.properties)
    system = d.SystemProperties(
        message_id=props.get(PROPERTY_UNIQ_KEY) or offset_msg_id,
        body_digest=d.Digest(type=d.MD5, checksum=hashlib.md5(msg.body).hexdigest().upper()),
        body_encoding=d.GZIP if msg.sys_flag & MessageSysFlag.COMPRESSED else d.IDENTITY,
        message_type=message_type(props, msg.sys_flag),
        born_timestamp=_timestamp(msg.born_timestamp),
        born_host=props.get(PROPERTY_BORN_HOST) or msg.born_host,
        store_timestamp=_timestamp(msg.store_timestamp),
        store_host=f"{msg.store_host}:{msg.store_port}",
        queue_id=msg.queue_id,
        queue_offset=msg.queue_offset,
        delivery_attempt=msg.reconsume_times + 1,
    )
    if PROPERTY_TAGS in props:
        system.tag = props[PROPERTY_TAGS]
    if PROPERTY_KEYS in props:
        system.keys.extend(props[PROPERTY_KEYS].split(KEY_SEPARATOR))
    if PROPERTY_TIMER_DELAY_SEC in props:
        system.delivery_timestamp.CopyFrom(_timestamp(now_ms + int(props[PROPERTY_TIMER_DELAY_SEC]) * 1000))
    elif PROPERTY_TIMER_DELIVER_MS in props:
        system.delivery_timestamp.CopyFrom(_timestamp(int(props[PROPERTY_TIMER_DELIVER_MS])))
    if PROPERTY_SHARDING_KEY in props:
        system.message_group = props[PROPERTY_SHARDING_KEY]
    if PROPERTY_TRACE_CONTEXT in props:
        system.trace_context = props[PROPERTY_TRACE_CONTEXT]
    if receipt_handle is not None:
        system.receipt_handle = receipt_handle
    user = {k: v for k, v in props.items() if k not in SYSTEM_PROPERTY_NAMES}
    return d.Message(topic=d.Resource(name=msg.topic), user_properties=user, system_properties=system, body=msg.body)
