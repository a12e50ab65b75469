"""Creating, updating and deleting topics as an administrator (AdminBrokerProcessor's rules), for the remoting
admin codes and the HTTP admin API alike."""

from __future__ import annotations

from codec.codes import ResponseCode
from gateway.topic_attributes import InvalidAttributes, alter
from gateway.topics import TopicTable, validate_topic_name
from remoting.errors import RequestError
from store.api import TopicConfig

MAX_QUEUE_NUMS = 1024


async def create_or_update_topic(
    table: TopicTable,
    topic: str,
    *,
    read_queue_nums: int,
    write_queue_nums: int,
    perm: int,
    attributes: str | None = None,
    topic_filter_type: str = "SINGLE_TAG",
    topic_sys_flag: int = 0,
    order: bool = False,
) -> TopicConfig:
    """UPDATE_AND_CREATE_TOPIC: validate the name, refuse a system topic, check the numbers, apply ``attributes``
    (``+key=value,-key``) to the current ones; raise RequestError (INVALID_PARAMETER) naming what is wrong."""
    validate_topic_name(topic)
    table.refuse_system_topic(topic)
    if not (0 < read_queue_nums <= MAX_QUEUE_NUMS and 0 < write_queue_nums <= MAX_QUEUE_NUMS and 0 <= perm <= 7):
        raise RequestError(ResponseCode.INVALID_PARAMETER, "queue numbers must be 1..1024 and perm 0..7")
    current = table.get(topic)
    try:
        merged = alter(current.attributes if current is not None else {}, attributes)
    except InvalidAttributes as err:
        raise RequestError(ResponseCode.INVALID_PARAMETER, str(err)) from None
    cfg = TopicConfig(topic, read_queue_nums, write_queue_nums, perm, topic_filter_type, topic_sys_flag, order, merged)
    await table.upsert(cfg)
    return cfg


async def delete_topic(table: TopicTable, topic: str) -> None:
    """DELETE_TOPIC_IN_BROKER: any topic but a system one, %RETRY% and %DLQ% topics included."""
    if not topic.strip():
        raise RequestError(ResponseCode.INVALID_PARAMETER, "The specified topic is blank.")
    table.refuse_system_topic(topic)
    await table.delete(topic)
