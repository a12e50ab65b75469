"""Cross-client conformance (test_cross_client.py): a shared corpus every stock client sends, and per-client adapters
that send it and consume it back into one normalised form, over the existing driver wrappers.

Every message carries its sender's id and a sequence number (user properties ``xcFrom``/``xcSeq`` and its first
key), so a consumer's view of each sender's messages can be checked on its own. What a client cannot carry is
stated where its adapter deals with it:

- C++ (PyPI rocketmq 0.4.4): its producer sets bodies with a length (SetByteMessageBody), but its consumer gets them
  from GetMessageBody, a NUL-terminated C string with no length getter, so it sees a body only up to its first NUL;
  it lists no properties (they are read by name) and reports no sysFlag (its ``store_size`` tells instead whether
  the stored body was compressed).
- Node (ali-ons): every message also carries the driver's own ``pmqName`` property.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compat_tests import go_driver, harness, java_driver, node_driver, rust_driver
from compat_tests.driver_process import DriverProcess

CLIENTS = ("java-4.9.8", "java-5.3.3", "go", "cpp", "node", "rust")
CPP_DRIVER = Path(__file__).resolve().parent / "cpp" / "driver.py"

FROM_PROP, SEQ_PROP, TEXT_PROP, KIND_PROP = "xcFrom", "xcSeq", "xcText", "xcKind"
USER_PROPS = (FROM_PROP, SEQ_PROP, TEXT_PROP, KIND_PROP)
UNICODE_VALUE = "ünïcødé ✓ 日本語 a=b;c:d"
COMPRESS_OVER = 4096  # every client's default compressMsgBodyOverHowmuch


class Unavailable(Exception):
    """The client's toolchain is missing on this machine (a skip; require_tool already fails under CI)."""


@dataclass(frozen=True)
class Item:
    sender: str
    seq: int
    kind: str
    body: bytes
    tags: str
    keys: list[str]
    props: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.sender}#{self.seq}"


@dataclass
class Received:
    """One delivery as a consumer client reported it."""

    sender: str | None
    seq: int | None
    body: bytes
    tags: str | None
    keys: list[str]
    props: dict[str, str]  # the user properties the consumer can report (all of them, or the ones asked for)
    sys_flag: int | None = None  # None: this consumer does not report it
    store_size: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _text_body(prefix: str, size: int) -> bytes:
    """Compressible text of exactly ``size`` bytes (repeated lines with non-ASCII), starting with ``prefix``."""
    out = bytearray(prefix.encode())
    i = 0
    while len(out) < size:
        out += f" line {i}: ünïcødé ✓ the quick brown fox\n".encode()
        i += 1
    return bytes(out[:size])


def corpus(sender: str) -> list[Item]:
    """What ``sender`` sends: ASCII, unicode text, all byte values, ~8 KiB compressible, ~300 KiB random."""
    rng = random.Random(f"cross-{sender}")
    bodies = [
        ("ascii", f"plain ASCII body from {sender}".encode(), "TagA"),
        ("unicode", f"ünïcødé ✓ 日本語 text from {sender} — ok".encode(), "标签✓"),
        ("binary", f"{sender}|".encode() + bytes(range(256)), "bin"),
        ("compressible", _text_body(f"{sender} compressible ", 8 * 1024), "big"),
        ("large", f"{sender}|".encode() + rng.randbytes(300 * 1024).replace(b"\0", b"\x01"), "big"),
    ]
    return [
        Item(
            sender=sender,
            seq=seq,
            kind=kind,
            body=body,
            tags=tags,
            keys=[f"xc-{sender}-{seq}", f"xc-shared-{seq}", f"ключ-{seq}"],
            props={FROM_PROP: sender, SEQ_PROP: str(seq), TEXT_PROP: f"{UNICODE_VALUE} #{seq}", KIND_PROP: kind},
        )
        for seq, (kind, body, tags) in enumerate(bodies)
    ]


def _b64(data: str | None) -> bytes:
    return base64.b64decode(data or "")


def _received(raw: dict[str, Any], body: bytes, tags: Any, keys: Any, props: dict[str, Any], **kw: Any) -> Received:
    key_list = keys.split(" ") if isinstance(keys, str) else list(keys or [])
    seq = props.get(SEQ_PROP)
    return Received(
        sender=props.get(FROM_PROP) or None,
        seq=int(seq) if seq and seq.isdigit() else None,
        body=body,
        tags=tags,
        keys=[k for k in key_list if k],
        props={k: v for k, v in props.items() if v is not None},
        raw=raw,
        **kw,
    )


# ------------------------------------------------------------------------------------------------ adapters


class Consuming(Protocol):
    def finish(self) -> list[Received]: ...


class Adapter(Protocol):
    id: str

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None: ...

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming: ...

    def close(self) -> None: ...


@dataclass
class _Finisher:
    fn: Callable[[], list[Received]]

    def finish(self) -> list[Received]:
        return self.fn()


class JavaAdapter:
    def __init__(self, version: str, java: str, classpath: str, work_dir: Path) -> None:
        self.id = f"java-{version}"
        self.client = java_driver.JavaClient(java=java, version=version, classpath=classpath, work_dir=work_dir)

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None:
        msgs = [java_driver.Message(body=it.body, tags=it.tags, keys=it.keys, props=it.props) for it in items]
        results = self.client.produce(namesrv, topic, group_name("xcp", self.id), "sync", msgs, timeout=120)
        assert [r["status"] for r in results] == ["SEND_OK"] * len(items), results

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming:
        consumer = self.client.start_consume(namesrv, topic, group, expect, timeout=timeout, linger_ms=2000)

        def finish() -> list[Received]:
            lines = consumer.finish()
            return [
                _received(x, _b64(x["body"]), x["tags"], x["keys"], x["props"], sys_flag=x["sysFlag"]) for x in lines
            ]

        return _Finisher(finish)

    def close(self) -> None:
        self.client.close()


class NodeAdapter:
    id = "node"

    def __init__(self, node: str, work_dir: Path) -> None:
        self.client = node_driver.NodeClient(node=node, work_dir=work_dir)

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None:
        msgs = [
            node_driver.Message(name=it.name, body=it.body, tags=it.tags, keys=it.keys, props=it.props) for it in items
        ]
        self.client.produce(namesrv, topic, group_name("xcp", self.id), msgs, timeout=90)

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming:
        consumer = self.client.start_consume(namesrv, topic, group, expect=expect, timeout=timeout, linger=2.0)

        def finish() -> list[Received]:
            lines = consumer.finish(timeout + 30)
            return [
                _received(x, _b64(x["body"]), x["tags"], x["keys"], x["props"], sys_flag=x["sysFlag"])
                for x in lines
                if not x.get("failed")
            ]

        return _Finisher(finish)

    def close(self) -> None:
        self.client.close()


class RustAdapter:
    id = "rust"

    def __init__(self, binary: Path, work_dir: Path) -> None:
        self.client = rust_driver.RustClient(binary=binary, work_dir=work_dir)

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None:
        msgs = [
            rust_driver.Message(topic=topic, body=it.body, tags=it.tags, keys=it.keys, props=it.props) for it in items
        ]
        proc = self.client.start_produce(namesrv, group_name("xcp", self.id), msgs)
        proc.join(90)
        sent = proc.events("sent")
        assert [x["status"] for x in sent] == ["SendOk"] * len(items), f"{sent}\n{proc.describe()}"

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming:
        proc = self.client.start_consume(namesrv, topic, group, expect, timeout=timeout, linger=2.0)

        def finish() -> list[Received]:
            proc.join(timeout + 30)
            return [
                _received(x, _b64(x["body"]), x["tags"], x["keys"], x["allProps"], sys_flag=x["sysFlag"])
                for x in proc.events("received")
            ]

        return _Finisher(finish)

    def close(self) -> None:
        self.client.close()


class CppAdapter:
    """compat_tests/cpp/driver.py run as test_cpp.py runs it (one subprocess per producer/consumer)."""

    id = "cpp"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self._procs: list[DriverProcess] = []

    def _cmd(self, namesrv: str, *args: str) -> list[str]:
        return [sys.executable, str(CPP_DRIVER), "--namesrv", namesrv, "--log-dir", str(self.work_dir), *args]

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None:
        spec = self.work_dir / "produce-spec.json"
        spec.write_text(
            json.dumps(
                [
                    {"body": base64.b64encode(it.body).decode(), "tags": it.tags, "keys": it.keys, "props": it.props}
                    for it in items
                ]
            )
        )
        cmd = self._cmd(
            namesrv, "produce", "--topic", topic, "--group", group_name("xcp", self.id), "--spec", str(spec)
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
        sent = [x for x in lines if x.get("event") == "sent"]
        assert proc.returncode == 0 and [x["status"] for x in sent] == ["OK"] * len(items), (
            f"cpp producer failed (exit {proc.returncode}): {lines}\nstderr: {proc.stderr[-3000:]}"
        )

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming:
        props = [arg for name in USER_PROPS for arg in ("--prop", name)]
        cmd = self._cmd(
            namesrv, "consume", "--topic", topic, "--group", group, "--expect", str(expect),
            "--timeout", str(timeout), "--linger", "2", *props,
        )  # fmt: skip
        proc = DriverProcess(cmd, self.work_dir / f"consume-{group}")
        self._procs.append(proc)

        def finish() -> list[Received]:
            try:
                rc = proc.proc.wait(timeout=timeout + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"cpp consumer hung\n{proc.describe()}") from None
            proc.sigkill()  # already exited: joins the reader, closes stderr
            final = [x for x in proc.lines if x.get("event") in ("done", "timeout")]
            assert rc == 0 and final and final[-1]["event"] == "done", f"cpp consumer: exit {rc}\n{proc.describe()}"
            return [
                # getProperty() answers "" for an absent property
                _received(
                    x,
                    _b64(x["body"]),
                    x["tags"],
                    x["keys"],
                    {k: v or None for k, v in x["props"].items()},
                    store_size=x["store_size"],
                )
                for x in proc.events("message")
            ]

        return _Finisher(finish)

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()


class GoAdapter:
    id = "go"

    def __init__(self, binary: Path, work_dir: Path) -> None:
        self.client = go_driver.GoClient(binary=binary, work_dir=work_dir)

    def produce(self, namesrv: str, topic: str, items: list[Item]) -> None:
        msgs = [go_driver.Message(body=it.body, tags=it.tags, keys=it.keys, props=it.props) for it in items]
        self.client.produce(namesrv, topic, group_name("xcp", self.id), msgs, timeout=90)

    def start_consume(self, namesrv: str, topic: str, group: str, expect: int, timeout: float) -> Consuming:
        proc = self.client.start_consume(namesrv, topic, group, expect, timeout, linger=2.0)

        def finish() -> list[Received]:
            lines = proc.join(timeout + 30)
            return [
                _received(x, _b64(x["body"]), x["tags"], x["keys"], x["props"], sys_flag=x["sysFlag"])
                for x in lines
                if x.get("event") == "message"
            ]

        return _Finisher(finish)

    def close(self) -> None:
        self.client.close()


def group_name(prefix: str, client: str) -> str:
    """A group name RocketMQ accepts (letters, digits, ``-``, ``_``), unique per run."""
    return f"{prefix}-{client.replace('.', '')}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"


# ------------------------------------------------------------------------------------------------ preparation


def prepare(client: str, work_dir: Path) -> Adapter:
    """Build/install what ``client`` needs (once per session); Unavailable when its toolchain is missing locally.

    A missing tool raises RuntimeError under CI (harness.require_tool); a failed build raises its BuildError."""
    if client.startswith("java-"):
        java, mvn = harness.require_tool("java"), harness.require_tool("mvn")
        if java is None or mvn is None:
            raise Unavailable("java and mvn are needed for the Java clients")
        version = client.removeprefix("java-")
        return JavaAdapter(version, java, java_driver.build(mvn, version), work_dir)
    if client == "node":
        tools = node_driver.find_tools()
        if tools is None:
            raise Unavailable("node and npm are needed for the Node.js client")
        return NodeAdapter(node_driver.install(*tools).node, work_dir)
    if client == "rust":
        cargo = rust_driver.find_cargo()
        if cargo is None:
            raise Unavailable("cargo is needed for the Rust client")
        return RustAdapter(rust_driver.build(cargo).binary, work_dir)
    if client == "go":
        go = go_driver.find_go()
        if go is None:
            raise Unavailable("go is needed for the Go client")
        return GoAdapter(go_driver.build(go).binary, work_dir)
    if client == "cpp":
        proc = subprocess.run(
            [sys.executable, str(CPP_DRIVER), "probe"], capture_output=True, text=True, timeout=60, check=False
        )
        info = json.loads(proc.stdout.splitlines()[-1]) if proc.stdout.strip() else {}
        if not info.get("ok"):
            reason = f"rocketmq 0.4.4 (C++ client) unavailable: {info.get('error') or proc.stderr.strip()[-500:]}"
            if harness.IN_CI:
                raise RuntimeError(reason)
            raise Unavailable(reason)
        return CppAdapter(work_dir)
    raise ValueError(client)
