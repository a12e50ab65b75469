"""SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE (SendMessageProcessor)."""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import Any

from codec.batch import encode_batch_records
from codec.batch_facts import NotUtf8, batch_facts
from codec.codes import (
    DLQ_GROUP_TOPIC_PREFIX,
    HALF_TOPIC,
    PROPERTY_CLUSTER,
    PROPERTY_DELAY,
    PROPERTY_MSG_REGION,
    PROPERTY_PRODUCER_GROUP,
    PROPERTY_REAL_QUEUE_ID,
    PROPERTY_REAL_TOPIC,
    PROPERTY_TIMER_DELIVER_MS,
    PROPERTY_TRACE_ON,
    PROPERTY_TRAN_MSG,
    PROPERTY_UNIQ_KEY,
    RETRY_GROUP_TOPIC_PREFIX,
    TRANSACTION_TYPE_MASK,
    MessageSysFlag,
    Perm,
    RequestCode,
    ResponseCode,
)
from codec.command import RemotingCommand
from codec.compression import COMPRESSION_BITS, inflate_body
from codec.errors import MessageFormatError
from codec.headers import SendMessageRequestHeader, decode_send_header
from codec.properties import append_properties, decode_properties, remove_properties
from codec.record import RecordTemplate, StoredMessage
from gateway.context import BrokerContext, ipv4_of
from gateway.delay import defer
from gateway.messages import append_request
from gateway.retry import dead_letter_for_resend, max_reconsume_times
from gateway.topics import validate_topic
from remoting.connection import Connection, Step, error_response
from remoting.errors import RequestError
from runtime.completion import Completion
from store.api import AppendRequest, AppendResult, HalfMessage, RecordRun, TopicConfig

# Plain ints for the per-message checks: an int & IntFlag goes through enum's Python-level __rand__.
_WRITABLE = int(Perm.WRITE)
_COMPRESSED = int(MessageSysFlag.COMPRESSED)

V2_CODES = frozenset({RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE, RequestCode.SEND_REPLY_MESSAGE_V2})


def is_batch_send(cmd: RemotingCommand, header: SendMessageRequestHeader) -> bool:
    """Code 320, or a batch flag. The C++ client in PyPI rocketmq 0.4.4 sends code 10 with ``batch: "1"``,
    which Java's Boolean.parseBoolean reads as false (storing the whole batch body as one message); we honour it.
    """
    raw = cmd.ext_fields.get("m" if cmd.code in V2_CODES else "batch", "")
    return cmd.code == RequestCode.SEND_BATCH_MESSAGE or bool(header.batch) or raw.strip() == "1"


def is_half_message(header: SendMessageRequestHeader, props: dict[str, str]) -> bool:
    """A transactional half message: TRAN_MSG=true, except the pre-4.6.1 client's retry with a delay level."""
    if props.get(PROPERTY_TRAN_MSG, "").lower() != "true":
        return False
    legacy_retry = (header.reconsume_times or 0) > 0 and props.get(PROPERTY_DELAY, "0").strip() not in ("", "0")
    return not legacy_retry


@dataclass(slots=True)
class PreparedSend:
    requests: list[AppendRequest] | RecordRun  # a batch is a run
    uniq_key: str | None  # of a single message
    queue_id: int


class SendHandler:
    """Sends are answered without a task: the message is validated, encoded and queued for the next group commit
    as the request is read, and the response is written from the commit's callback. Only a send that must first
    create its topic (auto-creation, a dead-letter topic) waits, as a step that keeps later requests in order."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.in_flight = 0  # sends accepted but not yet answered; shutdown waits for them
        self._ext = self.response_ext()

    def response_ext(self) -> dict[str, str]:
        return {
            PROPERTY_MSG_REGION: self.ctx.config.region_id,
            PROPERTY_TRACE_ON: "true" if self.ctx.config.trace_on else "false",
        }

    def fail(self, cmd: RemotingCommand, code: ResponseCode, remark: str) -> RemotingCommand:
        return cmd.response(code, remark, ext_fields=dict(self._ext))

    def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | Completion[RemotingCommand] | Step:
        try:
            header = decode_send_header(cmd.ext_fields, v2=cmd.code in V2_CODES)
            topic = self._topic_now(cmd, header)
            if topic is None:
                return Step(self._send_after_creating_topic(cmd, header, conn))
            return self._store(cmd, self._prepare(cmd, header, conn, topic))
        except RequestError as err:
            return self.fail(cmd, err.code, err.remark)
        except MessageFormatError as err:  # a bad batch or compressed body: answered like any refused send
            return self.fail(cmd, err.response_code, str(err))

    async def send(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand:
        """A send as one coroutine, answered once stored (for a reply, which is stored as an ordinary send)."""
        result = self(cmd, conn)
        if isinstance(result, Step):
            result = await result.work
        if not isinstance(result, RemotingCommand):
            try:
                result = await result
            except Exception as err:
                return error_response(cmd, err)
        return result

    def _topic_now(self, cmd: RemotingCommand, header: SendMessageRequestHeader) -> TopicConfig | None:
        """The topic a send goes to when it exists already (None when it must be created first). A client's own
        re-send of a message that failed too often is turned into a dead letter here (handleRetryAndDLQ)."""
        validate_topic(header.topic)
        if not cmd.body:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, "the message body is empty")
        if len(cmd.body) > self.ctx.config.max_message_size:
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL,
                f"the message body size {len(cmd.body)} exceeds the maximum {self.ctx.config.max_message_size}",
            )
        max_times = max_reconsume_times(header.max_reconsume_times, cmd.version)
        dead_letter = dead_letter_for_resend(header.topic, header.reconsume_times or 0, max_times)
        if dead_letter is not None and not is_batch_send(cmd, header):
            self.ctx.invariants.dead_lettered(
                dead_letter[len(DLQ_GROUP_TOPIC_PREFIX) :], header.topic, header.reconsume_times or 0, max_times, False
            )
            header.topic = dead_letter
            header.queue_id = 0
            header.properties = remove_properties(header.properties or "", frozenset({PROPERTY_DELAY}))
            return self.ctx.topics.get(dead_letter)
        return self.ctx.topics.get(header.topic)

    async def _send_after_creating_topic(
        self, cmd: RemotingCommand, header: SendMessageRequestHeader, conn: Connection
    ) -> RemotingCommand | Completion[RemotingCommand]:
        try:
            if header.topic.startswith(DLQ_GROUP_TOPIC_PREFIX):
                topic = await self.ctx.topics.ensure_system_topic(header.topic)
            else:
                topic = await self.ctx.topics.for_send(
                    header.topic, header.default_topic, header.default_topic_queue_nums
                )
            return self._store(cmd, self._prepare(cmd, header, conn, topic))
        except RequestError as err:
            return self.fail(cmd, err.code, err.remark)
        except MessageFormatError as err:
            return self.fail(cmd, err.response_code, str(err))

    def _prepare(
        self, cmd: RemotingCommand, header: SendMessageRequestHeader, conn: Connection, topic: TopicConfig
    ) -> PreparedSend:
        """Validate a send to an existing topic and encode what to store."""
        cfg = self.ctx.config
        if not topic.perm & _WRITABLE:
            raise RequestError(ResponseCode.NO_PERMISSION, f"the topic[{header.topic}] sending message is forbidden")
        queue_nums = max(topic.read_queue_nums, topic.write_queue_nums)
        queue_id = header.queue_id
        if queue_id < 0:
            queue_id = random.randrange(topic.write_queue_nums)
        elif queue_id >= queue_nums:
            raise RequestError(
                ResponseCode.INVALID_PARAMETER,
                f"request queueId[{queue_id}] is illegal, topic:[{header.topic}] "
                f"topicConfig.writeQueueNums:[{topic.write_queue_nums}] consumer:[{conn.peer_text}]",
            )
        is_batch = is_batch_send(cmd, header)
        now = self.ctx.clock.now_ms()
        base = StoredMessage(
            topic=header.topic,
            queue_id=queue_id,
            body=b"",
            sys_flag=header.sys_flag,
            born_timestamp=header.born_timestamp,
            born_host=ipv4_of(conn.peer[0]),
            born_port=conn.peer[1],
            store_timestamp=now,
            store_host=self.ctx.store_host,
            store_port=cfg.port,
            reconsume_times=header.reconsume_times or 0,
        )
        if is_batch:
            return PreparedSend(self._batch_run(cmd, header, base), None, queue_id)
        raw_props = header.properties or ""
        props = decode_properties(raw_props)
        extra = {}
        if PROPERTY_UNIQ_KEY not in props:
            extra[PROPERTY_UNIQ_KEY] = props[PROPERTY_UNIQ_KEY] = self.ctx.ids.next_id(now)
        if props.get(PROPERTY_CLUSTER) != cfg.cluster:
            extra[PROPERTY_CLUSTER] = props[PROPERTY_CLUSTER] = cfg.cluster
        base.body = cmd.body
        base.flag = header.flag
        base.properties = append_properties(raw_props, extra)
        if is_half_message(header, props):
            return PreparedSend([self._half_request(base, props, header, now)], props[PROPERTY_UNIQ_KEY], queue_id)
        deferral = self.ctx.delays.plan(props, now)
        if deferral is not None:
            defer(base, deferral)
        elif PROPERTY_TIMER_DELIVER_MS in props:
            self.ctx.invariants.stored_for_delivery(base.topic, queue_id, props[PROPERTY_TIMER_DELIVER_MS], now)
        request = append_request(base, props, due_ms=deferral.due_ms if deferral is not None else None)
        return PreparedSend([request], props[PROPERTY_UNIQ_KEY], queue_id)

    def _half_request(
        self, msg: StoredMessage, props: dict[str, str], header: SendMessageRequestHeader, now: int
    ) -> AppendRequest:
        """Store a half message invisibly (TransactionalMessageBridge.parseHalfMessageInner), pending until the
        producer commits or rolls it back."""
        real = {PROPERTY_REAL_TOPIC: msg.topic, PROPERTY_REAL_QUEUE_ID: str(msg.queue_id)}
        msg.properties = append_properties(remove_properties(msg.properties, frozenset(real)), real)
        msg.topic, msg.queue_id = HALF_TOPIC, 0
        msg.sys_flag &= ~TRANSACTION_TYPE_MASK
        half = HalfMessage(
            phys_offset=0,
            producer_group=props.get(PROPERTY_PRODUCER_GROUP) or header.producer_group,
            transaction_id=props[PROPERTY_UNIQ_KEY],
            state="pending",
            check_times=0,
            next_check_ms=self.ctx.transaction_policy.first_check_ms(now, props),
            created_ms=now,
        )
        request = append_request(msg, props)
        request.half = half
        return request

    def _batch_run(self, cmd: RemotingCommand, header: SendMessageRequestHeader, base: StoredMessage) -> RecordRun:
        if header.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, "batch request does not support retry group topic")
        if header.sys_flag & TRANSACTION_TYPE_MASK:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, "batch request does not support transaction messages")
        body = cmd.body
        if header.sys_flag & _COMPRESSED:
            # The C++ client of PyPI rocketmq 0.4.4 compresses a batch body over 4 KiB like a single body (Java and
            # Go never compress batches). Split the inflated body, and store its messages uncompressed without the
            # compression bits, so that every consumer reads them as plain bodies.
            body = inflate_body(body, header.sys_flag, self.ctx.config.max_message_size)
            base.sys_flag &= ~COMPRESSION_BITS
        # One template for the whole batch: every item shares topic, queue, hosts, timestamps and sysFlag.
        encoded = encode_batch_records(RecordTemplate(base), body)
        # Item properties are never over MAX_PROPERTIES_SIZE: their length is an int16 that split refuses negative.
        try:
            delayed, tags_codes, keys = batch_facts(encoded.properties)
        except NotUtf8 as err:
            raise MessageFormatError(str(err)) from None
        if any(delayed):
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, "batch request does not support delay messages")
        return RecordRun(
            base.topic, base.queue_id, encoded.records, encoded.ends, tags_codes, keys, base.store_timestamp
        )

    def _store(self, cmd: RemotingCommand, prepared: PreparedSend) -> Completion[RemotingCommand]:
        """Queue the messages for the next group commit, which answers the send from within itself (a
        ``Completion``, not a future a round later). A send that was read is stored even if its connection closes
        meanwhile: the store commits it regardless."""
        requests = prepared.requests
        answer: Completion[RemotingCommand] = Completion()
        stored: Completion[Any] = Completion()
        stored.add_done_callback(functools.partial(self._stored, cmd, prepared, answer))
        if isinstance(requests, RecordRun):
            self.ctx.store.append_run_then(requests, stored)
        else:
            self.ctx.store.append_then(requests, stored)
        self.in_flight += 1
        return answer

    def _stored(
        self,
        cmd: RemotingCommand,
        prepared: PreparedSend,
        answer: Completion[RemotingCommand],
        stored: Completion[Any],  # list[AppendResult], or AppendResult for a batch
    ) -> None:
        self.in_flight -= 1
        error = stored.exception()
        if error is not None:
            answer.set_exception(error)
            return
        try:
            answer.set_result(self._success(cmd, prepared, stored.result()))
        except Exception as err:  # a bug here must still answer the send (the connection logs it)
            if not answer.done():
                answer.set_exception(err)

    def _check_acked(self, requests: RecordRun | list[AppendRequest], stored: Any) -> None:
        """The invariant checker sees the last offset this send acks (below the queue's max offset)."""
        if isinstance(requests, RecordRun):
            topic, queue_id, last = requests.topic, requests.queue_id, stored.queue_offset + len(requests.ends) - 1
        else:
            topic, queue_id, last = requests[-1].topic, requests[-1].queue_id, stored[-1].queue_offset
        self.ctx.invariants.send_acked(topic, queue_id, last, self.ctx.store.max_offset(topic, queue_id))

    def _success(self, cmd: RemotingCommand, prepared: PreparedSend, stored: Any) -> RemotingCommand:
        """The answer to a stored send; ``stored`` is list[AppendResult], or AppendResult for a batch."""
        requests = prepared.requests
        msg_id = self.ctx.msg_id
        if isinstance(requests, RecordRun):
            first: AppendResult = stored
            self.ctx.stats.put(requests.topic, len(requests.ends), len(requests.records))
            self.ctx.waits.notify(requests.topic, requests.queue_id)
            phys, ends = first.phys_offset, requests.ends
            msg_ids = self.ctx.msg_ids.joined(itertools.chain((phys,), map(phys.__add__, ends[:-1])), len(ends))
        else:
            results: list[AppendResult] = stored
            first = results[0]
            self.ctx.stats.put(requests[0].topic, len(requests), sum(len(r.record) for r in requests))
            due_ms = requests[0].due_ms
            if requests[0].half is not None:
                self.ctx.transactions.added(requests[0].half)
            elif due_ms is not None:
                self.ctx.scheduler.scheduled(due_ms)
            else:
                self.ctx.waits.notify(requests[0].topic, requests[0].queue_id)
            msg_ids = ",".join([msg_id(r.phys_offset) for r in results]) if len(results) > 1 else msg_id(first[1])
        if self.ctx.invariants.enabled:
            self._check_acked(requests, stored)
        ext = {
            "msgId": msg_ids,
            "queueId": str(prepared.queue_id),  # the queue asked for, also when stored under a schedule topic
            "queueOffset": str(first.queue_offset),
        }
        if prepared.uniq_key:
            ext["transactionId"] = prepared.uniq_key
        ext.update(self._ext)
        return cmd.response(ResponseCode.SUCCESS, ext_fields=ext)
