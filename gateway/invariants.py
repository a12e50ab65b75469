"""The invariant checker: delivery promises pocketmq can verify with certainty, observed as messages move.

Protocol-free: the handlers call the hooks below with plain values; nothing here reads the store or the wire. Every
check is O(1) per message (or per pull) and every table is bounded, so the checker stays on: a pull answer costs two
struct reads and a byte test per record (bench/invariants_bench.py).

Invariants (docs/testing.md, "Invariant checker", says what each one does not catch):

- ``orderly_skip``: a group consuming a queue orderly (it holds the queue's LOCK_BATCH_MQ lock) never pulls past
  messages nobody in the group was handed. Per (group, topic, queue) the *frontier* is the highest next offset the
  broker handed out, or an UPDATE_CONSUMER_OFFSET committed or a reset moved the group to; a pull that starts beyond
  it skips stored messages. A commit carried by a pull does not move it: a consumer that commits past what it was
  handed (say, after a wrong ``nextBeginOffset``) has skipped. Going back (re-delivery after a failure, rebalance,
  restart) is always allowed.
- ``fifo_group_order``: a 5.x FIFO consumer group is not handed a message of a message group while an earlier
  message of that group in the same queue is still in flight (handed out, not acked, still invisible).
- ``half_delivered``: no consumer is handed a half message (TRAN_MSG=true, prepared type in its sysFlag: neither
  committed nor rolled back);
  ``half_resolved_twice``: a half message is committed after it was committed or rolled back.
- ``delayed_early``: a delayed or timed message is not handed over to its queue before its due time, a send
  with a ``TIMER_DELIVER_MS`` in the future is not stored straight into its queue, and no POP consumer gets a
  timed message stored in its queue before that time.
- ``dead_letter_early``: a message goes to ``%DLQ%<group>`` only once it failed its maximum number of times
  (or the client asked for it).
- ``delivery_gap``: an acked send lies below its queue's max offset, and an unfiltered pull answer is contiguous
  from the offset asked for, with a next offset right after its last message: what every subscribed group pulls
  covers every acked message, without gaps.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codec.codes import PROPERTY_TIMER_DELIVER_MS, PROPERTY_TRAN_MSG, TRANSACTION_TYPE_MASK, MessageSysFlag
from codec.properties import NAME_VALUE_SEPARATOR, decode_properties
from codec.record import QUEUE_OFFSET_POS, StoredMessage, decode_record

log = logging.getLogger("pocketmq.invariants")

INVARIANTS = (
    "orderly_skip",
    "fifo_group_order",
    "half_delivered",
    "half_resolved_twice",
    "delayed_early",
    "dead_letter_early",
    "delivery_gap",
)
RECENT_VIOLATIONS = 100  # kept for /api/invariants and the console
MAX_TRACKED = 65_536  # entries per table; the oldest is forgotten first (a missed check, never a false alarm)
ENV_SWITCH = "POCKETMQ_INVARIANTS"  # "off" (or 0/false/no) turns the checker off

_QUEUE_OFFSET = struct.Struct(">q")
# The low byte of a record's sysFlag (big-endian int after queueOffset and physicalOffset): the transaction type.
_SYS_FLAG_LOW_BYTE = QUEUE_OFFSET_POS + 8 + 8 + 3
_PREPARED = int(MessageSysFlag.TRANSACTION_PREPARED)
_HALF_MARKER = f"{PROPERTY_TRAN_MSG}{NAME_VALUE_SEPARATOR}true"
_TIMER_MARKER = f"{PROPERTY_TIMER_DELIVER_MS}{NAME_VALUE_SEPARATOR}"


@dataclass(slots=True, frozen=True)
class Violation:
    invariant: str
    time_ms: int
    message: str
    evidence: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "timeMs": self.time_ms, "message": self.message, **self.evidence}


class _Bounded(dict[Any, Any]):
    """A dict that forgets its oldest insertion once it holds ``limit`` keys."""

    def __init__(self, limit: int = MAX_TRACKED) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: Any, value: Any) -> None:
        if key not in self and len(self) >= self.limit:
            del self[next(iter(self))]
        self[key] = value


def enabled_by_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(ENV_SWITCH, "on").strip().lower() not in {"off", "0", "false", "no"}


@dataclass
class InvariantChecker:
    now_ms: Callable[[], int]
    enabled: bool = True
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVARIANTS, 0))
    recent: deque[Violation] = field(default_factory=lambda: deque(maxlen=RECENT_VIOLATIONS))
    # (group, topic, queue) -> frontier, for queues ever pulled while locked by the group
    _frontiers: _Bounded = field(default_factory=_Bounded)
    # (group, topic, queue, message group) -> (queue offset, visible until ms) of the last FIFO hand-out
    _fifo_in_flight: _Bounded = field(default_factory=_Bounded)
    # (group, topic, queue, queue offset) -> message group, to settle the entry above on ack
    _fifo_by_offset: _Bounded = field(default_factory=_Bounded)
    _resolved_halves: _Bounded = field(default_factory=_Bounded)  # half phys offset -> "committed"/"rolled back"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def violated(self, invariant: str, message: str, **evidence: Any) -> None:
        violation = Violation(invariant, self.now_ms(), message, evidence)
        self.counts[invariant] = self.counts.get(invariant, 0) + 1
        self.recent.append(violation)
        details = " ".join(f"{k}={v!r}" for k, v in evidence.items())
        log.error("invariant %s violated: %s (%s)", invariant, message, details)

    def snapshot(self) -> dict[str, Any]:
        """Counts and the last violations, for /api/invariants."""
        return {
            "enabled": self.enabled,
            "total": self.total,
            "counts": dict(self.counts),
            "recent": [v.as_json() for v in reversed(self.recent)],
        }

    # ---- remoting pulls: orderly frontier and contiguity -----------------------------------------------

    def pull_served(
        self,
        group: str,
        topic: str,
        queue_id: int,
        offset: int,
        locked: bool,
        min_offset: int,
        max_offset: int,
        next_offset: int,
        records: Sequence[bytes],
        filtered: bool,
    ) -> None:
        """A pull of ``offset`` answered with ``records`` and ``next_offset``."""
        if not self.enabled:
            return
        key = (group, topic, queue_id)
        frontier = self._frontiers.get(key)
        if frontier is None:
            if locked:
                self._frontiers.put(key, max(next_offset, offset))
        else:
            skipped_from, skipped_to = max(frontier, min_offset), min(offset, max_offset)
            if locked and skipped_to > skipped_from:
                self.violated(
                    "orderly_skip",
                    f"orderly group {group} pulled {topic}:{queue_id} at {offset}, past messages "
                    f"{skipped_from}..{skipped_to - 1} it was never handed",
                    group=group, topic=topic, queue=queue_id, pullOffset=offset, frontier=frontier,
                    minOffset=min_offset, maxOffset=max_offset,
                )  # fmt: skip
            if next_offset > frontier:
                self._frontiers[key] = next_offset
        if records:
            self._check_contiguous(group, topic, queue_id, offset, next_offset, records, filtered)
            for record in records:
                if record[_SYS_FLAG_LOW_BYTE] & TRANSACTION_TYPE_MASK == _PREPARED:
                    self.delivered(group, decode_record(record)[0])

    def offset_committed(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        """The group (or an admin) moved its consumer offset: a later pull from there is no skip."""
        if not self.enabled:
            return
        key = (group, topic, queue_id)
        frontier = self._frontiers.get(key)
        if frontier is not None and offset > frontier:
            self._frontiers[key] = offset

    def offsets_reset(self, group: str, topic: str) -> None:
        """An offset reset (by time, or skip to the end) told the group's consumers to jump."""
        for key in [k for k in self._frontiers if k[0] == group and k[1] == topic]:
            del self._frontiers[key]

    def _check_contiguous(
        self,
        group: str,
        topic: str,
        queue_id: int,
        offset: int,
        next_offset: int,
        records: Sequence[bytes],
        filtered: bool,
    ) -> None:
        (first,) = _QUEUE_OFFSET.unpack_from(records[0], QUEUE_OFFSET_POS)
        (last,) = _QUEUE_OFFSET.unpack_from(records[-1], QUEUE_OFFSET_POS)
        if filtered:
            broken = first < offset or last < first or next_offset <= last
        else:
            broken = first != offset or last != offset + len(records) - 1 or next_offset != last + 1
        if broken:
            self.violated(
                "delivery_gap",
                f"pull of {topic}:{queue_id} at {offset} for {group} answered offsets {first}..{last} "
                f"({len(records)} messages) and next offset {next_offset}",
                group=group, topic=topic, queue=queue_id, pullOffset=offset, firstOffset=first, lastOffset=last,
                count=len(records), nextOffset=next_offset, filtered=filtered,
            )  # fmt: skip

    # ---- any delivery (pull or POP) ---------------------------------------------------------------------

    def delivered(self, group: str, message: StoredMessage) -> None:
        """One message handed to ``group``: not a half message, not a timed one stored before its time."""
        if not self.enabled:
            return
        props = message.properties
        if _HALF_MARKER not in props and _TIMER_MARKER not in props:
            return
        decoded = decode_properties(props)
        where = {"group": group, "topic": message.topic, "queue": message.queue_id, "offset": message.queue_offset}
        # A pre-4.6.1 client's retry of a transactional message keeps TRAN_MSG=true but is a normal message
        # (send.is_half_message); it is consumed at least once before, so its reconsume count is above 0.
        if decoded.get(PROPERTY_TRAN_MSG) == "true" and message.reconsume_times == 0:
            self.violated(
                "half_delivered",
                f"half message (not committed) delivered to {group} from {message.topic}:{message.queue_id}",
                **where, physOffset=message.phys_offset, uniqKey=decoded.get("UNIQ_KEY"),
            )  # fmt: skip
        due = decoded.get(PROPERTY_TIMER_DELIVER_MS)
        if due is not None and due.strip().lstrip("-").isdigit() and message.store_timestamp < int(due):
            self.violated(
                "delayed_early",
                f"timed message delivered to {group}: stored in its queue at {message.store_timestamp}, "
                f"before its delivery time {due}",
                **where, storeTimestamp=message.store_timestamp, deliverMs=int(due),
            )  # fmt: skip

    # ---- sends, transactions, scheduling, dead letters -------------------------------------------------

    def stored_for_delivery(self, topic: str, queue_id: int, deliver_ms: str, store_ms: int) -> None:
        """A message with ``TIMER_DELIVER_MS`` stored straight into its queue (not deferred) at ``store_ms``."""
        if self.enabled and deliver_ms.strip().isdigit() and int(deliver_ms) > store_ms:
            self.violated(
                "delayed_early",
                f"timed message stored in {topic}:{queue_id} at {store_ms}, before its delivery time {deliver_ms}",
                topic=topic, queue=queue_id, storeTimestamp=store_ms, deliverMs=int(deliver_ms),
            )  # fmt: skip

    def send_acked(self, topic: str, queue_id: int, queue_offset: int, max_offset: int) -> None:
        if self.enabled and queue_offset >= max_offset:
            self.violated(
                "delivery_gap",
                f"send to {topic}:{queue_id} acked at offset {queue_offset}, not below the max offset {max_offset}",
                topic=topic, queue=queue_id, queueOffset=queue_offset, maxOffset=max_offset,
            )  # fmt: skip

    def half_resolved(self, half_offset: int, committed: bool) -> None:
        """A half message was committed (its message appended to the real topic) or rolled back."""
        if not self.enabled:
            return
        before = self._resolved_halves.get(half_offset)
        if before is not None and committed:
            self.violated(
                "half_resolved_twice",
                f"half message at {half_offset} committed after it was {before}",
                halfOffset=half_offset, before=before,
            )  # fmt: skip
        self._resolved_halves.put(half_offset, "committed" if committed else "rolled back")

    def handed_over(self, topic: str, queue_id: int, due_ms: int, now_ms: int, phys_offset: int) -> None:
        """The scheduler appended a delayed message (stored at ``phys_offset``) to its real queue."""
        if self.enabled and due_ms > now_ms:
            self.violated(
                "delayed_early",
                f"delayed message for {topic}:{queue_id} handed over at {now_ms}, {due_ms - now_ms} ms before "
                f"its due time {due_ms}",
                topic=topic, queue=queue_id, dueMs=due_ms, nowMs=now_ms, scheduledAt=phys_offset,
            )  # fmt: skip

    def dead_lettered(self, group: str, topic: str, attempts: int, max_attempts: int, forced: bool) -> None:
        """A message of ``topic`` went to ``group``'s dead-letter topic after ``attempts`` failed consumptions."""
        if self.enabled and not forced and attempts < max_attempts:
            self.violated(
                "dead_letter_early",
                f"message of {topic} dead-lettered for {group} after {attempts} of {max_attempts} attempts",
                group=group, topic=topic, attempts=attempts, maxAttempts=max_attempts,
            )  # fmt: skip

    # ---- 5.x POP FIFO -------------------------------------------------------------------------------

    def fifo_handed(
        self, group: str, topic: str, queue_id: int, message_group: str, offset: int, visible_ms: int, now_ms: int
    ) -> None:
        """A FIFO delivery of message group ``message_group`` at ``offset``, invisible until ``visible_ms``."""
        if not self.enabled:
            return
        key = (group, topic, queue_id, message_group)
        earlier = self._fifo_in_flight.get(key)
        if earlier is not None and earlier[0] < offset and earlier[1] > now_ms:
            self.violated(
                "fifo_group_order",
                f"FIFO group {group} handed {topic}:{queue_id} offset {offset} of message group "
                f"{message_group!r} while offset {earlier[0]} was in flight until {earlier[1]}",
                group=group, topic=topic, queue=queue_id, messageGroup=message_group, offset=offset,
                inFlightOffset=earlier[0], inFlightUntil=earlier[1], nowMs=now_ms,
            )  # fmt: skip
        if earlier is not None and earlier[0] != offset:
            self._fifo_by_offset.pop((group, topic, queue_id, earlier[0]), None)
        self._fifo_in_flight.put(key, (offset, visible_ms))
        self._fifo_by_offset.put((group, topic, queue_id, offset), message_group)

    def fifo_settled(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        """A delivery was acked or dead-lettered: the next message of its group may go."""
        if not self.enabled:
            return
        message_group = self._fifo_by_offset.pop((group, topic, queue_id, offset), None)
        if message_group is None:
            return
        key = (group, topic, queue_id, message_group)
        earlier = self._fifo_in_flight.get(key)
        if earlier is not None and earlier[0] == offset:
            del self._fifo_in_flight[key]


def checker_for(now_ms: Callable[[], int]) -> InvariantChecker:
    return InvariantChecker(now_ms, enabled_by_env())
