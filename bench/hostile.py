"""Hostile and greedy remoting clients, for the over-TCP fuzz test and the soak (bench/soak.py).

Everything here attacks a server given by host and port, bounded in count and time, on loopback only:

- ``malformed_frame(rng)``: one bad frame of a random kind (garbage, broken lengths, nested or non-object JSON,
  text that cannot be stored, broken binary headers, a valid request with random fields or followed by garbage);
- ``blaster``: sends such frames, reconnecting whenever the server closes the connection;
- ``slow_writer``: announces a large frame, sends part of it, then trickles a byte at a time;
- ``never_reader``: pipelines requests and never reads an answer;
- ``Victim``: a well-behaved producer and consumer on its own connection that records every error it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from codec.codes import PullSysFlag, RequestCode, ResponseCode
from codec.command import RemotingCommand, request
from codec.frame import FrameDecoder, encode_frame

CODES = [int(code) for code in RequestCode]
TEXT = ["", "T", "%RETRY%g", "TBW102", "x" * 300, "\u00e9\u4e2d", "-1", "0", "99999999999999999999", "true", "a b"]


def frame_bytes(header: bytes, body: bytes = b"", serialize_type: int = 0) -> bytes:
    return struct.pack(">iI", 4 + len(header) + len(body), (serialize_type << 24) | len(header)) + header + body


def json_header(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def valid_request(rng: random.Random, opaque: int) -> bytes:
    """A well-formed frame with a random request code and random fields: handler-level fuzzing."""
    ext = {rng.choice(["topic", "queueId", "consumerGroup", "b", "e", "a", "offset", "maxMsgNums", "sysFlag",
                       "commitOffset", "key", "maxNum", "clientID", "producerGroup", "i", "m", "f", "brokerName",
                       "commitLogOffset", "tranStateTableOffset", "commitOrRollback", "delayLevel", "group"]):
           rng.choice(TEXT) for _ in range(rng.randrange(0, 12))}  # fmt: skip
    cmd = request(rng.choice(CODES), ext, rng.randbytes(rng.randrange(0, 200)))
    cmd.opaque = opaque
    return encode_frame(cmd)


def malformed_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(14)
    opaque = rng.randrange(1, 1 << 30)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 1:
        return struct.pack(">iI", rng.choice([-1, -(2**31), 0, 3, 2**31 - 1, 17 * 1024 * 1024]), rng.getrandbits(32))
    if kind == 2:
        depth = rng.choice([100, 1000, 5000])
        return frame_bytes(rng.choice([b"[", b'{"a":']) * depth)
    if kind == 3:
        return frame_bytes(
            rng.choice(
                [
                    b"[1,2]",
                    b"null",
                    b"42",
                    b'"x"',
                    b"{}",
                    b'{"opaque":1}',
                    b'{"code":"x"}',
                    b'{"code":1e999}',
                    b'{"code":99999999999999999999999}',
                    b"\xff\xfe",
                ]
            )
        )
    if kind == 4:
        ext = '"extFields":{"consumerGroup":"\\ud800","topic":"T","queueId":"0","commitOffset":"5"}'
        return frame_bytes(f'{{"code":15,"opaque":{opaque},"flag":0,{ext}}}'.encode())
    if kind == 5:
        return frame_bytes(b"\x00\x0a\x00" + rng.randbytes(rng.randrange(0, 40)), serialize_type=1)
    if kind == 6:
        return frame_bytes(json_header({"code": 10, "opaque": opaque}), serialize_type=rng.choice([2, 7, 255]))
    if kind == 7:
        good = valid_request(rng, opaque)
        return good + rng.randbytes(8)
    if kind == 8:  # bit flips in a valid frame
        data = bytearray(valid_request(rng, opaque))
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 9:  # header length beyond the frame
        header = json_header({"code": 34, "opaque": opaque})
        return struct.pack(">iI", 4 + len(header), len(header) + rng.randrange(1, 1000)) + header
    if kind == 10:  # binary header with a string that is not UTF-8
        key, value = b"topic", b"\xed\xa0\x80\xff"
        ext = struct.pack(">h", len(key)) + key + struct.pack(">i", len(value)) + value
        header = struct.pack(">hBhii", 30, 0, 479, opaque, 0) + struct.pack(">i", 0) + struct.pack(">i", len(ext)) + ext
        return frame_bytes(header, serialize_type=1)
    if kind == 11:  # extFields values of every JSON type
        value = rng.choice([None, 1, -1, 1.5, True, [1, [2]], {"a": {"b": 1}}, "x" * 5000])
        return frame_bytes(json_header({"code": rng.choice(CODES), "opaque": opaque, "extFields": {"topic": value}}))
    return valid_request(rng, opaque)


async def _open(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.open_connection(host, port)
    except OSError:
        return None


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


@dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    closed_by_server: int = 0


async def blaster(host: str, port: int, rng: random.Random, frames: int, tally: Tally) -> None:
    """Send ``frames`` malformed frames, a few per connection, reconnecting whenever the server closes it."""
    sent = 0
    while sent < frames:
        opened = await _open(host, port)
        if opened is None:
            await asyncio.sleep(0.05)
            continue
        reader, writer = opened
        tally.connections += 1
        drain = asyncio.create_task(_discard(reader))
        try:
            for _ in range(rng.randrange(1, 8)):
                writer.write(malformed_frame(rng))
                sent += 1
                tally.frames += 1
                await writer.drain()
                if sent >= frames:
                    break
            await asyncio.sleep(0)
        except OSError:
            tally.closed_by_server += 1
        finally:
            writer.close()
            drain.cancel()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def slow_writer(host: str, port: int, frame_size: int, head: int, seconds: float) -> bool:
    """Announce a ``frame_size`` frame, send ``head`` bytes of it, trickle; True if the server closed it."""
    opened = await _open(host, port)
    if opened is None:
        return False
    reader, writer = opened
    deadline = time.monotonic() + seconds
    try:
        writer.write(struct.pack(">iI", frame_size - 4, 100) + b"\x00" * (head - 8))
        await writer.drain()
        while time.monotonic() < deadline:
            writer.write(b"\x00")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    return True
        return False
    except OSError:
        return True
    finally:
        writer.close()


async def never_reader(host: str, port: int, requests: int, body_size: int, seconds: float) -> int:
    """Pipeline up to ``requests`` pulls (their answers carry messages) without ever reading; returns how many
    bytes the server took before it stopped reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, (host, port))
    except OSError:
        sock.close()
        return 0
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        for opaque in range(1, requests + 1):
            ext = {"consumerGroup": "greedy", "topic": "HostileVictim", "queueId": "0", "queueOffset": "0",
                   "maxMsgNums": "32", "sysFlag": "0", "commitOffset": "0", "suspendTimeoutMillis": "0",
                   "subVersion": "0"}  # fmt: skip
            cmd = request(RequestCode.PULL_MESSAGE, ext, b"p" * body_size)
            cmd.opaque = opaque
            data = encode_frame(cmd)
            while data:
                if time.monotonic() > deadline:
                    return sent
                try:
                    n = sock.send(data)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                except OSError:
                    return sent
                data = data[n:]
                sent += n
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return sent
    finally:
        sock.close()


@dataclass
class Victim:
    """A well-behaved client on its own connection: sends a message, pulls it back, again and again."""

    host: str
    port: int
    topic: str = "HostileVictim"
    rounds: int = 0
    errors: list[str] = field(default_factory=list)

    async def run(self, seconds: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        decoder = FrameDecoder()
        opaque = 0
        offset = 0

        async def call(cmd: RemotingCommand) -> RemotingCommand:
            nonlocal opaque
            opaque += 1
            cmd.opaque = opaque
            writer.write(encode_frame(cmd))
            async with asyncio.timeout(5):
                while True:
                    for got in decoder.feed(await reader.read(65536)):
                        if got.opaque == opaque:
                            return got

        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                body = f"victim {self.rounds}".encode()
                ext = {
                    "a": "victim_pg",
                    "b": self.topic,
                    "c": "TBW102",
                    "d": "1",
                    "e": "0",
                    "f": "0",
                    "g": str(int(time.time() * 1000)),
                    "h": "0",
                    "i": "",
                    "j": "0",
                    "k": "false",
                    "m": "false",
                }
                sent = await call(request(RequestCode.SEND_MESSAGE_V2, ext, body))
                if sent.code != ResponseCode.SUCCESS:
                    self.errors.append(f"send: {sent.code} {sent.remark}")
                    continue
                pull = {"consumerGroup": "victim_cg", "topic": self.topic, "queueId": "0",
                        "queueOffset": str(offset), "maxMsgNums": "32", "sysFlag": str(int(PullSysFlag.SUSPEND)),
                        "commitOffset": "0", "suspendTimeoutMillis": "1000", "subVersion": "0"}  # fmt: skip
                pulled = await call(request(RequestCode.PULL_MESSAGE, pull))
                if pulled.code != ResponseCode.SUCCESS or body not in pulled.body:
                    self.errors.append(f"pull at {offset}: {pulled.code} {pulled.remark}")
                offset = int(pulled.ext_fields.get("nextBeginOffset", offset))
                self.rounds += 1
                await asyncio.sleep(0.01)
        except (OSError, TimeoutError) as err:
            self.errors.append(f"connection: {err!r}")
        finally:
            writer.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def sample_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            peak[0] = max(peak[0], rss_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
