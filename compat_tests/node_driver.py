"""Install and run the stock-Node.js-client scenario driver (compat_tests/node) for the Node compatibility tests.

The driver is one Node program (``compat_tests/node/driver.js``) against the npm package ``ali-ons`` at the exact
version pinned in ``compat_tests/node/package.json`` (resolved through the committed ``package-lock.json``). Its
dependencies are installed once per test session with ``npm ci`` into ``compat_tests/node/node_modules``
(git-ignored; ``npm install`` when there is no lock file yet; nothing when node_modules already matches the lock),
and every producer/consumer is one ``node`` process. It prints one JSON object per line on stdout; its stderr (the
client's warnings and errors) goes to a per-test file.

ali-ons cannot create topics (a route lookup answered TOPIC_NOT_EXIST throws before its TBW102 fallback is reached),
so :func:`create_topic` creates them beforehand with UPDATE_AND_CREATE_TOPIC, as ``mqadmin updateTopic`` would.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from compat_tests import harness
from compat_tests.driver_process import DriverClient, DriverProcess
from remoting.client import RemotingClient

NODE_DIR = Path(__file__).resolve().parent / "node"
DRIVER = NODE_DIR / "driver.js"
CLIENT_PACKAGE = "ali-ons"


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class Install:
    node: str
    client_version: str  # the ali-ons version installed in node_modules
    node_version: str
    command: str  # "npm ci", "npm install", or none when node_modules already matches the lock
    seconds: float


def find_tools() -> tuple[str, str] | None:
    """(node, npm); None locally when either is missing (the caller skips), an error in CI."""
    node = harness.require_tool("node")
    npm = harness.require_tool("npm")
    if node is None or npm is None:
        return None
    return node, npm


_INSTALLED: dict[str, Install] = {}


def install(node: str, npm: str, timeout: float = 600) -> Install:
    """``npm ci`` (or ``npm install`` without a lock file) in compat_tests/node; once per process."""
    if npm not in _INSTALLED:
        _INSTALLED[npm] = _install(node, npm, timeout)
    return _INSTALLED[npm]


def _up_to_date() -> bool:
    """node_modules holds exactly what package-lock.json pins (npm's hidden lockfile says so)."""
    try:
        locked = json.loads((NODE_DIR / "package-lock.json").read_text())["packages"]
        installed = json.loads((NODE_DIR / "node_modules" / ".package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    manifest = NODE_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"
    return manifest.exists() and {k: v for k, v in locked.items() if k} == installed


def _install(node: str, npm: str, timeout: float) -> Install:
    if _up_to_date():
        # npm ci would delete and rebuild node_modules, under the feet of node processes of another session
        # sharing this tree; a clean checkout (CI) has no node_modules, so it always installs.
        return _installed(node, "none (node_modules matches package-lock.json)", 0.0)
    locked = (NODE_DIR / "package-lock.json").exists()
    args = ["ci"] if locked else ["install"]
    args += ["--no-audit", "--no-fund", "--ignore-scripts"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [npm, *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=timeout, check=False
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise InstallError(f"npm {args[0]} in compat_tests/node did not finish within {timeout} s") from exc
    seconds = time.monotonic() - started
    manifest = NODE_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"
    if proc.returncode != 0 or not manifest.exists():
        raise InstallError(
            f"npm {args[0]} in compat_tests/node failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return _installed(node, f"npm {args[0]}", seconds)


def _installed(node: str, command: str, seconds: float) -> Install:
    manifest = NODE_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"
    client_version = json.loads(manifest.read_text())["version"]
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60, check=False)
    return Install(node, client_version, version.stdout.strip(), command, seconds)


# --------------------------------------------------------------------------- topics (admin side)


async def _call(addr: str, code: int, ext: dict[str, str]) -> tuple[int, str | None, bytes]:
    host, _, port = addr.rpartition(":")
    client = await RemotingClient.connect(host, int(port))
    try:
        response = await client.invoke(request(code, ext), timeout=10)
    finally:
        await client.aclose()
    return response.code, response.remark, response.body


def create_topic(broker: str, namesrv: str, topic: str, queues: int = 4, timeout: float = 20) -> None:
    """UPDATE_AND_CREATE_TOPIC (17) at the broker, then wait until the name server routes ``queues`` queues."""
    ext = {
        "topic": topic, "defaultTopic": "TBW102", "readQueueNums": str(queues), "writeQueueNums": str(queues),
        "perm": "6", "topicFilterType": "SINGLE_TAG", "topicSysFlag": "0", "order": "false",
    }  # fmt: skip
    code, remark, _ = anyio.run(_call, broker, RequestCode.UPDATE_AND_CREATE_TOPIC, ext)
    assert code == ResponseCode.SUCCESS, f"UPDATE_AND_CREATE_TOPIC {topic}: {code} {remark}"
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


# --------------------------------------------------------------------------- driver processes


class Consumer(DriverProcess):
    def messages(self) -> list[dict[str, Any]]:
        """Every delivery the listener saw (``failed`` marks the ones it threw on)."""
        return self.events("message")

    def finish(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the driver to end (expected count + linger, or its own timeout); every delivery."""
        lines = self.join(timeout)
        return [x for x in lines if x.get("event") == "message"]

    def stop(self) -> None:
        """SIGTERM: the driver closes its consumer (commits offsets, unregisters) and ends with a ``done`` line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


@dataclass
class Message:
    """One message for ``produce``; ``name`` travels as the user property pmqName."""

    name: str
    body: bytes
    tags: str | None = None
    keys: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)
    delay_level: int = 0
    start_deliver_in_ms: int | None = None  # setStartDeliverTime(now + this), now taken right before the send

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name, "body": base64.b64encode(self.body).decode(), "tags": self.tags, "keys": self.keys,
            "props": self.props,
        }  # fmt: skip
        if self.delay_level:
            spec["delayLevel"] = self.delay_level
        if self.start_deliver_in_ms is not None:
            spec["startDeliverInMs"] = self.start_deliver_in_ms
        return spec


@dataclass
class NodeClient(DriverClient):
    """The installed driver, writing its diagnostics under ``work_dir``."""

    node: str
    work_dir: Path

    @staticmethod
    def _auth(access_key: str | None) -> list[str]:
        return ["--access-key", access_key, "--secret-key", f"{access_key}-secret"] if access_key else []

    def start_produce(
        self,
        namesrv: str,
        topic: str,
        group: str,
        messages: list[Message],
        *,
        access_key: str | None = None,
        concurrent: bool = False,
    ) -> DriverProcess:
        """One producer process; ``concurrent`` starts every send before awaiting any (else one after another)."""
        base = self._next(f"produce-{group}")
        spec_file = base.with_suffix(".spec.json")
        spec_file.write_text(json.dumps([m.to_spec() for m in messages], ensure_ascii=False), encoding="utf-8")
        cmd = [
            self.node, str(DRIVER), "produce", "--namesrv", namesrv, "--topic", topic, "--group", group,
            "--spec", str(spec_file), *self._auth(access_key), *(["--concurrent"] if concurrent else []),
        ]  # fmt: skip
        proc = DriverProcess(cmd, base, cwd=NODE_DIR)
        return self._track(proc)

    def produce(
        self, namesrv: str, topic: str, group: str, messages: list[Message], *, timeout: float = 60, **kw: Any
    ) -> dict[str, dict[str, Any]]:
        """Send ``messages`` (sync, in order) from one producer process; name -> send result, all SEND_OK."""
        proc = self.start_produce(namesrv, topic, group, messages, **kw)
        lines = proc.join(timeout)
        errors = [x for x in lines if x.get("event") == "send-error"]
        assert not errors, f"send errors: {errors}\n{proc.describe()}"
        sent = {x["name"]: x for x in lines if x.get("event") == "sent"}
        assert set(sent) == {m.name for m in messages}, proc.describe()
        assert all(x["status"] == "SEND_OK" for x in sent.values()), sent
        return sent

    def start_consume(
        self,
        namesrv: str,
        topic: str,
        group: str,
        *,
        expect: int,
        timeout: float,
        expr: str = "*",
        broadcast: bool = False,
        fail_first: bool = False,
        linger: float = 1.0,
        access_key: str | None = None,
        name: str = "consume",
        expr_type: str | None = None,
        fail_always: bool = False,
        max_reconsume_times: int | None = None,
    ) -> Consumer:
        """A push consumer process; ``expr_type="SQL92"`` subscribes ``expr`` as SQL92, ``fail_always`` throws on
        every delivery, ``max_reconsume_times`` sets the client's maxReconsumeTimes option."""
        base = self._next(f"{name}-{group}".replace("%", "_"))
        cmd = [
            self.node, str(DRIVER), "consume", "--namesrv", namesrv, "--topic", topic, "--group", group,
            "--expr", expr, "--expect", str(expect), "--timeout", str(timeout), "--linger", str(linger),
            *(["--broadcast"] if broadcast else []), *(["--fail-first"] if fail_first else []),
            *(["--fail-always"] if fail_always else []), *(["--expr-type", expr_type] if expr_type else []),
            *(["--max-reconsume-times", str(max_reconsume_times)] if max_reconsume_times is not None else []),
            *self._auth(access_key),
        ]  # fmt: skip
        proc = Consumer(cmd, base, cwd=NODE_DIR)
        return self._track(proc)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
