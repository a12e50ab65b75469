"""The written definition of every binary layout, in construct.

These are the reference; the per-message paths in ``codec.frame``, ``codec.header_binary``, ``codec.record``,
``codec.batch`` and ``codec.message_id`` are hand-specialised ``struct`` code, and
tests/codec/test_spec_agreement.py proves they agree with these definitions. Construct is not used on the
hot path (it is several times slower and accepts truncated input when compiled).
"""

from __future__ import annotations

from construct import (
    Bytes,
    GreedyBytes,
    GreedyRange,
    IfThenElse,
    Int8sb,
    Int8ub,
    Int16sb,
    Int24ub,
    Int32sb,
    Int64sb,
    PascalString,
    Prefixed,
    Struct,
    Terminated,
    this,
)

MAGIC_V1 = -626843481
MAGIC_V2 = -626843477
BORNHOST_V6 = 0x10
STOREHOST_V6 = 0x20

# A remoting frame: length counts everything after itself.
Frame = Struct(
    "length" / Int32sb,
    "serialize_type" / Int8ub,  # 0 JSON, 1 ROCKETMQ
    "header_length" / Int24ub,
    "header" / Bytes(this.header_length),
    "body" / Bytes(this.length - 4 - this.header_length),
    Terminated,
)

# RocketMQSerializable: the ROCKETMQ binary command header.
ExtField = Struct(
    "key" / PascalString(Int16sb, "utf8"),
    "value" / PascalString(Int32sb, "utf8"),
)
BinaryHeader = Struct(
    "code" / Int16sb,
    "language" / Int8ub,
    "version" / Int16sb,
    "opaque" / Int32sb,
    "flag" / Int32sb,
    "remark" / PascalString(Int32sb, "utf8"),
    "ext_fields" / Prefixed(Int32sb, GreedyRange(ExtField)),
    Terminated,
)

# The commit-log record served in pull, query and view bodies (MessageDecoder / MessageExtEncoder).
StoredRecord = Struct(
    "total_size" / Int32sb,
    "magic" / Int32sb,
    "body_crc" / Int32sb,
    "queue_id" / Int32sb,
    "flag" / Int32sb,
    "queue_offset" / Int64sb,
    "phys_offset" / Int64sb,
    "sys_flag" / Int32sb,
    "born_timestamp" / Int64sb,
    "born_ip" / IfThenElse(this.sys_flag & BORNHOST_V6, Bytes(16), Bytes(4)),
    "born_port" / Int32sb,
    "store_timestamp" / Int64sb,
    "store_ip" / IfThenElse(this.sys_flag & STOREHOST_V6, Bytes(16), Bytes(4)),
    "store_port" / Int32sb,
    "reconsume_times" / Int32sb,
    "prepared_transaction_offset" / Int64sb,
    "body" / Prefixed(Int32sb, GreedyBytes),
    "topic" / IfThenElse(this.magic == MAGIC_V2, PascalString(Int16sb, "utf8"), PascalString(Int8sb, "utf8")),
    "properties" / PascalString(Int16sb, "utf8"),
)
StoredRecords = GreedyRange(StoredRecord)

# One item of a batch body (MessageDecoder.encodeMessage); magic and CRC are written as 0 by clients.
BatchItem = Struct(
    "total_size" / Int32sb,
    "magic" / Int32sb,
    "body_crc" / Int32sb,
    "flag" / Int32sb,
    "body" / Prefixed(Int32sb, GreedyBytes),
    "properties" / PascalString(Int16sb, "utf8"),
)
BatchBody = GreedyRange(BatchItem)

# Offset message id (before hex encoding).
OffsetMessageIdV4 = Struct("ip" / Bytes(4), "port" / Int32sb, "offset" / Int64sb, Terminated)
OffsetMessageIdV6 = Struct("ip" / Bytes(16), "port" / Int32sb, "offset" / Int64sb, Terminated)

# The 8-byte prefix alone, for checking lengths before a frame is buffered.
FramePrefix = Struct("length" / Int32sb, "serialize_type" / Int8ub, "header_length" / Int24ub)

__all__ = [
    "BatchBody",
    "BatchItem",
    "BinaryHeader",
    "Frame",
    "FramePrefix",
    "OffsetMessageIdV4",
    "OffsetMessageIdV6",
    "StoredRecord",
    "StoredRecords",
]
