"""``apache.rocketmq.v2.MessagingService``: routes, client sessions and sends (the rest follows, docs/grpc.md).

As the Apache proxy does (RouteActivity, ClientActivity, SendMessageActivity), a gRPC send becomes a remoting
send inside the broker: the message's system properties turn into the same properties a 4.x client sends, and
the remoting send path stores it (auto-created topics, delays and timers, half messages, dead letters). So a
message sent over gRPC is the same record a remoting consumer pulls.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import zlib
from dataclasses import dataclass
from typing import cast

from google.protobuf.duration_pb2 import Duration

from codec.codes import (
    AUTO_CREATE_TOPIC,
    KEY_SEPARATOR,
    PROPERTY_BORN_HOST,
    PROPERTY_BORN_TIMESTAMP,
    PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS,
    PROPERTY_KEYS,
    PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_RECONSUME_TIME,
    PROPERTY_SHARDING_KEY,
    PROPERTY_TAGS,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_TRACE_CONTEXT,
    PROPERTY_TRAN_MSG,
    PROPERTY_UNIQ_KEY,
    SYSTEM_PROPERTY_NAMES,
    TRANSACTION_COMMIT_TYPE,
    TRANSACTION_ROLLBACK_TYPE,
    MessageSysFlag,
    Perm,
    RequestCode,
    ResponseCode,
)
from codec.command import RemotingCommand, request
from codec.errors import CodecError
from codec.grpc_frames import Status
from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s
from codec.message_id import decode_offset_msg_id
from codec.properties import decode_properties, encode_properties
from codec.record import decode_record
from gateway.context import BrokerContext
from gateway.grpc.consumer import ConsumerMethods
from gateway.grpc.convert import to_v2_message
from gateway.grpc.pull import PullMethods
from gateway.grpc.sessions import CLIENT_ID, Session, Sessions
from gateway.grpc.status import OK, status
from gateway.grpc.times import duration_ms, timestamp_ms
from gateway.handlers.send import SendHandler
from gateway.handlers.transaction import EndTransactionHandler
from gateway.topic_attributes import accepted_types, message_type_of, type_refused
from remoting.connection import Connection
from remoting.errors import RequestError
from remoting.grpc_server import CallContext, GrpcError, Kind, Method

log = logging.getLogger("pocketmq.grpc")

SERVICE = "/apache.rocketmq.v2.MessagingService/"
# Apache's proxy defaults (ProxyConfig): producers retry 3 times, 10 ms doubling to 1 s; consumers get batches of
# 32 and a 20 s long poll; a consumer group's retries (retryMaxTimes) follow the delay-level schedule from level 3.
PRODUCER_MAX_ATTEMPTS = 3
CONSUMER_BATCH_SIZE = 32
LONG_POLLING_TIMEOUT_S = 20
RETRY_BACKOFF_S = (1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200)

# Remoting send answers as v2 codes (the proxy's ResponseBuilder does the same for the codes a send can get).
_SEND_CODES = {
    ResponseCode.TOPIC_NOT_EXIST: d.TOPIC_NOT_FOUND,
    ResponseCode.NO_PERMISSION: d.FORBIDDEN,
    ResponseCode.MESSAGE_ILLEGAL: d.BAD_REQUEST,
    ResponseCode.INVALID_PARAMETER: d.BAD_REQUEST,
    ResponseCode.SYSTEM_BUSY: d.TOO_MANY_REQUESTS,
}


@dataclass(slots=True)
class _Caller:
    """What the remoting send path reads of a connection: the sender's address."""

    peer: tuple[str, int]

    @property
    def peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"


def _duration(seconds: float) -> Duration:
    out = Duration()
    out.FromMilliseconds(int(seconds * 1000))
    return out


class MessagingService:
    def __init__(self, ctx: BrokerContext, send_handler: SendHandler) -> None:
        self.ctx = ctx
        self.send_handler = send_handler
        self.sessions = Sessions()
        self.end_transaction_handler = EndTransactionHandler(ctx)
        self.consumer = ConsumerMethods(ctx)
        self.consumer.pop.client_connected = self.sessions.connected
        self.pull = PullMethods(ctx)
        # Transaction back-checks go to a remoting producer of the group, or else to a gRPC one (whose producer
        # group is the topic, as the proxy names it) over its Telemetry stream.
        remoting_producer = ctx.transactions.find_producer
        ctx.transactions.find_producer = lambda group: remoting_producer(group) or self._check_target(group)

    def methods(self) -> dict[str, Method]:
        c, p = self.consumer, self.pull
        return {
            SERVICE + "QueryRoute": Method(Kind.UNARY, s.QueryRouteRequest, self.query_route),
            SERVICE + "Heartbeat": Method(Kind.UNARY, s.HeartbeatRequest, self.heartbeat),
            SERVICE + "SendMessage": Method(Kind.UNARY, s.SendMessageRequest, self.send_message),
            SERVICE + "Telemetry": Method(Kind.BIDI, s.TelemetryCommand, self.telemetry),
            SERVICE + "NotifyClientTermination": Method(
                Kind.UNARY, s.NotifyClientTerminationRequest, self.notify_client_termination
            ),
            SERVICE + "EndTransaction": Method(Kind.UNARY, s.EndTransactionRequest, self.end_transaction),
            SERVICE + "QueryAssignment": Method(Kind.UNARY, s.QueryAssignmentRequest, c.query_assignment),
            SERVICE + "ReceiveMessage": Method(Kind.SERVER_STREAM, s.ReceiveMessageRequest, c.receive_message),
            SERVICE + "AckMessage": Method(Kind.UNARY, s.AckMessageRequest, c.ack_message),
            SERVICE + "ChangeInvisibleDuration": Method(
                Kind.UNARY, s.ChangeInvisibleDurationRequest, c.change_invisible_duration
            ),
            SERVICE + "ForwardMessageToDeadLetterQueue": Method(
                Kind.UNARY, s.ForwardMessageToDeadLetterQueueRequest, c.forward_to_dead_letter_queue
            ),
            SERVICE + "PullMessage": Method(Kind.SERVER_STREAM, s.PullMessageRequest, p.pull_message),
            SERVICE + "UpdateOffset": Method(Kind.UNARY, s.UpdateOffsetRequest, p.update_offset),
            SERVICE + "GetOffset": Method(Kind.UNARY, s.GetOffsetRequest, p.get_offset),
            SERVICE + "QueryOffset": Method(Kind.UNARY, s.QueryOffsetRequest, p.query_offset),
            SERVICE + "RecallMessage": Method(Kind.UNARY, s.RecallMessageRequest, self.recall_message),
        }

    # ---- routes ---------------------------------------------------------------------------------------

    async def query_route(self, req: s.QueryRouteRequest, call: CallContext) -> s.QueryRouteResponse:
        name = req.topic.name
        if not name:
            return s.QueryRouteResponse(status=status(d.ILLEGAL_TOPIC, "the topic name is empty"))
        topic = self.ctx.topics.get(name)
        if topic is None:
            try:  # auto-created as a producer's first send would (autoCreateTopicEnable)
                topic = await self.ctx.topics.for_send(name, AUTO_CREATE_TOPIC, self.ctx.topics.default_queue_nums)
            except RequestError as err:
                return s.QueryRouteResponse(status=status(d.TOPIC_NOT_FOUND, err.remark))
        endpoints = req.endpoints
        if not endpoints.addresses:  # the address this client connected to (containers, port forwarding)
            host, port = call.local
            endpoints = d.Endpoints(scheme=d.IPv4, addresses=[d.Address(host=host, port=port)])
        broker = d.Broker(name=self.ctx.config.broker_name, id=0, endpoints=endpoints)
        readable, writable = bool(topic.perm & Perm.READ), bool(topic.perm & Perm.WRITE)
        queues = []
        for queue_id in range(max(topic.read_queue_nums, topic.write_queue_nums)):
            read = readable and queue_id < topic.read_queue_nums
            write = writable and queue_id < topic.write_queue_nums
            permission = d.READ_WRITE if read and write else d.READ if read else d.WRITE if write else d.NONE
            queues.append(
                d.MessageQueue(
                    topic=req.topic,
                    id=queue_id,
                    permission=permission,
                    broker=broker,
                    accept_message_types=[d.MessageType.Value(t) for t in accepted_types(topic.attributes)],
                )
            )
        return s.QueryRouteResponse(status=OK, message_queues=queues)

    # ---- clients --------------------------------------------------------------------------------------

    async def telemetry(self, requests, send, call: CallContext) -> None:  # type: ignore[no-untyped-def]
        client_id = call.metadata.get(CLIENT_ID, "")
        try:
            async for command in requests:
                kind = command.WhichOneof("command")
                if not client_id:
                    await send(s.TelemetryCommand(status=status(d.CLIENT_ID_REQUIRED, f"{CLIENT_ID} is missing")))
                elif kind == "settings":
                    session = self.sessions.update(client_id, command.settings, call.connection_id, send)
                    settings = self.server_settings(command.settings)
                    await send(s.TelemetryCommand(status=OK, settings=settings))
                    if session.topics:
                        self.ctx.transactions.producer_online()
                elif kind in ("thread_stack_trace", "verify_message_result"):
                    log.info("client %s answered a %s", client_id, kind)
                else:
                    await send(
                        s.TelemetryCommand(status=status(d.BAD_REQUEST, f"a client does not send {kind or 'nothing'}"))
                    )
        finally:
            if client_id:
                self.sessions.stream_ended(client_id, send)

    def server_settings(self, client: d.Settings) -> d.Settings:
        """The client's settings with the server's parts filled in (GrpcClientSettingsManager)."""
        out = d.Settings()
        out.CopyFrom(client)
        out.metric.on = False  # no metric collector (the proxy's default metricCollectorMode OFF)
        if client.HasField("publishing"):
            policy = out.backoff_policy
            policy.max_attempts = PRODUCER_MAX_ATTEMPTS
            policy.exponential_backoff.initial.CopyFrom(_duration(0.01))
            policy.exponential_backoff.max.CopyFrom(_duration(1.0))
            policy.exponential_backoff.multiplier = 2
            out.publishing.validate_message_type = True
            out.publishing.max_body_size = self.ctx.config.max_message_size
        elif client.HasField("subscription"):
            out.subscription.receive_batch_size = CONSUMER_BATCH_SIZE
            out.subscription.long_polling_timeout.CopyFrom(_duration(LONG_POLLING_TIMEOUT_S))
            group = self.ctx.groups.get(client.subscription.group.name)
            out.subscription.fifo = group.orderly
            out.backoff_policy.max_attempts = group.max_attempts
            out.backoff_policy.customized_backoff.next.extend(_duration(x) for x in RETRY_BACKOFF_S)
        return out

    async def heartbeat(self, req: s.HeartbeatRequest, call: CallContext) -> s.HeartbeatResponse:
        session = self.sessions.get(call.metadata.get(CLIENT_ID, ""))
        if session is None:
            return s.HeartbeatResponse(
                status=status(d.UNRECOGNIZED_CLIENT_TYPE, "cannot find client settings for this client")
            )
        return s.HeartbeatResponse(status=OK)

    async def notify_client_termination(
        self, req: s.NotifyClientTerminationRequest, call: CallContext
    ) -> s.NotifyClientTerminationResponse:
        self.sessions.terminated(call.metadata.get(CLIENT_ID, ""))
        return s.NotifyClientTerminationResponse(status=OK)

    # ---- sends ----------------------------------------------------------------------------------------

    async def send_message(self, req: s.SendMessageRequest, call: CallContext) -> s.SendMessageResponse:
        if not req.messages:
            return s.SendMessageResponse(status=status(d.MESSAGE_CORRUPTED, "no message to send"))
        try:
            commands = [self._as_remoting_send(m, call) for m in req.messages]
        except GrpcError:
            raise
        except _Refused as refused:
            return s.SendMessageResponse(status=refused.status, entries=[s.SendResultEntry(status=refused.status)])
        caller = cast(Connection, _Caller(call.peer))
        if len(commands) == 1:  # the usual request: no gather (a task per message)
            answers = [await self.send_handler.send(commands[0], caller)]
        else:
            answers = await asyncio.gather(*(self.send_handler.send(cmd, caller) for cmd in commands))
        entries = [self._entry(cmd, answer, m) for cmd, answer, m in zip(commands, answers, req.messages, strict=True)]
        codes = {e.status.code for e in entries}
        overall = status(d.MULTIPLE_RESULTS) if len(codes) > 1 else entries[0].status
        return s.SendMessageResponse(status=overall, entries=entries)

    def _as_remoting_send(self, message: d.Message, call: CallContext) -> RemotingCommand:
        """SendMessageActivity.buildMessage / buildMessageProperty / buildSysFlag, as a SEND_MESSAGE request."""
        topic, system = message.topic.name, message.system_properties
        if not topic:
            raise _Refused(status(d.ILLEGAL_TOPIC, "the topic name is empty"))
        if not system.message_id:
            raise _Refused(status(d.ILLEGAL_MESSAGE_ID, "message id cannot be empty"))
        for key in message.user_properties:
            if key in SYSTEM_PROPERTY_NAMES:
                raise _Refused(status(d.ILLEGAL_MESSAGE_PROPERTY_KEY, f"property is used by system: {key}"))
        props = dict(message.user_properties)
        if system.tag:
            props[PROPERTY_TAGS] = system.tag
        if system.keys:
            props[PROPERTY_KEYS] = KEY_SEPARATOR.join(system.keys)
        props[PROPERTY_UNIQ_KEY] = system.message_id
        sys_flag = 0
        if system.body_encoding == d.GZIP:
            sys_flag |= MessageSysFlag.COMPRESSED
        if system.message_type == d.TRANSACTION:
            sys_flag |= MessageSysFlag.TRANSACTION_PREPARED
            props[PROPERTY_TRAN_MSG] = "true"
            if system.HasField("orphaned_transaction_recovery_duration"):
                immunity_ms = duration_ms(system.orphaned_transaction_recovery_duration)
                props[PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS] = str(max(immunity_ms, 0) // 1000)
        if system.HasField("delivery_timestamp"):
            try:
                props[PROPERTY_TIMER_DELIVER_MS] = str(timestamp_ms(system.delivery_timestamp, "delivery_timestamp"))
            except ValueError as err:
                raise _Refused(status(d.ILLEGAL_DELIVERY_TIME, str(err))) from None
        props[PROPERTY_RECONSUME_TIME] = str(system.delivery_attempt)
        props[PROPERTY_PRODUCER_GROUP] = topic  # as the proxy: the topic names the producers for back-checks
        queue_id = -1
        if system.message_group:
            props[PROPERTY_SHARDING_KEY] = system.message_group
            config = self.ctx.topics.get(topic)
            if config is not None and config.write_queue_nums > 0:
                # One queue per message group keeps its order; any stable hash does (Apache: Guava consistentHash).
                queue_id = zlib.crc32(system.message_group.encode()) % config.write_queue_nums
        if system.trace_context:
            props[PROPERTY_TRACE_CONTEXT] = system.trace_context
        config = self.ctx.topics.get(topic)
        refused = type_refused(config.attributes, message_type_of(props)) if config is not None else None
        if refused is not None:
            raise _Refused(status(d.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE, refused))
        props[PROPERTY_BORN_HOST] = system.born_host or f"{call.peer[0]}:{call.peer[1]}"
        try:
            born_ms = timestamp_ms(system.born_timestamp, "born_timestamp") if system.HasField("born_timestamp") else 0
        except ValueError as err:
            raise _Refused(status(d.BAD_REQUEST, str(err))) from None
        if born_ms:
            props[PROPERTY_BORN_TIMESTAMP] = str(born_ms)
        header = {
            "producerGroup": topic,
            "topic": topic,
            "defaultTopic": AUTO_CREATE_TOPIC,
            "defaultTopicQueueNums": str(self.ctx.topics.default_queue_nums),
            "queueId": str(queue_id),
            "sysFlag": str(int(sys_flag)),
            "bornTimestamp": str(born_ms),
            "flag": "0",
            "properties": encode_properties(props),
            "reconsumeTimes": str(system.delivery_attempt),
            "batch": "false",
        }
        return request(RequestCode.SEND_MESSAGE, header, message.body)

    @staticmethod
    def _entry(cmd: RemotingCommand, answer: RemotingCommand, message: d.Message) -> s.SendResultEntry:
        if answer.code != ResponseCode.SUCCESS:
            code = _SEND_CODES.get(answer.code, d.INTERNAL_SERVER_ERROR)
            return s.SendResultEntry(status=status(code, answer.remark or ""))
        ext = answer.ext_fields
        recall = ""
        if message.system_properties.HasField("delivery_timestamp") and ext.get("msgId"):
            recall = recall_handle(message.topic.name, ext["msgId"])
        return s.SendResultEntry(
            status=OK,
            message_id=ext.get("transactionId") or "",
            transaction_id=ext.get("transactionId") or "",
            offset=int(ext.get("queueOffset", "0")),
            recall_handle=recall,
        )

    async def recall_message(self, req: s.RecallMessageRequest, call: CallContext) -> s.RecallMessageResponse:
        """Take a timed message out of the schedule before its delivery time (RecallMessageProcessor): it is then
        never delivered. The handle is the one its send answered with."""
        topic = req.topic.name
        if not topic:
            return s.RecallMessageResponse(status=status(d.ILLEGAL_TOPIC, "the topic name is empty"))
        try:
            handle_topic, phys_offset = parse_recall_handle(req.recall_handle)
        except ValueError as err:
            return s.RecallMessageResponse(status=status(d.BAD_REQUEST, str(err)))
        if handle_topic != topic:
            problem = f"the recall handle is for topic {handle_topic}, not {topic}"
            return s.RecallMessageResponse(status=status(d.BAD_REQUEST, problem))
        record = await self.ctx.store.get_by_phys_offset(phys_offset)
        if record is None or not await self.ctx.store.unschedule(phys_offset):
            problem = "the message was already delivered or recalled, or is not stored on this broker"
            return s.RecallMessageResponse(status=status(d.MESSAGE_NOT_FOUND, problem))
        stored, _ = decode_record(record)
        message_id = decode_properties(stored.properties).get(PROPERTY_UNIQ_KEY, "")
        log.info("recalled timed message %s of topic %s", message_id, topic)
        return s.RecallMessageResponse(status=OK, message_id=message_id)

    # ---- transactions ---------------------------------------------------------------------------------

    async def end_transaction(self, req: s.EndTransactionRequest, call: CallContext) -> s.EndTransactionResponse:
        """Commit or roll back a half message named by its transaction id (the proxy keeps the id's commit-log
        offset from the send; the broker's pending half messages already carry it)."""
        if req.resolution not in (d.COMMIT, d.ROLLBACK):
            return s.EndTransactionResponse(
                status=status(d.BAD_REQUEST, "the resolution is neither COMMIT nor ROLLBACK")
            )
        wanted = req.transaction_id or req.message_id
        half = next((h for h in self.ctx.transactions.pending.values() if h.transaction_id == wanted), None)
        record = await self.ctx.store.get_by_phys_offset(half.phys_offset) if half is not None else None
        if half is None or record is None:
            return s.EndTransactionResponse(
                status=status(d.INVALID_TRANSACTION_ID, f"transaction {wanted} is not pending on this broker")
            )
        stored, _ = decode_record(record)
        header = {
            "producerGroup": half.producer_group,
            "tranStateTableOffset": str(stored.queue_offset),
            "commitLogOffset": str(half.phys_offset),
            "commitOrRollback": str(
                TRANSACTION_COMMIT_TYPE if req.resolution == d.COMMIT else TRANSACTION_ROLLBACK_TYPE
            ),
            "fromTransactionCheck": "true" if req.source == d.SOURCE_SERVER_CHECK else "false",
            "msgId": req.message_id,
            "transactionId": req.transaction_id,
        }
        cmd = request(RequestCode.END_TRANSACTION, header)
        try:
            answer = await self.end_transaction_handler(cmd, cast(Connection, _Caller(call.peer)))
        except RequestError as err:
            return s.EndTransactionResponse(status=status(d.BAD_REQUEST, err.remark))
        if answer is None or answer.code != ResponseCode.SUCCESS:
            remark = answer.remark if answer is not None else "not resolved"
            return s.EndTransactionResponse(status=status(d.INTERNAL_SERVER_ERROR, remark or ""))
        return s.EndTransactionResponse(status=OK)

    def _check_target(self, group: str) -> _TelemetryCheck | None:
        """A gRPC producer of ``group`` (= its topic) with a live Telemetry stream, as a back-check target."""
        for session in self.sessions.by_client.values():
            if session.send is not None and group in session.topics:
                return _TelemetryCheck(self, session)
        return None


_RECALL_PREFIX = "pmq1"


def recall_handle(topic: str, offset_msg_id: str) -> str:
    """Opaque to clients: the topic and the scheduled record's offset message id, URL-safe base64."""
    return base64.urlsafe_b64encode(f"{_RECALL_PREFIX} {topic} {offset_msg_id}".encode()).decode()


def parse_recall_handle(handle: str) -> tuple[str, int]:
    """(topic, physical offset) of a handle ``recall_handle`` made; ValueError names what is wrong."""
    try:
        prefix, topic, msg_id = base64.urlsafe_b64decode(handle.encode()).decode().split(" ")
        if prefix != _RECALL_PREFIX:
            raise ValueError
        _host, _port, phys_offset = decode_offset_msg_id(msg_id)
    except (ValueError, CodecError, UnicodeError):
        raise ValueError(f"recall handle {handle[:80]!r} was not issued by this broker") from None
    return topic, phys_offset


class _TelemetryCheck:
    """What the transaction checker needs of a producer connection, for a gRPC producer: the remoting
    CHECK_TRANSACTION_STATE it would send becomes a RecoverOrphanedTransactionCommand on the Telemetry stream."""

    def __init__(self, service: MessagingService, session: Session) -> None:
        self.service = service
        self.session = session
        self.peer_text = f"gRPC client {session.client_id}"

    def send_oneway(self, cmd: RemotingCommand) -> None:
        half, _ = decode_record(cmd.body)
        props = decode_properties(half.properties)
        half.topic = props.get(PROPERTY_REAL_TOPIC, half.topic)
        half.queue_id = int(props.get(PROPERTY_REAL_QUEUE_ID, half.queue_id))
        message = to_v2_message(half, cmd.ext_fields.get("offsetMsgId", ""), now_ms=self.service.ctx.clock.now_ms())
        command = s.TelemetryCommand(
            recover_orphaned_transaction_command=s.RecoverOrphanedTransactionCommand(
                message=message, transaction_id=cmd.ext_fields.get("transactionId", "")
            )
        )
        send = self.session.send
        if send is not None:
            task = asyncio.get_running_loop().create_task(send(command))
            _pushes.add(task)
            task.add_done_callback(_pushes.discard)


_pushes: set[asyncio.Task[None]] = set()  # back-check pushes in flight (kept referenced until they finish)


class _Refused(Exception):
    def __init__(self, status: d.Status) -> None:
        super().__init__(status.message)
        self.status = status


__all__ = ["MessagingService", "Status"]
