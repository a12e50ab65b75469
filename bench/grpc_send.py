"""gRPC SendMessage throughput: pocketmq's endpoint and the Apache 5.3.3 proxy, side by side, one run.

    python bench/grpc_send.py [--seconds 10] [--inflight 64] [--body 1024] [--only pocketmq|apache]

The load generator is grpcio's client in this process (plaintext, unary SendMessage of one 1 KiB message,
``--inflight`` calls outstanding), the way the 5.x SDKs call. It prints per server: msgs/s, latency p50/p99, the
server's CPU per message (all its threads, from /proc; for Apache the proxy and the broker) and the load
generator's CPU. It asserts nothing. On a 2-core machine the Python load generator takes a core of its own, so
the numbers say how the two servers compare under the same client, not what either does at most.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codec.grpc_v2 import definition_pb2 as d  # noqa: E402
from codec.grpc_v2 import service_pb2 as s  # noqa: E402
from compat_tests import harness  # noqa: E402

SERVICE = "/apache.rocketmq.v2.MessagingService/"
TOPIC = "BenchGrpc"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def drive(endpoints: str, seconds: float, inflight: int, body: bytes, pids: list[int]) -> dict[str, float]:
    channel = grpc.insecure_channel(endpoints)
    metadata = [("x-mq-client-id", f"bench-{uuid.uuid4().hex[:8]}"), ("x-mq-language", "PYTHON"),
                ("x-mq-protocol", "v2"), ("x-mq-client-version", "5.0.0")]  # fmt: skip
    route = channel.unary_unary(SERVICE + "QueryRoute", s.QueryRouteRequest.SerializeToString,
                                s.QueryRouteResponse.FromString)  # fmt: skip
    endpoint_host, endpoint_port = endpoints.rsplit(":", 1)
    answer = route(
        s.QueryRouteRequest(
            topic=d.Resource(name=TOPIC),
            endpoints=d.Endpoints(scheme=d.IPv4, addresses=[d.Address(host=endpoint_host, port=int(endpoint_port))]),
        ),
        metadata=metadata, timeout=10,
    )  # fmt: skip
    assert answer.status.code == d.OK, answer.status
    send = channel.unary_unary(SERVICE + "SendMessage", s.SendMessageRequest.SerializeToString,
                               s.SendMessageResponse.FromString)  # fmt: skip
    slots = threading.Semaphore(inflight)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = [0]

    def request() -> s.SendMessageRequest:
        counter[0] += 1
        return s.SendMessageRequest(messages=[d.Message(
            topic=d.Resource(name=TOPIC), body=body,
            system_properties=d.SystemProperties(message_id=f"{uuid.uuid4().hex[:24].upper()}", tag="bench",
                                                 message_type=d.NORMAL),
        )])  # fmt: skip

    def done(future: grpc.Future, started: float) -> None:
        try:
            ok = future.result().status.code == d.OK
        except grpc.RpcError:
            ok = False
        with lock:
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors[0] += 1
        slots.release()

    warm_until = time.perf_counter() + 2
    while time.perf_counter() < warm_until:  # warm-up, not counted
        slots.acquire()
        started = time.perf_counter()
        send.future(request(), metadata=metadata, timeout=10).add_done_callback(lambda f, t=started: done(f, t))
    for _ in range(inflight):
        slots.acquire()
    for _ in range(inflight):
        slots.release()
    latencies.clear()
    cpu0, own0 = cpu_seconds(pids), time.process_time()
    started_at = time.perf_counter()
    end = started_at + seconds
    while time.perf_counter() < end:
        slots.acquire()
        started = time.perf_counter()
        send.future(request(), metadata=metadata, timeout=10).add_done_callback(lambda f, t=started: done(f, t))
    for _ in range(inflight):
        slots.acquire()
    elapsed = time.perf_counter() - started_at
    cpu, own = cpu_seconds(pids) - cpu0, time.process_time() - own0
    channel.close()
    n = len(latencies)
    latencies.sort()
    return {
        "msgs_per_s": n / elapsed, "p50_ms": latencies[n // 2] * 1000 if n else 0,
        "p99_ms": latencies[int(n * 0.99)] * 1000 if n else 0, "server_us_per_msg": cpu / max(n, 1) * 1e6,
        "loadgen_cpu": own / elapsed, "errors": errors[0], "msgs": n,
    }  # fmt: skip


@contextlib.contextmanager
def serving_pocketmq(work: Path) -> Iterator[tuple[str, list[int]]]:
    """A ``pocketmq up`` with its gRPC port accepting: (endpoints, its pid)."""
    server = harness.PocketMQ(data_dir=work / "pocketmq" / "data")
    server.data_dir.parent.mkdir(parents=True)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert server.proc is not None
        yield server.grpc_endpoints, [server.proc.pid]
    finally:
        server.stop()


@contextlib.contextmanager
def serving_apache(work: Path, topic: str) -> Iterator[tuple[str, list[int]]]:
    """Apache's name server, broker and proxy with ``topic`` created: (endpoints, broker and proxy pids)."""
    from compat_tests.apache.servers import ApacheProxyStack, build_classpath
    from compat_tests.python5_driver import create_topic

    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        raise SystemExit("java and mvn are needed for the Apache side")
    stack = ApacheProxyStack(java, build_classpath(mvn), work / "apache")
    stack.start()
    try:
        assert stack.broker is not None and stack.namesrv is not None and stack.proxy is not None
        create_topic(stack.broker.addr, stack.namesrv.addr, topic, "NORMAL")
        time.sleep(3)  # the proxy's route cache
        yield stack.endpoints, [p.proc.pid for p in (stack.broker, stack.proxy) if p.proc is not None]
    finally:
        stack.stop()


def run_pocketmq(work: Path, args: argparse.Namespace, body: bytes) -> dict[str, float]:
    with serving_pocketmq(work) as (endpoints, pids):
        return drive(endpoints, args.seconds, args.inflight, body, pids)


def run_apache(work: Path, args: argparse.Namespace, body: bytes) -> dict[str, float]:
    with serving_apache(work, TOPIC) as (endpoints, pids):
        return drive(endpoints, args.seconds, args.inflight, body, pids)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--body", type=int, default=1024)
    p.add_argument("--only", choices=["pocketmq", "apache"])
    args = p.parse_args()
    body = os.urandom(args.body)
    results = {}
    with tempfile.TemporaryDirectory(prefix="pocketmq-grpc-bench-") as tmp:
        for name, run in (("pocketmq", run_pocketmq), ("apache", run_apache)):
            if args.only in (None, name):
                results[name] = run(Path(tmp), args, body)
                r = results[name]
                print(f"{name:9} {r['msgs_per_s']:9,.0f} msgs/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                      f"server {r['server_us_per_msg']:6.0f} us/msg  loadgen {r['loadgen_cpu']:4.0%} of a core  "
                      f"errors {r['errors']}", flush=True)  # fmt: skip
    if len(results) == 2:
        ratio = results["pocketmq"]["msgs_per_s"] / results["apache"]["msgs_per_s"]
        print(f"pocketmq / Apache msgs/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
