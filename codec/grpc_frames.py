"""gRPC over HTTP/2, the parts above HTTP/2 itself: length-prefixed messages, ``grpc-timeout``, status codes.

Sans-IO: :class:`MessageDecoder` takes the bytes of one stream's DATA frames as they arrive and yields whole
messages; it checks each message's declared length against its limit before buffering the body (a client cannot
make it hold more than one message of at most ``max_message_size`` bytes). The HTTP/2 framing is the ``h2``
library's; what a gRPC message looks like inside the DATA frames is in the gRPC spec's PROTOCOL-HTTP2.md:
a 1-byte compressed flag, a 4-byte big-endian length, then the message.
"""

from __future__ import annotations

import enum
import struct

from codec.errors import CodecError

PREFIX = struct.Struct(">BI")
CONTENT_TYPE = b"application/grpc"


class Status(enum.IntEnum):
    """gRPC status codes (sent as the ``grpc-status`` trailer)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcFrameError(CodecError):
    """A stream's DATA does not hold well-formed gRPC messages; answered with ``status`` and the message."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


def encode_message(payload: bytes) -> bytes:
    """One uncompressed gRPC message: the prefix, then the payload."""
    return PREFIX.pack(0, len(payload)) + payload


class MessageDecoder:
    """Whole gRPC messages out of one stream's DATA bytes, each at most ``max_message_size`` bytes."""

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while len(self._buffer) >= PREFIX.size:
            compressed, length = PREFIX.unpack_from(self._buffer)
            if compressed not in (0, 1):
                raise GrpcFrameError(Status.INTERNAL, f"gRPC message flag {compressed} is neither 0 nor 1")
            if compressed:
                # Only identity is accepted (grpc-accept-encoding says so), as clients compress only when told.
                raise GrpcFrameError(Status.UNIMPLEMENTED, "compressed gRPC messages are not accepted")
            if length > self.max_message_size:
                raise GrpcFrameError(
                    Status.RESOURCE_EXHAUSTED,
                    f"gRPC message of {length} bytes exceeds the limit of {self.max_message_size}",
                )
            end = PREFIX.size + length
            if len(self._buffer) < end:
                break
            messages.append(bytes(self._buffer[PREFIX.size : end]))
            del self._buffer[:end]
        return messages

    def finish(self) -> None:
        """The stream ended: a partly received message is an error."""
        if self._buffer:
            raise GrpcFrameError(Status.INTERNAL, f"the stream ended inside a gRPC message ({len(self._buffer)} bytes)")


_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float:
    """A ``grpc-timeout`` header (at most 8 digits and a unit) in seconds."""
    digits, unit = value[:-1], value[-1:]
    if not digits or len(digits) > 8 or not digits.isdigit() or unit not in _TIMEOUT_UNITS:
        raise GrpcFrameError(Status.INVALID_ARGUMENT, f"grpc-timeout {value!r} is not 1-8 digits and a unit")
    return int(digits) * _TIMEOUT_UNITS[unit]


def percent_encode(message: str) -> bytes:
    """``grpc-message``: UTF-8, with bytes outside printable ASCII (and ``%``) percent-encoded."""
    out = bytearray()
    for byte in message.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)
