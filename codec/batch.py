"""Batch bodies (SEND_BATCH_MESSAGE, or any send with ``batch=true``): a sequence of message items.

Item layout (MessageDecoder.encodeMessage): totalSize | magic | bodyCRC | flag | bodyLength | body |
propertiesLength (int16) | properties. Clients write 0 for magic and CRC; the broker ignores both.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from codec.errors import MessageFormatError
from codec.record import RecordTemplate

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


def item_spans(body: bytes) -> list[tuple[int, int, int, int]]:
    """Where each item of a batch body lies, checked: (flag, body start, propertiesLength position, item end).
    The one parser of the item layout; MessageFormatError names the first bad item."""
    spans: list[tuple[int, int, int, int]] = []
    pos = 0
    size = len(body)
    unpack_head, unpack_i16 = _ITEM_HEAD.unpack_from, _I16.unpack_from
    try:
        while pos < size:
            total, _magic, _crc, flag, body_len = unpack_head(body, pos)
            end = pos + total
            if total < ITEM_OVERHEAD or end > size or body_len < 0:
                raise MessageFormatError(f"batch item {len(spans)} has a bad size {total}")
            p = pos + _ITEM_HEAD.size
            props_at = p + body_len
            if props_at + 2 > end:
                raise MessageFormatError(f"batch item {len(spans)} body length {body_len} overruns the item")
            (props_len,) = unpack_i16(body, props_at)
            if props_len < 0 or props_at + 2 + props_len != end:
                raise MessageFormatError(f"batch item {len(spans)} properties length {props_len} is wrong")
            spans.append((flag, p, props_at, end))
            pos = end
    except struct.error as err:
        raise MessageFormatError(f"batch body truncated in item {len(spans)}") from err
    if not spans:
        raise MessageFormatError("batch body holds no message")
    return spans


def split_batch(body: bytes) -> list[tuple[bytes, bytes, int]]:
    """The items of a batch body as (body, raw properties, flag)."""
    return [(body[p:props_at], body[props_at + 2 : end], flag) for flag, p, props_at, end in item_spans(body)]


class EncodedBatch(NamedTuple):
    """A batch's items as stored records, back to back in one buffer (offsets zero, for the store to patch)."""

    records: bytearray
    ends: list[int]  # the end of each record in ``records``
    properties: list[bytes]  # each item's properties, as sent


def encode_batch_records(template: RecordTemplate, body: bytes) -> EncodedBatch:
    """Split a batch body and encode every item with ``template`` into one buffer: one join for the whole batch,
    the items' bodies taken as views of ``body``. The bytes equal the items' ``template.encode`` concatenated
    (tests/codec); a malformed body raises what ``item_spans`` raises."""
    view = memoryview(body)
    pieces: list[bytes | memoryview] = []
    ends: list[int] = []
    properties: list[bytes] = []
    pack, magic, queue_id, middle = template.start.pack, template.magic, template.queue_id, template.middle
    topic, fixed, crc32 = template.topic, template.fixed, zlib.crc32
    end = 0
    for flag, p, props_at, item_end in item_spans(body):
        item_body = view[p:props_at]
        body_len, props_len = props_at - p, item_end - props_at - 2
        record_size = fixed + body_len + props_len  # properties below 2**15 always fit a record
        # The item's propertiesLength and properties are the record's: one slice for both.
        pieces += (
            pack(record_size, magic, crc32(item_body) & 0x7FFFFFFF, queue_id, flag, middle, body_len),
            item_body,
            topic,
            view[props_at:item_end],
        )
        properties.append(body[props_at + 2 : item_end])
        end += record_size
        ends.append(end)
    return EncodedBatch(bytearray().join(pieces), ends, properties)


def batch_properties(raw: bytes, index: int) -> str:
    """The properties of batch item ``index`` as text; not UTF-8 is a MessageFormatError naming the item."""
    try:
        return raw.decode()
    except UnicodeDecodeError as err:
        raise MessageFormatError(f"batch item {index} properties are not UTF-8") from err


def decode_batch(body: bytes) -> list[BatchItem]:
    return [
        BatchItem(item, batch_properties(props, i), flag) for i, (item, props, flag) in enumerate(split_batch(body))
    ]


def encode_batch(items: list[BatchItem]) -> bytes:
    out = []
    for item in items:
        props = item.properties.encode()
        total = ITEM_OVERHEAD + len(item.body) + len(props)
        out += [_ITEM_HEAD.pack(total, 0, 0, item.flag, len(item.body)), item.body, _I16.pack(len(props)), props]
    return b"".join(out)
