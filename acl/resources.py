"""Which topics and groups a request needs, and how (PlainAccessValidator.parse, 4.9.8).

A group is the resource ``%RETRY%<group>``. Only these request codes name resources in Apache 4.9.8; every other
code is checked for its signature (and admin codes for the admin flag) only. Batch sends (320), lite pulls (361),
locks, transactions and replies carry no resources there, and none here.
"""

from __future__ import annotations

from collections.abc import Mapping

from codec import jsonbody
from codec.codes import RETRY_GROUP_TOPIC_PREFIX, AclPerm, RequestCode
from codec.errors import CodecError

_PUB, _SUB = int(AclPerm.PUB), int(AclPerm.SUB)  # plain ints: IntFlag arithmetic is slow per request


class ResourceError(ValueError):
    """The request names its resources in a way that cannot be read (a heartbeat body that is not JSON)."""


def _retry(group: str | None) -> str | None:
    return None if group is None else RETRY_GROUP_TOPIC_PREFIX + group


def _send(resources: dict[str, int], topic: str | None, group: str | None) -> None:
    # A send to a retry topic is a consumer's re-send: it needs SUB on its group instead of PUB on the topic.
    if topic is not None and topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
        _add(resources, _retry(group), _SUB)
    else:
        _add(resources, topic, _PUB)


def _add(resources: dict[str, int], resource: str | None, perm: int) -> None:
    if resource is not None:
        resources[resource] = perm


def needed_resources(code: int, fields: Mapping[str, str], body: bytes) -> dict[str, int]:
    """Resource -> the permission bit it needs; empty for codes that name none."""
    resources: dict[str, int] = {}
    get = fields.get
    if code == RequestCode.SEND_MESSAGE:
        _send(resources, get("topic"), get("group"))
    elif code == RequestCode.SEND_MESSAGE_V2:
        _send(resources, get("b"), get("a"))
    elif code == RequestCode.CONSUMER_SEND_MSG_BACK:
        _add(resources, _retry(get("group")), _SUB)
    elif code == RequestCode.PULL_MESSAGE:
        _add(resources, get("topic"), _SUB)
        _add(resources, _retry(get("consumerGroup")), _SUB)
    elif code == RequestCode.QUERY_MESSAGE:
        _add(resources, get("topic"), _SUB)
    elif code == RequestCode.HEART_BEAT:
        _heartbeat(resources, body)
    elif code in (RequestCode.UNREGISTER_CLIENT, RequestCode.GET_CONSUMER_LIST_BY_GROUP):
        _add(resources, _retry(get("consumerGroup")), _SUB)
    elif code == RequestCode.UPDATE_CONSUMER_OFFSET:
        _add(resources, _retry(get("consumerGroup")), _SUB)
        _add(resources, get("topic"), _SUB)
    return resources


def _heartbeat(resources: dict[str, int], body: bytes) -> None:
    """Every consumer group (SUB on its retry topic) and every topic it subscribes to (SUB)."""
    try:
        data = jsonbody.loads(body)
    except CodecError as err:
        raise ResourceError(f"heartbeat body unreadable: {err}") from None
    consumers = data.get("consumerDataSet") if isinstance(data, dict) else None
    for consumer in consumers if isinstance(consumers, list) else []:
        if not isinstance(consumer, dict):
            continue
        group = consumer.get("groupName")
        _add(resources, _retry(group) if isinstance(group, str) else None, _SUB)
        subscriptions = consumer.get("subscriptionDataSet")
        for sub in subscriptions if isinstance(subscriptions, list) else []:
            topic = sub.get("topic") if isinstance(sub, dict) else None
            _add(resources, topic if isinstance(topic, str) else None, _SUB)
