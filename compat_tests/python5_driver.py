"""Install and run the official RocketMQ 5.x Python client driver (compat_tests/python5) for the gRPC compat tests.

The driver is one Python program (``compat_tests/python5/driver.py``) against PyPI ``rocketmq-python-client`` at the
version pinned, with every dependency, in ``compat_tests/python5/requirements.txt``. It cannot share the main
environment: PyPI ``rocketmq`` 0.4.4 (the C++ client of compat_tests/cpp) owns the same top-level package name
``rocketmq``. So :func:`install` builds a virtualenv in ``compat_tests/python5/.venv`` (git-ignored) with the current
interpreter once per test session (``python -m venv`` + ``pip install -r requirements.txt``; nothing when the venv
already holds exactly those pins). Every producer/consumer is one driver process speaking gRPC to a RocketMQ proxy
(Apache's ``ProxyStartup``, or pocketmq's gRPC endpoint); it prints one JSON object per line on stdout, and its
stderr (the client's log) goes to a per-test file.

5.x topics carry a ``message.type`` attribute (NORMAL, FIFO, DELAY, TRANSACTION) that the proxy checks sends
against, and a FIFO consumer group is one whose subscription group config has ``consumeMessageOrderly``: the proxy
hands a SimpleConsumer its messages in order only then. :func:`create_topic` and :func:`create_group` make both
with UPDATE_AND_CREATE_TOPIC / UPDATE_AND_CREATE_SUBSCRIPTIONGROUP at the broker, as ``mqadmin updateTopic -a
+message.type=FIFO`` and ``mqadmin updateSubGroup -o true`` would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from compat_tests import harness
from compat_tests.driver_process import DriverClient, JsonLinesProcess
from remoting.client import RemotingClient

PY5_DIR = Path(__file__).resolve().parent / "python5"
DRIVER = PY5_DIR / "driver.py"
REQUIREMENTS = PY5_DIR / "requirements.txt"
VENV = PY5_DIR / ".venv"
CLIENT_PACKAGE = "rocketmq-python-client"
CHECK_PROPERTY = "pmqCheck"  # the user property the driver's transaction checker answers from


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class Install:
    python: str  # the venv's interpreter, which runs driver.py
    client_version: str
    python_version: str
    command: str  # what was run: "venv + pip install -r requirements.txt", or none when the venv was up to date
    seconds: float


# --------------------------------------------------------------------------- the virtualenv


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _pins() -> dict[str, str]:
    """name -> version of every ``name==version`` line of requirements.txt (names normalised as pip does)."""
    pins = {}
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            pins[_normal(name)] = version.strip()
    return pins


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _installed_pins(python: Path) -> dict[str, str] | None:
    """What ``pip freeze`` reports in the venv; None when the venv is missing or broken."""
    if not python.exists():
        return None
    try:
        proc = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, timeout=120, check=False
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    found = {}
    for line in proc.stdout.splitlines():
        if "==" in line:
            name, _, version = line.partition("==")
            found[_normal(name)] = version.strip()
    return found


def _up_to_date(python: Path) -> bool:
    """The venv holds every pin of requirements.txt at its version (pip and setuptools aside)."""
    installed = _installed_pins(python)
    if installed is None:
        return False
    return all(installed.get(name) == version for name, version in _pins().items())


_INSTALLED: dict[str, Install] = {}


def install(timeout: float = 900) -> Install:
    """Build (or reuse) compat_tests/python5/.venv; once per process. Raises InstallError when it cannot."""
    if "venv" not in _INSTALLED:
        _INSTALLED["venv"] = _install(timeout)
    return _INSTALLED["venv"]


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, cwd=PY5_DIR, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"{what} did not finish within {timeout} s") from exc
    if proc.returncode != 0:
        raise InstallError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


def _install(timeout: float) -> Install:
    python = _venv_python()
    if _up_to_date(python):
        # Rebuilding would pull the venv from under driver processes of another session sharing this tree.
        return _installed(python, "none (the venv matches requirements.txt)", 0.0)
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", "--clear", str(VENV)], "python -m venv compat_tests/python5/.venv", timeout)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
    _run([*pip, "-r", str(REQUIREMENTS)], "pip install -r compat_tests/python5/requirements.txt", timeout)
    seconds = time.monotonic() - started
    if not _up_to_date(python):
        raise InstallError(f"the venv does not match requirements.txt after pip install: {_installed_pins(python)}")
    return _installed(python, "python -m venv + pip install -r requirements.txt", seconds)


def _installed(python: Path, command: str, seconds: float) -> Install:
    version = subprocess.run([str(python), "--version"], capture_output=True, text=True, timeout=60, check=False)
    client_version = _pins()[_normal(CLIENT_PACKAGE)]
    return Install(str(python), client_version, version.stdout.strip(), command, seconds)


def install_or_skip() -> Install:
    """:func:`install` for a session fixture: skips when the venv cannot be built locally (e.g. no network), fails
    when ``CI`` is set (harness.IN_CI), as harness.require_tool does for a missing tool."""
    import pytest  # the driver wrapper itself does not need pytest

    try:
        return install()
    except InstallError as exc:
        if harness.IN_CI:
            pytest.fail(f"the rocketmq-python-client venv is required in CI: {exc}", pytrace=False)
        pytest.skip(f"cannot build the rocketmq-python-client venv (offline?): {str(exc)[:500]}")


# --------------------------------------------------------------------------- topics and groups (admin side)


async def _call(addr: str, code: int, ext: dict[str, str], body: bytes = b"") -> tuple[int, str | None, bytes]:
    host, _, port = addr.rpartition(":")
    client = await RemotingClient.connect(host, int(port))
    try:
        response = await client.invoke(request(code, ext, body), timeout=10)
    finally:
        await client.aclose()
    return response.code, response.remark, response.body


def create_topic(
    broker: str, namesrv: str, topic: str, message_type: str = "NORMAL", queues: int = 4, timeout: float = 20
) -> None:
    """UPDATE_AND_CREATE_TOPIC (17) with ``+message.type=<message_type>`` at the broker; then wait until the name
    server routes ``queues`` queues of it."""
    ext = {
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(queues), "writeQueueNums": str(queues),
        "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
        "attributes": f"+message.type={message_type}",
    }  # fmt: skip
    code, remark, _ = anyio.run(_call, broker, RequestCode.UPDATE_AND_CREATE_TOPIC, ext)
    assert code == ResponseCode.SUCCESS, f"UPDATE_AND_CREATE_TOPIC {topic} ({message_type}): {code} {remark}"
    deadline = time.monotonic() + timeout
    while True:
        code, remark, body = anyio.run(_call, namesrv, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
        if code == ResponseCode.SUCCESS:
            route = jsonbody.loads(body)
            if any(q.get("readQueueNums") == queues for q in route.get("queueDatas", [])):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} not routed by the name server within {timeout} s: {code} {remark}")
        time.sleep(0.1)


def create_group(broker: str, group: str, *, fifo: bool = False, retry_max_times: int = 16) -> None:
    """UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200); ``fifo`` sets consumeMessageOrderly, which the proxy turns into
    the ``fifo`` flag of the consumer's settings (ordered delivery per message group)."""
    config = {
        "groupName": group, "consumeEnable": True, "consumeFromMinEnable": True, "consumeBroadcastEnable": True,
        "consumeMessageOrderly": fifo, "retryQueueNums": 1, "retryMaxTimes": retry_max_times, "brokerId": 0,
        "whichBrokerWhenConsumeSlowly": 1, "notifyConsumerIdsChangedEnable": True, "groupSysFlag": 0,
        "consumeTimeoutMinute": 15,
    }  # fmt: skip
    body = jsonbody.dumps(config)
    code, remark, _ = anyio.run(_call, broker, RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, {}, body)
    assert code == ResponseCode.SUCCESS, f"UPDATE_AND_CREATE_SUBSCRIPTIONGROUP {group}: {code} {remark}"


# --------------------------------------------------------------------------- messages and results


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass
class Message:
    """One input line of ``produce``. ``delivery_delay_ms`` is relative to the driver's send call (so the driver's
    start-up time does not eat the delay); ``end`` overrides the transaction ending of the whole run; ``recall``
    has the driver recall the message right after its send (the send line then says "recalled" and either
    "recalled_message_id" or "recall_error")."""

    body: bytes
    tag: str | None = None
    keys: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    message_group: str | None = None
    delivery_timestamp_ms: int | None = None
    delivery_delay_ms: int | None = None
    end: str | None = None  # "commit", "rollback" or "none" (transactions)
    recall: bool = False  # recall the message (its receipt's recall handle) once its send succeeded

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"body_b64": b64(self.body), "keys": self.keys, "properties": self.properties}
        optional = {
            "tag": self.tag, "message_group": self.message_group, "delivery_timestamp_ms": self.delivery_timestamp_ms,
            "delivery_delay_ms": self.delivery_delay_ms, "end": self.end,
        }  # fmt: skip
        spec.update({k: v for k, v in optional.items() if v is not None})
        if self.recall:
            spec["recall"] = True
        return spec


@dataclass(frozen=True)
class Delivery:
    """One message as a consumer driver printed it."""

    message_id: str
    topic: str
    body: bytes
    tag: str | None
    keys: list[str]
    properties: dict[str, str]
    message_group: str | None
    delivery_attempt: int | None
    delivery_timestamp_ms: int | None
    born_host: str | None
    born_timestamp_ms: int | None
    store_timestamp_ms: int | None
    message_type: str
    received_at_ms: int
    acked: bool | None  # SimpleConsumer: whether the ack succeeded (False with --no-ack)
    result: str | None  # PushConsumer: what the listener answered (SUCCESS / FAILURE)

    @classmethod
    def from_line(cls, line: dict[str, Any]) -> Delivery:
        return cls(
            message_id=line["message_id"], topic=line["topic"], body=unb64(line["body_b64"]), tag=line.get("tag"),
            keys=list(line.get("keys") or []), properties=dict(line.get("properties") or {}),
            message_group=line.get("message_group"), delivery_attempt=line.get("delivery_attempt"),
            delivery_timestamp_ms=line.get("delivery_timestamp_ms"), born_host=line.get("born_host"),
            born_timestamp_ms=line.get("born_timestamp_ms"), store_timestamp_ms=line.get("store_timestamp_ms"),
            message_type=line.get("message_type", ""), received_at_ms=line["received_at_ms"],
            acked=line.get("acked"), result=line.get("result"),
        )  # fmt: skip


@dataclass(frozen=True)
class ProduceResult:
    """The per-message lines of a ``produce`` run (in input order), its transaction checks and its summary."""

    sends: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    sent: int
    failed: int

    def ok(self) -> list[dict[str, Any]]:
        return [x for x in self.sends if x.get("ok")]

    def errors(self) -> list[dict[str, Any]]:
        return [x for x in self.sends if not x.get("ok")]


@dataclass(frozen=True)
class ConsumeResult:
    deliveries: list[Delivery]
    received: int
    errors: list[dict[str, Any]]  # {"ok": false, "stage": ..., "error": ...} lines (startup, receive)


# --------------------------------------------------------------------------- driver processes


class DriverRun(JsonLinesProcess):
    """One driver process; ``finish`` waits for its exit and ``done`` line."""

    def finish(self, timeout: float) -> list[dict[str, Any]]:
        rc = self.wait_exit(timeout)
        done = [x for x in self.lines if x.get("done")]
        assert rc == 0 and done, f"python5 driver exited with {rc}\n{self.describe()}"
        assert not self.garbage, f"driver printed non-JSON lines on stdout: {self.garbage[:5]}"
        return list(self.lines)

    def stop(self) -> None:
        """SIGTERM: a consumer driver stops receiving, shuts its client down and prints its done line."""
        if self.proc.poll() is None:
            self.proc.terminate()


class Grpc5Client(DriverClient):
    """What the 5.x client wrappers share: the consumer command line, and reading what produce and consume runs
    print. A wrapper adds ``start_produce`` and ``_launch_consumer`` (its own process and connection flags)."""

    reports_message_type = True  # False where the driver derives the type (the client does not expose it)

    def start_produce(self, endpoints: str, topic: str, messages: list[Message], **kw: Any) -> DriverRun:
        raise NotImplementedError

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        raise NotImplementedError

    def produce(
        self, endpoints: str, topic: str, messages: list[Message], *, timeout: float = 90, check: bool = True, **kw: Any
    ) -> ProduceResult:
        """Send ``messages`` from one producer process; with ``check`` every send must have succeeded."""
        proc = self.start_produce(endpoints, topic, messages, **kw)
        lines = proc.finish(timeout)
        sends = sorted((x for x in lines if "index" in x), key=lambda x: x["index"])
        done = next(x for x in lines if x.get("done"))
        result = ProduceResult(sends, [x for x in lines if x.get("check")], done["sent"], done["failed"])
        if check:
            assert not result.errors() and len(sends) == len(messages), f"send errors\n{proc.describe()}"
        return result

    def start_consume(
        self,
        endpoints: str,
        topic: str,
        group: str,
        *,
        expect: int,
        timeout: float,
        push: bool = False,
        tag_expression: str | None = None,
        sql: str | None = None,
        linger: float = 0.0,
        invisible_s: int | None = None,
        no_ack: bool = False,
        fail_first: bool = False,
        fail_always: bool = False,
    ) -> DriverRun:
        """A SimpleConsumer (or with ``push`` a PushConsumer) process that stops after ``expect`` messages (plus
        ``linger`` seconds) or ``timeout`` seconds."""
        args = [
            "push-consume" if push else "simple-consume", "--endpoints", endpoints, "--topic", topic, "--group",
            group, "--expect", str(expect), "--timeout", str(timeout), "--linger", str(linger),
        ]  # fmt: skip
        if tag_expression is not None:
            args += ["--tag-expression", tag_expression]
        if sql is not None:
            args += ["--sql", sql]
        if invisible_s is not None:
            args += ["--invisible-s", str(invisible_s)]
        args += [flag for flag, on in (("--no-ack", no_ack), ("--fail-first", fail_first),
                                       ("--fail-always", fail_always)) if on]  # fmt: skip
        return self._launch_consumer(f"{'push' if push else 'simple'}-{group}", args)

    def consume(
        self, endpoints: str, topic: str, group: str, *, expect: int, timeout: float = 60, **kw: Any
    ) -> ConsumeResult:
        """Run a consumer to its end (the wrapper waits ``timeout`` + the long-poll and shutdown slack)."""
        proc = self.start_consume(endpoints, topic, group, expect=expect, timeout=timeout, **kw)
        return self.collect(proc, timeout + 60)

    @staticmethod
    def collect(proc: DriverRun, timeout: float) -> ConsumeResult:
        lines = proc.finish(timeout)
        deliveries = [Delivery.from_line(x) for x in lines if "message_id" in x and "received_at_ms" in x]
        done = next(x for x in lines if x.get("done"))
        errors = [x for x in lines if x.get("ok") is False]
        return ConsumeResult(deliveries, done["received"], errors)


@dataclass
class Python5Client(Grpc5Client):
    """The installed driver (``python`` is the venv's interpreter), writing its diagnostics under ``work_dir``."""

    python: str
    work_dir: Path
    tls: bool = False
    ca_file: Path | None = None

    def _start(self, what: str, args: list[str], stdin_lines: list[str] | None = None) -> DriverRun:
        base = self._next(what.replace("%", "_"))
        home = self.work_dir / "driver-home"  # where the client's import-time file logger puts its (empty) log
        home.mkdir(parents=True, exist_ok=True)
        tls = (["--tls"] if self.tls else []) + (["--ca-file", str(self.ca_file)] if self.ca_file else [])
        cmd = [self.python, str(DRIVER), *args, *tls, "--client-home", str(home)]
        proc = DriverRun(cmd, base.with_suffix(".stderr"), cwd=PY5_DIR, stdin=stdin_lines is not None)
        if stdin_lines is not None:
            assert proc.proc.stdin is not None
            base.with_suffix(".stdin.jsonl").write_text("".join(stdin_lines), encoding="utf-8")
            proc.proc.stdin.write("".join(stdin_lines))
            proc.proc.stdin.close()
        return self._track(proc)

    def _launch_consumer(self, what: str, args: list[str]) -> DriverRun:
        return self._start(what, args)

    def start_produce(
        self,
        endpoints: str,
        topic: str,
        messages: list[Message],
        *,
        kind: str = "normal",
        send_async: bool = False,
        end: str | None = None,
        linger: float = 0.0,
        raw_delivery_timestamp: bool = False,
    ) -> DriverRun:
        """One producer process sending ``messages`` (a ``kind`` producer; ``end`` = commit|rollback|none;
        ``raw_delivery_timestamp`` hands delivery times to the client in ms, which it mistakes for seconds)."""
        args = ["produce", "--endpoints", endpoints, "--topic", topic, "--kind", kind, "--linger", str(linger)]
        if send_async:
            args.append("--async")
        if end is not None:
            args.append({"commit": "--commit", "rollback": "--rollback", "none": "--no-end"}[end])
        if raw_delivery_timestamp:
            args.append("--raw-delivery-timestamp")
        lines = [json.dumps(m.to_spec(), ensure_ascii=False) + "\n" for m in messages]
        return self._start(f"produce-{topic}", args, lines)
