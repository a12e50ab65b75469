"""The stored-message record (commit-log layout) served in pull, query and view bodies.

Hand-specialised ``struct`` code for the per-message path; ``codec.spec`` holds the construct definition
these functions are proven equal to (tests/codec/test_spec_agreement.py). Layout: messages.md section 4.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
import zlib
from dataclasses import dataclass

from codec.codes import MessageSysFlag
from codec.errors import CodecError

MAGIC_V1 = -626843481  # 0xDAA320A7: 1-byte topic length
MAGIC_V2 = -626843477  # 0xDAA320AB: 2-byte topic length

# Fixed prefix up to and including sysFlag; host fields vary in width after it.
_PREFIX = struct.Struct(
    ">i"  # totalSize
    "i"  # magicCode
    "i"  # bodyCRC
    "i"  # queueId
    "i"  # flag
    "q"  # queueOffset
    "q"  # physicalOffset
    "i"  # sysFlag
)
QUEUE_OFFSET_POS = struct.calcsize(">iiiii")
PHYS_OFFSET_POS = QUEUE_OFFSET_POS + 8
_OFFSETS = struct.Struct(">qq")
_TIMESTAMP = struct.Struct(">q")
_V4_HOST = struct.Struct(">4si")
_V6_HOST = struct.Struct(">16si")
_TAIL = struct.Struct(
    ">i"  # reconsumeTimes
    "q"  # preparedTransactionOffset
    "i"  # bodyLength
)
# The whole fixed part of an IPv4/IPv4 record, packed in one call on the hot path.
_V4_FIXED = struct.Struct(
    ">iiiiiqqi"  # prefix
    "q4si"  # bornTimestamp, bornHost
    "q4si"  # storeTimestamp, storeHost
    "iqi"  # reconsumeTimes, preparedTransactionOffset, bodyLength
)
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_BORNHOST_V6 = int(MessageSysFlag.BORNHOST_V6)
_STOREHOST_V6 = int(MessageSysFlag.STOREHOST_V6)
_HOST_BITS = _BORNHOST_V6 | _STOREHOST_V6
MAX_RECORD_PROPERTIES = 32767
_I8 = struct.Struct(">b")
_U16 = struct.Struct(">H")


@dataclass(slots=True)
class StoredMessage:
    """One stored message. ``properties`` is the raw property string (codec.properties), kept byte for byte."""

    topic: str
    queue_id: int
    body: bytes
    properties: str = ""
    flag: int = 0
    sys_flag: int = 0
    queue_offset: int = 0
    phys_offset: int = 0
    born_timestamp: int = 0
    born_host: str = "127.0.0.1"
    born_port: int = 0
    store_timestamp: int = 0
    store_host: str = "127.0.0.1"
    store_port: int = 0
    reconsume_times: int = 0
    prepared_transaction_offset: int = 0
    body_crc: int = 0


def body_crc(body: bytes) -> int:
    """CRC32 of the body as stored, masked to 31 bits (UtilAll.crc32)."""
    return zlib.crc32(body) & 0x7FFFFFFF


@functools.lru_cache(maxsize=4096)
def _ip_bytes(host: str) -> bytes:
    """Packed address; cached because every record repeats the same few hosts (bench: 3.5 µs per parse)."""
    try:
        return ipaddress.ip_address(host).packed
    except ValueError as err:
        raise CodecError(f"not an IP address: {host!r}") from err


def encode_record(msg: StoredMessage) -> bytearray:
    """Encode a record with V1 magic (1-byte topic length) unless the topic needs two bytes."""
    topic = msg.topic.encode()
    props = msg.properties.encode()
    body = msg.body
    born_ip = _ip_bytes(msg.born_host)
    store_ip = _ip_bytes(msg.store_host)
    if len(props) > MAX_RECORD_PROPERTIES:
        raise CodecError(f"properties are {len(props)} bytes, more than {MAX_RECORD_PROPERTIES}")
    if len(born_ip) == 4 and len(store_ip) == 4 and len(topic) <= 127:  # the usual record: one pack and a join
        body_len, topic_len, props_len = len(body), len(topic), len(props)
        return bytearray().join((
            _V4_FIXED.pack(
                _V4_FIXED.size + body_len + 1 + topic_len + 2 + props_len, MAGIC_V1, zlib.crc32(body) & 0x7FFFFFFF,
                msg.queue_id, msg.flag, msg.queue_offset, msg.phys_offset, msg.sys_flag & ~_HOST_BITS,
                msg.born_timestamp, born_ip, msg.born_port, msg.store_timestamp, store_ip, msg.store_port,
                msg.reconsume_times, msg.prepared_transaction_offset, body_len,
            ),
            body, _I8.pack(topic_len), topic, _I16.pack(props_len), props,
        ))  # fmt: skip
    # Plain ints: inverting an IntFlag would also clear bits it has no member for (e.g. compression type).
    sys_flag = msg.sys_flag & ~_HOST_BITS
    if len(born_ip) == 16:
        sys_flag |= _BORNHOST_V6
    if len(store_ip) == 16:
        sys_flag |= _STOREHOST_V6
    wide_topic = len(topic) > 127
    magic = MAGIC_V2 if wide_topic else MAGIC_V1
    topic_len_size = 2 if wide_topic else 1
    hosts = len(born_ip) + len(store_ip) + 8
    total = 4 * 5 + 8 + 8 + 4 + 8 + hosts + 8 + 4 + 8 + 4 + len(body) + topic_len_size + len(topic) + 2 + len(props)
    crc = body_crc(body)
    out = bytearray(total)
    if len(born_ip) == 4 and len(store_ip) == 4:
        _V4_FIXED.pack_into(
            out, 0, total, magic, crc, msg.queue_id, msg.flag, msg.queue_offset, msg.phys_offset, sys_flag,
            msg.born_timestamp, born_ip, msg.born_port, msg.store_timestamp, store_ip, msg.store_port,
            msg.reconsume_times, msg.prepared_transaction_offset, len(body),
        )  # fmt: skip
        pos = _V4_FIXED.size
    else:
        _PREFIX.pack_into(
            out, 0, total, magic, crc, msg.queue_id, msg.flag, msg.queue_offset, msg.phys_offset, sys_flag
        )
        pos = _PREFIX.size
        for ts, ip, port in ((msg.born_timestamp, born_ip, msg.born_port),
                             (msg.store_timestamp, store_ip, msg.store_port)):  # fmt: skip
            _TIMESTAMP.pack_into(out, pos, ts)
            pos += 8
            host = _V4_HOST if len(ip) == 4 else _V6_HOST
            host.pack_into(out, pos, ip, port)
            pos += host.size
        _TAIL.pack_into(out, pos, msg.reconsume_times, msg.prepared_transaction_offset, len(body))
        pos += _TAIL.size
    out[pos : pos + len(body)] = body
    pos += len(body)
    if wide_topic:
        _I16.pack_into(out, pos, len(topic))
    else:
        _I8.pack_into(out, pos, len(topic))
    pos += topic_len_size
    out[pos : pos + len(topic)] = topic
    pos += len(topic)
    _I16.pack_into(out, pos, len(props))
    pos += 2
    out[pos:] = props
    return out


class RecordTemplate:
    """``encode_record`` for many messages that share all but their body, properties and flag: the items of one
    batch. Everything else is packed once; each record then costs one pack and a join (1.5 us against 6 us for a
    1 KiB body). tests/codec proves the bytes equal to ``encode_record``'s."""

    _HEAD = struct.Struct(
        ">i"  # totalSize
        "i"  # magicCode
        "i"  # bodyCRC
        "i"  # queueId
        "i"  # flag
    )

    def __init__(self, template: StoredMessage) -> None:
        """``template`` gives every field but ``body``, ``properties`` and ``flag`` (offsets are left at zero)."""
        topic = template.topic.encode()
        born_ip, store_ip = _ip_bytes(template.born_host), _ip_bytes(template.store_host)
        sys_flag = template.sys_flag & ~_HOST_BITS
        if len(born_ip) == 16:
            sys_flag |= _BORNHOST_V6
        if len(store_ip) == 16:
            sys_flag |= _STOREHOST_V6
        born = (_V4_HOST if len(born_ip) == 4 else _V6_HOST).pack(born_ip, template.born_port)
        store = (_V4_HOST if len(store_ip) == 4 else _V6_HOST).pack(store_ip, template.store_port)
        # queueOffset .. preparedTransactionOffset, the same in every record of the template.
        middle = b"".join((
            _OFFSETS.pack(template.queue_offset, template.phys_offset), _I32.pack(sys_flag),
            _TIMESTAMP.pack(template.born_timestamp), born, _TIMESTAMP.pack(template.store_timestamp), store,
            _I32.pack(template.reconsume_times), _TIMESTAMP.pack(template.prepared_transaction_offset),
        ))  # fmt: skip
        wide_topic = len(topic) > 127
        self.magic = MAGIC_V2 if wide_topic else MAGIC_V1
        self.queue_id = template.queue_id
        # Packs a record's fields from totalSize to bodyLength: pack(total, magic, bodyCRC, queueId, flag, middle,
        # bodyLength). The body, ``topic`` and the properties (with their length) follow.
        self.start = struct.Struct(f">iiiii{len(middle)}si")
        self.middle = middle
        self.topic = (_I16.pack(len(topic)) if wide_topic else _I8.pack(len(topic))) + topic
        self.fixed = self.start.size + len(self.topic) + 2  # a record's size without its body and properties

    def encode(self, body: bytes, properties: bytes, flag: int) -> bytearray:
        pieces: list[bytes | memoryview] = []
        self.add(pieces, body, properties, flag)
        return bytearray(b"".join(pieces))

    def add(self, pieces: list[bytes | memoryview], body: bytes | memoryview, properties: bytes, flag: int) -> int:
        """Append the pieces of one record to ``pieces`` (joined, they are what ``encode`` returns); return its
        size. Records added one after another to one list join into records back to back (a batch's chunk)."""
        if len(properties) > MAX_RECORD_PROPERTIES:
            raise CodecError(f"properties are {len(properties)} bytes, more than {MAX_RECORD_PROPERTIES}")
        total = self.fixed + len(body) + len(properties)
        pieces += (
            self.start.pack(
                total, self.magic, zlib.crc32(body) & 0x7FFFFFFF, self.queue_id, flag, self.middle, len(body)
            ),
            body,
            self.topic,
            _I16.pack(len(properties)),
            properties,
        )
        return total


def set_offsets(record: bytearray, queue_offset: int, phys_offset: int) -> None:
    """Write the queue offset and physical offset into an encoded record (the store assigns both)."""
    _OFFSETS.pack_into(record, QUEUE_OFFSET_POS, queue_offset, phys_offset)


def _ip_text(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntoa(raw)  # the same text as ipaddress at a fraction of the cost
    return str(ipaddress.ip_address(raw))  # IPv6: ipaddress's spelling (inet_ntop differs on IPv4-mapped ones)


def decode_record(buf: bytes | bytearray | memoryview, pos: int = 0) -> tuple[StoredMessage, int]:
    """Decode one record at ``pos``; return it and the position after it. Raises CodecError on bad input."""
    view = memoryview(buf)
    end_of_buf = len(view)
    try:
        total, magic, crc, queue_id, flag, queue_offset, phys_offset, sys_flag = _PREFIX.unpack_from(view, pos)
        if magic not in (MAGIC_V1, MAGIC_V2):
            raise CodecError(f"bad record magic {magic & 0xFFFFFFFF:#x} at {pos}")
        if total < _V4_FIXED.size + 3 or pos + total > end_of_buf:
            raise CodecError(f"record size {total} at {pos} does not fit the {end_of_buf}-byte buffer")
        end = pos + total
        p = pos + _PREFIX.size
        hosts = []
        for v6_flag in (MessageSysFlag.BORNHOST_V6, MessageSysFlag.STOREHOST_V6):
            (ts,) = _TIMESTAMP.unpack_from(view, p)
            p += 8
            host = _V6_HOST if sys_flag & v6_flag else _V4_HOST
            ip, port = host.unpack_from(view, p)
            p += host.size
            hosts.append((ts, _ip_text(ip), port))
        reconsume, prepared, body_len = _TAIL.unpack_from(view, p)
        p += _TAIL.size
        if body_len < 0 or p + body_len > end:
            raise CodecError(f"record body length {body_len} overruns the record at {pos}")
        body = bytes(view[p : p + body_len])
        p += body_len
        if magic == MAGIC_V2:
            (topic_len,) = _U16.unpack_from(view, p)
            p += 2
        else:
            topic_len = view[p]
            p += 1
        topic = bytes(view[p : p + topic_len]).decode()
        p += topic_len
        (props_len,) = _I16.unpack_from(view, p)
        p += 2
        if props_len < 0 or p + props_len != end:
            raise CodecError(f"record properties length {props_len} does not end the record at {pos}")
        props = bytes(view[p : p + props_len]).decode()
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        raise CodecError(f"truncated or malformed record at {pos}: {err}") from err
    (born_ts, born_host, born_port), (store_ts, store_host, store_port) = hosts
    msg = StoredMessage(
        topic=topic, queue_id=queue_id, body=body, properties=props, flag=flag, sys_flag=sys_flag,
        queue_offset=queue_offset, phys_offset=phys_offset, born_timestamp=born_ts, born_host=born_host,
        born_port=born_port, store_timestamp=store_ts, store_host=store_host, store_port=store_port,
        reconsume_times=reconsume, prepared_transaction_offset=prepared, body_crc=crc,
    )  # fmt: skip
    return msg, end


def decode_records(buf: bytes | bytearray | memoryview) -> list[StoredMessage]:
    """Decode a concatenation of records (a pull body)."""
    out = []
    pos = 0
    while pos < len(buf):
        msg, pos = decode_record(buf, pos)
        out.append(msg)
    return out


def properties_of(record: bytes | bytearray | memoryview) -> str:
    """Only the property string of one encoded record (what a SQL92 filter needs), without decoding the rest."""
    view = memoryview(record)
    try:
        magic, sys_flag = _I32.unpack_from(view, 4)[0], _I32.unpack_from(view, _PREFIX.size - 4)[0]
        born = 16 if sys_flag & _BORNHOST_V6 else 4
        store = 16 if sys_flag & _STOREHOST_V6 else 4
        pos = _PREFIX.size + 8 + born + 4 + 8 + store + 4 + 4 + 8
        (body_len,) = _I32.unpack_from(view, pos)
        if body_len < 0:
            raise CodecError(f"record body length {body_len} is negative")
        pos += 4 + body_len
        if magic == MAGIC_V2:
            (topic_len,) = _U16.unpack_from(view, pos)
            pos += 2 + topic_len
        else:
            pos += 1 + view[pos]
        (props_len,) = _I16.unpack_from(view, pos)
        pos += 2
        if props_len < 0 or pos + props_len > len(view):
            raise CodecError(f"record properties length {props_len} overruns the record")
        return bytes(view[pos : pos + props_len]).decode()
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as err:
        raise CodecError(f"malformed record: {err}") from err
