"""POP consumption over gRPC (ReceiveMessage + AckMessage): pocketmq's endpoint and the Apache 5.3.3 proxy, side by
side, one run.

    python bench/grpc_pop.py [--fill-seconds 8] [--consumers 4] [--batch 32] [--body 1024] [--only pocketmq|apache]

Each server is filled for ``--fill-seconds`` with messages of ``--body`` bytes (unary SendMessage, 64 in flight), then
``--consumers`` threads of grpcio's client in this process drain them as a SimpleConsumer does: ReceiveMessage of up
to ``--batch`` messages (invisible 60 s, long poll 5 s), then one AckMessage for all of them. A Telemetry stream
carries the consumer's settings first (Apache's proxy refuses a receive without them). It prints per server: the
fill rate, the drain rate (msgs/s received and acked), receive latency p50/p99 and the server's CPU per drained
message (all its threads, from /proc; for Apache the proxy and the broker). It asserts nothing beyond every message
being received once.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from google.protobuf.duration_pb2 import Duration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grpc_send import SERVICE, cpu_seconds, drive, serving_apache, serving_pocketmq

from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as s

TOPIC = "BenchGrpc"  # grpc_send's topic: its drive() fills it
GROUP = "bench-pop"


def _metadata() -> list[tuple[str, str]]:
    return [("x-mq-client-id", f"bench-pop-{uuid.uuid4().hex[:8]}"), ("x-mq-language", "PYTHON"),
            ("x-mq-protocol", "v2"), ("x-mq-client-version", "5.0.0")]  # fmt: skip


def _settings_stream(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> queue.Queue[s.TelemetryCommand | None]:
    """Open a Telemetry stream, send the consumer's settings, wait for the answer; the stream stays open until
    None is put on the returned queue."""
    outgoing: queue.Queue[s.TelemetryCommand | None] = queue.Queue()
    settings = d.Settings(
        client_type=d.SIMPLE_CONSUMER,
        subscription=d.Subscription(
            group=d.Resource(name=GROUP),
            subscriptions=[d.SubscriptionEntry(topic=d.Resource(name=TOPIC),
                                               expression=d.FilterExpression(type=d.TAG, expression="*"))],
        ),
    )  # fmt: skip
    outgoing.put(s.TelemetryCommand(settings=settings))
    call = channel.stream_stream(SERVICE + "Telemetry", s.TelemetryCommand.SerializeToString,
                                 s.TelemetryCommand.FromString)  # fmt: skip
    answers = call(iter(outgoing.get, None), metadata=metadata)
    first = next(answers)
    assert first.status.code == d.OK, first.status
    threading.Thread(target=_drain_quietly, args=(answers,), daemon=True).start()
    return outgoing


def _drain_quietly(answers: grpc.Call) -> None:
    """Read the Telemetry stream until it ends (CANCELLED when the channel closes)."""
    try:
        for _ in answers:
            pass
    except grpc.RpcError:
        pass


def drain(endpoints: str, expected: int, consumers: int, batch: int, pids: list[int]) -> dict[str, float]:
    channel = grpc.insecure_channel(endpoints)
    metadata = _metadata()
    stream = _settings_stream(channel, metadata)
    receive = channel.unary_stream(SERVICE + "ReceiveMessage", s.ReceiveMessageRequest.SerializeToString,
                                   s.ReceiveMessageResponse.FromString)  # fmt: skip
    ack = channel.unary_unary(SERVICE + "AckMessage", s.AckMessageRequest.SerializeToString,
                              s.AckMessageResponse.FromString)  # fmt: skip
    request = s.ReceiveMessageRequest(
        group=d.Resource(name=GROUP), message_queue=d.MessageQueue(topic=d.Resource(name=TOPIC), id=-1),
        filter_expression=d.FilterExpression(type=d.TAG, expression="*"), batch_size=batch,
        invisible_duration=Duration(seconds=60), long_polling_timeout=Duration(seconds=5),
    )  # fmt: skip
    lock = threading.Lock()
    seen: set[str] = set()
    latencies: list[float] = []
    duplicates = [0]
    deadline = time.monotonic() + 300

    def consume() -> None:
        while time.monotonic() < deadline:
            with lock:
                if len(seen) >= expected:
                    return
            started = time.perf_counter()
            messages = [r.message for r in receive(request, metadata=metadata, timeout=30) if r.HasField("message")]
            if not messages:
                continue
            entries = [
                s.AckMessageEntry(message_id=m.system_properties.message_id,
                                  receipt_handle=m.system_properties.receipt_handle)
                for m in messages
            ]  # fmt: skip
            acked = ack(s.AckMessageRequest(group=d.Resource(name=GROUP), topic=d.Resource(name=TOPIC),
                                            entries=entries), metadata=metadata, timeout=30)  # fmt: skip
            assert acked.status.code == d.OK, acked.status
            with lock:
                latencies.append(time.perf_counter() - started)
                for m in messages:
                    if m.system_properties.message_id in seen:
                        duplicates[0] += 1
                    seen.add(m.system_properties.message_id)

    cpu0 = cpu_seconds(pids)
    started_at = time.perf_counter()
    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started_at
    cpu = cpu_seconds(pids) - cpu0
    stream.put(None)
    channel.close()
    latencies.sort()
    n = len(seen)
    return {
        "msgs_per_s": n / elapsed, "received": n, "duplicates": duplicates[0],
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
        "server_us_per_msg": cpu / max(n, 1) * 1e6,
    }  # fmt: skip


def fill_and_drain(endpoints: str, pids: list[int], args: argparse.Namespace, body: bytes) -> dict[str, float]:
    # grpc_send.drive sends for a given time; enough seconds at its rate for the wanted count, then drain all of it.
    filled = drive(endpoints, args.fill_seconds, 64, body, pids)
    out = drain(endpoints, int(filled["msgs"]), args.consumers, args.batch, pids)
    out["fill_msgs_per_s"] = filled["msgs_per_s"]
    out["filled"] = filled["msgs"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fill-seconds", type=float, default=8, help="send for this long before draining")
    p.add_argument("--consumers", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--body", type=int, default=1024)
    p.add_argument("--only", choices=["pocketmq", "apache"])
    args = p.parse_args()
    body = os.urandom(args.body)
    results = {}
    with tempfile.TemporaryDirectory(prefix="pocketmq-pop-bench-") as tmp:
        servers = (
            ("pocketmq", lambda: serving_pocketmq(Path(tmp))),
            ("apache", lambda: serving_apache(Path(tmp), TOPIC)),
        )
        for name, serving in servers:
            if args.only not in (None, name):
                continue
            with serving() as (endpoints, pids):
                results[name] = r = fill_and_drain(endpoints, pids, args, body)
            print(f"{name:9} filled {r['filled']:6.0f} at {r['fill_msgs_per_s']:6,.0f} msgs/s; drained "
                  f"{r['received']:6.0f} at {r['msgs_per_s']:7,.0f} msgs/s (receive+ack p50 {r['p50_ms']:6.1f} ms, "
                  f"p99 {r['p99_ms']:7.1f} ms)  server {r['server_us_per_msg']:5.0f} us/msg  "
                  f"duplicates {r['duplicates']:.0f}", flush=True)  # fmt: skip
    if len(results) == 2:
        ratio = results["pocketmq"]["msgs_per_s"] / results["apache"]["msgs_per_s"]
        print(f"pocketmq / Apache drain msgs/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
