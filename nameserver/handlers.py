"""Name server request processors (DefaultRequestProcessor / ClientRequestProcessor)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import RemotingCommand
from codec.headers import (
    KvConfigRequestHeader,
    KvNamespaceRequestHeader,
    RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
    TopicRequestHeader,
    UnregisterBrokerRequestHeader,
    decode_header,
    encode_header,
)
from nameserver.routes import RouteTable, TopicRegistration
from remoting.connection import Connection
from remoting.errors import RequestError
from remoting.server import DispatchTable


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_register_body(body: bytes) -> list[TopicRegistration]:
    if not body:
        return []
    data = jsonbody.loads(body)
    wrapper = data.get("topicConfigSerializeWrapper") or {}
    table: dict[str, Any] = wrapper.get("topicConfigTable") or {}
    topics = []
    for name, cfg in table.items():
        try:
            topics.append(
                TopicRegistration(
                    name=cfg.get("topicName") or name,
                    read_queue_nums=int(cfg.get("readQueueNums", 0)),
                    write_queue_nums=int(cfg.get("writeQueueNums", 0)),
                    perm=int(cfg.get("perm", 6)),
                    topic_sys_flag=int(cfg.get("topicSysFlag", 0)),
                )
            )
        except (TypeError, ValueError, AttributeError) as err:
            raise RequestError(ResponseCode.SYSTEM_ERROR, f"bad topic config for {name!r}: {err}") from err
    return topics


class NameServerHandlers:
    def __init__(self, routes: RouteTable, clock: Callable[[], int] = _now_ms) -> None:
        self.routes = routes
        self.clock = clock
        self.listen_host, self.listen_port = "", 0  # set once the server listens (GET_NAMESRV_CONFIG)

    def table(self) -> DispatchTable:
        table = DispatchTable()
        table.register(RequestCode.REGISTER_BROKER, self.register_broker)
        table.register(RequestCode.UNREGISTER_BROKER, self.unregister_broker)
        table.register(RequestCode.GET_ROUTEINFO_BY_TOPIC, self.get_route)
        table.register(RequestCode.GET_BROKER_CLUSTER_INFO, self.cluster_info)
        table.register(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER, self.all_topics)
        table.register(RequestCode.GET_TOPICS_BY_CLUSTER, self.topics_by_cluster)
        table.register(RequestCode.DELETE_TOPIC_IN_NAMESRV, self.delete_topic)
        table.register(RequestCode.PUT_KV_CONFIG, self.put_kv)
        table.register(RequestCode.GET_KV_CONFIG, self.get_kv)
        table.register(RequestCode.DELETE_KV_CONFIG, self.delete_kv)
        table.register(RequestCode.GET_KVLIST_BY_NAMESPACE, self.kv_list)
        table.register(RequestCode.GET_NAMESRV_CONFIG, self.namesrv_config)
        table.register(RequestCode.WIPE_WRITE_PERM_OF_BROKER, self.wipe_write_perm)
        table.register(RequestCode.ADD_WRITE_PERM_OF_BROKER, self.add_write_perm)
        return table

    async def register_broker(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(RegisterBrokerRequestHeader, cmd.ext_fields)
        if h.compressed:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                "compressed broker registration is not supported; set compressedRegister=false",
            )
        self.routes.register_broker(
            cluster=h.cluster_name,
            broker_name=h.broker_name,
            broker_addr=h.broker_addr,
            broker_id=h.broker_id,
            topics=parse_register_body(cmd.body),
            now_ms=self.clock(),
            timeout_ms=h.heartbeat_timeout_millis or 120_000,
            connection_id=conn.id,
        )
        ext = encode_header(RegisterBrokerResponseHeader(ha_server_addr="", master_addr=""))
        return cmd.response(ResponseCode.SUCCESS, ext_fields=ext, body=jsonbody.dumps({"table": {}}))

    async def unregister_broker(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(UnregisterBrokerRequestHeader, cmd.ext_fields)
        self.routes.unregister_broker(h.broker_addr)
        return cmd.response(ResponseCode.SUCCESS)

    async def get_route(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        route = self.routes.route(h.topic)
        if route is None:
            return cmd.response(
                ResponseCode.TOPIC_NOT_EXIST, f"No topic route info in name server for the topic: {h.topic}"
            )
        order_conf = self.routes.kv.get("ORDER_TOPIC_CONFIG", {}).get(h.topic)
        if order_conf:
            route["orderTopicConf"] = order_conf
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(route))

    async def cluster_info(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps(self.routes.cluster_info()))

    async def all_topics(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"topicList": self.routes.topic_list()}))

    async def topics_by_cluster(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        cluster = cmd.ext_fields.get("cluster", "")
        return cmd.response(
            ResponseCode.SUCCESS, body=jsonbody.dumps({"topicList": self.routes.topics_of_cluster(cluster)})
        )

    async def delete_topic(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """DELETE_TOPIC_IN_NAMESRV, for any topic: Apache's name server has no system-topic check (the broker's
        DELETE_TOPIC_IN_BROKER has), and a broker's next registration routes a topic it still has again."""
        h = decode_header(TopicRequestHeader, cmd.ext_fields)
        self.routes.delete_topic(h.topic, cmd.ext_fields.get("clusterName") or None)
        return cmd.response(ResponseCode.SUCCESS)

    async def put_kv(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(KvConfigRequestHeader, cmd.ext_fields)
        if h.value is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "the custom field <value> is null")
        self.routes.kv.setdefault(h.namespace, {})[h.key] = h.value
        return cmd.response(ResponseCode.SUCCESS)

    async def get_kv(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(KvConfigRequestHeader, cmd.ext_fields)
        value = self.routes.kv.get(h.namespace, {}).get(h.key)
        if value is None:
            return cmd.response(ResponseCode.QUERY_NOT_FOUND, f"No config item, Namespace: {h.namespace} Key: {h.key}")
        return cmd.response(ResponseCode.SUCCESS, ext_fields={"value": value})

    async def delete_kv(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(KvConfigRequestHeader, cmd.ext_fields)
        self.routes.kv.get(h.namespace, {}).pop(h.key, None)
        return cmd.response(ResponseCode.SUCCESS)

    async def kv_list(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        h = decode_header(KvNamespaceRequestHeader, cmd.ext_fields)
        table = self.routes.kv.get(h.namespace)
        if not table:
            return cmd.response(ResponseCode.QUERY_NOT_FOUND, f"No config item, Namespace: {h.namespace}")
        return cmd.response(ResponseCode.SUCCESS, body=jsonbody.dumps({"table": table}))

    async def namesrv_config(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """GET_NAMESRV_CONFIG: the name server's settings as ``key=value`` lines (Apache: NamesrvConfig and
        NettyServerConfig); pocketmq's name server has its listening address and nothing else to set."""
        values = {"listenPort": str(self.listen_port), "bindAddress": self.listen_host, "orderMessageEnable": "false"}
        text = "".join(f"{key}={value}\n" for key, value in sorted(values.items()))
        return cmd.response(ResponseCode.SUCCESS, body=text.encode())

    async def wipe_write_perm(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        name = _broker_name(cmd)
        count = self.routes.set_write_perm(name, writable=False)
        return cmd.response(ResponseCode.SUCCESS, ext_fields={"wipeTopicCount": str(count)})

    async def add_write_perm(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        name = _broker_name(cmd)
        count = self.routes.set_write_perm(name, writable=True)
        return cmd.response(ResponseCode.SUCCESS, ext_fields={"addTopicCount": str(count)})


def _broker_name(cmd: RemotingCommand) -> str:
    name = cmd.ext_fields.get("brokerName") or ""
    if not name.strip():
        raise RequestError(ResponseCode.INVALID_PARAMETER, "brokerName is missing")
    return name
