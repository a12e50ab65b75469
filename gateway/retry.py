"""Where a failed or re-sent message goes: its group's retry topic after a delay, or the dead-letter topic.
Pure rules (SendMessageProcessor.consumerSendMsgBack and handleRetryAndDLQ)."""

from __future__ import annotations

from dataclasses import dataclass

from codec.codes import (
    DEFAULT_MAX_RECONSUME_TIMES,
    DLQ_GROUP_TOPIC_PREFIX,
    MIN_VERSION_HONOURING_MAX_RECONSUME_TIMES,
    RETRY_BASE_DELAY_LEVEL,
    RETRY_GROUP_TOPIC_PREFIX,
)


def retry_topic(group: str) -> str:
    return RETRY_GROUP_TOPIC_PREFIX + group


def dlq_topic(group: str) -> str:
    return DLQ_GROUP_TOPIC_PREFIX + group


def max_reconsume_times(requested: int | None, client_version: int) -> int:
    """The client's limit when it is new enough to send one (>= V3_4_9), else the group default (16)."""
    if requested is not None and client_version >= MIN_VERSION_HONOURING_MAX_RECONSUME_TIMES:
        return requested
    return DEFAULT_MAX_RECONSUME_TIMES


@dataclass(slots=True, frozen=True)
class SendBackDecision:
    topic: str
    delay_level: int  # 0 for the dead-letter topic (no delay)

    @property
    def dead_letter(self) -> bool:
        return self.topic.startswith(DLQ_GROUP_TOPIC_PREFIX)


def decide_send_back(group: str, reconsume_times: int, requested_level: int, max_times: int) -> SendBackDecision:
    """A message consumed ``reconsume_times`` times before failing again: retry after a delay, or dead-letter
    once the limit is reached or the client asks for it with a negative level."""
    if reconsume_times >= max_times or requested_level < 0:
        return SendBackDecision(dlq_topic(group), 0)
    level = requested_level if requested_level > 0 else RETRY_BASE_DELAY_LEVEL + reconsume_times
    return SendBackDecision(retry_topic(group), level)


def dead_letter_for_resend(topic: str, reconsume_times: int, max_times: int) -> str | None:
    """A client's own re-send to ``%RETRY%<group>`` goes to the dead-letter topic once the limit is reached."""
    if not topic.startswith(RETRY_GROUP_TOPIC_PREFIX) or reconsume_times < max_times:
        return None
    return dlq_topic(topic[len(RETRY_GROUP_TOPIC_PREFIX) :])
