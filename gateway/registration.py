"""Broker -> name server registration (BrokerOuterAPI.registerBrokerAll): at start, every 30 s, on topic changes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import anyio

from acl.signature import sign_request
from codec import jsonbody
from codec.codes import RequestCode, ResponseCode
from codec.command import RemotingCommand, request
from gateway.config import BrokerConfig
from remoting.client import RemotingClient

log = logging.getLogger("pocketmq.broker")


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.strip().rpartition(":")
    return host or "127.0.0.1", int(port)


class Registrar:
    def __init__(self, config: BrokerConfig, topic_config_wrapper: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.topic_config_wrapper = topic_config_wrapper
        self._clients: dict[str, RemotingClient] = {}
        self._wake = anyio.Event()
        self._failed: set[str] = set()
        # (accessKey, secretKey) of an admin account when ACL is on: registrations are signed with it, so that a
        # pocketmq name server with ACL accepts them from outside its white list.
        self.credentials: tuple[str, str] | None = None

    def _request(self, code: int, header: dict[str, str], body: bytes = b"") -> RemotingCommand:
        if self.credentials is not None:
            sign_request(header, body, *self.credentials)
        return request(code, header, body)

    def trigger(self) -> None:
        """Register soon (a topic was created or deleted)."""
        self._wake.set()

    def _request_body(self) -> bytes:
        return jsonbody.dumps({"filterServerList": [], "topicConfigSerializeWrapper": self.topic_config_wrapper()})

    def _header(self) -> dict[str, str]:
        cfg = self.config
        return {
            "brokerName": cfg.broker_name,
            "brokerAddr": cfg.broker_addr,
            "clusterName": cfg.cluster,
            "haServerAddr": f"{cfg.advertise_host}:{cfg.port + 1}",
            "brokerId": "0",
            "heartbeatTimeoutMillis": "120000",
            "enableActingMaster": "false",
            "compressed": "false",
        }

    async def register_once(self, addr: str) -> bool:
        try:
            client = self._clients.get(addr)
            if client is None:
                client = self._clients[addr] = await RemotingClient.connect(*split_addr(addr))
            response = await client.invoke(
                self._request(RequestCode.REGISTER_BROKER, self._header(), self._request_body())
            )
        except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream) as err:
            stale = self._clients.pop(addr, None)
            if stale is not None:
                await stale.aclose()
            if addr not in self._failed:
                log.warning("cannot register with name server %s: %s", addr, err or type(err).__name__)
                self._failed.add(addr)
            return False
        if response.code != ResponseCode.SUCCESS:
            log.warning("name server %s refused registration: %s %s", addr, response.code, response.remark)
            return False
        if addr in self._failed:
            log.info("registered with name server %s", addr)
            self._failed.discard(addr)
        return True

    async def register_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for addr in self.config.namesrv_addrs:
                tg.start_soon(self.register_once, addr)

    async def run(self) -> None:
        while True:
            with anyio.move_on_after(self.config.register_interval_s):
                await self._wake.wait()
            self._wake = anyio.Event()
            await self.register_all()

    async def unregister_all(self) -> None:
        keep = ("brokerName", "brokerAddr", "clusterName", "brokerId")
        header = {k: v for k, v in self._header().items() if k in keep}
        for addr, client in list(self._clients.items()):
            try:
                with anyio.move_on_after(2):
                    await client.invoke(self._request(RequestCode.UNREGISTER_BROKER, dict(header)))
            except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream):
                pass  # the name server is gone already (it stops beside the broker in `pocketmq up`)
            finally:
                with contextlib.suppress(OSError, anyio.BrokenResourceError):
                    await client.aclose()
            self._clients.pop(addr, None)
