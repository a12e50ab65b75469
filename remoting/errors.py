"""Request-processing errors; one place (the dispatcher) turns them into RocketMQ error responses."""

from __future__ import annotations

from codec.codes import ResponseCode


class RequestError(Exception):
    """A request that cannot be served; answered with ``code`` and ``remark`` (the message)."""

    def __init__(self, code: ResponseCode, remark: str) -> None:
        super().__init__(remark)
        self.code = code
        self.remark = remark
