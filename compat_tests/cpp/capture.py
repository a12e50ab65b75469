"""Record raw request frames sent by the real C++ client (PyPI ``rocketmq`` 0.4.4) for golden vectors.

    python compat_tests/cpp/capture.py namesrv [--out DIR]
        A silent fake name server on loopback: the producer's first frames (GET_ROUTEINFO_BY_TOPIC, 105) are
        recorded and never answered, so the client times out.
    python compat_tests/cpp/capture.py broker [--out DIR]
        Starts ``pocketmq up`` and puts a recording proxy in front of its name server and broker ports (bytes are
        forwarded unchanged), then runs a producer, a batch producer and a push consumer through it and records
        the first HEART_BEAT (34, producer and consumer), SEND_MESSAGE (10: this client never uses 310; single
        and batch) and PULL_MESSAGE (11) frames, plus a few others the clients send on the way (see BROKER_FILES).
    python compat_tests/cpp/capture.py compressed-batch [--out DIR]
        The same proxy set-up, with one batch producer sending COMPRESSED_BATCH_SIZE messages: their batch body is
        over the client's 4 KiB compression threshold, so it goes out zlib-compressed with sysFlag bit 0x1.

Every saved ``.bin`` file is one complete frame exactly as the client wrote it (4-byte length prefix
included). ``frames.json`` next to them lists each file with its decoded JSON header.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
PREFIX = "cpp-0.4.4"

# (phase, request code) -> file stem; the first matching frame is kept
NAMESRV_FILES = {("producer", 105): "get-route", ("producer", "105-TBW102"): "get-route-tbw102"}
# 0.4.4 (C++ 1.2.x line) sends every message, batches included, as SEND_MESSAGE (10) with the V1 header;
# a batch is marked only by the extField batch="1". The 310 rows are there in case another build is captured.
BROKER_FILES = {
    ("producer", 34): "heartbeat-producer",
    ("batch", 34): "heartbeat-producer",
    ("producer", 10): "send",
    ("producer", 310): "send-v2",
    ("producer", 35): "unregister-client-producer",
    ("batch", 10): "send-batch",
    ("batch", 310): "send-v2-batch",
    ("consumer", 34): "heartbeat-consumer",
    ("consumer", 38): "get-consumer-list",
    ("consumer", 14): "query-consumer-offset",
    ("consumer", 11): "pull",
    ("consumer", 15): "update-consumer-offset",
    ("consumer", 35): "unregister-client-consumer",
}
ORDERLY_FILES = {("orderly", 41): "lock-batch-mq", ("orderly", 42): "unlock-batch-mq"}
# The client compresses a batch body over 4 KiB like a single one (compressMsgBodyOverHowmuch); 100 capture
# messages encode to about 12 KB.
COMPRESSED_BATCH_SIZE = 100
COMPRESSED_BATCH_FILES = {("compressed-batch", 10): "send-batch-compressed"}


@dataclass
class Frame:
    phase: str
    peer: str  # "namesrv" or "broker"
    raw: bytes
    header: dict[str, Any]


def split_frames(buf: bytearray) -> list[bytes]:
    """Remove and return the complete frames at the start of ``buf``."""
    out = []
    while len(buf) >= 4:
        (length,) = struct.unpack(">i", buf[:4])
        if len(buf) < 4 + length:
            break
        out.append(bytes(buf[: 4 + length]))
        del buf[: 4 + length]
    return out


def decode_header(raw: bytes) -> dict[str, Any]:
    (word,) = struct.unpack(">I", raw[4:8])
    kind, size = word >> 24, word & 0xFFFFFF
    if kind != 0:
        return {"_serialize_type": kind}
    try:
        return json.loads(raw[8 : 8 + size])
    except ValueError as exc:
        return {"_undecodable": str(exc)}


@dataclass
class Recorder:
    frames: list[Frame] = field(default_factory=list)
    phase: str = "init"
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    replies: list[Frame] = field(default_factory=list)  # server -> client frames, kept for debugging only
    seen: dict[tuple[str, str, Any], int] = field(default_factory=dict)

    def record(self, peer: str, raw: bytes) -> None:
        header = decode_header(raw)
        if header.get("flag", 0) & 1:  # a response written by the client, not a request
            return
        self.frames.append(Frame(self.phase, peer, raw, header))
        key = (self.phase, peer, header.get("code"))
        self.seen[key] = self.seen.get(key, 0) + 1
        if self.seen[key] <= 3:  # an orderly consumer retries a refused lock thousands of times
            print(f"[capture] {self.phase} -> {peer}: code {key[2]} ({len(raw)} bytes)", file=sys.stderr)

    async def listen(self, peer: str, upstream: tuple[str, int] | None, port: int = 0) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader = up_writer = None
            if upstream is not None:
                try:
                    up_reader, up_writer = await asyncio.open_connection(*upstream)
                except OSError:
                    writer.close()
                    return

            async def client_to_server() -> None:
                buf = bytearray()
                while data := await reader.read(65536):
                    buf += data
                    for raw in split_frames(buf):
                        self.record(peer, raw)
                    if up_writer is not None:
                        up_writer.write(data)
                        await up_writer.drain()

            async def server_to_client() -> None:
                assert up_reader is not None
                buf = bytearray()
                while data := await up_reader.read(65536):
                    buf += data
                    for raw in split_frames(buf):
                        self.replies.append(Frame(self.phase, peer, raw, decode_header(raw)))
                    writer.write(data)
                    await writer.drain()

            tasks = [asyncio.ensure_future(client_to_server())]
            if up_reader is not None:
                tasks.append(asyncio.ensure_future(server_to_client()))
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                for t in tasks:
                    t.cancel()
                for w in (writer, up_writer):
                    if w is not None:
                        w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def close(self) -> None:
        for s in self.servers:
            s.close()


async def run_driver(namesrv: str, log_dir: str, *args: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(DRIVER), "--namesrv", namesrv, "--log-dir", log_dir, *args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    for line in lines:
        print(f"[driver] {json.dumps(line)[:200]}", file=sys.stderr)
    return lines


def write_spec(tmp: str, n: int = 1) -> str:
    spec = [
        {
            "body": base64.b64encode(f"Hello pocketmq from the C++ client #{i}".encode()).decode(),
            "tags": "TagA",
            "keys": [f"KEY-{i:04d}"],
            "props": {"color": "blue"},
        }
        for i in range(n)
    ]
    path = os.path.join(tmp, f"spec-{n}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def save(frames: list[Frame], out: Path, table: dict[tuple[str, Any], str]) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    index = []
    kept: set[str] = set()
    for fr in frames:
        code: Any = fr.header.get("code")
        if code == 105 and (fr.header.get("extFields") or {}).get("topic") == "TBW102":
            code = "105-TBW102"  # the producer's fallback lookup of the default topic (auto-create)
        name = table.get((fr.phase, code))
        if name is None or name in kept:
            continue
        kept.add(name)
        path = out / f"{PREFIX}-{name}.bin"
        path.write_bytes(fr.raw)
        index.append({"file": path.name, "peer": fr.peer, "phase": fr.phase, "length": len(fr.raw),
                      "header": fr.header})  # fmt: skip
    return index


def update_index(out: Path, entries: list[dict[str, Any]]) -> None:
    path = out / "frames.json"
    current = json.loads(path.read_text()) if path.exists() else []
    names = {e["file"] for e in entries}
    merged = [e for e in current if e["file"] not in names] + entries
    merged.sort(key=lambda e: e["file"])
    path.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


async def capture_namesrv(out: Path) -> None:
    rec = Recorder(phase="producer")
    port = await rec.listen("namesrv", None)
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_spec(tmp)
        await run_driver(f"127.0.0.1:{port}", tmp, "produce", "--topic", "CaptureTopic",
                         "--group", "CaptureProducerGroup", "--mode", "sync", "--spec", spec,
                         "--send-timeout-ms", "1000")  # fmt: skip
    rec.close()
    update_index(out, save(rec.frames, out, NAMESRV_FILES))


async def capture_broker(out: Path, what: str = "broker") -> None:
    sys.path.insert(0, str(HERE.parent.parent))
    from compat_tests.harness import PocketMQ, free_port

    rec = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        # pocketmq binds 127.0.0.2 but advertises 127.0.0.1 with the same port, where the proxy listens: the
        # clients reach the broker only through the proxy, and no byte is rewritten.
        server = PocketMQ(data_dir=Path(tmp) / "data", broker_port=free_port(),
                          extra_args=["--host", "127.0.0.2", "--advertise-host", "127.0.0.1"])  # fmt: skip
        await rec.listen("broker", ("127.0.0.2", server.broker_port), port=server.broker_port)
        await asyncio.to_thread(server.start)
        try:
            ns_proxy = await rec.listen("namesrv", ("127.0.0.2", server.namesrv_port))
            ns = f"127.0.0.1:{ns_proxy}"
            spec = write_spec(tmp)
            if what == "compressed-batch":
                rec.phase = "compressed-batch"
                await run_driver(ns, tmp, "produce", "--topic", "CaptureTopic", "--group", "CaptureProducerGroup",
                                 "--mode", "batch", "--spec", write_spec(tmp, COMPRESSED_BATCH_SIZE))  # fmt: skip
            else:
                await capture_broker_phases(rec, ns, tmp, spec, orderly=what == "orderly")
        finally:
            rec.close()
            await asyncio.to_thread(server.stop)
    files = {"broker": BROKER_FILES, "orderly": ORDERLY_FILES, "compressed-batch": COMPRESSED_BATCH_FILES}[what]
    update_index(out, save(rec.frames, out, files))


async def capture_broker_phases(rec: Recorder, ns: str, tmp: str, spec: str, orderly: bool) -> None:
    """The ``broker`` and ``orderly`` captures: a sync producer, then a batch producer and a push consumer, or an
    orderly push consumer."""
    rec.phase = "producer"
    hold = [] if orderly else ["--hold", "40"]
    await run_driver(ns, tmp, "produce", "--topic", "CaptureTopic", "--group", "CaptureProducerGroup",
                     "--mode", "sync", "--spec", spec, *hold)  # fmt: skip
    if orderly:
        rec.phase = "orderly"
        await run_driver(ns, tmp, "consume", "--topic", "CaptureTopic", "--group", "CaptureOrderlyGroup",
                         "--orderly", "--expect", "1", "--timeout", "8")  # fmt: skip
        return
    rec.phase = "batch"
    await run_driver(ns, tmp, "produce", "--topic", "CaptureTopic", "--group", "CaptureProducerGroup",
                     "--mode", "batch", "--spec", write_spec(tmp, 2))  # fmt: skip
    rec.phase = "consumer"
    await run_driver(ns, tmp, "consume", "--topic", "CaptureTopic", "--group", "CaptureConsumerGroup",
                     "--expr", "TagA || TagB", "--expect", "1", "--timeout", "30", "--linger", "6")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["namesrv", "broker", "orderly", "compressed-batch"])
    p.add_argument("--out", type=Path, default=HERE / "captured")
    args = p.parse_args()
    if args.what == "namesrv":
        asyncio.run(capture_namesrv(args.out))
    else:
        asyncio.run(capture_broker(args.out, args.what))
    subprocess.run(["ls", "-l", str(args.out)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
