"""Typed request and response headers (the ``*RequestHeader`` classes carried in extFields).

Each header is a slots dataclass whose fields name their wire key; ``decode_header`` parses extFields by
the field's Java type the way RemotingCommand.decodeCommandCustomHeader does, and ``encode_header``
renders every non-None field as a string.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from codec.errors import HeaderFieldError

H = TypeVar("H")

_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)


def wire(name: str, *, required: bool = False, default: Any = None, long: bool = False) -> Any:
    """Declare a header field: its extFields key, whether Java marks it @CFNotNull, its default."""
    return field(default=default, metadata={"wire": name, "required": required, "long": long})


@functools.cache
def _field_plan(cls: type) -> tuple[tuple[str, str, type, bool, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        base = hints[f.name]
        args = [a for a in typing.get_args(base) if a is not type(None)]
        py_type = args[0] if args else base
        plan.append((f.name, f.metadata["wire"], py_type, f.metadata["required"], f.metadata["long"]))
    return tuple(plan)


def _parse(value: str, py_type: type, key: str, long: bool) -> Any:
    if py_type is str:
        return value
    if py_type is bool:
        return value.strip().lower() == "true"  # Boolean.parseBoolean
    if py_type is int:
        try:
            number = int(value.strip())
        except ValueError:
            raise HeaderFieldError(f"the custom field {key} is not a number: {value[:64]!r}") from None
        low, high = _INT64 if long else _INT32
        if not low <= number <= high:
            raise HeaderFieldError(f"the custom field {key} is out of range: {value}")
        return number
    raise TypeError(f"unsupported header field type {py_type}")


def decode_header(cls: type[H], ext: dict[str, str]) -> H:
    kwargs: dict[str, Any] = {}
    for name, key, py_type, required, long in _field_plan(cls):
        value = ext.get(key)
        if value is None:
            if required:
                raise HeaderFieldError(f"the custom field <{key}> is null")
            continue
        kwargs[name] = _parse(value, py_type, key, long)
    return cls(**kwargs)


def encode_header(header: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, key, py_type, _required, _long in _field_plan(type(header)):
        value = getattr(header, name)
        if value is None:
            continue
        if py_type is bool:
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


# --- send -----------------------------------------------------------------------------------------

# SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE single-letter keys -> SendMessageRequestHeader names.
SEND_V2_KEYS = {
    "a": "producerGroup",
    "b": "topic",
    "c": "defaultTopic",
    "d": "defaultTopicQueueNums",
    "e": "queueId",
    "f": "sysFlag",
    "g": "bornTimestamp",
    "h": "flag",
    "i": "properties",
    "j": "reconsumeTimes",
    "k": "unitMode",
    "l": "maxReconsumeTimes",
    "m": "batch",
    "n": "bname",
}


@dataclass(slots=True)
class SendMessageRequestHeader:
    producer_group: str = wire("producerGroup", required=True)
    topic: str = wire("topic", required=True)
    default_topic: str = wire("defaultTopic", required=True)
    default_topic_queue_nums: int = wire("defaultTopicQueueNums", required=True)
    queue_id: int = wire("queueId", required=True)
    sys_flag: int = wire("sysFlag", required=True)
    born_timestamp: int = wire("bornTimestamp", required=True, long=True)
    flag: int = wire("flag", required=True)
    properties: str | None = wire("properties")
    reconsume_times: int | None = wire("reconsumeTimes")
    unit_mode: bool | None = wire("unitMode")
    batch: bool | None = wire("batch")
    max_reconsume_times: int | None = wire("maxReconsumeTimes")


def decode_send_header(ext: dict[str, str], v2: bool) -> SendMessageRequestHeader:
    """Decode a V1 (long names) or V2 (single letters) send header into the V1 form."""
    if v2:
        fast = _decode_send_v2(ext)
        if fast is not None:
            return fast
        ext = {SEND_V2_KEYS.get(k, k): v for k, v in ext.items()}
    return decode_header(SendMessageRequestHeader, ext)


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() == "true"  # Boolean.parseBoolean


def _decode_send_v2(ext: dict[str, str]) -> SendMessageRequestHeader | None:
    """The per-message path: a well-formed V2 header without the generic, field-by-field decoding (about a third
    of its cost). None for anything unusual; the generic decoder then says what is wrong."""
    try:
        queue_nums, queue_id, sys_flag, flag = int(ext["d"]), int(ext["e"]), int(ext["f"]), int(ext["h"])
        born = int(ext["g"])
        reconsume, max_reconsume = ext.get("j"), ext.get("l")
        reconsume_times = int(reconsume) if reconsume is not None else None
        max_reconsume_times = int(max_reconsume) if max_reconsume is not None else None
        header = SendMessageRequestHeader(
            producer_group=ext["a"],
            topic=ext["b"],
            default_topic=ext["c"],
            default_topic_queue_nums=queue_nums,
            queue_id=queue_id,
            sys_flag=sys_flag,
            born_timestamp=born,
            flag=flag,
            properties=ext.get("i"),
            reconsume_times=reconsume_times,
            unit_mode=_flag(ext.get("k")),
            batch=_flag(ext.get("m")),
            max_reconsume_times=max_reconsume_times,
        )
    except (KeyError, ValueError):
        return None
    low, high = _INT32
    for number in (queue_nums, queue_id, sys_flag, flag, reconsume_times, max_reconsume_times):
        if number is not None and not low <= number <= high:
            return None
    if not _INT64[0] <= born <= _INT64[1]:
        return None
    return header


def encode_send_header_v2(header: SendMessageRequestHeader) -> dict[str, str]:
    letters = {v: k for k, v in SEND_V2_KEYS.items()}
    return {letters[k]: v for k, v in encode_header(header).items()}


@dataclass(slots=True)
class SendMessageResponseHeader:
    msg_id: str = wire("msgId", required=True)
    queue_id: int = wire("queueId", required=True)
    queue_offset: int = wire("queueOffset", required=True, long=True)
    transaction_id: str | None = wire("transactionId")


# --- pull -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class PullMessageRequestHeader:
    consumer_group: str = wire("consumerGroup", required=True)
    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)
    queue_offset: int = wire("queueOffset", required=True, long=True)
    max_msg_nums: int = wire("maxMsgNums", required=True)
    sys_flag: int = wire("sysFlag", required=True)
    commit_offset: int = wire("commitOffset", required=True, long=True)
    suspend_timeout_millis: int = wire("suspendTimeoutMillis", required=True, long=True)
    subscription: str | None = wire("subscription")
    sub_version: int = wire("subVersion", default=0, long=True)
    expression_type: str | None = wire("expressionType")
    max_msg_bytes: int | None = wire("maxMsgBytes")


@dataclass(slots=True)
class PullMessageResponseHeader:
    suggest_which_broker_id: int = wire("suggestWhichBrokerId", required=True, long=True)
    next_begin_offset: int = wire("nextBeginOffset", required=True, long=True)
    min_offset: int = wire("minOffset", required=True, long=True)
    max_offset: int = wire("maxOffset", required=True, long=True)


# --- offsets --------------------------------------------------------------------------------------


@dataclass(slots=True)
class QueryConsumerOffsetRequestHeader:
    consumer_group: str = wire("consumerGroup", required=True)
    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)
    set_zero_if_not_found: bool | None = wire("setZeroIfNotFound")


@dataclass(slots=True)
class UpdateConsumerOffsetRequestHeader:
    consumer_group: str = wire("consumerGroup", required=True)
    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)
    commit_offset: int = wire("commitOffset", required=True, long=True)


@dataclass(slots=True)
class TopicQueueRequestHeader:
    """GET_MAX_OFFSET, GET_MIN_OFFSET and GET_EARLIEST_MSG_STORETIME."""

    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)


@dataclass(slots=True)
class SearchOffsetRequestHeader:
    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)
    timestamp: int = wire("timestamp", required=True, long=True)
    boundary_type: str | None = wire("boundaryType")


@dataclass(slots=True)
class OffsetResponseHeader:
    offset: int = wire("offset", required=True, long=True)


# --- clients --------------------------------------------------------------------------------------


@dataclass(slots=True)
class UnregisterClientRequestHeader:
    client_id: str = wire("clientID", required=True)
    producer_group: str | None = wire("producerGroup")
    consumer_group: str | None = wire("consumerGroup")


@dataclass(slots=True)
class ConsumerGroupRequestHeader:
    """GET_CONSUMER_LIST_BY_GROUP, NOTIFY_CONSUMER_IDS_CHANGED, GET_CONSUMER_CONNECTION_LIST."""

    consumer_group: str = wire("consumerGroup", required=True)


# --- query ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class QueryMessageRequestHeader:
    topic: str = wire("topic", required=True)
    key: str = wire("key", required=True)
    max_num: int = wire("maxNum", required=True)
    begin_timestamp: int = wire("beginTimestamp", required=True, long=True)
    end_timestamp: int = wire("endTimestamp", required=True, long=True)


@dataclass(slots=True)
class ViewMessageRequestHeader:
    offset: int = wire("offset", required=True, long=True)


# --- admin ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class CreateTopicRequestHeader:
    topic: str = wire("topic", required=True)
    default_topic: str = wire("defaultTopic", default="TBW102")
    read_queue_nums: int = wire("readQueueNums", required=True)
    write_queue_nums: int = wire("writeQueueNums", required=True)
    perm: int = wire("perm", required=True)
    topic_filter_type: str = wire("topicFilterType", default="SINGLE_TAG")
    topic_sys_flag: int | None = wire("topicSysFlag")
    order: bool = wire("order", default=False)
    attributes: str | None = wire("attributes")  # "+message.type=FIFO,-queue.type" (AttributeParser)


@dataclass(slots=True)
class TopicRequestHeader:
    """Any request whose only needed field is ``topic`` (routes, topic deletion, stats)."""

    topic: str = wire("topic", required=True)


@dataclass(slots=True)
class ResetOffsetRequestHeader:
    """INVOKE_BROKER_TO_RESET_OFFSET (mqadmin resetOffsetByTime, skipAccumulatedMessage); also the header of the
    RESET_CONSUMER_CLIENT_OFFSET the broker sends on to the group's consumers."""

    topic: str = wire("topic", required=True)
    group: str = wire("group", required=True)
    timestamp: int = wire("timestamp", required=True, long=True)  # -1: the end of every queue
    is_force: bool = wire("isForce", default=False)
    queue_id: int = wire("queueId", default=-1)
    offset: int | None = wire("offset", long=True)


@dataclass(slots=True)
class QueryConsumeQueueRequestHeader:
    topic: str = wire("topic", required=True)
    queue_id: int = wire("queueId", required=True)
    index: int = wire("index", required=True, long=True)
    count: int = wire("count", required=True)
    consumer_group: str | None = wire("consumerGroup")


@dataclass(slots=True)
class ProducerGroupRequestHeader:
    """GET_PRODUCER_CONNECTION_LIST."""

    producer_group: str = wire("producerGroup", required=True)


@dataclass(slots=True)
class ViewBrokerStatsDataRequestHeader:
    stats_name: str = wire("statsName", required=True)
    stats_key: str = wire("statsKey", required=True)


@dataclass(slots=True)
class DeleteSubscriptionGroupRequestHeader:
    group_name: str = wire("groupName", required=True)
    clean_offset: bool = wire("cleanOffset", default=False)


# --- name server ----------------------------------------------------------------------------------


@dataclass(slots=True)
class RegisterBrokerRequestHeader:
    broker_name: str = wire("brokerName", required=True)
    broker_addr: str = wire("brokerAddr", required=True)
    cluster_name: str = wire("clusterName", required=True)
    ha_server_addr: str = wire("haServerAddr", required=True)
    broker_id: int = wire("brokerId", required=True, long=True)
    heartbeat_timeout_millis: int | None = wire("heartbeatTimeoutMillis", long=True)
    enable_acting_master: bool | None = wire("enableActingMaster")
    compressed: bool | None = wire("compressed")
    body_crc32: int | None = wire("bodyCrc32")


@dataclass(slots=True)
class UnregisterBrokerRequestHeader:
    broker_name: str = wire("brokerName", required=True)
    broker_addr: str = wire("brokerAddr", required=True)
    cluster_name: str = wire("clusterName", required=True)
    broker_id: int = wire("brokerId", required=True, long=True)


@dataclass(slots=True)
class RegisterBrokerResponseHeader:
    ha_server_addr: str | None = wire("haServerAddr")
    master_addr: str | None = wire("masterAddr")


@dataclass(slots=True)
class KvConfigRequestHeader:
    namespace: str = wire("namespace", required=True)
    key: str = wire("key", required=True)
    value: str | None = wire("value")


@dataclass(slots=True)
class KvNamespaceRequestHeader:
    namespace: str = wire("namespace", required=True)


# --- retries --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ConsumerSendMsgBackRequestHeader:
    offset: int = wire("offset", required=True, long=True)
    group: str = wire("group", required=True)
    delay_level: int = wire("delayLevel", required=True)
    origin_msg_id: str | None = wire("originMsgId")
    origin_topic: str | None = wire("originTopic")
    unit_mode: bool = wire("unitMode", default=False)
    max_reconsume_times: int | None = wire("maxReconsumeTimes")


# --- transactions ---------------------------------------------------------------------------------


@dataclass(slots=True)
class EndTransactionRequestHeader:
    producer_group: str = wire("producerGroup", required=True)
    tran_state_table_offset: int = wire("tranStateTableOffset", required=True, long=True)
    commit_log_offset: int = wire("commitLogOffset", required=True, long=True)
    commit_or_rollback: int = wire("commitOrRollback", required=True)
    from_transaction_check: bool = wire("fromTransactionCheck", default=False)
    msg_id: str | None = wire("msgId")
    transaction_id: str | None = wire("transactionId")


@dataclass(slots=True)
class CheckTransactionStateRequestHeader:
    tran_state_table_offset: int = wire("tranStateTableOffset", required=True, long=True)
    commit_log_offset: int = wire("commitLogOffset", required=True, long=True)
    msg_id: str | None = wire("msgId")
    transaction_id: str | None = wire("transactionId")
    offset_msg_id: str | None = wire("offsetMsgId")
    topic: str | None = wire("topic")
