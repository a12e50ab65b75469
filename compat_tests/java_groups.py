"""Run the stock-Java-client consumer-group driver (``pocketmq.compat.GroupDriver``) for test_java_groups.py.

The driver lives in the same Maven project as ``pocketmq.compat.Driver`` (see java_driver.py, which builds it once
per client version into ``compat_tests/java/target-<version>/``). Every producer or consumer is its own JVM printing
JSON lines on stdout; a consumer also reads ``stop`` on stdin, so a test can make one member of a group leave
(``DefaultMQPushConsumer.shutdown``) at a chosen moment. stderr and the client's log files go to a per-test directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compat_tests.java_driver import JVM_FLAGS

MAIN_CLASS = "pocketmq.compat.GroupDriver"

Line = dict[str, Any]


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


class GroupProcess:
    """One driver JVM; its stdout JSON lines are collected (with the time they were read) by a reader thread."""

    def __init__(self, name: str, cmd: list[str], base: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.stderr_path = base.with_suffix(".stderr")
        self.lines: list[Line] = []
        self.garbage: list[str] = []
        self._cond = threading.Condition()
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - handed to the child process
        self._copy = open(base.with_suffix(".stdout"), "w")  # noqa: SIM115 - closed by the reader
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8"
        )
        self._reader = threading.Thread(target=self._read, name=f"reader-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._copy.write(raw)
            line = raw.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                with self._cond:
                    self.garbage.append(line)
                continue
            with self._cond:
                self.lines.append(obj)
                self._cond.notify_all()
        self._copy.close()
        self.proc.stdout.close()
        with self._cond:
            self._cond.notify_all()

    # -- views

    def snapshot(self) -> list[Line]:
        with self._cond:
            return list(self.lines)

    def events(self, name: str) -> list[Line]:
        return [x for x in self.snapshot() if x.get("event") == name]

    def event(self, name: str) -> Line:
        found = self.events(name)
        assert found, f"{self.name}: no {name!r} event\n{self.describe()}"
        return found[0]

    @property
    def messages(self) -> list[Line]:
        """Deliveries, in the order the JVM printed them."""
        return [x for x in self.snapshot() if "msgId" in x and "event" not in x and "index" not in x]

    def wait_until(self, predicate: Callable[[list[Line]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return predicate(self.lines)
                self._cond.wait(min(remaining, 0.5))
            return True

    def wait_event(self, name: str, timeout: float) -> Line:
        ok = self.wait_until(lambda lines: any(x.get("event") == name for x in lines), timeout)
        assert ok, f"{self.name}: no {name!r} event within {timeout} s\n{self.describe()}"
        return self.event(name)

    # -- control

    def stop(self) -> None:
        """Ask a consumer to shut down (``stop`` on stdin); see :meth:`join`."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass

    def join(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name}: driver did not exit within {timeout} s\n{self.describe()}") from None
        self._reader.join(timeout=10)
        self._close()
        return rc

    def finish(self, timeout: float = 60) -> list[Line]:
        """Stop (if still running), wait for a clean exit and return all lines."""
        self.stop()
        rc = self.join(timeout)
        assert rc == 0 and not self.garbage, f"{self.name}: exit {rc} {self.garbage[:3]}\n{self.describe()}"
        return self.snapshot()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        self._close()

    def _close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._stderr.close()

    def describe(self) -> str:
        shown = [
            "<classpath>" if prev == "-cp" else arg for prev, arg in zip(["", *self.cmd[:-1]], self.cmd, strict=True)
        ]
        cmd = " ".join(shown)
        return f"command: {cmd}\nstderr ({self.stderr_path}):\n{_tail(self.stderr_path)}"


class Producer(GroupProcess):
    def results(self, timeout: float = 180) -> list[Line]:
        """Per-message send results ordered by index; fails with the driver's stderr on any error."""
        rc = self.join(timeout)
        results = sorted((x for x in self.snapshot() if "index" in x), key=lambda x: x["index"])
        errors = [x for x in results if "error" in x]
        assert rc == 0 and not errors and not self.garbage, (
            f"{self.name}: producer failed (exit {rc}): {errors[:3]} {self.garbage[:3]}\n{self.describe()}"
        )
        assert all(r["status"] == "SEND_OK" for r in results), [r for r in results if r["status"] != "SEND_OK"][:3]
        return results


class Consumer(GroupProcess):
    def allocations(self, topic: str) -> list[Line]:
        return [x for x in self.events("allocate") if x["topic"] == topic]

    def wait_allocated(self, topic: str, members: int, timeout: float) -> Line:
        """Wait until this consumer's allocation for ``topic`` counts ``members`` clients; return that event."""

        def seen(lines: list[Line]) -> bool:
            return any(
                x.get("event") == "allocate" and x["topic"] == topic and len(x["cids"]) == members for x in lines
            )

        ok = self.wait_until(seen, timeout)
        assert ok, f"{self.name}: never allocated {topic} among {members} members\n{self.describe()}"
        return next(x for x in self.allocations(topic) if len(x["cids"]) == members)

    def owned(self, topic: str) -> set[int]:
        """Queues of ``topic`` with a live process queue, per the latest ``owned`` event."""
        owned = self.events("owned")
        return set(owned[-1]["queues"].get(topic, [])) if owned else set()

    def wait_owned(self, topic: str, queues: set[int], timeout: float) -> bool:
        def match(lines: list[Line]) -> bool:
            owned = [x for x in lines if x.get("event") == "owned"]
            return bool(owned) and set(owned[-1]["queues"].get(topic, [])) == queues

        return self.wait_until(match, timeout)

    def wait_count(self, count: int, timeout: float) -> bool:
        return self.wait_until(
            lambda lines: sum(1 for x in lines if "msgId" in x and "index" not in x) >= count, timeout
        )


@dataclass
class GroupClient:
    """The group driver for one client version; diagnostics go under ``work_dir``."""

    java: str
    version: str
    classpath: str
    work_dir: Path
    _seq: int = 0
    _procs: list[GroupProcess] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Kill whatever driver JVMs are still running (after a failed test)."""
        for proc in self._procs:
            proc.kill()
        self._procs.clear()

    def _base(self, what: str) -> Path:
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / f"{seq:02d}-{what}"

    def _cmd(self, command: str, **opts: Any) -> list[str]:
        args = [self.java, *JVM_FLAGS, "-cp", self.classpath, MAIN_CLASS, command]
        for name, value in opts.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
        return [*args, "--log-dir", str(self.work_dir / "client-logs")]

    def _start(self, cls: type[GroupProcess], what: str, command: str, **opts: Any) -> Any:
        proc = cls(what, self._cmd(command, **opts), self._base(what))
        self._procs.append(proc)
        return proc

    def create_topics(self, namesrv: str, topics: dict[str, int], timeout: float = 60) -> None:
        """Create topics (name -> queue count) with UPDATE_AND_CREATE_TOPIC and wait until they are routed."""
        spec = ",".join(f"{topic}:{queues}" for topic, queues in topics.items())
        proc = self._start(GroupProcess, "create-topic", "create-topic", namesrv=namesrv, topic=spec, queues=1)
        lines = proc.finish(timeout)
        created = {x["topic"]: x["queues"] for x in lines if x.get("event") == "created"}
        assert created == topics, f"topics not created/routed: {created}\n{proc.describe()}"

    def start_produce(self, namesrv: str, topic: str, group: str, prefix: str, mode: str, **opts: Any) -> Producer:
        """mode sync|batch (count, batch_size, binary) or ordered (keys, steps, pace_ms); see GroupDriver."""
        return self._start(
            Producer,
            f"produce-{mode}",
            "produce",
            namesrv=namesrv,
            topic=topic,
            group=group,
            prefix=prefix,
            mode=mode,
            **opts,
        )

    def start_consume(self, namesrv: str, topic: str, group: str, name: str = "consume", **opts: Any) -> Consumer:
        """listener, model, fail, max_reconsume, expect, timeout, start_from, linger_ms, consume_ms; see GroupDriver."""
        if "start_from" in opts:
            opts["from"] = opts.pop("start_from")
        return self._start(Consumer, name, "consume", namesrv=namesrv, topic=topic, group=group, **opts)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
