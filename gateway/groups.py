"""Subscription group configs (Apache's SubscriptionGroupManager): what ``mqadmin updateSubGroup`` sets.

A group nobody configured has Apache's defaults (autoCreateSubscriptionGroup): 16 retries, concurrent delivery.
In effect: ``retryMaxTimes`` (a POP consumer's message is dead-lettered after that many retries, and 5.x clients
are told ``max_attempts = retryMaxTimes + 1``), ``consumeMessageOrderly`` (a FIFO group: the messages of one
message group are handed out one at a time, in order), ``consumeEnable`` (no pulls or receives while false) and
``consumeBroadcastEnable`` (no pulls by a broadcasting consumer while false).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codec import jsonbody
from codec.codes import DEFAULT_MAX_RECONSUME_TIMES
from codec.errors import CodecError
from store.api import MessageStore

MAX_RETRY_TIMES = 1024  # a bound for what a client may set; Apache takes any int


@dataclass(frozen=True, slots=True)
class GroupConfig:
    name: str
    retry_max_times: int = DEFAULT_MAX_RECONSUME_TIMES
    orderly: bool = False
    consume_enable: bool = True
    consume_broadcast_enable: bool = True

    @property
    def max_attempts(self) -> int:
        return self.retry_max_times + 1

    def to_json(self) -> dict[str, Any]:
        """SubscriptionGroupConfig's fields as the Java class serialises them."""
        return {
            "groupName": self.name, "consumeEnable": self.consume_enable, "consumeFromMinEnable": True,
            "consumeBroadcastEnable": self.consume_broadcast_enable, "consumeMessageOrderly": self.orderly,
            "retryQueueNums": 1, "retryMaxTimes": self.retry_max_times, "brokerId": 0,
            "whichBrokerWhenConsumeSlowly": 1, "notifyConsumerIdsChangedEnable": True, "groupSysFlag": 0,
            "consumeTimeoutMinute": 15,
        }  # fmt: skip


class InvalidGroupConfig(ValueError):
    pass


def parse_group_config(body: bytes) -> GroupConfig:
    """A SubscriptionGroupConfig JSON body, checked field by field."""
    try:
        raw = jsonbody.loads(body)
    except CodecError as err:
        raise InvalidGroupConfig(f"the subscription group config is not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise InvalidGroupConfig("the subscription group config is not a JSON object")
    name = raw.get("groupName")
    if not isinstance(name, str) or not name.strip():
        raise InvalidGroupConfig("the subscription group config has no groupName")
    retries = raw.get("retryMaxTimes", DEFAULT_MAX_RECONSUME_TIMES)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRY_TIMES:
        raise InvalidGroupConfig(f"retryMaxTimes must be an integer 0..{MAX_RETRY_TIMES}, not {retries!r}")
    flags = {}
    for key in ("consumeMessageOrderly", "consumeEnable", "consumeBroadcastEnable"):
        value = raw.get(key, key != "consumeMessageOrderly")
        if not isinstance(value, bool):
            raise InvalidGroupConfig(f"{key} must be true or false, not {value!r}")
        flags[key] = value
    return GroupConfig(
        name, retries, flags["consumeMessageOrderly"], flags["consumeEnable"], flags["consumeBroadcastEnable"]
    )


class SubscriptionGroups:
    def __init__(self, store: MessageStore) -> None:
        self.store = store
        self.configured: dict[str, GroupConfig] = {}

    async def load(self) -> None:
        for name, text in (await self.store.subscription_groups()).items():
            try:
                self.configured[name] = parse_group_config(text.encode())
            except InvalidGroupConfig:  # written by this code, so only a hand-edited store gets here
                self.configured[name] = GroupConfig(name)

    def get(self, name: str) -> GroupConfig:
        return self.configured.get(name) or GroupConfig(name)

    async def upsert(self, config: GroupConfig) -> None:
        await self.store.save_subscription_group(config.name, jsonbody.dumps(config.to_json()).decode())
        self.configured[config.name] = config

    async def delete(self, name: str) -> None:
        await self.store.delete_subscription_group(name)
        self.configured.pop(name, None)
