"""Message body compression (MessageSysFlag's COMPRESSED bit and compression-type bits, CompressionType).

A producer that compresses a body sets bit 0x1 of ``sysFlag``; 5.x Java clients also put the algorithm in bits
8-10 (``COMPRESSION_TYPE_MASK``: 0 for clients that predate the bits, which always mean zlib). The broker keeps a
single message's body as it came; only a compressed batch body has to be inflated, because the broker splits it
into its messages (``inflate_body``).
"""

from __future__ import annotations

import zlib

from codec.codes import COMPRESSION_TYPE_MASK, COMPRESSION_TYPE_SHIFT, CompressionType, MessageSysFlag
from codec.errors import MessageFormatError

# Every bit that says how a body is compressed: what a body stored inflated must no longer carry.
COMPRESSION_BITS = int(MessageSysFlag.COMPRESSED) | COMPRESSION_TYPE_MASK


def compression_type(sys_flag: int) -> CompressionType | None:
    """The algorithm of a compressed body (MessageSysFlag.getCompressionType); None for an unknown type value."""
    value = (sys_flag & COMPRESSION_TYPE_MASK) >> COMPRESSION_TYPE_SHIFT
    if value == 0:  # a client that predates the type bits (Java 4.x, the C++ client): zlib
        return CompressionType.ZLIB
    try:
        return CompressionType(value)
    except ValueError:
        return None


def inflate(data: bytes, limit: int) -> bytes:
    """One zlib stream (RFC 1950, as java.util.zip.Deflater and the C++ client write it), inflated to at most
    ``limit`` bytes. Memory stays bounded by the limit whatever the input claims (a zip bomb stops at ``limit + 1``
    bytes). Raises MessageFormatError for a broken, truncated or oversized stream, or one followed by more bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise MessageFormatError(f"the compressed body does not inflate ({err})") from err
    if len(out) > limit:
        raise MessageFormatError(f"the compressed body inflates to more than the maximum message size {limit}")
    if not inflater.eof:
        raise MessageFormatError("the compressed body is truncated: its zlib stream does not end")
    if inflater.unused_data:
        raise MessageFormatError(f"the compressed body has {len(inflater.unused_data)} bytes after its zlib stream")
    return out


def inflate_body(body: bytes, sys_flag: int, limit: int) -> bytes:
    """A body whose ``sysFlag`` has the COMPRESSED bit, inflated (zlib only: the only algorithm a client
    compresses batch bodies with); at most ``limit`` bytes."""
    kind = compression_type(sys_flag)
    if kind is not CompressionType.ZLIB:
        value = (sys_flag & COMPRESSION_TYPE_MASK) >> COMPRESSION_TYPE_SHIFT
        name = kind.name if kind is not None else f"an unknown compression type ({value})"
        raise MessageFormatError(f"the body is compressed with {name}; only zlib-compressed batch bodies are accepted")
    return inflate(body, limit)
