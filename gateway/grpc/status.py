"""``apache.rocketmq.v2.Status`` values as the proxy's ResponseBuilder makes them."""

from __future__ import annotations

from codec.grpc_v2 import definition_pb2 as d


def status(code: int, message: str | None = None) -> d.Status:
    return d.Status(code=code, message=message if message is not None else d.Code.Name(code))


OK = status(d.OK)
