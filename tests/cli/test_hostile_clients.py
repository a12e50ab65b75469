"""``pocketmq up`` against clients that send garbage or take too much (issue 10): the process never exits, refuses
what it cannot take, and keeps serving well-behaved clients."""

from __future__ import annotations

import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import anyio

from codec.codes import RequestCode
from codec.command import request
from codec.frame import encode_frame
from compat_tests.harness import free_port
from remoting.client import RemotingClient


class Server:
    def __init__(self, data_dir: Path, nofile: int | None = None, extra: list[str] | None = None) -> None:
        self.ns_port, self.broker_port = free_port(), free_port()

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(data_dir),
             "--namesrv-port", str(self.ns_port), "--broker-port", str(self.broker_port), *(extra or [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit_files,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = ""
        while not line.startswith("namesrvAddr="):
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read() if self.proc.stderr else "no output"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Stop with SIGTERM; the process must exit 0. Returns its log."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(timeout=15) == 0
        finally:
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self.proc.stdout.close()
            log = self.proc.stderr.read()
            self.proc.stderr.close()
        return log


async def max_offset(port: int) -> int:
    client = await RemotingClient.connect("127.0.0.1", port)
    try:
        response = await client.invoke(request(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"}))
    finally:
        await client.aclose()
    return int(response.ext_fields["offset"])


def send_raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it (or 3 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except (TimeoutError, ConnectionError):
            pass
    return got


def test_one_small_frame_of_deeply_nested_json_no_longer_kills_the_process(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    try:
        bad = struct.pack(">iI", 4 + 1000, 1000) + b"[" * 1000
        for port in (server.broker_port, server.ns_port):
            send_raw(port, bad)
            assert server.alive()
        assert anyio.run(max_offset, server.broker_port) == 0
    finally:
        server.stop()


def test_a_valid_request_followed_by_garbage_in_one_write_no_longer_kills_the_process(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    valid = encode_frame(request(RequestCode.GET_MAX_OFFSET, {"topic": "T", "queueId": "0"}))
    try:
        for garbage in (struct.pack(">iI", -5, 0), struct.pack(">iI", 2**31 - 1, 0), b"\x8f\x13\xee\x01" * 2):
            answer = send_raw(server.broker_port, valid + garbage)
            assert answer[:4] == struct.pack(">i", len(answer) - 4)  # the valid request was answered
            assert server.alive()
        assert anyio.run(max_offset, server.broker_port) == 0
    finally:
        server.stop()


def test_reaching_the_file_descriptor_limit_refuses_connections_instead_of_exiting(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", nofile=256)
    sockets: list[socket.socket] = []
    try:
        for _ in range(406):
            sock = socket.socket()
            sock.settimeout(3)
            sock.connect(("127.0.0.1", server.broker_port if len(sockets) % 2 else server.ns_port))
            sockets.append(sock)
        time.sleep(0.5)
        assert server.alive()
        poll = select.poll()
        for sock in sockets:
            poll.register(sock, select.POLLIN)
        refused = len(poll.poll(0))  # the server sent nothing, so a readable socket is one it closed
        assert 406 - refused <= 256  # the ones over the limit were closed by the server, politely
        assert refused >= 406 - 256
        for sock in sockets:
            sock.close()
        sockets.clear()
        time.sleep(0.5)
        assert anyio.run(max_offset, server.broker_port) == 0  # served again once connections went away
    finally:
        for sock in sockets:
            sock.close()
        log = server.stop()
    assert "refusing connections" in log
    assert log.count("refusing connections") <= 3  # one line per interval, not one per connection
    assert "Traceback" not in log


def test_a_group_name_that_cannot_be_stored_is_refused_and_every_other_offset_persists(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")

    async def commit_offsets() -> tuple[int, str]:
        client = await RemotingClient.connect("127.0.0.1", server.broker_port)
        try:
            ok = request(RequestCode.UPDATE_CONSUMER_OFFSET,
                         {"consumerGroup": "good", "topic": "T", "queueId": "0", "commitOffset": "7"})  # fmt: skip
            assert (await client.invoke(ok)).code == 0
            header = (b'{"code":15,"opaque":99,"flag":0,"language":"JAVA","version":479,"extFields":'
                      b'{"consumerGroup":"\\ud800","topic":"T","queueId":"0","commitOffset":"5"}}')  # fmt: skip
            await client.stream.send(struct.pack(">iI", 4 + len(header), len(header)) + header)
            bad = await client.receive()
            later = request(RequestCode.UPDATE_CONSUMER_OFFSET,
                            {"consumerGroup": "later", "topic": "T", "queueId": "0", "commitOffset": "9"})  # fmt: skip
            assert (await client.invoke(later)).code == 0
            return bad.code, bad.remark or ""
        finally:
            await client.aclose()

    async def committed(group: str) -> int:
        client = await RemotingClient.connect("127.0.0.1", server.broker_port)
        try:
            query = request(RequestCode.QUERY_CONSUMER_OFFSET, {"consumerGroup": group, "topic": "T", "queueId": "0"})
            response = await client.invoke(query)
        finally:
            await client.aclose()
        return int(response.ext_fields["offset"]) if response.code == 0 else -1

    try:
        code, remark = anyio.run(commit_offsets)
        assert code == 29 and "consumerGroup" in remark  # INVALID_PARAMETER naming the field
        time.sleep(1.5)  # a background offset flush runs meanwhile
    finally:
        log = server.stop()  # exits 0: the final flush does not fail
    assert "Traceback" not in log
    server = Server(tmp_path / "data")  # after a restart, what was committed is still there
    try:
        assert anyio.run(committed, "good") == 7
        assert anyio.run(committed, "later") == 9
    finally:
        server.stop()
