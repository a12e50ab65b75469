"""The JSON admin API on the HTTP port: what the console and scripts need, from the same state and with the same
rules as the remoting admin codes. GET reads, POST acts (a JSON object body, Content-Type: application/json).

    GET  /api/broker                     name, cluster, addresses, runtime counters and rates, store size
    GET  /api/topics                     every topic: config, queues with min / max offsets, put rate
    GET  /api/groups                     every known group: config, online clients, per topic and queue the lag
    GET  /api/connections                remoting clients (group, client id, language, version, address), gRPC ones
    GET  /api/messages?topic=&queueId=&offset=&count=   a queue's messages from an offset (at most 32)
    GET  /api/messages/by-key?topic=&key=               messages carrying a key (at most 32)
    GET  /api/messages/by-id?id=[&topic=]               by offset message id or UNIQ_KEY
    GET  /api/pending                    delayed (scheduled) and half (transactional) messages waiting
    POST /api/topics/create              {"topic", "readQueueNums", "writeQueueNums", "perm", "messageType"}
    POST /api/topics/delete              {"topic"}
    POST /api/groups/reset-offset        {"group", "topic", "timestamp" (ms) | "skip": true}
    POST /api/messages/send              {"topic", "body", "tags", "keys", "properties", "delayLevel"}
    POST /api/messages/resend            {"msgId", "topic", "group"}: to its topic, or to the group's retry topic
    GET  /api/clock                      {"mode": "system" | "virtual", "nowMs", "now"}
    POST /api/clock/advance              {"ms": N} or {"duration": "2h"}: move a virtual clock (docs/testing.md)

Errors are ``{"error": "..."}`` with 400 (bad input, refused), 404 (no such topic or message) or 409 (nothing to
resend unambiguously, or a clock to move that is not virtual).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codec.codes import DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX, ResponseCode
from gateway import message_lookup
from gateway.admin_actions import AdminActions
from gateway.clock import VirtualClock, check_advance_ms, parse_duration
from gateway.clock_control import ClockControl, ClockError, iso_time
from gateway.context import BrokerContext
from gateway.handlers.admin import topic_config_json
from gateway.handlers.send import SendHandler
from gateway.http_endpoint import HttpError, HttpRequest, HttpResponse, Routes, json_response
from gateway.stats import GROUP_GET_NUMS, TOPIC_PUT_NUMS
from gateway.store_size import store_bytes
from gateway.topic_attributes import MESSAGE_TYPES, MIXED
from gateway.topics import is_system_topic
from remoting.errors import RequestError

MAX_TEXT = 1024  # characters of a name, key or id in a request
MAX_PROPERTIES = 64


def _text(fields: dict[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise HttpError(400, f"{name} is required")
        return default
    if not isinstance(value, str):
        raise HttpError(400, f"{name} must be a string")
    if len(value) > MAX_TEXT:
        raise HttpError(400, f"{name} is longer than {MAX_TEXT} characters")
    return value


def _int(fields: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        if default is None:
            raise HttpError(400, f"{name} is required")
        return default
    if isinstance(value, bool):
        raise HttpError(400, f"{name} must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HttpError(400, f"{name} must be a whole number, not {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise HttpError(400, f"{name} must be {low}..{high}")
    return number


def _refused(err: RequestError) -> HttpError:
    status = 404 if err.code == ResponseCode.TOPIC_NOT_EXIST else 400
    return HttpError(status, err.remark)


class AdminApi:
    def __init__(
        self, ctx: BrokerContext, send_handler: SendHandler, grpc_clients: Callable[[], Any] = lambda: None
    ) -> None:
        self.ctx = ctx
        self.actions = AdminActions(ctx, send_handler)
        self.grpc_clients = grpc_clients  # -> gateway.grpc.sessions.Sessions once the gRPC side is up, else None

    def routes(self) -> Routes:
        def reading(fn: Callable[..., Any]) -> Any:
            async def handle(request: HttpRequest) -> HttpResponse:
                return json_response(await fn())

            return handle

        return {
            ("GET", "/api/broker"): reading(self.broker),
            ("GET", "/api/topics"): reading(self.topics),
            ("GET", "/api/groups"): reading(self.groups),
            ("GET", "/api/connections"): reading(self.connections),
            ("GET", "/api/pending"): reading(self.pending),
            ("GET", "/api/invariants"): reading(self.invariants),
            ("GET", "/api/messages"): self.browse,
            ("GET", "/api/messages/by-key"): self.by_key,
            ("GET", "/api/messages/by-id"): self.by_id,
            ("POST", "/api/topics/create"): self.create_topic,
            ("POST", "/api/topics/delete"): self.delete_topic,
            ("POST", "/api/groups/reset-offset"): self.reset_offset,
            ("POST", "/api/messages/send"): self.send,
            ("POST", "/api/messages/resend"): self.resend,
            ("GET", "/api/clock"): reading(self.clock),
            ("POST", "/api/clock/advance"): self.advance_clock,
        }

    async def clock(self) -> dict[str, Any]:
        now = self.ctx.clock.now_ms()
        mode = "virtual" if isinstance(self.ctx.clock, VirtualClock) else "system"
        return {"mode": mode, "nowMs": now, "now": iso_time(now)}

    async def advance_clock(self, request: HttpRequest) -> HttpResponse:
        fields = request.json()
        try:
            control = ClockControl(self.ctx)
        except ClockError as err:
            raise HttpError(409, str(err)) from None
        ms, duration = fields.get("ms"), fields.get("duration")
        if (ms is None) == (duration is None):
            raise HttpError(400, 'give either "ms" (a whole number) or "duration" (e.g. "2h", "90s", "500ms")')
        try:
            if duration is not None:
                if not isinstance(duration, str):
                    raise HttpError(400, 'duration must be a string such as "2h", "90s" or "500ms"')
                ms = parse_duration(duration[:MAX_TEXT])
            elif isinstance(ms, bool) or not isinstance(ms, int):
                raise HttpError(400, "ms must be a whole number of milliseconds")
            advanced = await control.advance(check_advance_ms(ms))
        except ValueError as err:
            raise HttpError(400, str(err)) from None
        except ClockError as err:
            raise HttpError(503, str(err)) from None
        return json_response(advanced.json())

    def _now_s(self) -> int:
        return self.ctx.clock.now_ms() // 1000

    async def broker(self) -> dict[str, Any]:
        cfg, stats = self.ctx.config, self.ctx.stats
        return {
            "brokerName": cfg.broker_name, "cluster": cfg.cluster, "address": cfg.broker_addr,
            "namesrvAddr": cfg.namesrv_addrs, "putTps": stats.tps_text("put"), "getTps": stats.tps_text("get"),
            **stats.day_totals(), "earliestMessageTimeStamp": await self.ctx.store.earliest_message_time(),
            "scheduledMessages": await self.ctx.store.scheduled_count(),
            "pendingHalfMessages": len(self.ctx.transactions.pending), "storeBytes": store_bytes(cfg.data_dir),
            "dataDir": str(cfg.data_dir), "topicCount": len(self.ctx.topics.topics),
            "connectionCount": len(self.ctx.connections), "delayLevels": list(self.ctx.delays.levels),
        }  # fmt: skip

    async def invariants(self) -> dict[str, Any]:
        """The invariant checker's counts per invariant and its last violations, newest first."""
        return self.ctx.invariants.snapshot()

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
                "system": self._internal(name),
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

    async def pending(self) -> dict[str, Any]:
        return {
            "delayed": await message_lookup.pending_delayed(self.ctx),
            "half": await message_lookup.pending_half(self.ctx),
        }

    def _internal(self, topic: str) -> bool:
        """A broker's own topic or a group's retry / dead-letter one (the console lists them apart)."""
        cfg = self.ctx.config
        return is_system_topic(topic, cluster=cfg.cluster, broker_name=cfg.broker_name) or topic.startswith(
            (RETRY_GROUP_TOPIC_PREFIX, DLQ_GROUP_TOPIC_PREFIX)
        )

    def _known_topic(self, name: str) -> str:
        if self.ctx.topics.get(name) is None:
            raise HttpError(404, f"no topic {name} in this broker")
        return name

    async def browse(self, request: HttpRequest) -> HttpResponse:
        q = request.query
        topic = self._known_topic(_text(q, "topic"))
        queue_id = _int(q, "queueId", 0, 0, 1023)
        offset = _int(q, "offset", None, 0, 1 << 62)
        count = _int(q, "count", 16, 1, message_lookup.MAX_BROWSE)
        messages = await message_lookup.browse(self.ctx, topic, queue_id, offset, count)
        store = self.ctx.store
        return json_response({
            "topic": topic, "queueId": queue_id, "minOffset": store.min_offset(topic, queue_id),
            "maxOffset": store.max_offset(topic, queue_id), "messages": messages,
        })  # fmt: skip

    async def by_key(self, request: HttpRequest) -> HttpResponse:
        topic = self._known_topic(_text(request.query, "topic"))
        return json_response({"messages": await message_lookup.by_key(self.ctx, topic, _text(request.query, "key"))})

    async def by_id(self, request: HttpRequest) -> HttpResponse:
        topic = _text(request.query, "topic", required=False) or None
        if topic is not None:
            self._known_topic(topic)
        messages = await message_lookup.by_id(self.ctx, _text(request.query, "id"), topic)
        if not messages:
            raise HttpError(404, "no stored message has this id")
        return json_response({"messages": messages})

    async def create_topic(self, request: HttpRequest) -> HttpResponse:
        fields = request.json()
        message_type = _text(fields, "messageType", required=False)
        if message_type and message_type not in (*MESSAGE_TYPES, MIXED):
            raise HttpError(400, f"messageType must be one of {', '.join((*MESSAGE_TYPES, MIXED))}")
        try:
            cfg = await self.actions.create_topic(
                _text(fields, "topic"), _int(fields, "readQueueNums", 4, 1, 1024),
                _int(fields, "writeQueueNums", 4, 1, 1024), _int(fields, "perm", 6, 0, 7), message_type or None,
            )  # fmt: skip
        except RequestError as err:
            raise _refused(err) from None
        return json_response(topic_config_json(cfg))

    async def delete_topic(self, request: HttpRequest) -> HttpResponse:
        topic = _text(request.json(), "topic")
        try:
            await self.actions.delete_topic(topic)
        except RequestError as err:
            raise _refused(err) from None
        return json_response({"deleted": topic})

    async def reset_offset(self, request: HttpRequest) -> HttpResponse:
        fields = request.json()
        group, topic = _text(fields, "group"), _text(fields, "topic")
        skip = fields.get("skip") is True
        timestamp = None if skip else _int(fields, "timestamp", None, 0, 1 << 62)
        try:
            return json_response(await self.actions.reset_offsets(group, topic, timestamp))
        except RequestError as err:
            raise _refused(err) from None

    async def send(self, request: HttpRequest) -> HttpResponse:
        fields = request.json()
        body = fields.get("body")
        if not isinstance(body, str) or not body:
            raise HttpError(400, "body is required: the message text")
        keys = fields.get("keys") or []
        if isinstance(keys, str):
            keys = keys.split()
        properties = fields.get("properties") or {}
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise HttpError(400, "keys must be a list of strings (or one space-separated string)")
        if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
            raise HttpError(400, "properties must be an object of string values")
        if len(properties) > MAX_PROPERTIES:
            raise HttpError(400, f"more than {MAX_PROPERTIES} properties")
        try:
            sent = await self.actions.send_test(
                _text(fields, "topic"), body.encode(), _text(fields, "tags", required=False), keys, properties,
                _int(fields, "delayLevel", 0, 0, 1000), request.peer,
            )  # fmt: skip
        except RequestError as err:
            raise _refused(err) from None
        return json_response(sent)

    async def resend(self, request: HttpRequest) -> HttpResponse:
        fields = request.json()
        msg_id = _text(fields, "msgId")
        topic = _text(fields, "topic", required=False) or None
        group = _text(fields, "group", required=False) or None
        records = await message_lookup.records_by_id(self.ctx, msg_id, topic)
        if not records:
            raise HttpError(404, "no stored message has this id")
        if len(records) > 1:
            raise HttpError(409, f"{len(records)} messages have this key; resend by their offset message id")
        try:
            return json_response(await self.actions.resend(records[0], group, request.peer))
        except RequestError as err:
            raise _refused(err) from None
