"""Batch bodies (SEND_BATCH_MESSAGE, or any send with ``batch=true``): a sequence of message items.

Item layout (MessageDecoder.encodeMessage): totalSize | magic | bodyCRC | flag | bodyLength | body |
propertiesLength (int16) | properties. Clients write 0 for magic and CRC; the broker ignores both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from codec.errors import MessageFormatError

_ITEM_HEAD = struct.Struct(
    ">i"  # totalSize, including this field
    "i"  # magicCode (ignored)
    "i"  # bodyCRC (ignored)
    "i"  # flag
    "i"  # bodyLength
)
_I16 = struct.Struct(">h")
ITEM_OVERHEAD = _ITEM_HEAD.size + _I16.size


@dataclass(slots=True)
class BatchItem:
    body: bytes
    properties: str
    flag: int = 0


def decode_batch(body: bytes) -> list[BatchItem]:
    view = memoryview(body)
    items: list[BatchItem] = []
    pos = 0
    try:
        while pos < len(view):
            total, _magic, _crc, flag, body_len = _ITEM_HEAD.unpack_from(view, pos)
            end = pos + total
            if total < ITEM_OVERHEAD or end > len(view) or body_len < 0:
                raise MessageFormatError(f"batch item {len(items)} has a bad size {total}")
            p = pos + _ITEM_HEAD.size
            if p + body_len + 2 > end:
                raise MessageFormatError(f"batch item {len(items)} body length {body_len} overruns the item")
            item_body = bytes(view[p : p + body_len])
            p += body_len
            (props_len,) = _I16.unpack_from(view, p)
            p += 2
            if props_len < 0 or p + props_len != end:
                raise MessageFormatError(f"batch item {len(items)} properties length {props_len} is wrong")
            props = bytes(view[p:end]).decode()
            items.append(BatchItem(item_body, props, flag))
            pos = end
    except struct.error as err:
        raise MessageFormatError(f"batch body truncated in item {len(items)}") from err
    except UnicodeDecodeError as err:
        raise MessageFormatError(f"batch item {len(items)} properties are not UTF-8") from err
    if not items:
        raise MessageFormatError("batch body holds no message")
    return items


def encode_batch(items: list[BatchItem]) -> bytes:
    out = []
    for item in items:
        props = item.properties.encode()
        total = ITEM_OVERHEAD + len(item.body) + len(props)
        out += [_ITEM_HEAD.pack(total, 0, 0, item.flag, len(item.body)), item.body, _I16.pack(len(props)), props]
    return b"".join(out)
