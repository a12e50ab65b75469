"""Topic administration and the read-only views admin tools use (AdminBrokerProcessor)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from codec import jsonbody
from codec.codes import ResponseCode
from codec.command import RemotingCommand, request
from codec.headers import (
    ConsumerGroupRequestHeader,
    CreateTopicRequestHeader,
    DeleteSubscriptionGroupRequestHeader,
    ProducerGroupRequestHeader,
    QueryConsumeQueueRequestHeader,
    ResetOffsetRequestHeader,
    TopicRequestHeader,
    ViewBrokerStatsDataRequestHeader,
    decode_header,
)
from codec.jsonbody import mq_key
from codec.record import PHYS_OFFSET_POS, decode_record
from gateway.config import broker_conf_values
from gateway.config_update import ConfigRefused, parse_properties, update
from gateway.context import BrokerContext
from gateway.groups import InvalidGroupConfig, parse_group_config
from gateway.offset_reset import plan_reset, reset_body, tell_consumers
from gateway.stats import GROUP_GET_NUMS
from gateway.topic_admin import create_or_update_topic, delete_topic
from remoting.connection import Connection
from remoting.errors import RequestError
from store.api import TopicConfig

VERSION_DESC = "V5_3_3"


def topic_config_json(cfg: TopicConfig) -> dict[str, Any]:
    return {
        "attributes": dict(cfg.attributes),
        "order": cfg.order,
        "perm": cfg.perm,
        "readQueueNums": cfg.read_queue_nums,
        "topicFilterType": cfg.topic_filter_type,
        "topicName": cfg.topic_name,
        "topicSysFlag": cfg.topic_sys_flag,
        "writeQueueNums": cfg.write_queue_nums,
    }


def object_key_map(entries: list[tuple[str, dict[str, Any]]]) -> str:
    return "{" + ",".join(f"{k}:{json.dumps(v, separators=(',', ':'))}" for k, v in entries) + "}"


class AdminHandlers:
    def __init__(self, ctx: BrokerContext, started_ms: int) -> None:
        self.ctx = ctx
        self.started_ms = started_ms
        self.config_version = 0  # counts run-time config updates (GET_BROKER_CONFIG's data version)

    def data_version(self) -> dict[str, int]:
        return {"counter": len(self.ctx.topics.topics), "stateVersion": 0, "timestamp": self.started_ms}

    def topic_config_wrapper(self) -> dict[str, Any]:
        return {
            "dataVersion": self.data_version(),
            "topicConfigTable": {n: topic_config_json(c) for n, c in sorted(self.ctx.topics.topics.items())},
        }

    async def create_topic(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(CreateTopicRequestHeader, cmd.ext_fields)
        await create_or_update_topic(
            self.ctx.topics, h.topic, read_queue_nums=h.read_queue_nums, write_queue_nums=h.write_queue_nums,
            perm=h.perm, attributes=h.attributes, topic_filter_type=h.topic_filter_type,
            topic_sys_flag=h.topic_sys_flag or 0, order=h.order,
        )  # fmt: skip
        return cmd.response(ResponseCode.SUCCESS)

    async def delete_topic(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """DELETE_TOPIC_IN_BROKER (AdminBrokerProcessor.deleteTopic), gateway/topic_admin.py."""
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        await delete_topic(self.ctx.topics, h.topic)
        return cmd.response(ResponseCode.SUCCESS)

    async def create_group(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is a SubscriptionGroupConfig."""
        try:
            config = parse_group_config(cmd.body or b"")
        except InvalidGroupConfig as err:
            raise RequestError(ResponseCode.INVALID_PARAMETER, str(err)) from None
        if not VALID_GROUP.match(config.name) or len(config.name) > MAX_GROUP_LENGTH:
            raise RequestError(
                ResponseCode.INVALID_PARAMETER,
                f"the group name {config.name!r} must be 1..{MAX_GROUP_LENGTH} characters of ^[%|a-zA-Z0-9_-]+$",
            )
        await self.ctx.groups.upsert(config)
        return cmd.response(ResponseCode.SUCCESS)

    async def delete_group(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(DeleteSubscriptionGroupRequestHeader, cmd.ext_fields)
        await self.ctx.groups.delete(h.group_name)
        return cmd.response(ResponseCode.SUCCESS)

    def known_groups(self) -> set[str]:
        """Every group the broker knows: configured, online, remembered from a subscription, or with committed
        offsets (Apache creates a group's config at its first heartbeat or pull: autoCreateSubscriptionGroup)."""
        names = set(self.ctx.groups.configured) | set(self.ctx.clients.consumers)
        names |= {group for group, _topic in self.ctx.clients.remembered}
        return names | set(self.ctx.store.consumer_groups())

    async def all_group_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_ALL_SUBSCRIPTIONGROUP_CONFIG (getConsumerConfig, the 4.9 tools' examineSubscriptionGroupConfig): the
        configs of every known group, Apache's defaults for the ones nobody configured (SubscriptionGroupWrapper)."""
        table = {name: self.ctx.groups.get(name).to_json() for name in sorted(self.known_groups())}
        body = {"subscriptionGroupTable": table, "dataVersion": self.data_version()}
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(body))

    async def all_topic_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        return cmd.response(
            ResponseCode.SUCCESS,
            ext_fields={"totalTopicNum": str(len(self.ctx.topics.topics))},
            body=jsonbody.dumps(self.topic_config_wrapper()),
        )

    async def topic_stats(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        cfg = self.ctx.topics.get(h.topic)
        if cfg is None:
            return cmd.response(ResponseCode.TOPIC_NOT_EXIST, f"topic[{h.topic}] not exist")
        store, broker = self.ctx.store, self.ctx.config.broker_name
        entries = []
        for q in range(cfg.write_queue_nums):
            last = await self._store_time_at(h.topic, q, store.max_offset(h.topic, q) - 1)
            entries.append(
                (
                    mq_key(broker, h.topic, q),
                    {
                        "lastUpdateTimestamp": last,
                        "maxOffset": store.max_offset(h.topic, q),
                        "minOffset": store.min_offset(h.topic, q),
                    },
                )
            )
        body = '{"offsetTable":' + object_key_map(entries) + ',"topicPutTps":0.0}'
        return cmd.response(ResponseCode.SUCCESS, body=body.encode())

    async def _store_time_at(self, topic: str, queue_id: int, offset: int) -> int:
        """Store timestamp of the message at ``offset`` (0 when there is none), as getMessageStoreTimeStamp."""
        if offset < 0:
            return 0
        entries = await self.ctx.store.read_queue(topic, queue_id, offset, 1)
        if not entries or entries[0].queue_offset != offset:
            return 0
        return decode_record(entries[0].record)[0].store_timestamp

    async def consume_stats(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """Per queue of every topic the group subscribes to or committed on: broker offset, consumer offset, and
        the store time of the last consumed message (ConsumeStats, lag for admin tools)."""
        h = decode_header(ConsumerGroupRequestHeader, cmd.ext_fields)
        only = cmd.ext_fields.get("topic") or None
        topics = sorted(t for t in self._topics_of(h.consumer_group) if only is None or t == only)
        body, _diff = await self._consume_stats(h.consumer_group, topics)
        return cmd.response(ResponseCode.SUCCESS, body=body.encode())

    def _topics_of(self, group_name: str) -> set[str]:
        group = self.ctx.clients.consumers.get(group_name)
        topics = set(group.subscriptions) if group else set()
        topics.update(t for t, _ in self.ctx.store.consumer_offsets(group_name))
        return topics

    async def _consume_stats(self, group_name: str, topics: list[str]) -> tuple[str, int]:
        """A ConsumeStats body (fastjson MessageQueue keys) for the group's queues of ``topics``, and its lag."""
        store, broker = self.ctx.store, self.ctx.config.broker_name
        committed = store.consumer_offsets(group_name)
        entries, diff, tps = [], 0, 0.0
        now_s = self.ctx.clock.now_ms() // 1000
        for topic in topics:
            cfg = self.ctx.topics.get(topic)
            queue_ids = range(cfg.read_queue_nums) if cfg else sorted(q for t, q in committed if t == topic)
            for q in queue_ids:
                consumer_offset = committed.get((topic, q), 0)
                broker_offset = store.max_offset(topic, q)
                diff += max(broker_offset - consumer_offset, 0)
                entries.append(
                    (
                        mq_key(broker, topic, q),
                        {
                            "brokerOffset": broker_offset,
                            "consumerOffset": consumer_offset,
                            "lastTimestamp": await self._store_time_at(topic, q, consumer_offset - 1),
                            "pullOffset": consumer_offset,
                        },
                    )
                )
            counter = self.ctx.stats.counters[GROUP_GET_NUMS].get(f"{topic}@{group_name}")
            tps += counter.rate(60, now_s) if counter is not None else 0.0
        return '{"consumeTps":' + f"{tps:.2f}" + ',"offsetTable":' + object_key_map(entries) + "}", diff

    async def broker_consume_stats(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_BROKER_CONSUME_STATS (brokerConsumeStats): ConsumeStats of every known group, per topic, and the
        broker's total lag. Groups: configured, online, remembered from a subscription, or with committed offsets."""
        order_only = cmd.ext_fields.get("isOrder", "false").lower() == "true"
        total, groups = 0, []
        for name in sorted(self.known_groups()):
            if order_only and not self.ctx.groups.get(name).orderly:
                continue
            topics = sorted(self._topics_of(name))
            stats = []
            for topic in topics:
                body, diff = await self._consume_stats(name, [topic])
                stats.append(body)
                total += diff
            if stats:
                groups.append("{" + json.dumps(name) + ":[" + ",".join(stats) + "]}")
        body = (
            '{"brokerAddr":' + json.dumps(self.ctx.config.broker_addr) + ',"consumeStatsList":['
            + ",".join(groups) + '],"totalDiff":' + str(total) + "}"
        )  # fmt: skip
        return cmd.response(ResponseCode.SUCCESS, body=body.encode())

    async def consumer_connections(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(ConsumerGroupRequestHeader, cmd.ext_fields)
        group = self.ctx.clients.consumers.get(h.consumer_group)
        if group is None or not group.channels:
            return cmd.response(ResponseCode.CONSUMER_NOT_ONLINE, f"the consumer group[{h.consumer_group}] not online")
        body = {
            "connectionSet": [
                {"clientAddr": c.address, "clientId": c.client_id, "language": c.language, "version": c.version}
                for c in group.channels.values()
            ],
            "consumeFromWhere": group.consume_from_where,
            "consumeType": group.consume_type,
            "messageModel": group.message_model,
            "subscriptionTable": {t: s.to_json() for t, s in group.subscriptions.items()},
        }
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(body))

    async def runtime_info(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_BROKER_RUNTIME_INFO: what brokerStatus prints and clusterList reads (rates, totals, disk)."""
        stats = self.ctx.stats
        get_tps = stats.tps_text("get")
        table = {
            "brokerVersionDesc": VERSION_DESC,
            "brokerVersion": "479",
            "brokerActive": "true",
            "bootTimestamp": str(self.started_ms),
            "runtime": f"[ {int(time.time() * 1000 - self.started_ms) // 1000} s ]",
            "putTps": stats.tps_text("put"),
            "getTransferredTps": get_tps,
            "getTransferedTps": get_tps,  # the spelling of the 4.9 tools (their clusterList reads only this one)
            **{key: str(value) for key, value in stats.day_totals().items()},
            "commitLogDiskRatio": f"{disk_ratio(self.ctx.config.data_dir):.4f}",
            "pageCacheLockTimeMills": "0",
            "earliestMessageTimeStamp": str(await self.ctx.store.earliest_message_time()),
            "timerReadBehind": "0",
            "timerOffsetBehind": "0",
            "timerCongestNum": "0",
            "timerEnqueueTps": "0.0",
            "timerDequeueTps": "0.0",
            "sendThreadPoolQueueSize": "0",
            "pullThreadPoolQueueSize": "0",
            "sendThreadPoolQueueHeadWaitTimeMills": "0",
            "pullThreadPoolQueueHeadWaitTimeMills": "0",
        }
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"table": table}))

    async def topic_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_TOPIC_CONFIG (5.x tools ask it before topicStatus and cloneGroupOffset): the topic's config
        (TopicConfigAndQueueMapping without static-topic mapping, which pocketmq does not have)."""
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        cfg = self.ctx.topics.get(h.topic)
        if cfg is None:
            raise RequestError(ResponseCode.TOPIC_NOT_EXIST, "No topic in this broker.")
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(topic_config_json(cfg)))

    async def reset_offset(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """INVOKE_BROKER_TO_RESET_OFFSET (Broker2Client.resetOffset): the offsets of gateway/offset_reset.py, sent
        on to every online consumer of the group as RESET_CONSUMER_CLIENT_OFFSET, which moves its offsets and
        commits them. With no consumer online: CONSUMER_NOT_ONLINE, after which the tools set the offsets themselves
        (UPDATE_CONSUMER_OFFSET)."""
        h = decode_header(ResetOffsetRequestHeader, cmd.ext_fields)
        offsets = await plan_reset(self.ctx, h.group, h.topic, h.timestamp, h.is_force)
        if not tell_consumers(self.ctx, h.group, h.topic, h.timestamp, h.is_force, offsets):
            raise RequestError(
                ResponseCode.CONSUMER_NOT_ONLINE,
                f"Consumer not online, so can not reset offset, Group: {h.group} Topic: {h.topic} "
                f"Timestamp: {h.timestamp}",
            )
        return cmd.response(ResponseCode.SUCCESS, body=reset_body(self.ctx.config.broker_name, h.topic, offsets))

    async def call_consumer(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_CONSUMER_RUNNING_INFO (consumerStatus) and CONSUME_MESSAGE_DIRECTLY: handed to the named online
        consumer, whose answer is the answer (AdminBrokerProcessor.callConsumer)."""
        group, client_id = cmd.ext_fields.get("consumerGroup") or "", cmd.ext_fields.get("clientId") or ""
        consumers = self.ctx.clients.consumers.get(group)
        channel = next(
            (c for c in (consumers.channels.values() if consumers else ()) if c.client_id == client_id), None
        )
        connection = self.ctx.connections.get(channel.connection_id) if channel is not None else None
        if connection is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"The Consumer <{group}> <{client_id}> not online")
        forwarded = request(cmd.code, dict(cmd.ext_fields), cmd.body)
        try:
            answer = await connection.request(forwarded, CALL_CONSUMER_TIMEOUT_S)
        except TimeoutError:
            raise RequestError(
                ResponseCode.CONSUME_MSG_TIMEOUT, f"consumer <{group}> <{client_id}> Timeout: no answer in 5 s"
            ) from None
        except ConnectionError as err:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"invoke consumer <{group}> <{client_id}> Exception: {err}"
            ) from None
        return cmd.response(answer.code, answer.remark, ext_fields=dict(answer.ext_fields), body=answer.body)

    async def query_consume_queue(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """QUERY_CONSUME_QUEUE (queryCq): the index entries of a queue from ``index`` (physical offset, size, tags
        hash code), its bounds, and the group's subscription when one is named and known."""
        h = decode_header(QueryConsumeQueueRequestHeader, cmd.ext_fields)
        store = self.ctx.store
        if not store.queue_exists(h.topic, h.queue_id):
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"{h.queue_id}@{h.topic} is not exist!")
        count = max(0, min(h.count, MAX_QUERY_CQ))
        entries = await store.read_queue(h.topic, h.queue_id, max(h.index, 0), count) if count else []
        body: dict[str, Any] = {
            "maxQueueIndex": store.max_offset(h.topic, h.queue_id),
            "minQueueIndex": store.min_offset(h.topic, h.queue_id),
            "queueData": [
                {"physicOffset": _phys_offset(e.record), "physicSize": len(e.record), "tagsCode": e.tags_code}
                for e in entries
            ],
        }
        sub = self.ctx.clients.subscription(h.consumer_group, h.topic) if h.consumer_group else None
        if sub is not None:
            body["subscriptionData"] = sub.to_json()
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(body))

    async def ha_status(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_BROKER_HA_STATUS (haStatus): a master without slaves (pocketmq has no replication)."""
        max_offset = self.ctx.store.commit_log_end()
        body = {"master": True, "masterCommitLogMaxOffset": max_offset, "inSyncSlaveNums": 0, "haConnectionInfo": []}
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(body))

    async def update_broker_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """UPDATE_BROKER_CONFIG: ``key=value`` lines (gateway/config_update.py)."""
        values = parse_properties((cmd.body or b"").decode("utf-8", "replace"))
        if not values:
            raise RequestError(ResponseCode.INVALID_PARAMETER, "no key=value line in the request body")
        try:
            update(self.ctx, values)
        except ConfigRefused as err:
            raise RequestError(ResponseCode.INVALID_PARAMETER, str(err)) from None
        except OSError as err:
            problem = f"updated, but writing the config file failed: {err}"
            raise RequestError(ResponseCode.SYSTEM_ERROR, problem) from None
        self.config_version += 1
        return cmd.response(ResponseCode.SUCCESS)

    async def broker_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_BROKER_CONFIG: the broker.conf keys pocketmq uses, as ``key=value`` lines (Apache: every key of its
        BrokerConfig, MessageStoreConfig and NettyServerConfig), and the config's data version."""
        values = FIXED_BROKER_CONFIG | broker_conf_values(self.ctx.config)
        text = "".join(f"{key}={value}\n" for key, value in sorted(values.items()))
        version = {"counter": self.config_version, "stateVersion": 0, "timestamp": self.started_ms}
        ext = {"version": json.dumps(version, separators=(",", ":"))}
        return cmd.response(ResponseCode.SUCCESS, ext_fields=ext, body=text.encode())

    async def producer_connections(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_PRODUCER_CONNECTION_LIST: the producers of a group that sent a heartbeat."""
        h = decode_header(ProducerGroupRequestHeader, cmd.ext_fields)
        channels = self.ctx.clients.producers.get(h.producer_group) or {}
        if not channels:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"the producer group[{h.producer_group}] not exist")
        connections = [
            {"clientAddr": c.address, "clientId": c.client_id, "language": c.language, "version": c.version}
            for c in channels.values()
        ]
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"connectionSet": connections}))

    async def clean_expired_consume_queue(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """CLEAN_EXPIRED_CONSUMEQUEUE: Apache deletes consume-queue files of deleted topics; pocketmq deletes a
        topic's index rows with the topic, so there is nothing left to clean."""
        return cmd.response(ResponseCode.SUCCESS)

    async def view_stats_data(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """VIEW_BROKER_STATS_DATA: one statistic (TOPIC_PUT_NUMS by topic, GROUP_GET_NUMS by topic@group, ...)."""
        h = decode_header(ViewBrokerStatsDataRequestHeader, cmd.ext_fields)
        data = self.ctx.stats.stats_data(h.stats_name, h.stats_key)
        if data is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"The stats <{h.stats_name}> <{h.stats_key}> not exist")
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(data))

    async def topic_consumed_by(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """QUERY_TOPIC_CONSUME_BY_WHO: the groups online for the topic, those whose subscription is remembered, and
        those that consumed from it since the start (Apache: online consumers and groups with offsets)."""
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        groups = {name for name, group in self.ctx.clients.consumers.items() if h.topic in group.subscriptions}
        groups |= {group for group, topic in self.ctx.clients.remembered if topic == h.topic}
        prefix = f"{h.topic}@"
        groups |= {key[len(prefix) :] for key in self.ctx.stats.counters[GROUP_GET_NUMS] if key.startswith(prefix)}
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"groupList": sorted(groups)}))


# Broker keys whose value pocketmq cannot change, answered as facts: the 4.9 tools' exportConfigs reads every one of
# them and fails on a missing key (the broker's own keys, fileReservedTime among them, come from gateway.config).
FIXED_BROKER_CONFIG = {
    "brokerId": "0",
    "brokerRole": "ASYNC_MASTER",
    "filterServerNums": "0",
    "msgTraceTopicName": "RMQ_SYS_TRACE_TOPIC",
    "slaveReadEnable": "false",
    "traceTopicEnable": "false",
    "useTLS": "false",
    "autoCreateSubscriptionGroup": "true",
}
MAX_QUERY_CQ = 1024  # index entries per QUERY_CONSUME_QUEUE
CALL_CONSUMER_TIMEOUT_S = 5.0  # Broker2Client.callClient
VALID_GROUP = re.compile(r"^[%|a-zA-Z0-9_-]+$")
MAX_GROUP_LENGTH = 255


def disk_ratio(path: Path) -> float:
    """The used share of the file system holding ``path`` (commitLogDiskRatio)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return 0.0
    return (usage.total - usage.free) / usage.total if usage.total else 0.0


def _phys_offset(record: bytes) -> int:
    return int.from_bytes(record[PHYS_OFFSET_POS : PHYS_OFFSET_POS + 8], "big", signed=True)
