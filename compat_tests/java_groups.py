"""Run the stock-Java-client consumer-group driver (``pocketmq.compat.GroupDriver``) for test_java_groups.py.

The driver lives in the same Maven project as ``pocketmq.compat.Driver`` (see java_driver.py, which builds it once
per client version into ``compat_tests/java/target-<version>/``). Every producer or consumer is its own JVM printing
JSON lines on stdout; a consumer also reads ``stop`` on stdin, so a test can make one member of a group leave
(``DefaultMQPushConsumer.shutdown``) at a chosen moment. stderr and the client's log files go to a per-test directory.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compat_tests.driver_process import DriverClient, JsonLinesProcess
from compat_tests.java_driver import JVM_FLAGS

MAIN_CLASS = "pocketmq.compat.GroupDriver"

Line = dict[str, Any]


class GroupProcess(JsonLinesProcess):
    """One driver JVM; its stdout JSON lines are collected by a reader thread; a consumer reads ``stop`` on stdin."""

    def __init__(self, name: str, cmd: list[str], base: Path) -> None:
        super().__init__(cmd, base.with_suffix(".stderr"), stdin=True, name=name)

    # -- views

    def event(self, name: str) -> Line:
        found = self.events(name)
        assert found, f"{self.name}: no {name!r} event\n{self.describe()}"
        return found[0]

    @property
    def messages(self) -> list[Line]:
        """Deliveries, in the order the JVM printed them."""
        return [x for x in self.snapshot() if "msgId" in x and "event" not in x and "index" not in x]

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
        return self.wait_exit(timeout)

    def finish(self, timeout: float = 60) -> list[Line]:
        """Stop (if still running), wait for a clean exit and return all lines."""
        self.stop()
        rc = self.join(timeout)
        assert rc == 0 and not self.garbage, f"{self.name}: exit {rc} {self.garbage[:3]}\n{self.describe()}"
        return self.snapshot()


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
class GroupClient(DriverClient):
    """The group driver for one client version; diagnostics go under ``work_dir``."""

    java: str
    version: str
    classpath: str
    work_dir: Path

    def _cmd(self, command: str, **opts: Any) -> list[str]:
        args = [self.java, *JVM_FLAGS, "-cp", self.classpath, MAIN_CLASS, command]
        for name, value in opts.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
        return [*args, "--log-dir", str(self.work_dir / "client-logs")]

    def _start(self, cls: type[GroupProcess], what: str, command: str, **opts: Any) -> Any:
        proc = cls(what, self._cmd(command, **opts), self._next(what))
        return self._track(proc)

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
        """listener, model, fail, max_reconsume, expect, timeout, start_from, linger_ms, consume_ms, pull_batch_size;
        see GroupDriver."""
        if "start_from" in opts:
            opts["from"] = opts.pop("start_from")
        return self._start(Consumer, name, "consume", namesrv=namesrv, topic=topic, group=group, **opts)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
