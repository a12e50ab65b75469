"""The stock Apache RocketMQ name server, broker and gRPC proxy (Maven Central artifacts) and lone pocketmq
processes, for compat_tests/test_apache_interop.py and the Apache baseline of the 5.x gRPC clients
(compat_tests/test_python5_vs_apache.py, through ``ApacheProxyStack``).

``build_classpath`` resolves the artifacts named in ``pom.xml`` beside this file and returns their runtime classpath;
``ApacheProcess`` runs ``NamesrvStartup`` or ``BrokerStartup`` from it with a generated config file, small heap and a
private ``ROCKETMQ_HOME``/``user.home`` (logs land in ``<work_dir>/home/logs/rocketmqlogs``); ``PocketmqProcess`` runs
``python -m pocketmq namesrv|broker``. Every process listens on loopback ports picked free at start.
``ApacheProxyStack`` is a name server + broker (timer wheel on, for 5.x delay messages) + ``ProxyStartup -pm cluster``
(configured by a generated ``rmq-proxy.json``, its gRPC and remoting ports free loopback ports).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from compat_tests.harness import free_port
from remoting.client import RemotingClient

APACHE_DIR = Path(__file__).resolve().parent
ROCKETMQ_VERSION = "5.3.3"  # the <rocketmq.version> in pom.xml; 4.9.8's server artifacts are not on Maven Central
NAMESRV_MAIN = "org.apache.rocketmq.namesrv.NamesrvStartup"
BROKER_MAIN = "org.apache.rocketmq.broker.BrokerStartup"
PROXY_MAIN = "org.apache.rocketmq.proxy.ProxyStartup"

# Small fixed heaps, serial GC and C1 only: two of these JVMs share two cores with pytest for under a minute.
JVM_FLAGS = (
    "-Xms256m",
    "-Xmx256m",
    "-Xmn128m",
    "-XX:MaxDirectMemorySize=256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
    "-Dfile.encoding=UTF-8",
)


class BuildError(RuntimeError):
    pass


def build_classpath(mvn: str, timeout: float = 900) -> str:
    """Resolve the Apache server artifacts with Maven (quietly) and return their runtime classpath."""
    pom = APACHE_DIR / "pom.xml"
    classpath_file = APACHE_DIR / "target" / "classpath.txt"
    cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), "process-classes"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=APACHE_DIR, check=False)
    if proc.returncode != 0 or not classpath_file.exists():
        raise BuildError(f"maven could not resolve the Apache RocketMQ {ROCKETMQ_VERSION} servers "
                         f"(exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")  # fmt: skip
    return classpath_file.read_text().strip()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def broker_port() -> int:
    """A free port P for an Apache broker, which also listens on P - 2 (its 'fast' remoting server)."""
    for _ in range(50):
        port = free_port()
        if port > 1026 and _bindable(port - 2):
            return port
    raise RuntimeError("no free port pair for the Apache broker")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ApacheProcess:
    """One Apache name server, broker or proxy JVM, configured by a generated file: ``key=value`` lines passed with
    ``-c`` (name server, broker), or for the proxy JSON passed with ``-pc`` (plus ``-pm cluster``)."""

    java: str
    classpath: str
    main_class: str
    work_dir: Path
    port: int
    config: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.work_dir / "home"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "console.log"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs" / "rocketmqlogs"

    def start(self, timeout: float = 60.0) -> None:
        """Start the JVM and wait until it accepts connections on its port."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.main_class == PROXY_MAIN:
            conf = self.work_dir / "rmq-proxy.json"
            conf.write_text(json.dumps(self.config, indent=2))
            main_args = ["-pc", str(conf), "-pm", "cluster"]
        else:
            conf = self.work_dir / "server.conf"
            conf.write_text("".join(f"{k}={v}\n" for k, v in self.config.items()))
            main_args = ["-c", str(conf)]
        cmd = [
            self.java, *JVM_FLAGS,
            f"-Duser.home={self.home}", f"-Drocketmq.home.dir={self.home}",
            # netty's self-signed test certificates (TLS test mode) are written there, and left behind by kill -9.
            f"-Djava.io.tmpdir={self.work_dir}",
            "-cp", self.classpath, self.main_class, *main_args,
        ]  # fmt: skip
        env = {**os.environ, "ROCKETMQ_HOME": str(self.home)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work_dir, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.main_class} exited with {self.proc.returncode}:\n{_tail(self.log_path)}")
            if port_open(self.port):
                return
            time.sleep(0.2)
        self.stop(graceful=False)
        raise RuntimeError(f"{self.main_class} did not listen on {self.port} in {timeout} s:\n{_tail(self.log_path)}")

    def terminate(self) -> None:
        """Ask for a graceful stop (SIGTERM runs the JVM's shutdown hooks) without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Terminate (or kill) and wait; a JVM still running after ``timeout`` is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def apache_namesrv(java: str, classpath: str, work_dir: Path) -> ApacheProcess:
    port = free_port()
    config = {"listenPort": str(port), "bindAddress": "127.0.0.1"}
    return ApacheProcess(java, classpath, NAMESRV_MAIN, work_dir, port, config)


def apache_broker(
    java: str,
    classpath: str,
    work_dir: Path,
    namesrv_addr: str,
    broker_name: str,
    cluster: str,
    *,
    timer_wheel: bool = False,
    extra: dict[str, str] | None = None,
) -> ApacheProcess:
    """A broker JVM; ``timer_wheel`` turns on 5.x timer (delay) messages, with a small timer log, and SQL92
    filtering; ``extra`` adds or overrides broker config keys."""
    port = broker_port()
    store = work_dir / "store"
    config = {
        "brokerClusterName": cluster,
        "brokerName": broker_name,
        "brokerId": "0",
        "brokerRole": "ASYNC_MASTER",
        "flushDiskType": "ASYNC_FLUSH",
        "namesrvAddr": namesrv_addr,
        "listenPort": str(port),
        "bindAddress": "127.0.0.1",
        "brokerIP1": "127.0.0.1",
        "haListenPort": str(free_port()),
        "storePathRootDir": str(store),
        "storePathCommitLog": str(store / "commitlog"),
        # Small files instead of the 1 GiB commit log, the 5.7 MiB consume queues and the ~400 MiB index file.
        "mappedFileSizeCommitLog": str(4 * 1024 * 1024),
        "mappedFileSizeConsumeQueue": str(1000 * 20),
        "maxHashSlotNum": "1000",
        "maxIndexNum": "4000",
        # No timer wheel (5.x delay messages; it preallocates its own files) unless asked for.
        "timerWheelEnable": "false",
        "diskSpaceWarningLevelRatio": "99",
    }
    if timer_wheel:
        # A 4 MiB timer log instead of 100 MiB; SQL92 subscriptions need the property filter.
        config |= {
            "timerWheelEnable": "true", "mappedFileSizeTimerLog": str(4 * 1024 * 1024), "enablePropertyFilter": "true",
        }  # fmt: skip
    config |= extra or {}
    return ApacheProcess(java, classpath, BROKER_MAIN, work_dir, port, config)


def apache_proxy(
    java: str, classpath: str, work_dir: Path, namesrv_addr: str, cluster: str, extra: dict[str, str] | None = None
) -> ApacheProcess:
    """``ProxyStartup -pm cluster`` in front of the brokers of ``cluster``: gRPC (5.x clients) on a free port (the
    process's ``port``), remoting on another. TLS is permissive (plaintext and TLS on the same port); without
    ``extra`` keys ``tlsTestModeEnable=false`` + ``tlsCertPath``/``tlsKeyPath`` (PEM, PKCS#8 key) its certificate is
    a self-signed one made at start-up."""
    port = free_port()
    config = {
        "rocketMQClusterName": cluster,
        "namesrvAddr": namesrv_addr,
        "grpcServerPort": str(port),
        "remotingListenPort": str(free_port()),
        "localServeAddr": "127.0.0.1",
        "proxyName": "pocketmq-compat-proxy",
        # Fewer threads than the defaults (sized for many cores): this machine has two.
        "grpcWorkerLoopNum": "2",
        "grpcThreadPoolNums": "8",
        "rocketmqMQClientNum": "2",
        "transactionHeartbeatThreadPoolNums": "2",
        # The proxy registers a transactional producer's group at the broker with this heartbeat (default 20 s):
        # until then the broker has nobody to ask about an open transaction.
        "transactionHeartbeatPeriodSecond": "2",
    }
    config |= extra or {}
    return ApacheProcess(java, classpath, PROXY_MAIN, work_dir, port, config)


def wait_registered(namesrv_addr: str, cluster: str, broker_name: str, timeout: float) -> None:
    """Poll the name server's cluster info (GET_BROKER_CLUSTER_INFO) until ``cluster`` lists ``broker_name``."""

    async def listed() -> bool:
        host, _, port = namesrv_addr.rpartition(":")
        client = await RemotingClient.connect(host, int(port))
        try:
            response = await client.invoke(request(RequestCode.GET_BROKER_CLUSTER_INFO), timeout=5)
        finally:
            await client.aclose()
        if response.code != ResponseCode.SUCCESS:
            return False
        return broker_name in (jsonbody.loads(response.body).get("clusterAddrTable") or {}).get(cluster, [])

    deadline = time.monotonic() + timeout
    while not anyio.run(listed):
        if time.monotonic() > deadline:
            raise RuntimeError(f"broker {broker_name} not registered in {cluster} at {namesrv_addr} in {timeout} s")
        time.sleep(0.2)


@dataclass
class ApacheProxyStack:
    """An Apache name server, a broker (timer wheel on) and a cluster-mode proxy, each in ``work_dir/<role>``.
    The broker checks unresolved transactions every second, once they are two seconds old (defaults: 30 s, 6 s),
    and takes RecallMessage (``recallMessageEnable``, off by default: the broker answers a recall "operation is
    forbidden")."""

    java: str
    classpath: str
    work_dir: Path
    broker_name: str = "apache-b"
    cluster: str = "ApacheCluster"
    broker_config: dict[str, str] = field(
        default_factory=lambda: {
            "transactionCheckInterval": "1000",
            "transactionTimeOut": "2000",
            "recallMessageEnable": "true",
        }
    )
    proxy_config: dict[str, str] = field(default_factory=dict)
    namesrv: ApacheProcess | None = None
    broker: ApacheProcess | None = None
    proxy: ApacheProcess | None = None

    @property
    def endpoints(self) -> str:
        """The proxy's gRPC ``host:port``, what a 5.x client is configured with."""
        assert self.proxy is not None
        return self.proxy.addr

    def start(self, timeout: float = 120.0) -> None:
        """Start the three JVMs in turn, each once the previous one listens; stop them all if one fails."""
        try:
            self.namesrv = apache_namesrv(self.java, self.classpath, self.work_dir / "namesrv")
            self.namesrv.start(timeout)
            self.broker = apache_broker(
                self.java, self.classpath, self.work_dir / "broker", self.namesrv.addr, self.broker_name,
                self.cluster, timer_wheel=True, extra=self.broker_config,
            )  # fmt: skip
            self.broker.start(timeout)
            # The proxy creates its system topic on the cluster at start-up: it fails while the name server does
            # not list the broker yet.
            wait_registered(self.namesrv.addr, self.cluster, self.broker_name, timeout)
            self.proxy = apache_proxy(
                self.java, self.classpath, self.work_dir / "proxy", self.namesrv.addr, self.cluster, self.proxy_config
            )
            self.proxy.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the JVMs (proxy first): their state dies with the test's tmp directory."""
        for server in (self.proxy, self.broker, self.namesrv):
            if server is not None:
                server.stop(graceful=False)


@dataclass
class PocketmqProcess:
    """``python -m pocketmq ARGS``, ready once it prints its ``namesrvAddr=`` line; ``port`` is where it listens."""

    args: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[str] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "pocketmq", *self.args]
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
            assert self.proc.stdout is not None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    self.stop()
                    raise RuntimeError(f"pocketmq {self.args[0]} exited early:\n{_tail(self.log_path)}")
                log.write(line)
                log.flush()
                if line.startswith("namesrvAddr="):
                    return
        self.stop()
        raise RuntimeError(f"pocketmq {self.args[0]} did not report readiness in time")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


def pocketmq_namesrv(log_path: Path) -> PocketmqProcess:
    port = free_port()
    return PocketmqProcess(["namesrv", "--host", "127.0.0.1", "--port", str(port)], port, log_path)


def pocketmq_broker(
    namesrv_addr: str, data_dir: Path, log_path: Path, broker_name: str, cluster: str
) -> PocketmqProcess:
    port = free_port()
    args = [
        "broker", "--namesrv-addr", namesrv_addr, "--broker-port", str(port), "--data-dir", str(data_dir),
        "--host", "127.0.0.1", "--broker-name", broker_name, "--cluster", cluster,
    ]  # fmt: skip
    return PocketmqProcess(args, port, log_path)
