"""Topic configs: the broker's topic table, system topics, validation and auto-creation (TopicConfigManager)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from codec.codes import (
    AUTO_CREATE_TOPIC,
    DLQ_GROUP_TOPIC_PREFIX,
    NOT_ALLOWED_SEND_TOPICS,
    REPLY_TOPIC_SUFFIX,
    RETRY_GROUP_TOPIC_PREFIX,
    RETRY_TOPIC_MAX_LENGTH,
    SYSTEM_TOPIC_PREFIX,
    SYSTEM_TOPIC_SET,
    TOPIC_MAX_LENGTH,
    Perm,
    ResponseCode,
)
from remoting.errors import RequestError
from store.api import MessageStore, TopicConfig

log = logging.getLogger("pocketmq.broker")

_VALID_TOPIC = re.compile(r"^[%|a-zA-Z0-9_-]+$")
RW = int(Perm.READ | Perm.WRITE)


def validate_topic(topic: str) -> None:
    """TopicValidator: characters, length, and no sends to broker-internal topics."""
    if not topic:
        raise RequestError(ResponseCode.INVALID_PARAMETER, "the specified topic is blank")
    if not _VALID_TOPIC.match(topic):
        raise RequestError(
            ResponseCode.INVALID_PARAMETER,
            f"the specified topic[{topic}] contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
        )
    limit = (
        RETRY_TOPIC_MAX_LENGTH
        if topic.startswith((RETRY_GROUP_TOPIC_PREFIX, DLQ_GROUP_TOPIC_PREFIX))
        else (TOPIC_MAX_LENGTH)
    )
    if len(topic) > limit:
        raise RequestError(ResponseCode.MESSAGE_ILLEGAL, f"the specified topic is longer than topic max length {limit}")
    if topic in NOT_ALLOWED_SEND_TOPICS:
        raise RequestError(ResponseCode.NO_PERMISSION, f"Sending message to topic[{topic}] is forbidden.")


def validate_topic_name(topic: str) -> None:
    """TopicValidator.validateTopic as AdminBrokerProcessor.updateAndCreateTopic answers it: INVALID_PARAMETER."""
    if not topic.strip():
        raise RequestError(ResponseCode.INVALID_PARAMETER, "The specified topic is blank.")
    if not _VALID_TOPIC.match(topic):
        raise RequestError(
            ResponseCode.INVALID_PARAMETER,
            f"The specified topic: {topic}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$",
        )
    if topic.startswith((RETRY_GROUP_TOPIC_PREFIX, DLQ_GROUP_TOPIC_PREFIX)):
        if len(topic) > RETRY_TOPIC_MAX_LENGTH:
            raise RequestError(
                ResponseCode.INVALID_PARAMETER,
                f"The specified topic is DLQ or Retry topic: {topic}, and it's longer than topic max length: "
                f"{RETRY_TOPIC_MAX_LENGTH}",
            )
    elif len(topic) > TOPIC_MAX_LENGTH:
        raise RequestError(
            ResponseCode.INVALID_PARAMETER,
            f"The specified topic: {topic}, is longer than topic max length: {TOPIC_MAX_LENGTH}",
        )


def is_system_topic(topic: str, *, cluster: str, broker_name: str) -> bool:
    """TopicValidator.isSystemTopic on a broker of ``cluster`` named ``broker_name``: Apache's fixed set, the
    ``rmq_sys_`` prefix, and the topics TopicConfigManager.init adds to the set (the cluster name, the broker name,
    ``<cluster>_REPLY_TOPIC``; its other additions are in the fixed set or carry the prefix). ``%RETRY%`` and
    ``%DLQ%`` topics are not system topics."""
    return (
        topic in SYSTEM_TOPIC_SET
        or topic.startswith(SYSTEM_TOPIC_PREFIX)
        or topic in (cluster, broker_name, cluster + REPLY_TOPIC_SUFFIX)
    )


class TopicTable:
    """In-memory topic configs backed by the store; ``on_change`` triggers a name-server registration."""

    def __init__(
        self,
        store: MessageStore,
        *,
        cluster: str,
        broker_name: str,
        auto_create: bool,
        default_queue_nums: int,
        on_change: Callable[[], Awaitable[None] | None] | None = None,
        validate_system_topics: bool = True,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.broker_name = broker_name
        self.auto_create = auto_create
        self.default_queue_nums = default_queue_nums
        self.on_change = on_change
        self.validate_system_topics = validate_system_topics  # validateSystemTopicWhenUpdateTopic
        self.topics: dict[str, TopicConfig] = {}

    async def load(self) -> None:
        self.topics = {t.topic_name: t for t in await self.store.load_topics()}
        defaults = [
            TopicConfig(self.cluster, 16, 16, int(Perm.INHERIT) | RW),
            TopicConfig(self.broker_name, 1, 1, int(Perm.INHERIT) | RW),
            TopicConfig(self.cluster + REPLY_TOPIC_SUFFIX, 1, 1, RW),
        ]
        if self.auto_create:
            defaults.append(TopicConfig(AUTO_CREATE_TOPIC, 8, 8, int(Perm.INHERIT) | RW))
        else:
            self.topics.pop(AUTO_CREATE_TOPIC, None)
            await self.store.delete_topic(AUTO_CREATE_TOPIC)
        for cfg in defaults:
            if cfg.topic_name not in self.topics:
                await self._save(cfg)

    def get(self, topic: str) -> TopicConfig | None:
        return self.topics.get(topic)

    def refuse_system_topic(self, topic: str) -> None:
        """Refuse an admin change (create, update, delete) of a system topic, as AdminBrokerProcessor does while
        validateSystemTopicWhenUpdateTopic is on: deleting TBW102 would stop auto-creation, deleting
        SCHEDULE_TOPIC_XXXX or RMQ_SYS_TRANS_HALF_TOPIC would drop pending delayed or half messages."""
        if self.validate_system_topics and is_system_topic(topic, cluster=self.cluster, broker_name=self.broker_name):
            raise RequestError(ResponseCode.INVALID_PARAMETER, f"The topic[{topic}] is conflict with system topic.")

    async def _save(self, cfg: TopicConfig) -> None:
        await self.store.save_topic(cfg)
        self.topics[cfg.topic_name] = cfg

    async def _changed(self) -> None:
        if self.on_change is not None:
            result = self.on_change()
            if result is not None:
                await result

    async def upsert(self, cfg: TopicConfig) -> None:
        await self._save(cfg)
        await self._changed()

    async def delete(self, topic: str) -> None:
        self.topics.pop(topic, None)
        await self.store.delete_topic(topic)
        await self._changed()

    async def ensure_system_topic(self, topic: str, queue_nums: int = 1, perm: int = RW) -> TopicConfig:
        """Create a retry/DLQ topic on demand (createTopicInSendMessageBackMethod)."""
        cfg = self.topics.get(topic)
        if cfg is None:
            cfg = TopicConfig(topic, queue_nums, queue_nums, perm)
            await self._save(cfg)
            log.info("created topic %s (%d queue%s)", topic, queue_nums, "" if queue_nums == 1 else "s")
            await self._changed()
        return cfg

    async def for_send(self, topic: str, default_topic: str, requested_queue_nums: int) -> TopicConfig:
        """The topic a producer sends to, auto-created from TBW102 when allowed (createTopicInSendMessageMethod)."""
        cfg = self.topics.get(topic)
        if cfg is not None:
            return cfg
        if topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            return await self.ensure_system_topic(topic)
        template = self.topics.get(default_topic) if self.auto_create else None
        if template is None or not template.perm & Perm.INHERIT:
            raise RequestError(ResponseCode.TOPIC_NOT_EXIST, f"topic[{topic}] not exist, apply first please!")
        queues = max(1, min(requested_queue_nums or self.default_queue_nums, template.write_queue_nums))
        cfg = TopicConfig(topic, queues, queues, template.perm & ~int(Perm.INHERIT))
        await self._save(cfg)
        log.info("auto-created topic %s with %d queues", topic, queues)
        await self._changed()
        return cfg
