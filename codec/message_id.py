"""Offset message ids: uppercase hex of store IP, port (int32) and physical offset (int64)."""

from __future__ import annotations

import functools
import ipaddress
import re
import struct
from collections.abc import Iterable

from codec.errors import CodecError

_V4 = struct.Struct(">4siq")
_V6 = struct.Struct(">16siq")
_HEX = re.compile("[0-9A-Fa-f]*")


@functools.lru_cache(maxsize=1024)
def _packed(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


def encode_offset_msg_id(host: str, port: int, phys_offset: int) -> str:
    ip = _packed(host)
    layout = _V4 if len(ip) == 4 else _V6
    return layout.pack(ip, port, phys_offset).hex().upper()


class OffsetMsgIdEncoder:
    """``encode_offset_msg_id`` for one store host and port (a broker's own): the host part is packed once."""

    def __init__(self, host: str, port: int) -> None:
        ip = _packed(host)
        self._prefix = (_V4 if len(ip) == 4 else _V6).pack(ip, port, 0)[:-8]
        self._prefix_hex = self._prefix.hex().upper()
        self._width = len(self._prefix) + 8

    def __call__(self, phys_offset: int) -> str:
        return f"{self._prefix_hex}{phys_offset & 0xFFFFFFFFFFFFFFFF:016X}"

    def joined(self, phys_offsets: Iterable[int], count: int) -> str:
        """The ids of ``count`` offsets, comma-separated (a batch's msgId field): the offsets are packed and
        hex-encoded with the host part in one go, not formatted one id at a time."""
        width = self._width
        ids = bytearray((self._prefix + bytes(8)) * count)
        packed = struct.pack(f">{count}Q", *phys_offsets)
        for i in range(8):  # byte i of every offset, at its place in every id
            ids[width - 8 + i :: width] = packed[i::8]
        return ids.hex(",", width).upper()


def decode_offset_msg_id(msg_id: str) -> tuple[str, int, int]:
    """Return (host, port, phys_offset). 32 hex chars is IPv4, 56 is IPv6."""
    layout = {32: _V4, 56: _V6}.get(len(msg_id))
    if layout is None:
        raise CodecError(f"offset message id {msg_id[:64]!a} is neither 32 nor 56 hex characters")
    if _HEX.fullmatch(msg_id) is None:  # bytes.fromhex would skip spaces and leave the layout short
        raise CodecError(f"offset message id {msg_id!a} is not hex")
    ip, port, offset = layout.unpack(bytes.fromhex(msg_id))
    return str(ipaddress.ip_address(ip)), port, offset


class UniqueIdGenerator:
    """Client-style unique ids (UNIQ_KEY) for messages that arrive without one.

    Layout as MessageClientIDSetter: IP (4 bytes) | pid (int16) | salt (int32) | ms since the start of the
    month (int32) | counter (int16), upper-case hex. Only uniqueness matters to clients; they treat it as text.
    """

    _LAYOUT = struct.Struct(">4sHiIH")

    def __init__(self, host: str, pid: int, salt: int) -> None:
        packed = ipaddress.ip_address(host).packed
        self._ip = packed[-4:]
        self._pid = pid & 0xFFFF
        self._salt = salt & 0x7FFFFFFF
        self._counter = 0

    def next_id(self, now_ms: int) -> str:
        self._counter = (self._counter + 1) & 0xFFFF
        return (
            self._LAYOUT.pack(self._ip, self._pid, self._salt, now_ms % (31 * 24 * 3600 * 1000), self._counter)
            .hex()
            .upper()
        )
