"""Compressed bodies: the compression-type bits, and bounded zlib inflation of batch bodies.

The captured frame is a real 100-message batch of the C++ client (PyPI rocketmq 0.4.4), which compresses batch
bodies over 4 KiB; provenance in compat_tests/cpp/captured/PROVENANCE.md.
"""

from __future__ import annotations

import tracemalloc
import zlib
from pathlib import Path

import pytest

from codec.batch import BatchItem, decode_batch, encode_batch
from codec.codes import CompressionType
from codec.compression import COMPRESSION_BITS, compression_type, inflate, inflate_body
from codec.errors import MessageFormatError
from codec.frame import FrameDecoder
from codec.headers import decode_send_header
from codec.properties import decode_properties

CAPTURED = Path(__file__).parents[2] / "compat_tests" / "cpp" / "captured" / "cpp-0.4.4-send-batch-compressed.bin"
LIMIT = 4 * 1024 * 1024  # the broker's default maximum message size


def test_the_cpp_clients_compressed_batch_inflates_to_its_100_messages() -> None:
    (cmd,) = FrameDecoder().feed(CAPTURED.read_bytes())
    h = decode_send_header(cmd.ext_fields, v2=False)
    assert (cmd.code, cmd.ext_fields["batch"], h.sys_flag) == (10, "1", 1)
    assert cmd.body[:2] == b"\x78\x5e"  # a zlib header (deflate, level 2-5), not an item's totalSize
    with pytest.raises(MessageFormatError, match="bad size"):
        decode_batch(cmd.body)  # what splitting the compressed bytes ran into

    items = decode_batch(inflate_body(cmd.body, h.sys_flag, LIMIT))
    assert len(items) == 100
    for i, item in enumerate(items):
        props = decode_properties(item.properties)
        assert item.body == f"Hello pocketmq from the C++ client #{i}".encode()
        assert (props["KEYS"], props["TAGS"], props["color"], item.flag) == (f"KEY-{i:04d}", "TagA", "blue", 0)
        assert len(props["UNIQ_KEY"]) == 32
    assert len({decode_properties(item.properties)["UNIQ_KEY"] for item in items}) == 100


@pytest.mark.parametrize(
    ("sys_flag", "expected"),
    [(0x1, CompressionType.ZLIB), (0x301, CompressionType.ZLIB), (0x101, CompressionType.LZ4),
     (0x201, CompressionType.ZSTD), (0x401, None), (0x701, None)],
)  # fmt: skip
def test_compression_type(sys_flag: int, expected: CompressionType | None) -> None:
    assert compression_type(sys_flag) is expected


def test_compression_bits_are_the_flag_and_the_type() -> None:
    assert COMPRESSION_BITS == 0x701
    assert (0x1 | 0x300 | 0x4 | 0x10) & ~COMPRESSION_BITS == 0x14


@pytest.mark.parametrize("level", [1, 5, 9])
def test_inflate_round_trip(level: int) -> None:
    body = encode_batch([BatchItem(f"m{i}".encode() * 20, f"KEYS\x01k{i}\x02", i) for i in range(200)])
    assert inflate(zlib.compress(body, level), LIMIT) == body
    assert inflate_body(zlib.compress(body, level), 0x301, LIMIT) == body


def test_the_limit_is_inclusive() -> None:
    data = zlib.compress(b"x" * 1000)
    assert inflate(data, 1000) == b"x" * 1000
    with pytest.raises(MessageFormatError) as err:
        inflate(data, 999)
    assert str(err.value) == "the compressed body inflates to more than the maximum message size 999"


def test_a_zip_bomb_stops_at_the_limit_without_growing_memory() -> None:
    packer, zeros = zlib.compressobj(9), bytes(1024 * 1024)
    bomb = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()  # 64 MiB of zeros
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(MessageFormatError, match="inflates to more than the maximum message size 4194304"):
            inflate(bomb, LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * LIMIT


@pytest.mark.parametrize(
    ("data", "remark"),
    [
        (b"\x00\x00\x00\x05junk", "the compressed body does not inflate (Error -3 while decompressing data: "),
        (zlib.compress(b"hello world" * 100)[:-6], "the compressed body is truncated: its zlib stream does not end"),
        (zlib.compress(b"hello") + b"tail", "the compressed body has 4 bytes after its zlib stream"),
        (b"", "the compressed body is truncated: its zlib stream does not end"),
    ],
    ids=["not-zlib", "truncated", "trailing-bytes", "empty"],
)  # fmt: skip
def test_bodies_that_do_not_inflate_are_refused(data: bytes, remark: str) -> None:
    with pytest.raises(MessageFormatError) as err:
        inflate(data, LIMIT)
    assert str(err.value).startswith(remark)  # zlib's own words follow "(Error -3 ...: "
    assert err.value.response_code == 13  # MESSAGE_ILLEGAL


@pytest.mark.parametrize("wbits", [-15, 31], ids=["raw-deflate", "gzip"])
def test_only_a_zlib_stream_is_accepted(wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    data = packer.compress(b"payload" * 50) + packer.flush()
    with pytest.raises(MessageFormatError, match="does not inflate"):
        inflate(data, LIMIT)


@pytest.mark.parametrize(
    ("sys_flag", "name"), [(0x101, "LZ4"), (0x201, "ZSTD"), (0x501, "an unknown compression type (5)")]
)  # fmt: skip
def test_other_algorithms_are_refused_by_name(sys_flag: int, name: str) -> None:
    with pytest.raises(MessageFormatError) as err:
        inflate_body(zlib.compress(b"x"), sys_flag, LIMIT)
    assert str(err.value) == f"the body is compressed with {name}; only zlib-compressed batch bodies are accepted"
