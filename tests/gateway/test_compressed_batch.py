"""A compressed batch (sysFlag bit 0x1 on a batch send) is inflated, split and stored uncompressed.

The C++ client of PyPI rocketmq 0.4.4 zlib-compresses any body over 4 KiB, batches included; the captured frame
(compat_tests/cpp/captured/cpp-0.4.4-send-batch-compressed.bin, see PROVENANCE.md there) is replayed as sent.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from codec.batch import BatchItem, encode_batch
from codec.codes import RequestCode
from codec.frame import FrameDecoder
from codec.properties import decode_properties, encode_properties

CAPTURED = Path(__file__).parents[2] / "compat_tests" / "cpp" / "captured" / "cpp-0.4.4-send-batch-compressed.bin"


def items(n: int) -> list[BatchItem]:
    props = [{"TAGS": f"T{i % 3}", "KEYS": f"k{i}", "UNIQ_KEY": f"U{i:031d}", "color": "blue"} for i in range(n)]
    return [BatchItem(f"body #{i} ünïcødé".encode(), encode_properties(props[i]), flag=i) for i in range(n)]


async def assert_stored_plain(bc, topic: str, sent: list[BatchItem], sys_flag: int = 0) -> None:
    records = await bc.pull_records(topic, 0, 0, max_nums=len(sent) + 1)
    assert [m.body for m in records] == [i.body for i in sent]
    assert [m.properties for m in records] == [i.properties for i in sent]
    assert [m.flag for m in records] == [i.flag for i in sent]
    for m in records:
        assert m.sys_flag == sys_flag  # no COMPRESSED bit, no compression-type bits
        assert m.body_crc == zlib.crc32(m.body) & 0x7FFFFFFF  # of the plain body


async def test_the_captured_cpp_batch_is_stored_as_its_100_plain_messages(bc):
    (cmd,) = FrameDecoder().feed(CAPTURED.read_bytes())
    assert cmd.ext_fields["sysFlag"] == "1"
    response = await bc.invoke(cmd.code, cmd.ext_fields, cmd.body)
    assert (response.code, response.remark) == (0, None)
    assert len(response.ext_fields["msgId"].split(",")) == 100

    records = await bc.pull_records("CaptureTopic", 0, 0, max_nums=200)
    assert [m.body for m in records] == [f"Hello pocketmq from the C++ client #{i}".encode() for i in range(100)]
    assert [m.queue_offset for m in records] == list(range(100))
    for i, m in enumerate(records):
        assert m.sys_flag == 0
        props = decode_properties(m.properties)
        assert (props["KEYS"], props["TAGS"], props["color"]) == (f"KEY-{i:04d}", "TagA", "blue")


@pytest.mark.parametrize(
    ("code", "batch_flag", "sys_flag"),
    [(RequestCode.SEND_BATCH_MESSAGE, False, 0x1), (RequestCode.SEND_MESSAGE_V2, True, 0x1),
     (RequestCode.SEND_BATCH_MESSAGE, False, 0x301)],
    ids=["code-320", "m-true", "zlib-type-bits"],
)  # fmt: skip
async def test_a_compressed_batch_is_stored_uncompressed(bc, code, batch_flag, sys_flag):
    sent = items(50)
    body = zlib.compress(encode_batch(sent), 5)
    response = await bc.send("Zipped", body, code=code, batch=batch_flag, queue_id=0, sys_flag=sys_flag)
    assert (response.code, response.remark) == (0, None)
    assert len(response.ext_fields["msgId"].split(",")) == 50
    await assert_stored_plain(bc, "Zipped", sent)


async def test_other_sys_flag_bits_of_a_compressed_batch_are_kept(bc):
    sent = items(3)
    body = zlib.compress(encode_batch(sent))
    response = await bc.send("Zipped2", body, code=RequestCode.SEND_BATCH_MESSAGE, sys_flag=0x1 | 0x2)  # MULTI_TAGS
    assert response.code == 0, response.remark
    await assert_stored_plain(bc, "Zipped2", sent, sys_flag=0x2)


async def test_a_compressed_single_message_is_still_stored_as_sent(bc):
    """Not a batch: kept compressed with its flag (Java's broker does the same; consumers inflate it)."""
    body = zlib.compress(b"single " * 1000)
    await bc.send_ok("ZippedSingle", body, sys_flag=0x301)
    [m] = await bc.pull_records("ZippedSingle")
    assert (m.body, m.sys_flag) == (body, 0x301)


@pytest.mark.parametrize(
    ("body", "sys_flag", "remark"),
    [
        (encode_batch(items(2)), 0x1, "the compressed body does not inflate (Error -3 while decompressing data: "),
        (zlib.compress(encode_batch(items(20)))[:-10], 0x1,
         "the compressed body is truncated: its zlib stream does not end"),
        (zlib.compress(encode_batch(items(2))), 0x101,
         "the body is compressed with LZ4; only zlib-compressed batch bodies are accepted"),
        (zlib.compress(b"not a batch at all"), 0x1, "batch body truncated in item 0"),
    ],
    ids=["not-compressed", "truncated", "lz4", "inflates-to-garbage"],
)  # fmt: skip
async def test_bad_compressed_batches_are_refused(bc, body, sys_flag, remark):
    response = await bc.send("BadZip", body, code=RequestCode.SEND_BATCH_MESSAGE, sys_flag=sys_flag)
    assert response.code == 13, response.remark  # MESSAGE_ILLEGAL
    assert response.remark.startswith(remark)
    assert response.ext_fields["MSG_REGION"] == "DefaultRegion"  # answered like any refused send
    assert await bc.max_offset("BadZip", 0) == 0


async def test_a_batch_that_inflates_beyond_the_maximum_message_size_is_refused(cluster, namesrv, open_broker_client):
    bc = await open_broker_client(await cluster.start_broker(max_message_size=64 * 1024))
    fits = [BatchItem(b"x" * 1000, "") for _ in range(60)]  # 61 KB
    fitting = await bc.send("Bomb", zlib.compress(encode_batch(fits)), code=RequestCode.SEND_BATCH_MESSAGE, sys_flag=1)
    assert fitting.code == 0, fitting.remark
    bomb = zlib.compress(encode_batch([BatchItem(bytes(1024 * 1024), "") for _ in range(8)]), 9)  # 8 MiB, ~8 KB
    assert len(bomb) < 64 * 1024
    response = await bc.send("Bomb", bomb, code=RequestCode.SEND_BATCH_MESSAGE, sys_flag=1)
    assert (response.code, response.remark) == (
        13, "the compressed body inflates to more than the maximum message size 65536"
    )  # fmt: skip
    assert await bc.max_offset("Bomb", 0) == 60
