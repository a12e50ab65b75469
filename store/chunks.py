"""Chunks: how stored records are laid out in SQLite rows.

A chunk is one row holding the records of consecutive queue offsets of one queue, back to back, exactly as a pull
returns them; their physical (commit-log) offsets are contiguous too, so record ``i`` of a chunk starting at
``first_phys`` is at physical offset ``first_phys + start(i)``. A group commit writes one chunk per queue it
touched (split at ``CHUNK_MAX_BYTES``), and a pull reads one row for many messages instead of one row each.

Beside the records, a chunk keeps a small index: per record its end position in the blob, its tags hash code (what
a pull filters on) and its store timestamp (what a search by time bisects), so neither needs a record decoded.
Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import array
import functools
import hashlib
import itertools
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

# Per record, in the chunk's index blob (native to this store; never sent on the wire).
INDEX_ENTRY = struct.Struct(
    "<I"  # end position of the record in the chunk's records blob
    "q"  # tags hash code (codec.tags.tags_code)
    "q"  # store timestamp, ms
)
# A chunk stops growing here; a single larger record gets a chunk of its own. A pull reads whole chunks, and it
# returns at most 256 KiB (MAX_TRANSFER_BYTES), so a chunk holds about one pull's worth.
CHUNK_MAX_BYTES = 256 * 1024


# The key index of a chunk (table chunk_keys): an 8-byte digest per key of its records, and beside each digest the
# record's index in the chunk. QUERY_MESSAGE finds a key by searching the digests of a topic's chunks: one row per
# chunk to write rather than one per key (a b-tree insert per message was 3 us of a batch's 20). A 64-bit digest
# makes a false match about as likely as never (Apache's IndexFile stores a 32-bit hash and leaves the client to
# drop false matches).
KEY_DIGEST_SIZE = 8


def key_digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=KEY_DIGEST_SIZE).digest()


def pack_slots(slots: Sequence[int]) -> bytes:
    packed = array.array("H", slots)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def unpack_slots(blob: bytes) -> array.array[int]:
    slots = array.array("H")
    slots.frombytes(blob)
    if sys.byteorder != "little":
        slots.byteswap()
    return slots


def find_digest(digests: bytes, digest: bytes) -> list[int]:
    """The positions (in digests, not bytes) where ``digest`` is among the packed ``digests``."""
    found = []
    at = digests.find(digest)
    while at != -1:
        if at % KEY_DIGEST_SIZE == 0:
            found.append(at // KEY_DIGEST_SIZE)
            at = digests.find(digest, at + KEY_DIGEST_SIZE)
        else:
            at = digests.find(digest, at + 1)
    return found


def pack_index(entries: Sequence[tuple[int, int, int]]) -> bytes:
    """(end, tags code, store timestamp) per record -> the index blob."""
    pack = INDEX_ENTRY.pack
    return b"".join([pack(end, tags, ts) for end, tags, ts in entries])


def pack_run_index(ends: Sequence[int], tags_codes: Sequence[int], store_timestamp: int) -> bytes:
    """The index blob of records that share a store timestamp (a batch): one pack for all of them."""
    count = len(ends)
    return _index_struct(count).pack(
        *itertools.chain.from_iterable(zip(ends, tags_codes, itertools.repeat(store_timestamp, count), strict=True))
    )


@functools.lru_cache(maxsize=64)
def _index_struct(count: int) -> struct.Struct:
    return struct.Struct("<" + INDEX_ENTRY.format.lstrip("<") * count)


def index_entry(length: int, tags_code: int, store_timestamp: int) -> bytes:
    """The index of a chunk holding one record of ``length`` bytes (what migrating a one-row message makes)."""
    return INDEX_ENTRY.pack(length, tags_code, store_timestamp)


@dataclass(slots=True)
class Chunk:
    """A chunk as read back: where it starts, its index and its records."""

    first_phys: int
    first_offset: int
    index: bytes
    records: bytes

    @property
    def count(self) -> int:
        return len(self.index) // INDEX_ENTRY.size

    def entry(self, i: int) -> tuple[int, int, int]:
        """(start, end, tags code) of record ``i``."""
        end, tags, _ts = INDEX_ENTRY.unpack_from(self.index, i * INDEX_ENTRY.size)
        start = INDEX_ENTRY.unpack_from(self.index, (i - 1) * INDEX_ENTRY.size)[0] if i else 0
        return start, end, tags

    def entries(self) -> list[tuple[int, int, int]]:
        """(end, tags code, store timestamp) of every record, in order."""
        return list(INDEX_ENTRY.iter_unpack(self.index))

    def record(self, i: int) -> bytes:
        start, end, _tags = self.entry(i)
        return self.records[start:end]

    def store_timestamp(self, i: int) -> int:
        return int(INDEX_ENTRY.unpack_from(self.index, i * INDEX_ENTRY.size)[2])

    def position_of(self, phys_offset: int) -> int | None:
        """The index of the record that starts at ``phys_offset``, or None when no record starts there."""
        start = phys_offset - self.first_phys
        if start < 0 or start >= len(self.records):
            return None
        if start == 0:
            return 0
        # Ends are increasing: bisect for the record that ends where this one starts.
        low, high = 0, self.count - 1
        size = INDEX_ENTRY.size
        while low < high:
            mid = (low + high) // 2
            if INDEX_ENTRY.unpack_from(self.index, mid * size)[0] < start:
                low = mid + 1
            else:
                high = mid
        end = INDEX_ENTRY.unpack_from(self.index, low * size)[0]
        return low + 1 if end == start else None
