"""pocketmq and the stock Apache RocketMQ 5.3.3 name server + broker, side by side: same machine, same run, same load
generator (the stock Java client, bench/java-loadgen). Prints numbers only, no assertions.

    python bench/compare.py --quick                    # smoke run: 1 round, 5 s windows, a 50k backlog
    python bench/compare.py                            # 3 rounds, 15 s windows, a 500k backlog
    python bench/compare.py --rounds 5 --seconds 20 --backlog 200000 --phases sync,async --only pocketmq --keep
    python bench/compare.py --checker --rounds 3       # the invariant checker's cost: pocketmq on vs off

For each round and each server (order A P, then P A, ...: rounds interleave so drift on a shared machine hits both),
the server is started fresh in its own temporary directory and measured:

1. start-up: spawn -> first SUCCESS SEND_MESSAGE_V2, probed every 5 ms the way a producer starts (route of the topic,
   TOPIC_NOT_EXIST, route of TBW102, send). Apache: the name server is spawned, the broker once the name server
   listens (a broker started first would wait 10 s for its next registration); the clock starts at the first spawn.
2. idle RSS one second after that send (Apache: name server + broker).
   Then priming, not counted: ``--prime`` seconds of sync sends and a 50k-message fill and drain on topics of their
   own, so that the Apache JVMs' JIT has compiled the send, batch and pull paths (pocketmq gets the same).
3. the phases, each one load generator JVM (LoadGen.java describes them): sync, async, batch, fill, drain.
   The load generator prints the edges of its timed window; the server's CPU (utime + stime of every server process,
   all threads, from /proc/<pid>/stat) is read at those edges, so it covers exactly the window. Peak RSS is sampled
   every 50 ms while the phase's JVM runs.

At the end one table: medians over rounds per phase and server, and pocketmq/Apache as the median of the per-round
ratios. The load generator and the servers share the machine's cores; "others" estimates the CPU that other processes
used during each window (machine busy time minus server, load generator and this script).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codec import jsonbody  # noqa: E402
from codec.codes import RequestCode, ResponseCode  # noqa: E402
from codec.command import request  # noqa: E402
from compat_tests.apache.servers import (  # noqa: E402
    BROKER_MAIN,
    NAMESRV_MAIN,
    ROCKETMQ_VERSION,
    broker_port,
    build_classpath,
    port_open,
)
from compat_tests.harness import free_port  # noqa: E402
from remoting.client import RemotingClient  # noqa: E402

LOADGEN_DIR = Path(__file__).resolve().parent / "java-loadgen"
LOADGEN_MAIN = "pocketmq.bench.LoadGen"
PHASES = ("sync", "async", "batch", "fill", "drain")
PYTHON_PACKAGES = ("pocketmq", "codec", "remoting", "nameserver", "gateway", "store", "runtime")  # pyproject.toml
KINDS = ("apache", "pocketmq")
# --checker: pocketmq as it ships against itself with POCKETMQ_INVARIANTS=off (docs/testing.md, the checker's cost).
NO_CHECKER = "pocketmq-off"
LABEL = {"apache": "Apache", "pocketmq": "pocketmq", NO_CHECKER: "checker-off"}
PROBE_TOPIC = "BenchProbe"
SYNC_THREADS = 16
ASYNC_INFLIGHT = 512
BATCH_THREADS = 8
BATCH_SIZE = 64
PRIME_BACKLOG = 50_000

# JVM flags for a fair fight: runbroker.sh / runserver.sh's G1 settings with heaps that fit a shared 2-core box,
# without -XX:+AlwaysPreTouch (it would put the whole heap into RSS at start) and without GC log files.
G1_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=16m",
    "-XX:G1ReservePercent=25",
    "-XX:InitiatingHeapOccupancyPercent=30",
    "-XX:SoftRefLRUPolicyMSPerMB=0",
    "-XX:-OmitStackTraceInFastThrow",
)
COMMON_JVM_FLAGS = ("-Djava.net.preferIPv4Stack=true", "-Dfile.encoding=UTF-8")
NAMESRV_JVM_FLAGS = ("-server", "-Xms256m", "-Xmx256m", *G1_FLAGS, *COMMON_JVM_FLAGS)
BROKER_JVM_FLAGS = ("-server", "-Xms1g", "-Xmx1g", "-XX:MaxDirectMemorySize=1g", *G1_FLAGS, *COMMON_JVM_FLAGS)
LOADGEN_JVM_FLAGS = ("-Xms512m", "-Xmx512m", "-XX:+UseG1GC", *COMMON_JVM_FLAGS)

# Everything not listed is Apache's default (1 GiB commit log files, timer wheel on, index on, ...).
BROKER_CONF = {
    "brokerClusterName": "DefaultCluster",
    "brokerName": "broker-a",
    "brokerId": "0",
    "brokerRole": "ASYNC_MASTER",
    "flushDiskType": "ASYNC_FLUSH",
    "autoCreateTopicEnable": "true",
    "bindAddress": "127.0.0.1",
    "brokerIP1": "127.0.0.1",
}

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIVE: list[subprocess.Popen[Any]] = []  # every process this script started and has not reaped yet


# ---- /proc ------------------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in KiB."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return rss, anon


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path`` (sparse files count what they use)."""
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_blocks * 512
    return total


class MemSampler:
    """Peak summed VmRSS / RssAnon of some processes, sampled every 50 ms on a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_rss = self.peak_anon = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mems = [proc_mem(pid) for pid in self.pids]
            self.peak_rss = max(self.peak_rss, sum(m[0] for m in mems))
            self.peak_anon = max(self.peak_anon, sum(m[1] for m in mems))
            self._stop.wait(0.05)

    def __enter__(self) -> MemSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- processes --------------------------------------------------------------------------------------------------


def spawn(cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server process in its own session (Ctrl-C reaches only this script, which then stops it)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    _LIVE.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 60.0) -> None:
    """SIGTERM (shutdown hooks run), wait, SIGKILL if it does not go."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _LIVE:
        _LIVE.remove(proc)


def stop_everything() -> None:
    for proc in reversed(list(_LIVE)):
        stop(proc, timeout=30)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def first_send(namesrv: str, alive: Callable[[], bool], timeout: float = 120.0) -> float:
    """Poll like a starting producer until a send is accepted; return the perf_counter time of that SUCCESS."""
    host, _, port = namesrv.rpartition(":")
    end = time.perf_counter() + timeout
    last = ""
    while time.perf_counter() < end:
        if not alive():
            raise RuntimeError(f"a server process exited during start-up (last probe error: {last})")
        clients: list[RemotingClient] = []
        try:
            ns = await RemotingClient.connect(host, int(port), timeout=1)
            clients.append(ns)
            route = await ns.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": PROBE_TOPIC}), timeout=2)
            if route.code == ResponseCode.TOPIC_NOT_EXIST:
                route = await ns.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}), timeout=2)
            if route.code != ResponseCode.SUCCESS:
                raise RuntimeError(f"route: code {route.code} {route.remark}")
            addr = jsonbody.loads(route.body)["brokerDatas"][0]["brokerAddrs"]["0"]
            b_host, _, b_port = addr.rpartition(":")
            broker = await RemotingClient.connect(b_host, int(b_port), timeout=1)
            clients.append(broker)
            props = f"TAGS\x01TagA\x02UNIQ_KEY\x01{'0' * 32}\x02WAIT\x01true\x02"
            ext = {
                "a": "bench_probe", "b": PROBE_TOPIC, "c": "TBW102", "d": "4", "e": "0", "f": "0",
                "g": str(int(time.time() * 1000)), "h": "0", "i": props, "j": "0", "k": "false", "m": "false",
            }  # fmt: skip
            resp = await broker.invoke(request(RequestCode.SEND_MESSAGE_V2, ext, b"x" * 1024), timeout=5)
            if resp.code == ResponseCode.SUCCESS:
                return time.perf_counter()
            raise RuntimeError(f"send: code {resp.code} {resp.remark}")
        except Exception as err:  # refused, reset, not yet registered, ...: retry
            last = f"{type(err).__name__}: {err}"
            await asyncio.sleep(0.005)
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.aclose()
    raise RuntimeError(f"no accepted send within {timeout} s (last error: {last})")


@dataclass
class StartInfo:
    seconds: float  # first spawn -> first SUCCESS send
    detail: str


class Server:
    """A name server + broker under test, in ``work_dir``."""

    kind = ""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.broker_conf: dict[str, str] = {}  # broker.conf keys on top of the defaults (bench/retention.py)
        work_dir.mkdir(parents=True)

    @property
    def namesrv(self) -> str:
        raise NotImplementedError

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def store_dir(self) -> Path:
        return self.work_dir / "store"

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def start(self) -> StartInfo:
        raise NotImplementedError

    def logs(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        for proc in reversed(self.procs):  # Apache: the broker first (it unregisters from the name server)
            stop(proc)


class ApacheServer(Server):
    kind = "apache"

    def __init__(self, work_dir: Path, java: str, classpath: str) -> None:
        super().__init__(work_dir)
        self.java, self.classpath = java, classpath
        self.ns_port = free_port()
        self.broker_port = broker_port()  # also listens on port - 2 (the "fast" remoting server)
        self.home = work_dir / "home"  # ROCKETMQ_HOME and user.home: logs land in home/logs/rocketmqlogs
        self.home.mkdir()

    @property
    def namesrv(self) -> str:
        return f"127.0.0.1:{self.ns_port}"

    def _cmd(self, flags: tuple[str, ...], main: str, conf: dict[str, str], name: str) -> list[str]:
        path = self.work_dir / f"{name}.conf"
        path.write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
        return [
            self.java, *flags, f"-Duser.home={self.home}", f"-Drocketmq.home.dir={self.home}",
            "-cp", self.classpath, main, "-c", str(path),
        ]  # fmt: skip

    def start(self) -> StartInfo:
        env = {**os.environ, "ROCKETMQ_HOME": str(self.home)}
        ns_conf = {"listenPort": str(self.ns_port), "bindAddress": "127.0.0.1"}
        broker_conf = {
            **BROKER_CONF,
            "namesrvAddr": self.namesrv,
            "listenPort": str(self.broker_port),
            "haListenPort": str(free_port()),
            "storePathRootDir": str(self.store_dir),
            "storePathCommitLog": str(self.store_dir / "commitlog"),
            **self.broker_conf,
        }
        ns_cmd = self._cmd(NAMESRV_JVM_FLAGS, NAMESRV_MAIN, ns_conf, "namesrv")
        broker_cmd = self._cmd(BROKER_JVM_FLAGS, BROKER_MAIN, broker_conf, "broker")
        t0 = time.perf_counter()
        self.procs.append(spawn(ns_cmd, self.work_dir / "namesrv.console.log", self.work_dir, env))
        deadline = t0 + 60
        while not port_open(self.ns_port):
            if not self.alive() or time.perf_counter() > deadline:
                raise RuntimeError(f"the Apache name server did not start:\n{self.logs()}")
            time.sleep(0.01)
        t_ns = time.perf_counter()
        self.procs.append(spawn(broker_cmd, self.work_dir / "broker.console.log", self.work_dir, env))
        listening: list[float] = []

        def watch_port() -> None:
            while self.alive() and time.perf_counter() < deadline + 60:
                if port_open(self.broker_port):
                    listening.append(time.perf_counter())
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=watch_port, daemon=True)
        watcher.start()
        t_first = asyncio.run(first_send(self.namesrv, self.alive))
        watcher.join(1)
        broker = f"broker listening after {listening[0] - t0:.2f} s, " if listening else ""
        detail = f"name server listening after {t_ns - t0:.2f} s, {broker}first send after {t_first - t0:.2f} s"
        return StartInfo(t_first - t0, detail)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}:\n{tail(p)}"
            for p in (self.work_dir / "namesrv.console.log", self.work_dir / "broker.console.log")
        )


class PocketmqServer(Server):
    kind = "pocketmq"

    def __init__(self, work_dir: Path, source_dir: Path, checker: bool = True) -> None:
        super().__init__(work_dir)
        self.source_dir = source_dir
        self.checker = checker
        self.ns_port = free_port()
        self.broker_port = free_port()
        while self.broker_port == self.ns_port:
            self.broker_port = free_port()

    @property
    def namesrv(self) -> str:
        return f"127.0.0.1:{self.ns_port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "server.log"

    def start(self) -> StartInfo:
        cmd = [
            sys.executable, "-m", "pocketmq", "up", "--data-dir", str(self.store_dir), "--host", "127.0.0.1",
            "--namesrv-port", str(self.ns_port), "--broker-port", str(self.broker_port),
        ]  # fmt: skip
        if self.broker_conf:
            conf = self.work_dir / "broker.conf"
            conf.write_text("".join(f"{k}={v}\n" for k, v in self.broker_conf.items()))
            cmd += ["--config", str(conf)]
        # POCKETMQ_INVARIANTS passes through: `POCKETMQ_INVARIANTS=off` measures the broker without its checker.
        env = {k: v for k, v in os.environ.items() if not k.startswith("POCKETMQ_") or k == "POCKETMQ_INVARIANTS"}
        if not self.checker:
            env["POCKETMQ_INVARIANTS"] = "off"
        t0 = time.perf_counter()
        self.procs.append(spawn(cmd, self.log_path, self.source_dir, env))
        t_first = asyncio.run(first_send(self.namesrv, self.alive))
        return StartInfo(t_first - t0, "one process")

    def logs(self) -> str:
        return tail(self.log_path)


def byte_compile(source_dir: Path) -> str:
    """Compile the checkout's modules to bytecode first, as ``pip install`` does: an editable checkout run with
    PYTHONDONTWRITEBYTECODE set (as on the development machine) otherwise compiles every module at every start,
    which added about 60-80 ms to pocketmq's start-up."""
    packages = [d for d in PYTHON_PACKAGES if (source_dir / d).is_dir()]
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *packages], cwd=source_dir, capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"bytecode: compileall failed ({done.stderr.strip()[:200]}); modules compile at start-up"
    return f"bytecode: {', '.join(packages)} compiled first (as pip install does)"


# ---- the load generator -----------------------------------------------------------------------------------------


def build_loadgen(mvn: str) -> str:
    """Compile bench/java-loadgen once (again only when its sources change); return the classpath to run it."""
    target = LOADGEN_DIR / "target"
    stamp = target / "classpath.txt"
    sources = [LOADGEN_DIR / "pom.xml", *(LOADGEN_DIR / "src").rglob("*.java")]
    if not stamp.exists() or max(p.stat().st_mtime for p in sources) > stamp.stat().st_mtime:
        print("building bench/java-loadgen with maven ...", flush=True)
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(LOADGEN_DIR / "pom.xml"), "process-classes"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=LOADGEN_DIR, check=False)
        if proc.returncode != 0 or not stamp.exists():
            raise SystemExit(f"maven could not build bench/java-loadgen (exit {proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")  # fmt: skip
        stamp.touch()
    return os.pathsep.join([str(target / "classes"), stamp.read_text().strip()])


@dataclass
class Snapshot:
    at: float
    server: float
    loadgen: float
    busy: float
    own: float


def snapshot(server_pids: list[int], loadgen_pid: int) -> Snapshot:
    return Snapshot(
        time.perf_counter(), sum(proc_cpu(p) for p in server_pids), proc_cpu(loadgen_pid), machine_busy(), own_cpu()
    )


@dataclass
class PhaseRun:
    phase: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    server_cpu: float = float("nan")  # seconds over the window
    loadgen_cpu: float = float("nan")
    others_cpu: float = float("nan")
    wall: float = float("nan")  # seconds between the window edges as seen here
    peak_rss: int = 0  # KiB
    peak_anon: int = 0

    @property
    def msgs(self) -> int:
        return int(self.result.get("msgs") or 0)

    @property
    def rate(self) -> float | None:
        return self.result.get("msgs_per_s")

    @property
    def cpu_us_per_msg(self) -> float | None:
        return self.server_cpu / self.msgs * 1e6 if self.msgs and self.server_cpu == self.server_cpu else None

    def share(self, cpu: float) -> float | None:
        return cpu / self.wall if self.wall and self.wall == self.wall and cpu == cpu else None


def run_loadgen(java: str, classpath: str, server: Server, phase: str, args: list[str], timeout: float) -> PhaseRun:
    """Run one LoadGen phase against ``server``; sample the server's CPU at the window edges it prints."""
    run = PhaseRun(phase)
    cmd = [
        java, *LOADGEN_JVM_FLAGS, "-cp", classpath, LOADGEN_MAIN, phase, "--namesrv", server.namesrv,
        "--log-dir", str(server.work_dir / "client-logs"), *args,
    ]  # fmt: skip
    stderr_path = server.work_dir / f"loadgen-{phase}.stderr"
    snaps: dict[str, Snapshot] = {}
    with open(stderr_path, "ab") as err:
        proc = subprocess.Popen(
            cmd, cwd=server.work_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            text=True, start_new_session=True,
        )  # fmt: skip
    _LIVE.append(proc)
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if obj.get("event") in ("window_start", "window_end"):
                snaps[obj["event"]] = snapshot(server.pids, proc.pid)  # here, at once: the edge is now
            lines.append(obj)

    reader = threading.Thread(target=read, daemon=True)
    try:
        with MemSampler(server.pids) as mem:
            reader.start()
            reader.join(timeout)
            if reader.is_alive():
                run.error = f"timed out after {timeout:.0f} s"
                proc.kill()
                reader.join(10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
    finally:
        stop(proc, timeout=5)
    run.peak_rss, run.peak_anon = mem.peak_rss, mem.peak_anon
    for obj in lines:
        if "result" in obj:
            run.result = obj
        elif obj.get("event") == "fatal":
            run.error = f"load generator failed: {obj.get('error')}"
    if not run.result and run.error is None:
        run.error = f"no result (exit {proc.returncode}); {stderr_path}:\n{tail(stderr_path, 10)}"
    if "window_start" in snaps and "window_end" in snaps:
        a, b = snaps["window_start"], snaps["window_end"]
        run.wall = b.at - a.at
        run.server_cpu = b.server - a.server
        run.loadgen_cpu = b.loadgen - a.loadgen
        run.others_cpu = max(0.0, (b.busy - a.busy) - run.server_cpu - run.loadgen_cpu - (b.own - a.own))
    return run


# ---- formatting -------------------------------------------------------------------------------------------------


def num(x: float | None, digits: int = 0) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{digits}f}"


def pct(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.0%}"


def mib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def ms(x: float | None) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def short(x: float | None) -> str:
    """12345 -> 12.3k: the per-round column."""
    if x is None or x != x:
        return "n/a"
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


# ---- one server, one round --------------------------------------------------------------------------------------


@dataclass
class ServerRun:
    kind: str
    round: int
    start: StartInfo | None = None
    idle_rss: int = 0
    idle_anon: int = 0
    phases: dict[str, PhaseRun] = field(default_factory=dict)
    error: str | None = None
    exactly_once: bool | None = None


@dataclass
class Config:
    java: str
    loadgen_cp: str
    apache_cp: str
    source_dir: Path
    tmp: Path
    rounds: int
    seconds: float
    warmup: float
    prime: float
    backlog: int
    phases: list[str]
    keep: bool
    timeout: float
    drop_caches: bool
    baseline: str = "apache"  # the kind ratios divide by


def phase_args(cfg: Config, phase: str, run: ServerRun, fill: PhaseRun | None) -> tuple[list[str], float]:
    """The LoadGen options for a phase and the hard time limit for its JVM."""
    timed = ["--seconds", str(cfg.seconds), "--warmup", str(cfg.warmup)]
    limit = cfg.warmup + cfg.seconds + 120
    if phase == "sync":
        return ["--topic", "BenchSync", "--group", "bench_sync", "--threads", str(SYNC_THREADS), *timed], limit
    if phase == "async":
        return ["--topic", "BenchAsync", "--group", "bench_async", "--inflight", str(ASYNC_INFLIGHT), *timed], limit
    if phase == "batch":
        args = ["--topic", "BenchBatch", "--group", "bench_batch", "--threads", str(BATCH_THREADS)]
        return [*args, "--batch", str(BATCH_SIZE), *timed], limit
    if phase == "fill":
        args = ["--topic", "BenchBacklog", "--group", "bench_fill", "--messages", str(cfg.backlog)]
        args += ["--batch", str(BATCH_SIZE), "--threads", str(BATCH_THREADS), "--timeout", str(cfg.timeout)]
        return args, cfg.timeout + 120
    assert phase == "drain" and fill is not None
    group = f"bench_drain_r{run.round}_{run.kind}"
    args = ["--topic", "BenchBacklog", "--group", group, "--messages", str(fill.msgs), "--timeout", str(cfg.timeout)]
    return args, cfg.timeout + 120


def verify_drain(fill: PhaseRun, drain: PhaseRun) -> tuple[bool, str]:
    """Did every message the fill stored arrive, exactly once (distinct queue offsets per queue)?"""
    ends = {q: int(e) for q, e in fill.result.get("queue_ends", {}).items()}
    queues = drain.result.get("queues", {})
    problems = []
    for q, end in sorted(ends.items()):
        got = queues.get(q, {"distinct": 0, "end": 0})
        if got["distinct"] != end or got["end"] != end:
            problems.append(f"queue {q}: {got['distinct']} distinct offsets up to {got['end']}, expected 0..{end - 1}")
    problems += [f"queue {q}: not filled, yet delivered" for q in queues if q not in ends]
    if drain.result.get("duplicates"):
        problems.append(f"{drain.result['duplicates']} duplicate deliveries")
    if not drain.result.get("complete"):
        problems.append("timed out before all arrived")
    if problems:
        return False, "; ".join(problems)
    return True, f"every queue's offsets 0..end-1 exactly once ({len(ends)} queues)"


def describe_phase(p: PhaseRun, extra: str = "") -> list[str]:
    r = p.result
    cpu = (
        f"server CPU {pct(p.share(p.server_cpu))} of a core, {num(p.cpu_us_per_msg)} us/msg; "
        f"load generator {pct(p.share(p.loadgen_cpu))}; others ~{pct(p.share(p.others_cpu))}; "
        f"peak RSS {mib(p.peak_rss)} MiB (anon {mib(p.peak_anon)})"
    )
    errors = f"errors {r.get('errors', 0)}" + (f" {r['error_kinds']}" if r.get("error_kinds") else "")
    if p.phase in ("sync", "async", "batch"):
        what = {"sync": f"{r.get('threads')} threads", "async": f"{r.get('inflight')} in flight",
                "batch": f"{r.get('threads')} threads x {r.get('batch')}"}[p.phase]  # fmt: skip
        head = (
            f"{num(p.rate)} msgs/s ({what}; {r.get('msgs', 0):,} msgs in {r.get('window_s', 0):.2f} s; warm-up "
            f"{r.get('warmup_s', 0):.1f} s: {r.get('warmup_msgs', 0):,} msgs, {num(r.get('warmup_msgs_per_s'))} msgs/s)"
        )
        unit = "per batch " if p.phase == "batch" else ""
        lat = f"latency {unit}ms p50 {ms(r.get('p50_ms'))} p99 {ms(r.get('p99_ms'))} max {ms(r.get('max_ms'))}"
        return [head, f"{lat}; {errors}", cpu]
    if p.phase == "fill":
        head = (
            f"{num(p.rate)} msgs/s ({r.get('msgs', 0):,}/{r.get('requested', 0):,} msgs in "
            f"{r.get('window_s', 0):.2f} s, {r.get('threads')} threads x batches of {r.get('batch')}; "
            f"first answer after {num(r.get('first_s'), 2)} s)"
        )
        spread = (
            f"head 20 % {num(r.get('head_msgs_per_s'))}, tail 20 % {num(r.get('tail_msgs_per_s'))} msgs/s; "
            f"latency per batch ms p50 {ms(r.get('p50_ms'))} p99 {ms(r.get('p99_ms'))}; {errors}"
        )
        return [head, spread, cpu]
    head = (
        f"{num(p.rate)} msgs/s ({r.get('msgs', 0):,}/{r.get('expected', 0):,} distinct in {r.get('window_s', 0):.2f} s "
        f"from consumer start; first message after {num(r.get('first_s'), 2)} s)"
    )
    spread = (
        f"head 20 % {num(r.get('head_msgs_per_s'))}, tail 20 % {num(r.get('tail_msgs_per_s'))} msgs/s "
        f"(tail/head {num(ratio(r.get('tail_msgs_per_s'), r.get('head_msgs_per_s')), 2)}); {extra}"
    )
    return [head, spread, cpu]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a != a or b != b or b == 0:
        return None
    return a / b


def prime(cfg: Config, server: Server) -> None:
    """Untimed load on every path the phases use, so that a JVM's JIT has compiled them before the measuring."""
    backlog = str(PRIME_BACKLOG)
    steps = [
        ("sync", ["--topic", "BenchPrime", "--group", "bench_prime", "--threads", str(SYNC_THREADS),
                  "--seconds", str(cfg.prime), "--warmup", "0"]),
        ("fill", ["--topic", "BenchPrimeBacklog", "--group", "bench_prime", "--messages", backlog,
                  "--batch", str(BATCH_SIZE), "--threads", str(BATCH_THREADS), "--timeout", "300"]),
        ("drain", ["--topic", "BenchPrimeBacklog", "--group", "bench_prime_drain", "--messages", backlog,
                   "--timeout", "300"]),
    ]  # fmt: skip
    done = []
    for phase, args in steps:
        p = run_loadgen(cfg.java, cfg.loadgen_cp, server, phase, args, cfg.prime + 420)
        err = f" ({p.error})" if p.error else ""
        done.append(f"{phase} {num(p.rate)} msgs/s, {num(p.cpu_us_per_msg)} us/msg{err}")
    print(f"  prime  (not counted) {'; '.join(done)}", flush=True)


DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_page_cache(cfg: Config) -> None:
    """Free the page cache, so that each server writes into memory in the same state. On the VMs this runs on,
    pages the guest has never used cost about 15 times more to write to than freed ones (4.4 against 0.3 us per
    KiB), and which of the two a server gets otherwise depends on what ran before it."""
    if cfg.drop_caches:
        os.sync()
        DROP_CACHES.write_text("3\n")


def run_server(cfg: Config, kind: str, round_no: int) -> ServerRun:
    run = ServerRun(kind, round_no)
    work = cfg.tmp / f"round{round_no + 1}-{kind}"
    server: Server = (
        ApacheServer(work, cfg.java, cfg.apache_cp)
        if kind == "apache"
        else PocketmqServer(work, cfg.source_dir, checker=kind != NO_CHECKER)
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nround {round_no + 1}/{cfg.rounds}: {LABEL[kind]} (load average {load})", flush=True)
    try:
        drop_page_cache(cfg)
        try:
            run.start = server.start()
        except RuntimeError as err:
            run.error = f"start-up failed: {err}\n{server.logs()}"
            print(f"  {run.error}")
            return run
        time.sleep(1.0)
        mems = [proc_mem(pid) for pid in server.pids]
        run.idle_rss, run.idle_anon = sum(m[0] for m in mems), sum(m[1] for m in mems)
        parts = "" if len(mems) == 1 else " = " + " + ".join(f"{m[0] / 1024:.1f}" for m in mems) + " (namesrv + broker)"
        print(f"  start-up {run.start.seconds:.2f} s ({run.start.detail}); idle RSS {mib(run.idle_rss)} MiB"
              f"{parts}, anon {mib(run.idle_anon)} MiB", flush=True)  # fmt: skip
        if cfg.prime > 0:
            prime(cfg, server)
        for phase in cfg.phases:
            if not server.alive():
                run.error = f"the server died before {phase}:\n{server.logs()}"
                print(f"  {run.error}")
                break
            if phase == "drain" and not (run.phases.get("fill") and run.phases["fill"].msgs):
                print("  drain  skipped: the fill stored nothing")
                continue
            args, limit = phase_args(cfg, phase, run, run.phases.get("fill"))
            if phase != "drain":  # a drain reads the backlog its fill just wrote, from the page cache
                drop_page_cache(cfg)
            p = run_loadgen(cfg.java, cfg.loadgen_cp, server, phase, args, limit)
            run.phases[phase] = p
            extra = ""
            if phase == "drain" and "fill" in run.phases and p.result:
                run.exactly_once, extra = verify_drain(run.phases["fill"], p)
            if p.error:
                print(f"  {phase:<6} ERROR {p.error}")
            if p.result:
                for i, text in enumerate(describe_phase(p, extra)):
                    print(f"  {phase if i == 0 else '':<6} {text}", flush=True)
        if server.alive():
            mems = [proc_mem(pid) for pid in server.pids]
            print(f"  at the end: RSS {mib(sum(m[0] for m in mems))} MiB (anon {mib(sum(m[1] for m in mems))}), "
                  f"store {disk_usage(server.store_dir) / 2**20:,.0f} MiB on disk", flush=True)  # fmt: skip
    finally:
        server.stop()
        if cfg.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return run


# ---- the summary ------------------------------------------------------------------------------------------------


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and v == v]
    return statistics.median(vals) if vals else None


def paired_ratio(
    runs: dict[str, list[ServerRun]], metric: Callable[[ServerRun], float | None], baseline: str = "apache"
) -> float | None:
    """Median over rounds of pocketmq / the baseline (Apache), each round's two runs paired."""
    pairs = zip(runs.get("pocketmq", []), runs.get(baseline, []), strict=False)
    return median([ratio(metric(p), metric(a)) for p, a in pairs])


def phase_metric(phase: str, get: Callable[[PhaseRun], float | None]) -> Callable[[ServerRun], float | None]:
    def metric(run: ServerRun) -> float | None:
        p = run.phases.get(phase)
        return get(p) if p is not None and p.result else None

    return metric


def summary(cfg: Config, runs: dict[str, list[ServerRun]]) -> Iterator[str]:
    kinds = [k for k in (cfg.baseline, "pocketmq") if runs.get(k)]
    both = len(kinds) == 2
    n = max(len(v) for v in runs.values())
    yield ""
    legend = (
        "; P/A = pocketmq / Apache, the median of the per-round ratios (msgs/s above 1: pocketmq faster; "
        "latency, CPU and RSS below 1: pocketmq leaner)"
        if cfg.baseline == "apache"
        else "; P/A = pocketmq with its invariant checker / with POCKETMQ_INVARIANTS=off, the median of the "
        "per-round ratios (msgs/s below 1, CPU above 1: what the checker costs)"
    )
    yield f"Summary: medians over {n} round{'s' if n != 1 else ''}{legend if both else ''}"
    yield ""

    def start_s(r: ServerRun) -> float | None:
        return r.start.seconds if r.start else None

    def idle(r: ServerRun) -> float | None:
        return r.idle_rss / 1024 if r.start else None

    for title, metric, fmt in (
        ("start-up, spawn -> first SUCCESS send (s)", start_s, lambda x: num(x, 2)),
        ("idle RSS (MiB)", idle, lambda x: num(x, 1)),
    ):
        cells = [f"{LABEL[k]} {fmt(median([metric(r) for r in runs[k]]))}" for k in kinds]
        if both:
            cells.append(f"P/A {num(paired_ratio(runs, metric, cfg.baseline), 3)}")
        yield f"{title:<44} " + "   ".join(cells)
    yield ""
    header = (
        f"{'phase':<6} {'server':<9} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/msg':>10} {'CPU %core':>9} "
        f"{'peak RSS MiB':>12} {'(anon)':>8} {'loadgen':>7} {'others':>6}  msgs/s per round"
    )
    yield header
    yield "-" * len(header)
    getters: list[tuple[str, Callable[[PhaseRun], float | None], Callable[[float | None], str], int]] = [
        ("msgs/s", lambda p: p.rate, num, 9),
        ("p50", lambda p: p.result.get("p50_ms"), ms, 8),
        ("p99", lambda p: p.result.get("p99_ms"), ms, 8),
        ("cpu", lambda p: p.cpu_us_per_msg, num, 10),
        ("core", lambda p: p.share(p.server_cpu) * 100 if p.share(p.server_cpu) is not None else None, num, 9),
        ("rss", lambda p: p.peak_rss / 1024 if p.peak_rss else None, lambda x: num(x, 1), 12),
        ("anon", lambda p: p.peak_anon / 1024 if p.peak_anon else None, lambda x: num(x, 1), 8),
        ("loadgen", lambda p: p.share(p.loadgen_cpu), pct, 7),
        ("others", lambda p: p.share(p.others_cpu), pct, 6),
    ]
    for phase in cfg.phases:
        for k in kinds:
            phase_runs = [r.phases[phase] for r in runs[k] if phase in r.phases and r.phases[phase].result]
            cells = [fmt(median([get(p) for p in phase_runs])).rjust(width) for _, get, fmt, width in getters]
            per_round = " ".join(short(p.rate) for p in phase_runs)
            yield f"{phase if k == kinds[0] else '':<6} {LABEL[k]:<9} {' '.join(cells)}  {per_round}"
        if both:
            cells = []
            for name, get, _, width in getters:
                if name in ("loadgen", "others"):
                    cells.append(" " * width)
                    continue
                cells.append(num(paired_ratio(runs, phase_metric(phase, get), cfg.baseline), 2).rjust(width))
            yield f"{'':<6} {'P/A':<9} {' '.join(cells)}".rstrip()
    notes = []
    for phase in ("fill", "drain"):
        if phase not in cfg.phases:
            continue
        for k in kinds:
            ps = [r.phases[phase] for r in runs[k] if phase in r.phases and r.phases[phase].result]
            if not ps:
                continue
            head = median([p.result.get("head_msgs_per_s") for p in ps])
            tail_ = median([p.result.get("tail_msgs_per_s") for p in ps])
            tail_head = median([ratio(p.result.get("tail_msgs_per_s"), p.result.get("head_msgs_per_s")) for p in ps])
            line = (
                f"{phase:<6} {LABEL[k]:<9} head 20 % {num(head):>8} msgs/s, tail 20 % {num(tail_):>8} msgs/s, "
                f"tail/head {num(tail_head, 2)}"
            )
            if phase == "drain":
                ok = [r.exactly_once for r in runs[k] if "drain" in r.phases]
                line += f"; every message exactly once in {sum(1 for x in ok if x)}/{len(ok)} rounds"
            notes.append(line)
    if notes:
        yield ""
        yield "Backlog head and tail (first and last 20 % of the messages; the drain's head starts at its first one):"
        yield from notes
    trouble = []
    for k in kinds:
        for r in runs[k]:
            if r.error:
                trouble.append(f"round {r.round + 1} {LABEL[k]}: {r.error.splitlines()[0]}")
            for p in r.phases.values():
                errs = p.result.get("errors_total", p.result.get("errors", 0)) if p.result else 0
                if p.error or errs or p.result.get("stuck_threads") or p.result.get("unfinished"):
                    what = p.error or f"{errs} send errors {p.result.get('error_kinds', {})}"
                    trouble.append(f"round {r.round + 1} {LABEL[k]} {p.phase}: {what}")
    yield ""
    yield "Problems: " + ("none" if not trouble else "")
    yield from (f"  {t}" for t in trouble)


# ---- main -------------------------------------------------------------------------------------------------------


def java_version(java: str) -> str:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    runtime = next((line for line in out if "Runtime Environment" in line), "")
    return (out[0] if out else "?") + (f" ({runtime.split('(build ')[-1].rstrip(')')})" if runtime else "")


def machine(java: str) -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = []
    for dist in ("uvloop", "anyio", "orjson"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    return (
        f"{os.cpu_count()} cores ({model or platform.processor()}), {mem:.1f} GiB RAM, {platform.system()} "
        f"{platform.release()}; {platform.python_implementation()} {platform.python_version()}, {', '.join(versions)}, "
        f"SQLite {sqlite3.sqlite_version}; Java: {java_version(java)}"
    )


def code_revision(path: Path) -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    try:
        head = f"{git('describe', '--always', '--dirty')} ({git('log', '-1', '--format=%cs %s')[:80]})"
        status = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        changed = [line[3:] for line in status.splitlines() if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        return f"{path} (not a git checkout)"
    if changed:
        head += f"; uncommitted changes in {', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}"
    return head


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 5 s windows, 2 s warm-up, 50k backlog")
    p.add_argument("--rounds", type=int, help="rounds per server (default 3, quick 1)")
    p.add_argument("--seconds", type=float, help="timed window of sync/async/batch (default 15, quick 5)")
    p.add_argument("--warmup", type=float, help="warm-up before each window (default 3, quick 2)")
    p.add_argument("--backlog", type=int, help="messages to fill and drain (default 500000, quick 50000)")
    p.add_argument("--prime", type=float, help="seconds of priming sync sends (default 30, quick 10; 0: no priming)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--only", choices=KINDS, help="measure one server only")
    p.add_argument(
        "--checker", action="store_true", help="pocketmq against itself with POCKETMQ_INVARIANTS=off, no Apache"
    )
    p.add_argument(
        "--keep-page-cache",
        action="store_true",
        help="do not drop the page cache before each server and phase (it is dropped when writable)",
    )
    p.add_argument("--keep", action="store_true", help="keep each server's directory (data, logs, client logs)")
    p.add_argument("--timeout", type=float, default=900, help="limit for fill and for drain, seconds (default 900)")
    p.add_argument("--pocketmq-dir", type=Path, default=ROOT, help="the checkout whose pocketmq is run (default: this)")
    args = p.parse_args()

    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if unknown := set(phases) - set(PHASES):
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if "drain" in phases and "fill" not in phases:
        p.error("drain needs fill (it drains the backlog fill makes)")
    phases = [x for x in PHASES if x in phases]
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if java is None or mvn is None:
        raise SystemExit("java and mvn are needed (the load generator and the Apache servers are Java)")
    if args.checker and args.only:
        p.error("--checker compares pocketmq with itself: it does not go with --only")
    kinds = [NO_CHECKER, "pocketmq"] if args.checker else [args.only] if args.only else list(KINDS)

    def signalled(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, signalled)
    started = time.perf_counter()
    loadgen_cp = build_loadgen(mvn)
    apache_cp = build_classpath(mvn) if "apache" in kinds else ""
    cfg = Config(
        java=java, loadgen_cp=loadgen_cp, apache_cp=apache_cp, source_dir=args.pocketmq_dir.resolve(),
        tmp=Path(tempfile.mkdtemp(prefix="pocketmq-compare-")),
        rounds=args.rounds or (1 if args.quick else 3),
        seconds=args.seconds or (5.0 if args.quick else 15.0),
        warmup=args.warmup if args.warmup is not None else (2.0 if args.quick else 3.0),
        prime=args.prime if args.prime is not None else (10.0 if args.quick else 30.0),
        backlog=args.backlog or (50_000 if args.quick else 500_000),
        phases=phases, keep=args.keep, timeout=args.timeout,
        drop_caches=not args.keep_page_cache and os.access(DROP_CACHES, os.W_OK),
        baseline=NO_CHECKER if args.checker else "apache",
    )  # fmt: skip

    compiled = byte_compile(cfg.source_dir) if "pocketmq" in kinds else ""
    if args.checker:
        print("--checker: pocketmq with its invariant checker, and with POCKETMQ_INVARIANTS=off, no Apache")
    now = datetime.datetime.now().astimezone()
    print(f"pocketmq vs Apache RocketMQ {ROCKETMQ_VERSION}, side by side, {now:%Y-%m-%d %H:%M %Z}"
          f"{' (--quick)' if args.quick else ''}")  # fmt: skip
    print(f"machine:  {machine(java)}")
    print(f"load:     load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) at the start")
    print(f"code:     {code_revision(cfg.source_dir)}, pocketmq run from {cfg.source_dir}")
    print(f"pocketmq: {sys.executable} -m pocketmq up (defaults: ASYNC_FLUSH = SQLite WAL, synchronous=NORMAL)")
    if compiled:
        print(f"          {compiled}")
    print(f"apache:   namesrv JVM {' '.join(NAMESRV_JVM_FLAGS)}")
    print(f"          broker  JVM {' '.join(BROKER_JVM_FLAGS)}")
    print(f"          broker.conf {' '.join(f'{k}={v}' for k, v in BROKER_CONF.items())}, the rest Apache defaults")
    print(f"loadgen:  rocketmq-client 5.3.3 (remoting), JVM {' '.join(LOADGEN_JVM_FLAGS)}; 1 KiB bodies, tag TagA")
    print(f"          sync {SYNC_THREADS} threads / async {ASYNC_INFLIGHT} in flight / batch {BATCH_THREADS} threads "
          f"x {BATCH_SIZE}: {cfg.warmup:g} s warm-up + {cfg.seconds:g} s window; fill {cfg.backlog:,} msgs "
          f"({BATCH_THREADS} threads x {BATCH_SIZE}); drain: 1 push consumer")  # fmt: skip
    orders = [kinds if r % 2 == 0 else kinds[::-1] for r in range(cfg.rounds)]
    prime = (
        f"priming after start-up ({cfg.prime:g} s of sync sends, a {PRIME_BACKLOG:,}-message fill and its drain, "
        "not counted: JIT warm-up), then "
        if cfg.prime
        else ""
    )
    cache = "dropped before each start-up and each phase but drain" if cfg.drop_caches else "left as it is"
    print(f"cache:    page cache {cache}")
    print(f"plan:     {cfg.rounds} round(s), order {' | '.join(' '.join(LABEL[k] for k in o) for o in orders)}; "
          f"{prime}phases {', '.join(phases)}")  # fmt: skip

    runs: dict[str, list[ServerRun]] = {k: [] for k in kinds}
    interrupted = False
    try:
        for r, order in enumerate(orders):
            for kind in order:
                runs[kind].append(run_server(cfg, kind, r))
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping every process started here", flush=True)
    finally:
        stop_everything()
        if not cfg.keep:
            shutil.rmtree(cfg.tmp, ignore_errors=True)
    for kind in kinds:
        runs[kind].sort(key=lambda run: run.round)
    runs = {k: v for k, v in runs.items() if v}
    if runs:
        for line in summary(cfg, runs):
            print(line)
    elapsed = time.perf_counter() - started
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nfinished {datetime.datetime.now().astimezone():%H:%M %Z}, {elapsed / 60:.1f} min in all; load average "
          f"{load} at the end{' (interrupted)' if interrupted else ''}")  # fmt: skip
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
