"""HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP, CHECK_CLIENT_CONFIG (ClientManageProcessor)."""

from __future__ import annotations

import logging

from codec import jsonbody
from codec.codes import RETRY_GROUP_TOPIC_PREFIX, RequestCode, ResponseCode
from codec.command import RemotingCommand, request
from codec.headers import ConsumerGroupRequestHeader, UnregisterClientRequestHeader, decode_header
from codec.heartbeat import make_subscription, parse_heartbeat
from gateway.clients import ClientChannel
from gateway.context import BrokerContext, now_ms
from remoting.connection import Connection
from remoting.faults import CLIENT_ID_ATTRIBUTE

log = logging.getLogger("pocketmq.broker")


class ClientHandlers:
    def __init__(self, ctx: BrokerContext, connections: dict[int, Connection]) -> None:
        self.ctx = ctx
        self.connections = connections  # live connections by id, to notify consumers

    def notify_group_changed(self, group_name: str) -> None:
        """NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member, so they rebalance now instead of in 20 s."""
        group = self.ctx.clients.consumers.get(group_name)
        if group is None:
            return
        for conn_id in group.channels:
            conn = self.connections.get(conn_id)
            if conn is not None:
                conn.send_oneway(request(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": group_name}))

    async def heart_beat(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        hb = parse_heartbeat(cmd.body)
        conn.attributes[CLIENT_ID_ATTRIBUTE] = hb.client_id  # fault rules and the trace name the connection's client
        channel = ClientChannel(hb.client_id, conn.id, conn.peer_text, cmd.language, cmd.version, now_ms())
        for group in hb.producer_groups:
            self.ctx.clients.register_producer(group, channel)
        if hb.producer_groups:
            self.ctx.transactions.producer_online()
        for data in hb.consumers:
            await self.ctx.topics.ensure_system_topic(RETRY_GROUP_TOPIC_PREFIX + data.group)
            for sub in self.ctx.clients.to_remember(data.group, data.subscriptions):
                await self.ctx.store.save_subscription(
                    data.group, sub.topic, sub.expression_type, sub.expression, sub.sub_version
                )
            if self.ctx.clients.register_consumer(data, channel):
                log.info(
                    "consumer group %s changed: %s", data.group, self.ctx.clients.consumers[data.group].client_ids()
                )
                self.notify_group_changed(data.group)
        return cmd.response(ResponseCode.SUCCESS)

    async def unregister_client(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(UnregisterClientRequestHeader, cmd.ext_fields)
        for group in self.ctx.clients.unregister(conn.id, h.producer_group, h.consumer_group):
            self.notify_group_changed(group)
        return cmd.response(ResponseCode.SUCCESS)

    async def consumer_list(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(ConsumerGroupRequestHeader, cmd.ext_fields)
        group = self.ctx.clients.consumers.get(h.consumer_group)
        if group is None or not group.channels:
            return cmd.response(ResponseCode.SYSTEM_ERROR, f"no consumer for this group, {h.consumer_group}")
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"consumerIdList": group.client_ids()}))

    async def check_client_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """Java push consumers ask before starting whether their (non-TAG) expression compiles here."""
        data = jsonbody.loads(cmd.body) if cmd.body else {}
        sub_data = data.get("subscriptionData") or {} if isinstance(data, dict) else {}
        sub = make_subscription(
            str(sub_data.get("topic") or ""), sub_data.get("subString"), sub_data.get("expressionType"), 0
        )
        if sub.error is not None:
            return cmd.response(ResponseCode.SUBSCRIPTION_PARSE_FAILED, sub.error)
        return cmd.response(ResponseCode.SUCCESS)

    def connection_closed(self, conn: Connection) -> None:
        for group in self.ctx.clients.connection_closed(conn.id):
            self.notify_group_changed(group)

    def expire(self) -> None:
        for group in self.ctx.clients.expire(now_ms()):
            log.info("consumer group %s lost a member after 120 s without heartbeat", group)
            self.notify_group_changed(group)
