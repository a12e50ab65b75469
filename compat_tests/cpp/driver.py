"""Scenario runner for the stock C++ RocketMQ client (PyPI ``rocketmq`` 0.4.4, bundled ``librocketmq.so``).

Run it as a subprocess, never inside pytest: the native library can crash or hang the process. Every result is
one JSON object per line on stdout; diagnostics go to stderr.

    python compat_tests/cpp/driver.py --namesrv 127.0.0.1:9876 produce --topic T --group G \
        --mode sync|async|oneway|batch|orderly --spec messages.json
    python compat_tests/cpp/driver.py --namesrv 127.0.0.1:9876 consume --topic T --group G \
        --expr "a || b" --expect 10 --timeout 30 [--prop NAME ...] [--linger 1] \
        [--orderly] [--broadcast] [--reconsume N] [--work-ms MS] [--stdin-stop]
    python compat_tests/cpp/driver.py --namesrv 127.0.0.1:9876 pull --topic T --group G \
        [--expr "a || b"] [--max-num 32] [--passes 2] [--timeout 60] [--prop NAME ...]
    python compat_tests/cpp/driver.py probe    # prints {"event":"probe","ok":true|false,...}

``--access-key AK --secret-key SK`` (before the command) sign every request with ACL 1.0 credentials
(``set_session_credentials``, channel ``ALIYUN``) in ``produce`` and ``consume``.

The spec file is a JSON list of ``{"body": base64, "tags": str, "keys": [str], "props": {str: str}}``, optionally
with ``"delay_level": int`` and, for ``--mode orderly``, ``"order_arg": int`` (the sharding argument of that message;
the queue is ``order_arg % queue count``; default ``--order-arg``).

``pull`` drives the wrapper's ``PullConsumer``: each pass is one ``pull(topic, expr, max_num)`` generator run to its
end (every queue the client fetches for the topic, pulled until NO_NEW_MSG from the offsets the wrapper keeps in
``PullConsumer.offset_table``, starting at 0), reported as ``pass`` / ``message`` ... / ``pass-end`` lines; a second
pass shows whether anything more is served past the end.

A consumer started with ``--stdin-stop`` shuts down cleanly (persisting offsets, unlocking its queues, unregistering)
when it reads a line ``stop`` or end-of-file on stdin, so a test can make it leave its group at a chosen moment.

Limits of the 0.4.4 wrapper that shape this driver:
- ``Message.set_body`` and ``RecvMessage.body`` go through NUL-terminated C strings, so bodies must not
  contain NUL bytes (the driver refuses such specs instead of silently truncating them).
- The C++ producer refuses bodies over 128 KiB by default (checked before compression); ``--max-message-size``
  raises that client-side limit to the broker default of 4 MiB.
- A send result only carries ``status``, ``msg_id`` (the client's unique id) and the queue ``offset``; the
  offset message id and the queue id are not exposed.
- Received messages expose no property listing: user properties are read by name (``--prop``).
- ``PushConsumer.subscribe`` has no clean way to ask for a redelivery (see ``native_callback``).
- A concurrent consumer hands the C API a whole pulled batch at once, and the C API calls the callback message by
  message but stops at the first one refused: the rest of that batch is refused (sent back) unseen, so
  ``--reconsume`` only sees every delivery when the refused messages arrive in separate pulls.
- No setter for ``maxReconsumeTimes`` (nor the consume-from-where policy, the allocation strategy or the
  rebalance interval) is exported: the client always runs with its defaults; its CONSUMER_SEND_MSG_BACK carries
  no ``maxReconsumeTimes`` at all, so the broker's group default (16) applies.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from typing import Any

_OUT_LOCK = threading.Lock()
ACL_CHANNEL = "ALIYUN"  # the C++ client's OnsChannel field; signed like any other field


def emit(obj: dict[str, Any]) -> None:
    with _OUT_LOCK:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def log(text: str) -> None:
    sys.stderr.write(f"[driver {os.getpid()}] {text}\n")
    sys.stderr.flush()


def _load_client(log_dir: str | None = None) -> Any:
    if log_dir:
        # The native logger writes to $HOME/logs/rocketmq-cpp/<pid>_rocketmq-cpp.log.N (its log-path setters
        # are ignored by this build), broadcast offsets to $HOME/.rocketmq_offsets: redirect HOME first.
        os.makedirs(log_dir, exist_ok=True)
        os.environ["HOME"] = os.path.abspath(log_dir)
    try:
        from rocketmq import client
    except Exception as exc:  # ImportError, OSError from the loader
        emit({"event": "error", "phase": "import", "error": f"{type(exc).__name__}: {exc}"})
        sys.exit(3)
    return client


def _decode(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", "replace")


def _shutdown(obj: Any, limit: float = 10.0) -> None:
    """Shut a native client down, but never let a hanging shutdown keep the process alive."""
    done = threading.Event()

    def run() -> None:
        try:
            obj.shutdown()
        except Exception as exc:
            log(f"shutdown failed: {exc!r}")
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(limit):
        log("shutdown did not finish in time")


def _finish(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    # The wrapper's __del__ methods call shutdown/destroy again at interpreter exit; skip them.
    os._exit(code)


# --------------------------------------------------------------------------------------------------- produce


def _load_spec(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        spec = json.load(f)
    for item in spec:
        item["_body"] = base64.b64decode(item.get("body", ""))
    return spec


def _build_message(client: Any, topic: str, item: dict[str, Any]) -> Any:
    msg = client.Message(topic)
    if item.get("tags"):
        msg.set_tags(item["tags"])
    keys = item.get("keys") or []
    if keys:
        msg.set_keys(" ".join(keys))  # the KEYS property is space separated
    for name, value in (item.get("props") or {}).items():
        msg.set_property(name, value)
    if item.get("delay_level"):
        msg.set_delay_time_level(int(item["delay_level"]))
    # Message.set_body passes a NUL-terminated string (SetMessageBody); SetByteMessageBody takes a length, so any
    # byte goes through. (The consumer side has no such call: GetMessageBody returns a C string.)
    body = item["_body"]
    client.ffi_check(client.dll.SetByteMessageBody(msg._handle, body, len(body)))
    return msg


def _result(index: int, res: Any) -> dict[str, Any]:
    return {
        "event": "sent",
        "index": index,
        "status": res.status.name,
        "msg_id": res.msg_id,
        "queue_offset": res.offset,
    }


def _send_with_retry(fn: Any, index: int, retry_for: float, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + retry_for
    attempt = 0
    while True:
        attempt += 1
        try:
            out = fn()
            out["attempts"] = attempt
            return out
        except Exception as exc:
            err = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return {"event": "error", "index": index, "error": err, "attempts": attempt}
            log(f"message {index} attempt {attempt} failed: {err}; retrying")
            time.sleep(min(1.0, timeout_s))


def cmd_produce(args: argparse.Namespace) -> int:
    client = _load_client(args.log_dir)
    spec = _load_spec(args.spec)
    producer = client.Producer(args.group, timeout=args.send_timeout_ms, max_message_size=args.max_message_size)
    client.dll.SetProducerInstanceName(producer._handle, f"{args.group}-{os.getpid()}".encode())
    producer.set_namesrv_addr(args.namesrv)
    if args.access_key:
        producer.set_session_credentials(args.access_key, args.secret_key, ACL_CHANNEL)
    try:
        producer.start()
    except Exception as exc:
        emit({"event": "error", "phase": "start", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    emit({"event": "started", "mode": args.mode, "count": len(spec), "pid": os.getpid()})
    results: list[dict[str, Any]] = []
    timeout_s = args.send_timeout_ms / 1000.0

    if args.mode == "batch":
        msgs = [_build_message(client, args.topic, item) for item in spec]

        def send_batch() -> dict[str, Any]:
            res = producer.send_batch(msgs)
            return _result(-1, res)

        out = _send_with_retry(send_batch, -1, args.retry_for, timeout_s)
        # One native call for the whole batch; report it once per message so the caller can count.
        for i in range(len(spec)):
            line = dict(out, index=i, batch=True)
            emit(line)
            results.append(line)
    elif args.mode == "async":
        pending = threading.Semaphore(0)
        outcome_lock = threading.Lock()
        outcomes: dict[int, dict[str, Any]] = {}

        def record(i: int, line: dict[str, Any]) -> None:
            # On an immediate failure 0.4.4 both invokes the exception callback and returns an error status.
            with outcome_lock:
                if i in outcomes:
                    log(f"message {i}: second outcome ignored: {line}")
                    return
                outcomes[i] = line
            emit(line)
            results.append(line)
            pending.release()

        msgs = []
        for i, item in enumerate(spec):
            msg = _build_message(client, args.topic, item)
            msgs.append(msg)  # keep alive until the callback fired

            def on_ok(res: Any, i: int = i) -> None:
                record(i, _result(i, res))

            def on_err(exc: Any, i: int = i) -> None:
                record(i, {"event": "error", "index": i, "error": f"{type(exc).__name__}: {exc}"})

            try:
                producer.send_async(msg, on_ok, on_err)
            except Exception as exc:
                on_err(exc)
        deadline = time.monotonic() + timeout_s * 3 + 10
        for _ in spec:
            if not pending.acquire(timeout=max(0.0, deadline - time.monotonic())):
                emit({"event": "error", "phase": "async", "error": "callback not invoked in time"})
                break
    else:
        for i, item in enumerate(spec):
            msg = _build_message(client, args.topic, item)

            if args.mode == "sync":

                def send(msg: Any = msg, i: int = i) -> dict[str, Any]:
                    return _result(i, producer.send_sync(msg))
            elif args.mode == "orderly":
                order_arg = int(item.get("order_arg", args.order_arg))

                def send(msg: Any = msg, i: int = i, order_arg: int = order_arg) -> dict[str, Any]:
                    return _result(i, producer.send_orderly(msg, order_arg))
            else:

                def send(msg: Any = msg, i: int = i) -> dict[str, Any]:
                    producer.send_oneway(msg)
                    return {"event": "sent", "index": i, "status": "ONEWAY"}

            line = _send_with_retry(send, i, args.retry_for, timeout_s)
            emit(line)
            results.append(line)
            if args.interval_ms:
                time.sleep(args.interval_ms / 1000.0)  # pace the stream (e.g. to let consumers join mid-way)
        if args.mode == "oneway":
            time.sleep(0.5)  # oneway frames are written asynchronously; let them leave before shutdown

    if args.hold:
        time.sleep(args.hold)  # keep the client alive (e.g. to let it heartbeat) before shutting down
    failed = sum(1 for r in results if r.get("event") != "sent")
    missing = len(spec) - len(results)
    emit({"event": "done", "sent": len(results) - failed, "failed": failed + missing})
    _shutdown(producer)
    return 0 if failed + missing == 0 else 1


# --------------------------------------------------------------------------------------------------- consume


def cmd_consume(args: argparse.Namespace) -> int:
    client = _load_client(args.log_dir)
    model = client.MessageModel.BROADCASTING if args.broadcast else client.MessageModel.CLUSTERING
    consumer = client.PushConsumer(args.group, orderly=args.orderly, message_model=model)
    consumer.set_instance_name(f"{args.group}-{os.getpid()}")
    consumer.set_namesrv_addr(args.namesrv)
    if args.access_key:
        consumer.set_session_credentials(args.access_key, args.secret_key, ACL_CHANNEL)
    if args.thread_count:
        consumer.set_thread_count(args.thread_count)

    seen: set[str] = set()
    total = [0]
    reached = threading.Event()
    stopped = threading.Event()
    state_lock = threading.Lock()

    def on_message(msg: Any) -> int:
        body = msg.body or b""
        retry = msg.reconsume_times < args.reconsume
        now = time.time()
        line = {
            "event": "message",
            "status": "RECONSUME_LATER" if retry else "CONSUME_SUCCESS",
            "recv_ms": int(now * 1000),
            "recv_us": int(now * 1_000_000),
            "thread": threading.get_ident(),
            "topic": msg.topic,
            "tags": _decode(msg.tags),
            "keys": _decode(msg.keys),
            "body": base64.b64encode(body).decode(),
            "body_len": len(body),
            "props": {name: _decode(msg.get_property(name)) for name in args.prop},
            "uniq_key": _decode(msg.get_property("UNIQ_KEY")),
            "id": msg.id,
            "queue_id": msg.queue_id,
            "queue_offset": msg.queue_offset,
            "commit_log_offset": msg.commit_log_offset,
            "reconsume_times": msg.reconsume_times,
            "store_size": msg.store_size,
            "born_timestamp": msg.born_timestamp,
            "store_timestamp": msg.store_timestamp,
        }
        if args.work_ms:
            time.sleep(args.work_ms / 1000.0)  # simulated processing time, before the status is returned
        line["done_us"] = int(time.time() * 1_000_000)
        emit(line)
        with state_lock:
            total[0] += 1
            if not retry:
                seen.add(line["id"] or line["body"])
            if args.expect and len(seen) >= args.expect:
                reached.set()
        return 1 if retry else 0

    def native_callback(_consumer: Any, msg_ptr: Any) -> int:
        # Registered directly (as PushConsumer.subscribe does) so that the status is explicit: 0.4.4's wrapper
        # signals RECONSUME_LATER only by letting the user's exception escape the ctypes callback (it re-raises
        # it from a `finally`), which leaves the returned value to ctypes.
        try:
            return on_message(client.RecvMessage(msg_ptr))
        except Exception as exc:
            log(f"callback failed: {exc!r}")
            return 1

    client.ffi_check(client.dll.Subscribe(consumer._handle, args.topic.encode(), args.expr.encode()))
    consumer._register_callback(native_callback)
    emit({"event": "starting", "ms": int(time.time() * 1000)})
    try:
        consumer.start()
    except Exception as exc:
        emit({"event": "error", "phase": "start", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    emit({"event": "ready", "pid": os.getpid(), "ms": int(time.time() * 1000)})
    if args.stdin_stop:
        threading.Thread(target=_watch_stdin, args=(stopped,), daemon=True).start()
    deadline = time.monotonic() + args.timeout
    while not (reached.is_set() or stopped.is_set()) and time.monotonic() < deadline:
        reached.wait(min(0.05, max(0.0, deadline - time.monotonic())))
    ok = reached.is_set()
    if ok and args.linger:
        stopped.wait(args.linger)  # give unexpected extra deliveries a chance to show up
    with state_lock:
        event = "done" if ok else "stopped" if stopped.is_set() else "timeout"
        emit({"event": event, "distinct": len(seen), "received": total[0], "ms": int(time.time() * 1000)})
    _shutdown(consumer)
    emit({"event": "shutdown", "ms": int(time.time() * 1000)})
    return 0 if event != "timeout" else 1


def _watch_stdin(stopped: threading.Event) -> None:
    """Set ``stopped`` on a line ``stop`` or at end of file on stdin (the test closed its end, or died)."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stopped.set()


# --------------------------------------------------------------------------------------------------- pull


def _describe(msg: Any, props: list[str]) -> dict[str, Any]:
    body = msg.body or b""
    return {
        "event": "message",
        "recv_ms": int(time.time() * 1000),
        "topic": msg.topic,
        "tags": _decode(msg.tags),
        "keys": _decode(msg.keys),
        "body": base64.b64encode(body).decode(),
        "body_len": len(body),
        "props": {name: _decode(msg.get_property(name)) for name in props},
        "uniq_key": _decode(msg.get_property("UNIQ_KEY")),
        "id": msg.id,
        "queue_id": msg.queue_id,
        "queue_offset": msg.queue_offset,
        "commit_log_offset": msg.commit_log_offset,
        "reconsume_times": msg.reconsume_times,
        "born_timestamp": msg.born_timestamp,
        "store_timestamp": msg.store_timestamp,
    }


def cmd_pull(args: argparse.Namespace) -> int:
    client = _load_client(args.log_dir)
    consumer = client.PullConsumer(args.group)
    consumer.set_namesrv_addr(args.namesrv)
    try:
        consumer.start()
    except Exception as exc:
        emit({"event": "error", "phase": "start", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    emit({"event": "ready", "pid": os.getpid(), "ms": int(time.time() * 1000)})

    def watchdog() -> None:
        # pull() loops on BROKER_TIMEOUT without advancing: never let that keep the process alive.
        emit({"event": "timeout", "after_s": args.timeout})
        _finish(1)

    timer = threading.Timer(args.timeout, watchdog)
    timer.daemon = True
    timer.start()
    total = 0
    for n in range(args.passes):
        emit({"event": "pass", "pass": n})
        count = 0
        try:
            for msg in consumer.pull(args.topic, args.expr, args.max_num):
                emit(dict(_describe(msg, args.prop), **{"pass": n}))
                count += 1
        except Exception as exc:
            emit({"event": "error", "phase": "pull", "pass": n, "error": f"{type(exc).__name__}: {exc}"})
            timer.cancel()
            _shutdown(consumer)
            return 1
        # offset_table keys are "<topic>@<queueId>" (the topic as the wrapper formats the queue's bytes)
        offsets = {k.rpartition("@")[2]: v for k, v in consumer.offset_table.items()}
        emit({"event": "pass-end", "pass": n, "count": count, "offsets": offsets})
        total += count
    timer.cancel()
    emit({"event": "done", "received": total, "ms": int(time.time() * 1000)})
    _shutdown(consumer)
    return 0


# --------------------------------------------------------------------------------------------------- probe


def cmd_probe(args: argparse.Namespace) -> int:
    try:
        from rocketmq import client
    except Exception as exc:
        emit({"event": "probe", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 3
    import importlib.metadata

    emit(
        {
            "event": "probe",
            "ok": True,
            "version": importlib.metadata.version("rocketmq"),
            "library": getattr(client.dll, "_name", None),
            "batch": hasattr(client.Producer, "send_batch"),
            "async": hasattr(client.Producer, "send_async"),
            "orderly": hasattr(client.Producer, "send_orderly"),
        }
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--namesrv", default="127.0.0.1:9876")
    p.add_argument("--log-dir", help="HOME for the native client: its logs go to DIR/logs/rocketmq-cpp/")
    p.add_argument("--access-key", help="ACL 1.0 access key (produce, consume)")
    p.add_argument("--secret-key", default="", help="ACL 1.0 secret key")
    sub = p.add_subparsers(dest="cmd", required=True)

    pp = sub.add_parser("produce")
    pp.add_argument("--topic", required=True)
    pp.add_argument("--group", required=True)
    pp.add_argument("--mode", choices=["sync", "async", "oneway", "batch", "orderly"], default="sync")
    pp.add_argument("--spec", required=True)
    pp.add_argument("--send-timeout-ms", type=int, default=3000)
    pp.add_argument("--max-message-size", type=int, default=4 * 1024 * 1024,
                    help="client-side body limit (the C++ default is only 128 KiB; brokers accept 4 MiB)")  # fmt: skip
    pp.add_argument("--retry-for", type=float, default=0.0, help="keep retrying a failed send for S seconds")
    pp.add_argument("--hold", type=float, default=0.0, help="stay alive S seconds after the last send")
    pp.add_argument("--order-arg", type=int, default=0, help="sharding argument for --mode orderly")
    pp.add_argument("--interval-ms", type=float, default=0.0, help="pause between two sends (not batch/async)")

    pc = sub.add_parser("consume")
    pc.add_argument("--topic", required=True)
    pc.add_argument("--group", required=True)
    pc.add_argument("--expr", default="*")
    pc.add_argument("--expect", type=int, default=0, help="exit after this many distinct messages")
    pc.add_argument("--timeout", type=float, default=30.0)
    pc.add_argument("--linger", type=float, default=0.0, help="keep consuming S seconds after --expect")
    pc.add_argument("--prop", action="append", default=[], help="user property to report (repeatable)")
    pc.add_argument("--thread-count", type=int, default=0)
    pc.add_argument("--orderly", action="store_true", help="orderly push consumer (queue locks, one thread per queue)")
    pc.add_argument("--reconsume", type=int, default=0,
                    help="answer RECONSUME_LATER until a message's reconsume times reaches N")  # fmt: skip
    pc.add_argument("--broadcast", action="store_true", help="BROADCASTING message model (default CLUSTERING)")
    pc.add_argument("--work-ms", type=float, default=0.0, help="time the listener spends on each message")
    pc.add_argument("--stdin-stop", action="store_true",
                    help="shut down cleanly on a line 'stop' or end of file on stdin")  # fmt: skip

    pl = sub.add_parser("pull")
    pl.add_argument("--topic", required=True)
    pl.add_argument("--group", required=True)
    pl.add_argument("--expr", default="*")
    pl.add_argument("--max-num", type=int, default=32, help="max_num of each pull request")
    pl.add_argument("--passes", type=int, default=2, help="how many times to run pull() to its end")
    pl.add_argument("--timeout", type=float, default=60.0, help="give up (exit 1) after S seconds")
    pl.add_argument("--prop", action="append", default=[], help="user property to report (repeatable)")

    sub.add_parser("probe")

    args = p.parse_args(argv)
    handler = {"produce": cmd_produce, "consume": cmd_consume, "pull": cmd_pull, "probe": cmd_probe}[args.cmd]
    return handler(args)


if __name__ == "__main__":
    try:
        exit_code = main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            log(exc.code)
            exit_code = 2
        else:
            exit_code = exc.code or 0
    _finish(exit_code)
