"""The stock Apache RocketMQ name server and broker (Maven Central artifacts) and lone pocketmq processes, for
compat_tests/test_apache_interop.py.

``build_classpath`` resolves the artifacts named in ``pom.xml`` beside this file and returns their runtime classpath;
``ApacheProcess`` runs ``NamesrvStartup`` or ``BrokerStartup`` from it with a generated config file, small heap and a
private ``ROCKETMQ_HOME``/``user.home`` (logs land in ``<work_dir>/home/logs/rocketmqlogs``); ``PocketmqProcess`` runs
``python -m pocketmq namesrv|broker``. Every process listens on loopback ports picked free at start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from compat_tests.harness import free_port

APACHE_DIR = Path(__file__).resolve().parent
ROCKETMQ_VERSION = "5.3.3"  # the <rocketmq.version> in pom.xml; 4.9.8's server artifacts are not on Maven Central
NAMESRV_MAIN = "org.apache.rocketmq.namesrv.NamesrvStartup"
BROKER_MAIN = "org.apache.rocketmq.broker.BrokerStartup"

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
    """One Apache name server or broker JVM, configured by a generated ``key=value`` file."""

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
        conf = self.work_dir / "server.conf"
        conf.write_text("".join(f"{k}={v}\n" for k, v in self.config.items()))
        cmd = [
            self.java, *JVM_FLAGS,
            f"-Duser.home={self.home}", f"-Drocketmq.home.dir={self.home}",
            "-cp", self.classpath, self.main_class, "-c", str(conf),
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
    java: str, classpath: str, work_dir: Path, namesrv_addr: str, broker_name: str, cluster: str
) -> ApacheProcess:
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
        # No timer wheel (5.x delay messages; it preallocates its own files).
        "timerWheelEnable": "false",
        "diskSpaceWarningLevelRatio": "99",
    }
    return ApacheProcess(java, classpath, BROKER_MAIN, work_dir, port, config)


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
