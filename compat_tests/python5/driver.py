"""Scenario driver for the official RocketMQ 5.x Python client (PyPI ``rocketmq-python-client``, gRPC).

Runs inside its own virtualenv (compat_tests/python5/.venv, built by compat_tests/python5_driver.py from
requirements.txt): the client's top-level package ``rocketmq`` clashes with PyPI ``rocketmq`` 0.4.4 (the C++ client)
of the main environment. A JSON-lines CLI; stdout carries only JSON lines, the client's log goes to stderr.

    produce        --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction] [--async]
                   [--commit|--rollback|--no-end] [--linger S] [--raw-delivery-timestamp]
        One JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...}, "message_group",
        "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end": "commit"|"rollback"|"none"
        (transactions; overrides --commit/--rollback/--no-end), "recall": true}. Prints per message, in input
        order, {"ok": true, "index", "message_id", "sent_at_ms", "queue", "offset", ["transaction_id"],
        "recall_handle" (null: none), ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage":
        "startup"], "error": "<exception class>: <message>"}; per transaction check {"check": true, "message_id",
        "resolution", "at_ms"}; then {"done": true, "sent": n, "failed": m}. --linger keeps the producer up after
        its sends (with open transactions: only until the checker answered each of them). "recall": true recalls
        the message once its send succeeded (Producer.recall_message with the topic and the receipt's recall
        handle); its send line then also carries "recalled": true and "recalled_message_id", or "recalled": false
        and "recall_error".
    simple-consume --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
                   [--invisible-s 15] [--await-s 5] [--batch 16] [--linger S] [--no-ack]
    push-consume   --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
                   [--fail-first | --fail-always] [--threads 4] [--linger S]
        Print {"ready": true} once the client started, then one line per delivery {"message_id", "topic",
        "body_b64", "tag", "keys" (sorted), "properties", "message_group", "delivery_attempt",
        "delivery_timestamp_ms" (0: none), "born_host", "born_timestamp_ms", "store_timestamp_ms", "message_type",
        "corrupted", "received_at_ms", and "acked" (simple) or "result": SUCCESS|FAILURE (push)}, and
        {"ok": false, "stage": "startup"|"receive", "error"} on errors (a failed receive is retried after 1 s);
        stop at N deliveries (plus --linger seconds), at the timeout or on SIGTERM; then {"done": true,
        "received": n, "errors": e} (push: "received" counts SUCCESS answers, "deliveries" all of them).
    Every command also takes [--tls [--ca-file PEM]] [--access-key AK --secret-key SK] [--namespace NS]
    [--request-timeout S] [--log-level LEVEL] [--client-home DIR].

Kinds: the client decides a message's type from its fields (message_group -> FIFO, a delivery timestamp -> DELAY,
a transaction -> TRANSACTION, else NORMAL); ``--kind`` checks that each input line fits the kind and, for
``transaction``, sends each message in its own transaction (half message, then commit / rollback / nothing). The
transaction checker answers the server's check from the message's user property ``pmqCheck`` (COMMIT or ROLLBACK;
anything else: unknown, the server asks again later).

Delivery timestamps: Producer.send writes ``Message.delivery_timestamp`` into ``Timestamp.seconds`` although the
client documents it (and its own tests set it) in milliseconds; the driver sets it to the wanted instant in whole
seconds, rounded up, so the message is never due early, and reports that instant as ``delivery_timestamp_ms``.
``--raw-delivery-timestamp`` hands the milliseconds to the client as they are, as a user reading its docs would.

TLS: ``--tls`` is the client's ``tls_enable=True`` (gRPC ssl_channel_credentials with the default roots);
``--ca-file`` makes gRPC trust that PEM instead (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, read when grpc loads).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from typing import Any

CHECK_PROPERTY = "pmqCheck"
_OUT = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    with _OUT:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def now_ms() -> int:
    return int(time.time() * 1000)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _client_log_to_stderr(level: str) -> None:
    """The client logs to ~/logs/rocketmq_python/rocketmq_client.log; send its records to stderr instead."""
    log = logging.getLogger("rocketmq-python-client")
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(threadName)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)


def _import_client(args: argparse.Namespace) -> Any:
    if args.ca_file:
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = os.path.abspath(args.ca_file)
    if args.client_home:
        # The client opens ~/logs/rocketmq_python/rocketmq_client.log when imported: keep it out of the real home.
        os.environ["HOME"] = os.path.abspath(args.client_home)
    import rocketmq  # after the environment above is set: grpc reads it when it loads

    _client_log_to_stderr(args.log_level)
    return rocketmq


def _config(rmq: Any, args: argparse.Namespace) -> Any:
    credentials = rmq.Credentials(args.access_key or "", args.secret_key or "")
    return rmq.ClientConfiguration(args.endpoints, credentials, args.namespace, args.request_timeout)


def _shutdown(client: Any, timeout: float = 15.0) -> None:
    """client.shutdown() in a thread: a stuck shutdown must not keep the driver from printing its done line."""
    worker = threading.Thread(target=client.shutdown, name="shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        print(f"driver: shutdown did not finish within {timeout} s", file=sys.stderr, flush=True)


def _finish(code: int = 0) -> None:
    """Leave at once: the client's executor and event-loop threads are not all daemons."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ------------------------------------------------------------------------------------------------ produce


def _message(rmq: Any, topic: str, spec: dict[str, Any], raw_delivery: bool) -> tuple[Any, int | None]:
    """A client Message from one input line; the delivery instant (ms) actually requested, if any."""
    msg = rmq.Message()
    msg.topic = topic
    msg.body = base64.b64decode(spec["body_b64"])
    if spec.get("tag") is not None:
        msg.tag = spec["tag"]
    for key in spec.get("keys") or []:
        msg.keys = key  # the setter adds one key per assignment
    for name, value in (spec.get("properties") or {}).items():
        msg.add_property(name, value)
    if spec.get("message_group") is not None:
        msg.message_group = spec["message_group"]
    due: int | None = None
    if spec.get("delivery_timestamp_ms") is not None:
        due = int(spec["delivery_timestamp_ms"])
    elif spec.get("delivery_delay_ms") is not None:
        due = now_ms() + int(spec["delivery_delay_ms"])
    if due is not None:
        if raw_delivery:
            msg.delivery_timestamp = due
        else:
            seconds = math.ceil(due / 1000)
            msg.delivery_timestamp = seconds
            due = seconds * 1000
    return msg, due


def _kind_mismatch(kind: str, spec: dict[str, Any]) -> str | None:
    group = spec.get("message_group") is not None
    delay = spec.get("delivery_timestamp_ms") is not None or spec.get("delivery_delay_ms") is not None
    wanted = {"normal": (False, False), "fifo": (True, False), "delay": (False, True), "transaction": (False, False)}
    if (group, delay) != wanted[kind]:
        return f"a {kind} message needs message_group={wanted[kind][0]}, delivery time={wanted[kind][1]}"
    return None


def _receipt(index: int, receipt: Any, sent_at: int, due: int | None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "ok": True, "index": index, "message_id": receipt.message_id, "sent_at_ms": sent_at,
        "queue": str(receipt.message_queue), "offset": receipt.offset,
    }  # fmt: skip
    if receipt.transaction_id:
        line["transaction_id"] = receipt.transaction_id
    line["recall_handle"] = receipt.recall_handle or None
    if due is not None:
        line["delivery_timestamp_ms"] = due
    return line


def _recall(producer: Any, topic: str, line: dict[str, Any]) -> None:
    """Producer.recall_message(topic, the receipt's recall handle); its outcome goes into the send line."""
    try:
        line["recalled_message_id"] = producer.recall_message(topic, line["recall_handle"])
        line["recalled"] = True
    except Exception as exc:
        line["recalled"] = False
        line["recall_error"] = error_text(exc)


def _read_specs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in sys.stdin if line.strip()]


def _linger(seconds: float, settled: Any) -> None:
    """Stay up ``seconds`` at most; when there are open transactions, only until each had a definite answer from
    the checker (plus a second for the client to send its END_TRANSACTION)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with _OUT:
            done = settled()
        if done and seconds > 0:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            return
        time.sleep(0.1)


def cmd_produce(args: argparse.Namespace) -> None:
    rmq = _import_client(args)
    specs = _read_specs()
    checker = None
    answered: set[str] = set()  # messages whose check the checker answered COMMIT or ROLLBACK
    if args.kind == "transaction":

        class PropertyChecker(rmq.TransactionChecker):
            """Answers a check from the message's pmqCheck property."""

            def check(self, message: Any) -> Any:
                answer = (message.properties.get(CHECK_PROPERTY) or "").upper()
                resolution = {
                    "COMMIT": rmq.TransactionResolution.COMMIT, "ROLLBACK": rmq.TransactionResolution.ROLLBACK,
                }.get(answer, rmq.TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED)  # fmt: skip
                emit({
                    "check": True, "message_id": message.message_id, "at_ms": now_ms(),
                    "resolution": rmq.TransactionResolution.Name(resolution),
                })  # fmt: skip
                if answer in ("COMMIT", "ROLLBACK"):
                    with _OUT:
                        answered.add(message.message_id)
                return resolution

        checker = PropertyChecker()
    producer = rmq.Producer(_config(rmq, args), (args.topic,), checker, tls_enable=args.tls)
    try:
        producer.startup()
    except Exception as exc:
        for index in range(len(specs)):
            emit({"ok": False, "index": index, "stage": "startup", "error": error_text(exc)})
        emit({"done": True, "sent": 0, "failed": len(specs)})
        _finish()
    sent = failed = 0
    left_open: set[str] = set()  # transactions sent and not ended: the checker will be asked about them
    if args.send_async:
        pending = []
        for index, spec in enumerate(specs):
            try:
                problem = _kind_mismatch(args.kind, spec)
                if problem:
                    raise ValueError(problem)
                msg, due = _message(rmq, args.topic, spec, args.raw_delivery_timestamp)
                pending.append((index, producer.send_async(msg), now_ms(), due, None))
            except Exception as exc:
                pending.append((index, None, now_ms(), None, exc))
        for index, future, sent_at, due, exc in pending:
            try:
                if exc is not None:
                    raise exc
                line = _receipt(index, future.result(timeout=args.send_timeout), sent_at, due)
                if specs[index].get("recall"):
                    _recall(producer, args.topic, line)
                emit(line)
                sent += 1
            except Exception as err:
                emit({"ok": False, "index": index, "error": error_text(err)})
                failed += 1
    else:
        for index, spec in enumerate(specs):
            try:
                problem = _kind_mismatch(args.kind, spec)
                if problem:
                    raise ValueError(problem)
                msg, due = _message(rmq, args.topic, spec, args.raw_delivery_timestamp)
                sent_at = now_ms()
                if args.kind != "transaction":
                    line = _receipt(index, producer.send(msg), sent_at, due)
                else:
                    transaction = producer.begin_transaction()
                    line = _receipt(index, producer.send(msg, transaction), sent_at, due)
                    end = spec.get("end") or args.end
                    if end == "commit":
                        transaction.commit()
                    elif end == "rollback":
                        transaction.rollback()
                    else:
                        left_open.add(line["message_id"])
                    line["end"] = end
                if spec.get("recall"):
                    _recall(producer, args.topic, line)
                emit(line)
                sent += 1
            except Exception as exc:
                emit({"ok": False, "index": index, "error": error_text(exc)})
                failed += 1
    _linger(args.linger, lambda: bool(left_open) and left_open <= answered)
    _shutdown(producer)
    emit({"done": True, "sent": sent, "failed": failed})
    _finish()


# ------------------------------------------------------------------------------------------------ consume


def _delivery(msg: Any) -> dict[str, Any]:
    from rocketmq import Message

    return {
        "message_id": msg.message_id,
        "topic": msg.topic,
        "body_b64": base64.b64encode(msg.body or b"").decode(),
        "tag": msg.tag,
        "keys": sorted(msg.keys),
        "properties": dict(msg.properties),
        "message_group": msg.message_group,
        "delivery_attempt": msg.delivery_attempt,
        "delivery_timestamp_ms": msg.delivery_timestamp,
        "born_host": msg.born_host,
        "born_timestamp_ms": msg.born_timestamp,
        "store_timestamp_ms": getattr(msg, "_Message__store_timestamp", None),  # read by the client, no property
        "message_type": Message.message_type_desc(msg.message_type),
        "corrupted": msg.corrupted,
        "received_at_ms": now_ms(),
    }


def _filter(rmq: Any, args: argparse.Namespace) -> Any:
    from rocketmq.grpc_protocol import FilterType

    if args.sql is not None:
        return rmq.FilterExpression(args.sql, FilterType.SQL)
    return rmq.FilterExpression(args.tag_expression, FilterType.TAG)


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def cmd_simple_consume(args: argparse.Namespace) -> None:
    rmq = _import_client(args)
    stop = _stop_on_sigterm()
    subscription = {args.topic: _filter(rmq, args)}
    consumer = rmq.SimpleConsumer(
        _config(rmq, args), args.group, subscription, await_duration=args.await_s, tls_enable=args.tls
    )
    received = errors = 0
    try:
        consumer.startup()
    except Exception as exc:
        emit({"ok": False, "stage": "startup", "error": error_text(exc)})
        emit({"done": True, "received": 0, "errors": 1})
        _finish()
    emit({"ready": True, "at_ms": now_ms()})
    deadline = time.monotonic() + args.timeout
    linger_until: float | None = None
    while not stop.is_set():
        now = time.monotonic()
        if now >= deadline or (linger_until is not None and now >= linger_until):
            break
        try:
            messages = consumer.receive(args.batch, args.invisible_s)
        except Exception as exc:
            errors += 1
            emit({"ok": False, "stage": "receive", "error": error_text(exc), "at_ms": now_ms()})
            time.sleep(1)
            continue
        for msg in messages or []:
            line = _delivery(msg)
            line["acked"] = False
            if not args.no_ack:
                try:
                    consumer.ack(msg)
                    line["acked"] = True
                except Exception as exc:
                    line["ack_error"] = error_text(exc)
            emit(line)
            received += 1
        if received >= args.expect and linger_until is None:
            linger_until = time.monotonic() + args.linger
    _shutdown(consumer)
    emit({"done": True, "received": received, "errors": errors})
    _finish()


def cmd_push_consume(args: argparse.Namespace) -> None:
    rmq = _import_client(args)
    stop = _stop_on_sigterm()
    lock = threading.Lock()
    state = {"ok": 0, "deliveries": 0, "failed_ids": set()}
    enough = threading.Event()

    class Listener(rmq.MessageListener):
        """Prints every delivery; with --fail-first answers FAILURE the first time each message comes, with
        --fail-always every time."""

        def consume(self, message: Any) -> Any:
            line = _delivery(message)
            with lock:
                fail = args.fail_always or (args.fail_first and message.message_id not in state["failed_ids"])
                if fail:
                    state["failed_ids"].add(message.message_id)
                else:
                    state["ok"] += 1
                state["deliveries"] += 1
                if (state["deliveries"] if args.fail_always else state["ok"]) >= args.expect:
                    enough.set()
            line["result"] = "FAILURE" if fail else "SUCCESS"
            emit(line)
            return rmq.ConsumeResult.FAILURE if fail else rmq.ConsumeResult.SUCCESS

    consumer = rmq.PushConsumer(
        _config(rmq, args), args.group, Listener(), {args.topic: _filter(rmq, args)},
        consumption_thread_count=args.threads, tls_enable=args.tls,
    )  # fmt: skip
    try:
        consumer.startup()
    except Exception as exc:
        emit({"ok": False, "stage": "startup", "error": error_text(exc)})
        emit({"done": True, "received": 0})
        _finish()
    emit({"ready": True, "at_ms": now_ms()})
    deadline = time.monotonic() + args.timeout
    while not stop.is_set() and not enough.is_set() and time.monotonic() < deadline:
        enough.wait(0.2)
    if enough.is_set() and args.linger > 0:
        stop.wait(args.linger)
    _shutdown(consumer)
    with lock:
        emit({"done": True, "received": state["ok"], "deliveries": state["deliveries"]})
    _finish()


# ------------------------------------------------------------------------------------------------ CLI


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoints", required=True, help="the proxy's gRPC HOST:PORT (';' separates several)")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--tls", action="store_true", help="tls_enable=True (plaintext otherwise)")
    parser.add_argument("--ca-file", help="PEM of the CA gRPC should trust (with --tls)")
    parser.add_argument("--access-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--request-timeout", type=int, default=3, help="ClientConfiguration request_timeout (s)")
    parser.add_argument("--log-level", default="INFO", help="level of the client's log on stderr")
    parser.add_argument("--client-home", help="HOME while the client is imported (its file logger lands there)")


def _consumer(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--group", required=True)
    expr = parser.add_mutually_exclusive_group()
    expr.add_argument("--tag-expression", default="*")
    expr.add_argument("--sql", help="a SQL92 filter expression")
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--linger", type=float, default=0.0, help="keep consuming this long after --expect")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    produce = sub.add_parser("produce", help="send the JSON messages read from stdin")
    _common(produce)
    produce.add_argument("--kind", choices=["normal", "fifo", "delay", "transaction"], default="normal")
    produce.add_argument("--async", dest="send_async", action="store_true", help="send_async every message first")
    produce.add_argument("--send-timeout", type=float, default=30.0, help="wait for each async send (s)")
    end = produce.add_mutually_exclusive_group()
    end.add_argument("--commit", dest="end", action="store_const", const="commit", help="(default)")
    end.add_argument("--rollback", dest="end", action="store_const", const="rollback")
    end.add_argument("--no-end", dest="end", action="store_const", const="none", help="leave it to the checker")
    produce.set_defaults(end="commit")
    produce.add_argument(
        "--linger", type=float, default=0.0,
        help="stay up this long after sending, for transaction checks (less once every open one is answered)",
    )  # fmt: skip
    produce.add_argument("--raw-delivery-timestamp", action="store_true", help="pass delivery ms to the client")

    simple = sub.add_parser("simple-consume", help="receive + ack with a SimpleConsumer")
    _consumer(simple)
    simple.add_argument("--invisible-s", type=int, default=15, help="invisible duration of a receive (s)")
    simple.add_argument("--await-s", type=int, default=5, help="long-polling duration of a receive (s)")
    simple.add_argument("--batch", type=int, default=16, help="max messages per receive")
    simple.add_argument("--no-ack", action="store_true")

    push = sub.add_parser("push-consume", help="consume with a PushConsumer")
    _consumer(push)
    failing = push.add_mutually_exclusive_group()
    failing.add_argument("--fail-first", action="store_true", help="answer FAILURE to each message's first delivery")
    failing.add_argument(
        "--fail-always", action="store_true", help="answer FAILURE to every delivery (--expect counts deliveries)"
    )
    push.add_argument("--threads", type=int, default=4, help="consumption_thread_count")
    args = parser.parse_args(argv)
    if args.command == "produce" and args.kind == "transaction" and args.send_async:
        parser.error("--async does not apply to transactions")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    commands = {"produce": cmd_produce, "simple-consume": cmd_simple_consume, "push-consume": cmd_push_consume}
    commands[args.command](args)


if __name__ == "__main__":
    main()
