"""The JSON admin API on the HTTP port (read-only so far): what the console and scripts need, from the same
state the remoting admin codes read.

    GET /api/broker       name, cluster, addresses, runtime counters and rates, store size
    GET /api/topics       every topic: config, queues with min / max offsets, put rate
    GET /api/groups       every known group: config, online clients, per topic and queue the lag
    GET /api/connections  remoting clients (group, client id, language, version, address) and gRPC clients
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codec import jsonbody
from gateway.context import BrokerContext
from gateway.stats import GROUP_GET_NUMS, TOPIC_PUT_NUMS

JSON = "application/json"


class AdminApi:
    def __init__(self, ctx: BrokerContext, grpc_clients: Callable[[], Any] = lambda: None) -> None:
        self.ctx = ctx
        self.grpc_clients = grpc_clients  # -> gateway.grpc.sessions.Sessions once the gRPC side is up, else None

    def routes(self) -> dict[str, Any]:
        async def wrap(fn: Any) -> tuple[str, bytes]:
            return JSON, jsonbody.dumps(await fn())

        return {
            "/api/broker": lambda: wrap(self.broker),
            "/api/topics": lambda: wrap(self.topics),
            "/api/groups": lambda: wrap(self.groups),
            "/api/connections": lambda: wrap(self.connections),
        }

    def _now_s(self) -> int:
        return self.ctx.clock.now_ms() // 1000

    async def broker(self) -> dict[str, Any]:
        cfg, stats = self.ctx.config, self.ctx.stats
        return {
            "brokerName": cfg.broker_name, "cluster": cfg.cluster, "address": cfg.broker_addr,
            "namesrvAddr": cfg.namesrv_addrs, "putTps": stats.tps_text("put"), "getTps": stats.tps_text("get"),
            **stats.day_totals(), "earliestMessageTimeStamp": await self.ctx.store.earliest_message_time(),
            "scheduledMessages": await self.ctx.store.scheduled_count(),
            "pendingHalfMessages": len(self.ctx.transactions.pending),
        }  # fmt: skip

    async def topics(self) -> list[dict[str, Any]]:
        store, now_s = self.ctx.store, self._now_s()
        out = []
        for name, cfg in sorted(self.ctx.topics.topics.items()):
            counter = self.ctx.stats.counters[TOPIC_PUT_NUMS].get(name)
            queues = [
                {"queueId": q, "minOffset": store.min_offset(name, q), "maxOffset": store.max_offset(name, q)}
                for q in range(max(cfg.read_queue_nums, cfg.write_queue_nums))
            ]
            out.append({
                "topic": name, "readQueueNums": cfg.read_queue_nums, "writeQueueNums": cfg.write_queue_nums,
                "perm": cfg.perm, "order": cfg.order, "attributes": cfg.attributes, "queues": queues,
                "putTps": round(counter.rate(60, now_s), 3) if counter else 0.0,
                "messages": sum(q["maxOffset"] - q["minOffset"] for q in queues),
            })  # fmt: skip
        return out

    async def groups(self) -> list[dict[str, Any]]:
        ctx, store, now_s = self.ctx, self.ctx.store, self._now_s()
        names = set(ctx.groups.configured) | set(ctx.clients.consumers) | set(store.consumer_groups())
        out = []
        for name in sorted(names):
            online = ctx.clients.consumers.get(name)
            topics: dict[str, list[dict[str, int]]] = {}
            for (topic, queue_id), offset in sorted(store.consumer_offsets(name).items()):
                broker_offset = store.max_offset(topic, queue_id)
                topics.setdefault(topic, []).append({
                    "queueId": queue_id, "brokerOffset": broker_offset, "consumerOffset": offset,
                    "lag": max(broker_offset - offset, 0),
                })  # fmt: skip
            config = ctx.groups.get(name)
            out.append({
                "group": name, "retryMaxTimes": config.retry_max_times, "orderly": config.orderly,
                "consumeEnable": config.consume_enable,
                "clients": [c.client_id for c in online.channels.values()] if online else [],
                "topics": [
                    {"topic": t, "queues": qs, "lag": sum(q["lag"] for q in qs),
                     "getTps": self._get_tps(t, name, now_s)}
                    for t, qs in topics.items()
                ],
            })  # fmt: skip
        return out

    def _get_tps(self, topic: str, group: str, now_s: int) -> float:
        counter = self.ctx.stats.counters[GROUP_GET_NUMS].get(f"{topic}@{group}")
        return round(counter.rate(60, now_s), 3) if counter else 0.0

    async def connections(self) -> dict[str, Any]:
        ctx = self.ctx

        def row(role: str, group: str, c: Any) -> dict[str, Any]:
            return {"role": role, "group": group, "clientId": c.client_id, "language": c.language,
                    "version": c.version, "address": c.address}  # fmt: skip

        remoting = [
            row("consumer", group, c)
            for group, consumers in sorted(ctx.clients.consumers.items())
            for c in consumers.channels.values()
        ]
        remoting += [
            row("producer", group, c)
            for group, channels in sorted(ctx.clients.producers.items())
            for c in channels.values()
        ]
        sessions = self.grpc_clients()
        grpc = [
            {"clientId": s.client_id, "connected": s.send is not None, "clientType": int(s.settings.client_type)}
            for s in (sessions.by_client.values() if sessions is not None else ())
        ]
        return {"remoting": remoting, "grpc": grpc, "openConnections": len(ctx.connections)}
