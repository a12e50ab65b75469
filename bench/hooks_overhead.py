"""What fault rules and the protocol trace cost a sync send: an in-process broker, one wire client sending
sequentially (request, group commit, answer), in rounds that alternate the modes so drift hits all of them.

    python bench/hooks_overhead.py [--sends 3000] [--rounds 5] [--modes off,rule,live,trace]

Modes: ``off`` (no rule, no trace: nothing installed), ``rule`` (one rule that never matches this topic: the
interceptor runs and checks it), ``live`` (the trace on without a file: the live trace in memory only), ``trace``
(the trace on, to a file in the temporary directory, which feeds the live trace too). Prints the median
microseconds per send of each mode. Runs against any checkout (``off`` needs nothing this branch added).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.codes import RequestCode
from codec.command import request
from gateway.broker import Broker
from gateway.config import BrokerConfig
from remoting.client import RemotingClient

FIELDS = {"a": "pg", "b": "BenchT", "c": "TBW102", "d": "4", "e": "0", "f": "0", "g": "0", "h": "0", "i": "",
          "j": "0", "k": "false", "m": "false"}  # fmt: skip


async def _sends(client: RemotingClient, count: int) -> float:
    body = b"x" * 256
    started = time.perf_counter()
    for _ in range(count):
        response = await client.invoke(request(RequestCode.SEND_MESSAGE_V2, dict(FIELDS), body))
        assert response.code == 0, response.remark
    return (time.perf_counter() - started) / count * 1e6


UNKNOWN_CODE = 9999


class _Conn:
    """What a handler and the hooks read of a connection."""

    id = 1
    peer = ("127.0.0.1", 1)
    peer_text = "127.0.0.1:1"
    attributes: dict[str, str] = {}


def _dispatch_us(broker: Broker, count: int) -> float:
    """CPU of dispatching a request through the broker's table to a plain handler that answers at once (an unknown
    code: REQUEST_CODE_NOT_SUPPORTED), with a pull's header: what the hooks add per request, without the socket."""
    table, conn = broker.server.dispatch, _Conn()
    cmd = request(UNKNOWN_CODE, {"consumerGroup": "cg", "topic": "BenchT", "queueId": "0", "queueOffset": "0"})
    started = time.perf_counter()
    for _ in range(count):
        handler, _is_step = table.resolve(cmd.code)
        handler(cmd, conn)  # type: ignore[arg-type]
    return (time.perf_counter() - started) / count * 1e6


async def main(sends: int, rounds: int, modes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="pocketmq-hooks-bench-") as tmp:
        config = BrokerConfig(host="127.0.0.1", port=0, advertise_host="127.0.0.1", data_dir=Path(tmp) / "data",
                              namesrv_addrs=[], grpc_port=None, http_port=None)  # fmt: skip
        broker = Broker(config)
        async with anyio.create_task_group() as tg:
            port = await tg.start(broker.run)
            client = await RemotingClient.connect("127.0.0.1", port)
            await _sends(client, 500)  # warm-up: topic creation, caches
            results: dict[str, list[float]] = {m: [] for m in modes}
            dispatch: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(rounds):
                for mode in modes:
                    if mode == "rule":
                        broker.hooks.faults.add({"topic": "NotThisOne", "respond": "SYSTEM_BUSY"})
                    elif mode == "trace":
                        broker.hooks.trace_on(Path(tmp) / "trace.jsonl")
                    elif mode == "live":
                        broker.hooks.live_on()
                    results[mode].append(await _sends(client, sends))
                    dispatch[mode].append(_dispatch_us(broker, 50_000))
                    if mode == "rule":
                        broker.hooks.faults.clear()
                    elif mode in ("trace", "live"):
                        old = broker.hooks.trace_off()
                        if old is not None:
                            await anyio.to_thread.run_sync(old.close)
            await client.aclose()
            tg.cancel_scope.cancel()
    for mode, values in results.items():
        rounds_text = ", ".join(f"{v:.0f}" for v in values)
        print(f"{mode:<6} sync send round trip {statistics.median(values):8.1f} us (rounds: {rounds_text}); "
              f"dispatch {statistics.median(dispatch[mode]):6.2f} us")  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sends", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--modes", default="off,rule,live,trace")
    a = p.parse_args()
    anyio.run(main, a.sends, a.rounds, a.modes.split(","), backend="asyncio", backend_options={"use_uvloop": True})
