"""Framing: ``length | serializeType<<24 | headerLength | header | body``, decoded incrementally.

The decoder checks each frame's announced length against the limit before buffering its body, as
Netty's LengthFieldBasedFrameDecoder does on the Java side.
"""

from __future__ import annotations

import struct

from codec.codes import MAX_FRAME_SIZE_DEFAULT, SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError, FrameTooLarge
from codec.header_binary import decode_binary_header, encode_binary_header
from codec.header_json import decode_json_header, encode_json_header

_PREFIX = struct.Struct(
    ">i"  # length of what follows this field: 4 + header + body
    "I"  # serializeType (high byte) | headerLength (low 24 bits)
)
PREFIX_SIZE = _PREFIX.size


def decode_command(serialize_type: int, header: bytes, body: bytes) -> RemotingCommand:
    if serialize_type == SerializeType.JSON:
        return decode_json_header(header, body)
    if serialize_type == SerializeType.ROCKETMQ:
        return decode_binary_header(header, body)
    raise CodecError(f"unknown serialize type {serialize_type}")


def encode_frame(cmd: RemotingCommand) -> bytes:
    """Serialise a command in its own serialize type."""
    if cmd.serialize_type == SerializeType.ROCKETMQ:
        header = encode_binary_header(cmd)
    else:
        header = encode_json_header(cmd)
    return b"".join(
        (_PREFIX.pack(4 + len(header) + len(cmd.body), (cmd.serialize_type << 24) | len(header)), header,
         cmd.body)
    )  # fmt: skip


class FrameDecoder:
    """Feed bytes, take whole commands.

    Two ways to use it. ``feed(data)`` returns every complete command at once; an unreadable frame raises
    CodecError, but when whole commands preceded it in the same data, ``feed`` returns those first and keeps the
    error in ``failure`` (the caller serves them and then gives up the stream). A connection that applies
    backpressure instead calls ``push(data)`` and takes one command at a time with ``next_command()``, so that
    requests it is not ready to serve stay as compact bytes; ``next_command`` raises the CodecError itself.
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE_DEFAULT) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._need: int | None = None  # total frame size once the prefix is validated
        self.failure: CodecError | None = None

    def feed(self, data: bytes) -> list[RemotingCommand]:
        if self.failure is not None:
            raise self.failure
        self._buf += data
        out: list[RemotingCommand] = []
        try:
            while (cmd := self.next_command()) is not None:
                out.append(cmd)
        except CodecError as err:
            if not out:
                raise
            self.failure = err
        return out

    def push(self, data: bytes) -> None:
        """Buffer received bytes without decoding them."""
        self._buf += data

    def next_command(self) -> RemotingCommand | None:
        """Decode the next complete frame, or return None when the buffer holds no complete frame."""
        if self._need is None:
            if len(self._buf) < PREFIX_SIZE:
                return None
            length, word = _PREFIX.unpack_from(self._buf, 0)
            if length < 4:
                raise CodecError(f"frame length {length} is smaller than its header-length word")
            if length + 4 > self.max_frame_size:
                raise FrameTooLarge(f"frame of {length + 4} bytes exceeds the {self.max_frame_size}-byte limit")
            if (word & 0xFFFFFF) > length - 4:
                raise CodecError(f"header length {word & 0xFFFFFF} exceeds frame length {length}")
            self._need = length + 4
        if len(self._buf) < self._need:
            return None
        length, word = _PREFIX.unpack_from(self._buf, 0)
        header_end = PREFIX_SIZE + (word & 0xFFFFFF)
        with memoryview(self._buf) as view:  # one copy of the body, not a bytearray slice and then bytes
            header = bytes(view[PREFIX_SIZE:header_end])
            body = bytes(view[header_end : self._need])
        del self._buf[: self._need]
        self._need = None
        return decode_command(word >> 24, header, body)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet decoded."""
        return len(self._buf)

    @property
    def pending_frame_size(self) -> int:
        """The announced size of the frame being received, once its prefix has been read (else 0)."""
        return self._need or 0

    @property
    def has_frame(self) -> bool:
        """Whether a complete frame is buffered (or the next prefix is unreadable), i.e. next_command has work."""
        if self._need is None:
            return len(self._buf) >= PREFIX_SIZE
        return len(self._buf) >= self._need
