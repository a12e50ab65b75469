"""codec.batch_facts: the fast per-item facts equal the general parser's, whatever the properties hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.batch_facts import NotUtf8, batch_facts
from codec.message_id import OffsetMsgIdEncoder, encode_offset_msg_id
from codec.properties import decode_properties, query_keys
from codec.tags import tags_code

# Segments built from the names that matter, separators and odd text, so that UNIQ_KEY turns up first, last,
# twice, empty, inside a value, with and without the closing separator.
_pieces = st.sampled_from(
    ["UNIQ_KEY\x01", "KEYS\x01", "TAGS\x01", "DELAY\x01", "\x01", "\x02", "0", "3", " ", "a b", "k1", "é", "UNIQ_KEY"]
)
raw_properties = st.lists(_pieces | st.text(max_size=4), max_size=12).map(lambda parts: "".join(parts).encode())


def expected(raw: bytes) -> tuple[bool, int, tuple[str, ...]]:
    props = decode_properties(raw.decode())
    return props.get("DELAY", "0") != "0", tags_code(props.get("TAGS")), query_keys(props)


@given(st.lists(raw_properties, min_size=1, max_size=8))
def test_facts_equal_the_general_parser(raws: list[bytes]) -> None:
    delayed, codes, keys = batch_facts(raws)
    assert list(zip(delayed, codes, keys, strict=True)) == [expected(raw) for raw in raws]


def test_items_that_differ_only_in_their_uniq_key() -> None:
    raws = [f"TAGS\x01TagA\x02WAIT\x01true\x02UNIQ_KEY\x01ID{i}\x02KEYS\x01k1 k2\x02".encode() for i in range(3)]
    delayed, codes, keys = batch_facts(raws)
    assert delayed == [False] * 3
    assert codes == [tags_code("TagA")] * 3
    assert keys == [("k1", "k2", f"ID{i}") for i in range(3)]


def test_a_delayed_item_is_reported() -> None:
    assert batch_facts([b"UNIQ_KEY\x01A\x02", b"DELAY\x013\x02UNIQ_KEY\x01B\x02"])[0] == [False, True]


@pytest.mark.parametrize("raw", [b"UNIQ_KEY\x01\xff\x02", b"TAGS\x01\xc3\x02UNIQ_KEY\x01A", b"\xe9"])
def test_properties_that_are_not_utf8_name_the_item(raw: bytes) -> None:
    with pytest.raises(NotUtf8, match="batch item 1 properties are not UTF-8"):
        batch_facts([b"TAGS\x01a\x02", raw])


@given(st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "fe80::1"]), st.integers(0, 65535),
       st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=70))  # fmt: skip
def test_joined_msg_ids_equal_the_ids_one_by_one(host: str, port: int, offsets: list[int]) -> None:
    encoder = OffsetMsgIdEncoder(host, port)
    assert encoder.joined(iter(offsets), len(offsets)) == ",".join(encode_offset_msg_id(host, port, o) for o in offsets)
    assert encoder(offsets[0]) == encode_offset_msg_id(host, port, offsets[0])
