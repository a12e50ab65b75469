"""``pocketmq send``, ``pocketmq peek``, ``pocketmq groups``: quick looks at a running broker from a shell, through
its admin API (pocketmq.admin_client), like the CLIs of local cloud emulators."""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from typing import Any

from pocketmq.admin_client import AdminClient, add_endpoint_options, endpoint

PEEK_MAX = 32  # per queue, what /api/messages answers at most


def add_commands(sub: Any) -> None:
    send = sub.add_parser("send", help="send one message to a running broker (its HTTP port)")
    send.add_argument("topic")
    send.add_argument("body")
    send.add_argument("--tag", default="", help="the message's tag")
    send.add_argument("--key", action="append", default=[], help="a key (repeatable)")
    send.add_argument("--property", action="append", default=[], metavar="NAME=VALUE", help="a user property")
    send.add_argument("--delay", type=int, default=0, metavar="LEVEL", help="a delay level (1-18: 1 s ... 2 h)")
    add_endpoint_options(send)
    peek = sub.add_parser("peek", help="show stored messages of a topic without consuming them")
    peek.add_argument("topic")
    peek.add_argument("--queue", type=int, default=None, help="one queue (default: every queue)")
    peek.add_argument("--offset", type=int, default=None, help="from this queue offset (default: the last --count)")
    peek.add_argument("--count", type=int, default=10, help=f"messages per queue (1-{PEEK_MAX}, default 10)")
    peek.add_argument("--body", action="store_true", help="print whole bodies, not the first line")
    add_endpoint_options(peek)
    groups = sub.add_parser("groups", help="consumer groups with their clients and lag")
    add_endpoint_options(groups)


COMMANDS = ("send", "peek", "groups")


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> None:
    client = AdminClient(endpoint(args))
    {"send": _send, "peek": _peek, "groups": _groups}[args.command](client, args, out)


def _properties(pairs: list[str]) -> dict[str, str]:
    props = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"pocketmq send: --property wants NAME=VALUE, not {pair!r}")
        props[name] = value
    return props


def _send(client: AdminClient, args: argparse.Namespace, out: Callable[[str], None]) -> None:
    body: dict[str, Any] = {"topic": args.topic, "body": args.body, "tags": args.tag, "keys": " ".join(args.key)}
    body["properties"] = _properties(args.property)
    if args.delay:
        body["delayLevel"] = args.delay
    sent = client.post("/api/messages/send", body)
    out(f"sent {sent['msgId']} to {sent['topic']} queue {sent['queueId']} offset {sent['queueOffset']}"
        f" (UNIQ_KEY {sent['uniqKey']})")  # fmt: skip


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="milliseconds")


def _peek(client: AdminClient, args: argparse.Namespace, out: Callable[[str], None]) -> None:
    if not 1 <= args.count <= PEEK_MAX:
        raise SystemExit(f"pocketmq peek: --count must be 1..{PEEK_MAX}")
    topics = {t["topic"]: t for t in client.get("/api/topics")}
    topic = topics.get(args.topic)
    if topic is None:
        raise SystemExit(f"pocketmq peek: no topic {args.topic!r} on this broker")
    queues = [q for q in topic["queues"] if args.queue is None or q["queueId"] == args.queue]
    if not queues:
        raise SystemExit(f"pocketmq peek: {args.topic} has no queue {args.queue}")
    shown = 0
    for queue in queues:
        start = args.offset if args.offset is not None else max(queue["minOffset"], queue["maxOffset"] - args.count)
        if start >= queue["maxOffset"]:
            continue
        page = client.get("/api/messages", topic=args.topic, queueId=queue["queueId"], offset=start, count=args.count)
        for m in page["messages"]:
            shown += 1
            text = m["bodyText"] if args.body else (m["bodyText"].splitlines() or [""])[0][:100]
            keys = f" keys={','.join(m['keys'])}" if m.get("keys") else ""
            tags = f" tag={m['tags']}" if m.get("tags") else ""
            out(f"[{m['queueId']}:{m['queueOffset']}] {_time(m['storeTimestamp'])} {m['msgId']}{tags}{keys}"
                f" ({m['bodySize']} B) {text}")  # fmt: skip
    out(f"{shown} message(s) of {args.topic} shown")


def _groups(client: AdminClient, args: argparse.Namespace, out: Callable[[str], None]) -> None:
    groups = client.get("/api/groups")
    if not groups:
        out("no consumer groups")
    for g in groups:
        lag = sum(t["lag"] for t in g["topics"])
        clients = ", ".join(g["clients"]) or "none online"
        out(f"{g['group']}: lag {lag}; clients: {clients}")
        for t in g["topics"]:
            per_queue = " ".join(f"{q['queueId']}:{q['consumerOffset']}/{q['brokerOffset']}" for q in t["queues"])
            out(f"  {t['topic']}: lag {t['lag']}, {t['getTps']} msg/s; queue:consumer/broker {per_queue}")
