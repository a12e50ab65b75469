"""Build and run the stock-Java-client scenario driver (compat_tests/java) for test_java.py.

The driver (``pocketmq.compat.Driver``) is compiled once per client version with Maven into
``compat_tests/java/target-<version>/`` and started as one JVM per producer/consumer. It prints one JSON object per
line on stdout; its stderr and the RocketMQ client log files go to a per-test directory for diagnosis.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat_tests.driver_process import DriverClient, JsonLinesProcess

JAVA_DIR = Path(__file__).resolve().parent / "java"
CLIENT_VERSIONS = ("4.9.8", "5.3.3")
MAIN_CLASS = "pocketmq.compat.Driver"

# Small heaps and C1-only JIT: these JVMs live for seconds, and several run at once on two cores.
JVM_FLAGS = (
    "-Xms32m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Dfile.encoding=UTF-8",
)


class BuildError(RuntimeError):
    pass


_BUILT: dict[tuple[str, str], str] = {}  # (mvn, version) -> classpath: several test modules build once per process


def build(mvn: str, version: str, timeout: float = 900) -> str:
    """Compile the driver against ``rocketmq-client`` ``version``; return its runtime classpath."""
    if (mvn, version) not in _BUILT:
        _BUILT[mvn, version] = _build(mvn, version, timeout)
    return _BUILT[mvn, version]


def _build(mvn: str, version: str, timeout: float) -> str:
    target = JAVA_DIR / f"target-{version}"
    cmd = [
        mvn, "-B", "-q", "-Dstyle.color=never", f"-Drocketmq.client.version={version}",
        "-f", str(JAVA_DIR / "pom.xml"), "process-classes",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=JAVA_DIR, check=False)
    classpath_file = target / "classpath.txt"
    if proc.returncode != 0 or not classpath_file.exists():
        output = re.sub(r"\x1b\[[0-9;]*m", "", f"{proc.stdout}\n{proc.stderr}")
        raise BuildError(f"maven build for rocketmq-client {version} failed (exit {proc.returncode}):\n{output}")
    deps = classpath_file.read_text().strip()
    return os.pathsep.join([str(target / "classes"), deps])


@dataclass
class Message:
    """One message to produce: the spec line handed to the driver."""

    body: bytes
    tags: str | None = None
    keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    delay_level: int | None = None  # Message.setDelayTimeLevel
    deliver_time_ms: int | None = None  # Message.setDeliverTimeMs (5.x clients only)
    deliver_after_ms: int | None = None  # setDeliverTimeMs(now + this), "now" taken by the driver right before sending

    def to_spec(self) -> dict[str, Any]:
        timing = {
            "delayLevel": self.delay_level,
            "deliverTimeMs": self.deliver_time_ms,
            "deliverAfterMs": self.deliver_after_ms,
        }
        return {
            "body": base64.b64encode(self.body).decode(),
            "tags": self.tags,
            "keys": self.keys,
            "props": self.props,
            **{name: value for name, value in timing.items() if value is not None},
        }


@dataclass
class JavaClient(DriverClient):
    """A built driver for one client version, writing its diagnostics under ``work_dir``."""

    java: str
    version: str
    classpath: str
    work_dir: Path
    credentials: tuple[str, str] | None = None  # ACL 1.0 (accessKey, secretKey): AclClientRPCHook, 4.9.8 only

    def _cmd(self, *args: str) -> list[str]:
        acl = ["--access-key", self.credentials[0], "--secret-key", self.credentials[1]] if self.credentials else []
        return [
            self.java, *JVM_FLAGS, "-cp", self.classpath, MAIN_CLASS, *args, *acl,
            "--log-dir", str(self.work_dir / "client-logs"),
        ]  # fmt: skip

    def create_topic(self, namesrv: str, topic: str, group: str, timeout: float = 90) -> dict[str, Any]:
        """MQAdmin ``createTopic`` from TBW102: the driver's last line, ``{"event": "created"}`` or ``"error"``."""
        base = self._next("create-topic")
        args = ["create-topic", "--namesrv", namesrv, "--topic", topic, "--group", group]
        proc = self._track(_JsonProcess(self._cmd(*args), base.with_suffix(".stderr")))
        proc.join(timeout)
        events = [x for x in proc.lines if x.get("event") in ("created", "error")]
        assert events, f"create-topic printed no outcome\n{proc.describe()}"
        return events[-1]

    def start_produce(
        self,
        namesrv: str,
        topic: str,
        group: str,
        mode: str,
        messages: Iterable[Message],
        retry_seconds: float = 0,
        batch_size: int = 0,
    ) -> Producer:
        base = self._next(f"produce-{mode}")
        spec = base.with_suffix(".json")
        spec.write_text(json.dumps([m.to_spec() for m in messages]))
        args = [
            "produce", "--namesrv", namesrv, "--topic", topic, "--group", group, "--mode", mode,
            "--spec", str(spec), "--retry-seconds", str(retry_seconds), "--batch-size", str(batch_size),
        ]  # fmt: skip
        producer = Producer(self._cmd(*args), base.with_suffix(".stderr"))
        return self._track(producer)

    def produce(self, *args: Any, timeout: float = 120, **kwargs: Any) -> list[dict[str, Any]]:
        return self.start_produce(*args, **kwargs).results(timeout)

    def start_consume(
        self,
        namesrv: str,
        topic: str,
        group: str,
        expect: int,
        expr: str = "*",
        timeout: float = 60,
        start_from: str = "first",
        heartbeat_ms: int | None = None,
        linger_ms: int = 0,
    ) -> Consumer:
        base = self._next(f"consume-{group}")
        args = [
            "consume", "--namesrv", namesrv, "--topic", topic, "--group", group, "--expr", expr,
            "--expect", str(expect), "--timeout", str(timeout), "--from", start_from,
            "--linger-ms", str(linger_ms),
        ]  # fmt: skip
        if heartbeat_ms is not None:
            args += ["--heartbeat-ms", str(heartbeat_ms)]
        consumer = Consumer(self._cmd(*args), base.with_suffix(".stderr"), timeout)
        return self._track(consumer)


class _JsonProcess(JsonLinesProcess):
    """A driver JVM whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, cmd: list[str], stderr_path: Path) -> None:
        super().__init__(cmd, stderr_path, name="java")

    def join(self, timeout: float) -> int:
        return self.wait_exit(timeout)


class Producer(_JsonProcess):
    UNSUPPORTED_EXIT = 3  # the driver's status when the client version lacks a feature the spec asks for

    def unsupported(self, timeout: float = 60) -> dict[str, Any] | None:
        """After the driver exits: its ``unsupported`` event (the feature this client version lacks), or None."""
        rc = self.join(timeout)
        events = [x for x in self.lines if x.get("event") == "unsupported"]
        if rc == self.UNSUPPORTED_EXIT and events:
            return events[0]
        return None

    def results(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Per-message result lines (ordered by index); fails with the driver's stderr on any error."""
        rc = self.join(timeout)
        results = sorted((x for x in self.lines if "index" in x), key=lambda x: x["index"])
        errors = [x for x in results if "error" in x]
        assert rc == 0 and not errors and not self.garbage, (
            f"producer failed (exit {rc}): {errors[:3]} {self.garbage[:3]}\n{self.describe()}"
        )
        return results


class Consumer(_JsonProcess):
    def __init__(self, cmd: list[str], stderr_path: Path, timeout: float) -> None:
        super().__init__(cmd, stderr_path)
        self.timeout = timeout

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._cond:
            return [x for x in self.lines if "msgId" in x]

    def wait_ready(self, timeout: float = 60) -> None:
        ok = self.wait_until(lambda lines: any(x.get("event") == "ready" for x in lines), timeout)
        assert ok, f"consumer did not start\n{self.describe()}"

    def wait_bodies(self, bodies: Iterable[bytes], timeout: float) -> bool:
        wanted = {base64.b64encode(b).decode() for b in bodies}
        return self.wait_until(lambda lines: wanted <= {x.get("body") for x in lines}, timeout)

    def collect(self, bodies: Iterable[bytes], timeout: float, linger: float = 1.0) -> list[dict[str, Any]]:
        """Wait until all ``bodies`` arrived (or ``timeout``), ``linger`` for stragglers, then stop the consumer."""
        if self.wait_bodies(bodies, timeout):
            time.sleep(linger)
        self.proc.terminate()
        self.join(30)
        return self.messages

    def finish(self) -> list[dict[str, Any]]:
        """Wait for the driver to stop (expected count reached or its timeout); return the received messages."""
        rc = self.join(self.timeout + 60)
        assert rc == 0 and not self.garbage, f"consumer failed (exit {rc}) {self.garbage[:3]}\n{self.describe()}"
        return self.messages
