"""Run the stock-Java-client feature driver (``pocketmq.compat.FeatureDriver``) for test_java_features.py: SQL92
filters, request-reply, lite-pull and pull consumers, message queries, a producer without a server.

The driver lives in the Maven project of ``pocketmq.compat.Driver`` and is built with it by
:func:`compat_tests.java_driver.build`. Every client is its own JVM printing JSON lines on stdout (see
FeatureDriver.java); long-running ones (``sql-consume``, ``respond``) stop on ``stop`` on stdin. The processes are
:class:`compat_tests.java_groups.GroupProcess` objects; stderr and the client's log files go to ``work_dir``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compat_tests.driver_process import DriverClient
from compat_tests.java_driver import JVM_FLAGS, Message
from compat_tests.java_groups import GroupProcess

MAIN_CLASS = "pocketmq.compat.FeatureDriver"


@dataclass
class Request:
    """One DefaultMQProducer.request: mode "sync" or "async" (RequestCallback); topic/timeout other than the call's."""

    mode: str
    message: Message
    topic: str | None = None
    timeout_ms: int | None = None


@dataclass
class FeatureClient(DriverClient):
    """The feature driver for one client version; diagnostics go under ``work_dir``."""

    java: str
    version: str
    classpath: str
    work_dir: Path

    def start(self, command: str, name: str | None = None, **opts: Any) -> GroupProcess:
        """Start ``FeatureDriver <command>`` with ``--<opt> value`` for every option that is not None."""
        args = [self.java, *JVM_FLAGS, "-cp", self.classpath, MAIN_CLASS, command]
        for key, value in opts.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        args += ["--log-dir", str(self.work_dir / "client-logs")]
        proc = GroupProcess(name or command, args, self._next(name or command))
        return self._track(proc)

    def sql_consume(self, namesrv: str, topic: str, group: str, sql: str, name: str = "sql") -> GroupProcess:
        return self.start("sql-consume", name, namesrv=namesrv, topic=topic, group=group, sql=sql)

    def respond(self, namesrv: str, topic: str, group: str) -> GroupProcess:
        return self.start("respond", namesrv=namesrv, topic=topic, group=group)

    def request(
        self, namesrv: str, topic: str, group: str, requests: Iterable[Request], timeout_ms: int
    ) -> GroupProcess:
        """DefaultMQProducer.request for each of ``requests``: the sync ones one after another, then the async ones
        (RequestCallback) all at once."""
        base = self._next("request-spec")
        spec = base.with_suffix(".json")
        items = []
        for r in requests:
            item = {**r.message.to_spec(), "mode": r.mode}
            if r.topic is not None:
                item["topic"] = r.topic
            if r.timeout_ms is not None:
                item["timeoutMs"] = r.timeout_ms
            items.append(item)
        spec.write_text(json.dumps(items))
        return self.start("request", namesrv=namesrv, topic=topic, group=group, spec=spec, timeout_ms=timeout_ms)

    def lite_pull(
        self,
        namesrv: str,
        topic: str,
        group: str,
        mode: str,
        expect: int,
        timeout: float = 60,
        linger_ms: int = 0,
        seek: dict[int, int] | None = None,
        drain: int = 0,
    ) -> GroupProcess:
        """DefaultLitePullConsumer, mode subscribe or assign (every queue; in assign mode it first polls ``drain``
        messages, printed as "drained" events, then seeks: ``seek`` is queue id -> offset)."""
        seek_arg = ",".join(f"{q}:{o}" for q, o in sorted(seek.items())) if seek else None
        return self.start(
            "lite-pull",
            f"lite-{mode}",
            namesrv=namesrv,
            topic=topic,
            group=group,
            mode=mode,
            expect=expect,
            timeout=timeout,
            linger_ms=linger_ms,
            seek=seek_arg,
            drain=drain or None,
        )

    def pull(self, namesrv: str, topic: str, group: str, max_nums: int = 32) -> GroupProcess:
        return self.start("pull", namesrv=namesrv, topic=topic, group=group, max_nums=max_nums)

    def query(
        self,
        namesrv: str,
        topic: str,
        group: str,
        keys: Iterable[str] = (),
        offset_ids: Iterable[str] = (),
        msg_ids: Iterable[str] = (),
        begin: int | None = None,
        end: int | None = None,
        max_num: int | None = None,
    ) -> GroupProcess:
        return self.start(
            "query",
            namesrv=namesrv,
            topic=topic,
            group=group,
            keys=",".join(keys) or None,
            offset_ids=",".join(offset_ids) or None,
            msg_ids=",".join(msg_ids) or None,
            begin=begin,
            end=end,
            max=max_num,
        )

    def no_server(self, namesrv: str, topic: str, group: str, send_timeout_ms: int) -> GroupProcess:
        return self.start("no-server", namesrv=namesrv, topic=topic, group=group, send_timeout_ms=send_timeout_ms)
