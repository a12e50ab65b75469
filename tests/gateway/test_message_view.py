"""A stored record as the admin API shows it: text and base64 bodies, bounded inflation, broken records."""

from __future__ import annotations

import base64
import zlib

from codec.codes import MessageSysFlag
from codec.properties import encode_properties
from codec.record import StoredMessage, encode_record
from gateway.message_view import message_json


def _record(body: bytes, sys_flag: int = 0) -> bytes:
    props = encode_properties({"KEYS": "k1 k2", "TAGS": "t", "UNIQ_KEY": "U1", "x": "<b>y</b>"})
    return bytes(encode_record(StoredMessage("T", 1, body, props, sys_flag=sys_flag, queue_offset=7)))


def test_text_base64_keys_and_properties() -> None:
    body = b"caf\xc3\xa9 \xff"
    shown = message_json(_record(body), "ID", 1024)
    assert shown["bodyText"] == "café \ufffd" and base64.b64decode(shown["bodyBase64"]) == body
    assert (shown["keys"], shown["tags"], shown["uniqKey"], shown["queueOffset"]) == (["k1", "k2"], "t", "U1", 7)
    assert shown["properties"]["x"] == "<b>y</b>" and shown["bodyTruncated"] is False


def test_a_long_body_is_cut_at_the_limit() -> None:
    shown = message_json(_record(b"a" * 5000), "ID", 100)
    assert shown["bodyText"] == "a" * 100 and shown["bodyTruncated"] and shown["bodySize"] == 5000


def test_a_compressed_body_is_inflated_no_further_than_the_limit() -> None:
    bomb = zlib.compress(b"z" * 10_000_000)
    shown = message_json(_record(bomb, int(MessageSysFlag.COMPRESSED)), "ID", 1000)
    assert shown["bodyText"] == "z" * 1000 and shown["bodyTruncated"] and "inflated" in shown["bodyNote"]
    broken = message_json(_record(b"not zlib", int(MessageSysFlag.COMPRESSED)), "ID", 1000)
    assert broken["bodyText"] == "not zlib" and "does not inflate" in broken["bodyNote"]


def test_a_broken_record_is_reported_not_raised() -> None:
    shown = message_json(b"\x00\x00\x00\x10garbage", "ID", 1000)
    assert shown["msgId"] == "ID" and "cannot be decoded" in shown["error"]
