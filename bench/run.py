"""End-to-end benchmark of a ``pocketmq up`` process over loopback. Prints numbers only (no assertions).

    python bench/run.py [--quick] [--seconds S] [--backlog N] [--skip send|e2e] [--keep]
    python bench/run.py --py-spy DIR [--py-spy-args "--gil --nonblocking"]   # profile the server per phase
    python bench/run.py --cprofile FILE                                      # run the server under cProfile

What it measures (see docs/performance.md for the method and for results):

1. start-up: spawn ``python -m pocketmq up`` -> first SEND_MESSAGE_V2 answered SUCCESS, going through the
   name server like a stock producer (route of the topic, TOPIC_NOT_EXIST, route of TBW102, then the send);
2. idle RSS of the server (VmRSS) one second after that first send;
3. sync sends: 16 producers, each on its own connection with one outstanding SEND_MESSAGE_V2 (1 KiB body)
   at a time, for a fixed time; msgs/s and latency p50/p99/max;
4. loaded RSS: the highest VmRSS sampled (every 20 ms) during the sends, and VmHWM;
5. end to end: a backlog of 200k 1 KiB messages filled with SEND_BATCH_MESSAGE (4 connections, one per
   queue), then one consumer connection draining it with PULL_MESSAGE (32 per pull, one pull in flight per
   queue, all four queues pipelined on the connection like a push consumer); every message is decoded and
   checked (queue, offset, body bytes, body CRC). The drain runs twice: once keeping the pull bodies and
   checking them after the clock stops (the broker's rate), once decoding each pull before pulling that
   queue again (the rate with a Python consumer in the loop).

Every phase also prints the server's CPU use (from /proc/<pid>/stat, all threads), the load generator's, and
an estimate of what other processes on the machine used meanwhile: on a shared 2-core machine that last
figure explains most of the run-to-run variation. Server CPU per message is the steadier number.

The load runs in separate worker processes (``run.py --worker ...``) that speak the protocol with the
project's codec over asyncio streams (uvloop), so no load shares the server's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec.batch import BatchItem, encode_batch  # noqa: E402
from codec.codes import PullSysFlag, RequestCode, ResponseCode  # noqa: E402
from codec.command import RemotingCommand, request  # noqa: E402
from codec.frame import FrameDecoder, encode_frame  # noqa: E402
from codec.record import body_crc, decode_records  # noqa: E402

BODY_SIZE = 1024
QUEUES = 4  # defaultTopicQueueNums of the stock producers; the auto-created topics get 4 queues
SEND_TOPIC = "BenchSyncSend"
E2E_TOPIC = "BenchBacklog"
PRODUCER_GROUP = "bench_producer"
CONSUMER_GROUP = "bench_consumer"
READ_SIZE = 256 * 1024
PAD = bytes(range(256)) * (BODY_SIZE // 256 + 1)


# ---- the client side: a minimal remoting client over asyncio streams ------------------------------------


class Client:
    """One connection; any number of requests in flight, matched to responses by opaque."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.opaque = itertools.count(1)
        self.pending: dict[int, asyncio.Future[RemotingCommand]] = {}
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, addr: str) -> Client:
        host, port = addr.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def _read_loop(self) -> None:
        try:
            while data := await self.reader.read(READ_SIZE):
                for cmd in self.decoder.feed(data):
                    fut = self.pending.pop(cmd.opaque, None)
                    if fut is not None and not fut.done():
                        fut.set_result(cmd)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    def invoke(self, cmd: RemotingCommand) -> asyncio.Future[RemotingCommand]:
        cmd.opaque = next(self.opaque)
        fut = asyncio.get_running_loop().create_future()
        self.pending[cmd.opaque] = fut
        self.writer.write(encode_frame(cmd))
        return fut

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def now_ms() -> int:
    return int(time.time() * 1000)


class UniqKeys:
    """UNIQ_KEY values shaped like the Java client's (32 upper-case hex characters)."""

    def __init__(self) -> None:
        self.prefix = f"7F000001{os.getpid() & 0xFFFF:04X}{int.from_bytes(os.urandom(4)) & 0x7FFFFFFF:08X}"
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFF:012X}"


def send_v2(topic: str, queue_id: int, body: bytes, properties: str, *, batch: bool = False) -> RemotingCommand:
    """SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) with the single-letter header a Java producer writes."""
    ext = {
        "a": PRODUCER_GROUP, "b": topic, "c": "TBW102", "d": str(QUEUES), "e": str(queue_id), "f": "0",
        "g": str(now_ms()), "h": "0", "i": properties, "j": "0", "k": "false", "m": "true" if batch else "false",
    }  # fmt: skip
    code = RequestCode.SEND_BATCH_MESSAGE if batch else RequestCode.SEND_MESSAGE_V2
    return request(code, ext, body)


def message_properties(uniq: str) -> str:
    return f"TAGS\x01TagA\x02UNIQ_KEY\x01{uniq}\x02WAIT\x01true\x02"


def backlog_body(queue_id: int, offset: int) -> bytes:
    """The body of the backlog message at (queue, offset): distinct and checkable."""
    head = f"q{queue_id}o{offset:010d}:".encode()
    return head + PAD[: BODY_SIZE - len(head)]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# ---- workers (run in their own processes) ----------------------------------------------------------------


async def worker_send(cfg: dict[str, Any]) -> dict[str, Any]:
    """N sync producers, one connection each, one outstanding SEND_MESSAGE_V2 at a time."""
    body = os.urandom(BODY_SIZE)
    keys = UniqKeys()
    clients = [await Client.connect(cfg["broker"]) for _ in range(cfg["producers"])]
    latencies: list[float] = []
    errors: dict[int, int] = {}
    counts = [0] * len(clients)
    per_second = [0] * int(cfg["seconds"] + 1)
    start = time.perf_counter()
    deadline = start + cfg["seconds"]
    cpu0 = cpu_seconds()

    async def producer(i: int, client: Client) -> None:
        queue = i % QUEUES  # round-robin over the queues, like the default queue selector
        perf = time.perf_counter
        while perf() < deadline:
            cmd = send_v2(cfg["topic"], queue, body, message_properties(keys.next()))
            t0 = perf()
            resp = await client.invoke(cmd)
            t1 = perf()
            latencies.append(t1 - t0)
            if resp.code == ResponseCode.SUCCESS:
                counts[i] += 1
                second = int(t1 - start)
                if second < len(per_second):
                    per_second[second] += 1
            else:
                errors[resp.code] = errors.get(resp.code, 0) + 1
            queue = (queue + 1) % QUEUES

    await asyncio.gather(*(producer(i, c) for i, c in enumerate(clients)))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    for c in clients:
        await c.close()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "sent": sum(counts),
        "errors": {str(k): v for k, v in errors.items()},
        "elapsed": elapsed,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else float("nan"),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "worker_cpu_s": cpu,
        "per_second": per_second[: int(elapsed)],
    }


async def worker_fill(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill the backlog with SEND_BATCH_MESSAGE: one connection per queue, one batch in flight each."""
    per_queue: int = cfg["per_queue"]
    batch_size: int = cfg["batch"]
    keys = UniqKeys()
    clients = [await Client.connect(cfg["broker"]) for _ in range(QUEUES)]
    batches = 0
    per_second: list[int] = []
    problems: list[str] = []
    start = time.perf_counter()
    cpu0 = cpu_seconds()

    async def filler(queue: int, client: Client) -> None:
        nonlocal batches
        offset = 0
        while offset < per_queue:
            n = min(batch_size, per_queue - offset)
            items = [BatchItem(backlog_body(queue, offset + j), message_properties(keys.next())) for j in range(n)]
            cmd = send_v2(cfg["topic"], queue, encode_batch(items), "WAIT\x01true\x02", batch=True)
            resp = await client.invoke(cmd)
            batches += 1
            if resp.code != ResponseCode.SUCCESS:
                problems.append(f"queue {queue} offset {offset}: code {resp.code} {resp.remark}")
                return
            got = int(resp.ext_fields.get("queueOffset", -1))
            ids = resp.ext_fields.get("msgId", "").split(",")
            if got != offset or len(ids) != n:
                problems.append(f"queue {queue}: batch at {offset} stored at {got} with {len(ids)} ids")
                return
            offset += n
            second = int(time.perf_counter() - start)
            while len(per_second) <= second:
                per_second.append(0)
            per_second[second] += n

    await asyncio.gather(*(filler(q, c) for q, c in enumerate(clients)))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    for c in clients:
        await c.close()
    return {"sent": per_queue * QUEUES, "batches": batches, "elapsed": elapsed, "problems": problems,
            "worker_cpu_s": cpu, "per_second": per_second[: int(elapsed)]}  # fmt: skip


async def worker_drain(cfg: dict[str, Any]) -> dict[str, Any]:
    """One consumer connection, one PULL_MESSAGE in flight per queue (pipelined), checking every message.

    ``inline``: decode and check each pull's records before the next pull of that queue (a Python consumer);
    otherwise keep the bodies, advance by ``nextBeginOffset`` and decode/check after the clock stops, so the
    rate is the broker's rather than the Python record decoder's."""
    per_queue: int = cfg["per_queue"]
    inline: bool = cfg["inline"]
    conns = [await Client.connect(cfg["broker"]) for _ in range(cfg.get("connections", 1))]
    received = 0
    pulls = 0
    bad: list[str] = []
    other_codes: dict[int, int] = {}
    kept: list[tuple[int, int, int, bytes]] = []  # (queue, first offset, nextBeginOffset, body)

    def check(queue: int, offset: int, body: bytes) -> int:
        """Decode one pull body that should start at ``offset``; return the offset after its last record."""
        for msg in decode_records(body):
            if msg.queue_id != queue or msg.queue_offset != offset:
                bad.append(f"queue {queue}: expected offset {offset}, got {msg.queue_id}/{msg.queue_offset}")
                return -1
            if msg.body != backlog_body(queue, offset) or msg.body_crc != body_crc(msg.body):
                bad.append(f"queue {queue} offset {offset}: body differs")
            offset += 1
        return offset

    async def pull_loop(queue: int) -> None:
        nonlocal received, pulls
        offset = 0
        sub_version = now_ms()
        while offset < per_queue:
            sys_flag = PullSysFlag.SUSPEND | PullSysFlag.SUBSCRIPTION | (PullSysFlag.COMMIT_OFFSET if offset else 0)
            ext = {
                "consumerGroup": CONSUMER_GROUP, "topic": cfg["topic"], "queueId": str(queue),
                "queueOffset": str(offset), "maxMsgNums": str(cfg["pull_batch"]), "sysFlag": str(int(sys_flag)),
                "commitOffset": str(offset), "suspendTimeoutMillis": "15000", "subscription": "*",
                "subVersion": str(sub_version), "expressionType": "TAG",
            }  # fmt: skip
            resp = await conns[queue % len(conns)].invoke(request(RequestCode.PULL_MESSAGE, ext))
            pulls += 1
            nxt = int(resp.ext_fields.get("nextBeginOffset", -1))
            if resp.code != ResponseCode.SUCCESS:
                other_codes[resp.code] = other_codes.get(resp.code, 0) + 1
                if resp.code not in (ResponseCode.PULL_RETRY_IMMEDIATELY, ResponseCode.PULL_NOT_FOUND) or nxt < 0:
                    bad.append(f"queue {queue} offset {offset}: code {resp.code} {resp.remark}")
                    return
                offset = nxt
                continue
            if inline:
                end = check(queue, offset, resp.body)
                if end != nxt:
                    bad.append(f"queue {queue}: nextBeginOffset {nxt}, records end at {end}")
                    return
            else:
                kept.append((queue, offset, nxt, resp.body))
            received += nxt - offset
            offset = nxt

    start = time.perf_counter()
    cpu0 = cpu_seconds()
    await asyncio.gather(*(pull_loop(q) for q in range(QUEUES)))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    for c in conns:
        await c.close()
    verify_s = 0.0
    if not inline:
        t0 = time.perf_counter()
        for queue, first, nxt, body in kept:
            end = check(queue, first, body)
            if end != nxt:
                bad.append(f"queue {queue}: pull at {first} answered nextBeginOffset {nxt}, records end at {end}")
        verify_s = time.perf_counter() - t0
    return {"received": received, "pulls": pulls, "elapsed": elapsed, "bad": bad[:10], "bad_count": len(bad),
            "other_codes": {str(k): v for k, v in other_codes.items()}, "worker_cpu_s": cpu,
            "verify_s": verify_s}  # fmt: skip


WORKERS = {"send": worker_send, "fill": worker_fill, "drain": worker_drain, "drain-inline": worker_drain}


def run_worker(name: str, cfg_json: str) -> None:
    import uvloop

    result = uvloop.run(WORKERS[name](json.loads(cfg_json)))
    print(json.dumps(result), flush=True)


# ---- the orchestrator ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples the server's VmRSS every 20 ms on a thread while a phase runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak_kib = max(self.peak_kib, proc_status(self.pid)["VmRSS"])
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Server:
    def __init__(self, data_dir: Path, cprofile: str | None) -> None:
        self.data_dir = data_dir
        self.ns_port, self.broker_port = free_port(), free_port()
        while self.broker_port == self.ns_port:
            self.broker_port = free_port()
        prefix = [sys.executable]
        if cprofile:
            prefix += ["-m", "cProfile", "-o", str(Path(cprofile).resolve())]
        self.argv = [
            *prefix, "-m", "pocketmq", "up", "--data-dir", str(data_dir / "store"),
            "--namesrv-port", str(self.ns_port), "--broker-port", str(self.broker_port),
        ]  # fmt: skip
        self.ready_at: float | None = None
        self.proc: subprocess.Popen[str] | None = None

    @property
    def namesrv(self) -> str:
        return f"127.0.0.1:{self.ns_port}"

    def start(self) -> float:
        """Spawn; return the perf_counter time just before spawning."""
        self.log = open(self.data_dir / "server.log", "w")  # noqa: SIM115
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return t0

    def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            if line.startswith("namesrvAddr=") and self.ready_at is None:
                self.ready_at = time.perf_counter()

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def first_send(server: Server, deadline_s: float = 60.0) -> tuple[float, str]:
    """Poll like a starting producer until a send is accepted; return (time of SUCCESS, broker address)."""
    end = time.perf_counter() + deadline_s
    last_error = ""
    while time.perf_counter() < end:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}; see {server.data_dir / 'server.log'}")
        ns = broker = None
        try:
            ns = await Client.connect(server.namesrv)
            route = await ns.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": SEND_TOPIC}))
            if route.code == ResponseCode.TOPIC_NOT_EXIST:
                route = await ns.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}))
            if route.code != ResponseCode.SUCCESS:
                raise RuntimeError(f"route: code {route.code} {route.remark}")
            data = json.loads(route.body)
            addr = data["brokerDatas"][0]["brokerAddrs"]["0"]
            broker = await Client.connect(addr)
            resp = await broker.invoke(send_v2(SEND_TOPIC, 0, os.urandom(BODY_SIZE), message_properties("0" * 32)))
            if resp.code == ResponseCode.SUCCESS:
                return time.perf_counter(), addr
            raise RuntimeError(f"send: code {resp.code} {resp.remark}")
        except (OSError, RuntimeError, KeyError, IndexError, ValueError) as err:
            last_error = f"{type(err).__name__}: {err}"
            await asyncio.sleep(0.005)
        finally:
            for c in (ns, broker):
                if c is not None:
                    await c.close()
    raise RuntimeError(f"no accepted send within {deadline_s} s (last error: {last_error})")


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


PY_SPY_DIR: Path | None = None  # --py-spy: sample the server with py-spy during each load phase
PY_SPY_EXTRA: list[str] = []  # --py-spy-args, e.g. "--native --gil"


def start_py_spy(name: str, server_pid: int) -> subprocess.Popen[bytes] | None:
    if PY_SPY_DIR is None:
        return None
    exe = shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("--py-spy needs py-spy on PATH (pip install py-spy)")
    out = PY_SPY_DIR / f"{name}.txt"
    rate = [] if {"-r", "--rate"} & set(PY_SPY_EXTRA) else ["-r", "100"]
    return subprocess.Popen(
        [exe, "record", "-p", str(server_pid), "-f", "raw", "--threads", *rate, *PY_SPY_EXTRA, "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def stop_py_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = spy.communicate(timeout=60)
        if spy.returncode not in (0, -signal.SIGINT):
            print(f"   (py-spy failed: {err.decode(errors='replace').strip()[-300:]})")


def spawn_worker(name: str, cfg: dict[str, Any], server_pid: int) -> tuple[dict[str, Any], float, int]:
    """Run a worker process; return (its result, server CPU seconds used meanwhile, peak server RSS KiB).

    The result also gets ``others_cpu_share``: CPU the rest of the machine used meanwhile (neither the server
    nor the worker), which flags runs disturbed by other work on the machine."""
    spy = start_py_spy(name, server_pid)
    if spy is not None:
        time.sleep(1.0)  # let py-spy attach before the load starts
    cpu0, busy0, t0 = proc_cpu(server_pid), machine_busy(), time.perf_counter()
    kids0, me0 = resource.getrusage(resource.RUSAGE_CHILDREN), os.times()
    with RssSampler(server_pid) as sampler:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(cfg)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
    cpu, busy, wall = proc_cpu(server_pid) - cpu0, machine_busy() - busy0, time.perf_counter() - t0
    kids, me = resource.getrusage(resource.RUSAGE_CHILDREN), os.times()
    worker_all = kids.ru_utime + kids.ru_stime - kids0.ru_utime - kids0.ru_stime  # the whole worker process
    own = me.user + me.system - me0.user - me0.system  # this process (the RSS sampler)
    stop_py_spy(spy)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["others_cpu_share"] = max(0.0, busy - cpu - worker_all - own) / wall
    return result, cpu, sampler.peak_kib


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        import uvloop

        uv = f", uvloop {uvloop.__version__}"
    except ImportError:
        uv = ""
    return (
        f"{os.cpu_count()} cores ({model or platform.processor()}), {mem:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, {platform.python_implementation()} {platform.python_version()}"
        f"{uv}, SQLite {sqlite3.sqlite_version}"
    )


def code_version() -> str:
    """The commit under test, and whether files outside bench/ and docs/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cs %s"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!docs"],
            capture_output=True, text=True, check=True,
        ).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return f"{ROOT} (not a git checkout)"
    changed = [line[3:] for line in status if line.strip()]
    dirty = f" + uncommitted changes in {', '.join(changed)}" if changed else ""
    return f"{head[:90]}{dirty}"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a ~20 s smoke run (shorter sends, 20k backlog)")
    p.add_argument("--seconds", type=float, help="sync-send duration (default 20, quick 4)")
    p.add_argument("--producers", type=int, default=16)
    p.add_argument("--backlog", type=int, help="end-to-end message count (default 200000, quick 20000)")
    p.add_argument("--batch", type=int, default=128, help="messages per SEND_BATCH_MESSAGE when filling")
    p.add_argument("--pull-batch", type=int, default=32)
    p.add_argument("--drain-connections", type=int, default=1, help="consumer connections for the drain (default 1)")
    p.add_argument("--skip", choices=["send", "e2e"], action="append", default=[], help="skip a phase")
    p.add_argument("--cprofile", metavar="FILE", help="run the server under cProfile, write stats to FILE")
    p.add_argument("--py-spy", metavar="DIR", help="sample the server with py-spy in each phase (raw files in DIR)")
    p.add_argument("--py-spy-args", default="", help='extra py-spy record options, e.g. "--native --idle"')
    p.add_argument("--keep", action="store_true", help="keep the data directory (and server.log)")
    p.add_argument("--worker", nargs=2, metavar=("NAME", "JSON"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        run_worker(*args.worker)
        return

    global PY_SPY_DIR
    if args.py_spy:
        PY_SPY_DIR = Path(args.py_spy).resolve()
        PY_SPY_DIR.mkdir(parents=True, exist_ok=True)
        PY_SPY_EXTRA[:] = args.py_spy_args.split()
    seconds = args.seconds if args.seconds is not None else (4.0 if args.quick else 20.0)
    backlog = args.backlog if args.backlog is not None else (20_000 if args.quick else 200_000)
    per_queue = -(-backlog // QUEUES)
    backlog = per_queue * QUEUES

    print(f"pocketmq benchmark, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
          f"{' (--quick)' if args.quick else ''}")  # fmt: skip
    print(f"machine: {machine()}; load average before the run {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="pocketmq-bench-"))
    server = Server(tmp, args.cprofile)
    print(f"code:    {code_version()}")
    print(f"server:  {' '.join(server.argv[1:])}  (cwd {ROOT})")
    try:
        t_spawn = server.start()
        t_first, broker = asyncio.run(first_send(server))
        ready = f"{server.ready_at - t_spawn:.3f} s" if server.ready_at else "n/a"
        print(f"1. start-up: {t_first - t_spawn:.3f} s from spawn to first SUCCESS send "
              f"(ready line 'namesrvAddr=' printed at {ready})")  # fmt: skip
        time.sleep(1.0)
        idle = proc_status(server.pid)
        print(f"2. idle RSS: {mib(idle['VmRSS'])}")

        if "send" not in args.skip:
            cfg = {"broker": broker, "topic": SEND_TOPIC, "producers": args.producers, "seconds": seconds}
            r, cpu, peak = spawn_worker("send", cfg, server.pid)
            rate = r["sent"] / r["elapsed"]
            print(f"3. sync send: {args.producers} producers (1 connection each, 1 outstanding SEND_MESSAGE_V2), "
                  f"{BODY_SIZE} B bodies, {r['elapsed']:.1f} s: {r['sent']} msgs, {rate:,.0f} msgs/s "
                  f"({rate * BODY_SIZE / 2**20:.1f} MiB/s of bodies), errors {r['errors'] or 0}")  # fmt: skip
            print(f"   latency ms: p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  p99 {r['p99_ms']:.2f}  "
                  f"max {r['max_ms']:.2f}  mean {r['mean_ms']:.2f}")  # fmt: skip
            ps = r["per_second"]
            if ps:
                print(f"   per-second msgs/s: min {min(ps):,}  median {sorted(ps)[len(ps) // 2]:,}  max {max(ps):,}")
            print(f"   CPU: server {cpu / r['elapsed']:.0%} of one core ({cpu / max(r['sent'], 1) * 1e6:.0f} us per "
                  f"message), load generator {r['worker_cpu_s'] / r['elapsed']:.0%}, "
                  f"other processes ~{r['others_cpu_share']:.0%}")  # fmt: skip
            print(f"4. loaded RSS: peak {mib(peak)} sampled during the sync sends "
                  f"(VmHWM so far {mib(proc_status(server.pid)['VmHWM'])})")  # fmt: skip

        if "e2e" not in args.skip:
            cfg = {"broker": broker, "topic": E2E_TOPIC, "per_queue": per_queue, "batch": args.batch}
            r, cpu, peak = spawn_worker("fill", cfg, server.pid)
            rate = r["sent"] / r["elapsed"]
            print(f"5. backlog fill: {r['sent']} msgs in {r['batches']} SEND_BATCH_MESSAGE of <= {args.batch} "
                  f"over {QUEUES} connections, {r['elapsed']:.1f} s: {rate:,.0f} msgs/s "
                  f"({rate * BODY_SIZE / 2**20:.1f} MiB/s); CPU: server {cpu / r['elapsed']:.0%} "
                  f"({cpu / r['sent'] * 1e6:.0f} us/msg), "
                  f"filler {r['worker_cpu_s'] / r['elapsed']:.0%}, others ~{r['others_cpu_share']:.0%}; "
                  f"peak RSS {mib(peak)}; problems: {r['problems'] or 'none'}")  # fmt: skip
            ps = r["per_second"]
            if len(ps) >= 2:
                print(f"   fill msgs/s per second: first {ps[0]:,}, last {ps[-1]:,}, min {min(ps):,}, max {max(ps):,}")
            conn_text = "1 connection" if args.drain_connections == 1 else f"{args.drain_connections} connections"
            for inline in (False, True):
                cfg = {"broker": broker, "topic": E2E_TOPIC, "per_queue": per_queue, "pull_batch": args.pull_batch,
                       "inline": inline, "connections": args.drain_connections}  # fmt: skip
                r, cpu, peak = spawn_worker("drain-inline" if inline else "drain", cfg, server.pid)
                rate = r["received"] / r["elapsed"]
                how = ("consumer decodes + checks each pull before re-pulling (Python consumer)" if inline else
                       "consumer keeps bodies, decodes + checks them after the clock stops")  # fmt: skip
                print(
                    f"   drain{' (inline decode)' if inline else ''}: {r['received']}/{backlog} msgs in "
                    f"{r['pulls']} PULL_MESSAGE (max {args.pull_batch}, {QUEUES} queues pipelined on {conn_text}; "
                    f"{how}), {r['elapsed']:.1f} s: {rate:,.0f} msgs/s ({rate * BODY_SIZE / 2**20:.1f} MiB/s)"
                )
                count_ok = r["received"] == backlog
                bodies = (
                    "all bodies intact" if count_ok and not r["bad_count"] else f"{r['bad_count']} problems: {r['bad']}"
                )
                codes = f"; non-FOUND answers {r['other_codes']}" if r["other_codes"] else ""
                later = f" (decoding + checking took {r['verify_s']:.1f} s after the drain)" if not inline else ""
                print(f"   verified: count {'OK' if count_ok else 'WRONG'}, {bodies}{codes}{later}")
                print(
                    f"   CPU: server {cpu / r['elapsed']:.0%} ({cpu / max(r['received'], 1) * 1e6:.0f} us/msg), "
                    f"consumer {r['worker_cpu_s'] / r['elapsed']:.0%}, "
                    f"others ~{r['others_cpu_share']:.0%}; peak RSS {mib(peak)}"
                )
        final = proc_status(server.pid)
        print(
            f"   server RSS at the end {mib(final['VmRSS'])}, VmHWM {mib(final['VmHWM'])}; "
            f"store {sum(f.stat().st_size for f in (tmp / 'store').iterdir()) / 2**20:.0f} MiB on disk"
        )
    finally:
        server.stop()
        if args.keep:
            print(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.cprofile:
        print(f"cProfile stats of the server: {args.cprofile} (python -m pstats {args.cprofile})")


if __name__ == "__main__":
    main()
