"""The per-chunk key index (table chunk_keys) behind QUERY_MESSAGE: the digest search and the slot arrays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from store.chunks import KEY_DIGEST_SIZE, find_digest, key_digest, pack_slots, unpack_slots


@given(
    st.lists(st.binary(min_size=KEY_DIGEST_SIZE, max_size=KEY_DIGEST_SIZE), max_size=40),
    st.binary(min_size=8, max_size=8),
)
def test_find_digest_reports_every_aligned_match_and_no_straddling_one(digests: list[bytes], needle: bytes) -> None:
    packed = b"".join(digests)
    assert find_digest(packed, needle) == [i for i, d in enumerate(digests) if d == needle]


def test_find_digest_skips_a_match_across_two_digests() -> None:
    needle = bytes(range(8))
    packed = bytes(4) + needle + bytes(4)  # the needle straddles digests 0 and 1
    assert find_digest(packed, needle) == []
    assert find_digest(packed + needle, needle) == [2]


@given(st.lists(st.integers(0, 2**16 - 1), max_size=50))
def test_slots_round_trip(slots: list[int]) -> None:
    blob = pack_slots(slots)
    assert len(blob) == 2 * len(slots)
    assert list(unpack_slots(blob)) == slots


def test_digests_differ_per_key_and_are_stable() -> None:
    assert key_digest("order-1") == key_digest("order-1")
    assert key_digest("order-1") != key_digest("order-2")
    assert len(key_digest("order-1")) == KEY_DIGEST_SIZE
    assert key_digest("ключ") != key_digest("ключ ")
