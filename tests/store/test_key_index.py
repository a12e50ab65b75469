"""The per-chunk key index (table chunk_keys) behind QUERY_MESSAGE: the digest search and the slot arrays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from store.chunks import KEY_DIGEST_SIZE, find_digest, key_digest, pack_index, pack_run_index, pack_slots, unpack_slots
from store.sqlite import _key_row


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


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1)), max_size=70), st.integers(0, 2**62)
)
def test_a_run_index_packs_like_its_entries_one_by_one(entries: list[tuple[int, int]], timestamp: int) -> None:
    ends, tags = [e for e, _ in entries], [t for _, t in entries]
    assert pack_run_index(ends, tags, timestamp) == pack_index([(e, t, timestamp) for e, t in entries])


@given(st.lists(st.lists(st.sampled_from(["", "k1", "k2", "UNIQ-1", "é"]), max_size=3).map(tuple), max_size=20))
def test_a_chunk_key_row_digests_every_nonempty_key_beside_its_record(keys: list[tuple[str, ...]]) -> None:
    row = _key_row(keys)
    expected = [(i, key_digest(k)) for i, record_keys in enumerate(keys) for k in record_keys if k]
    if not expected:
        assert row is None
        return
    assert row is not None
    digests, slots = row
    assert list(unpack_slots(slots)) == [i for i, _ in expected]
    assert digests == b"".join(d for _, d in expected)
