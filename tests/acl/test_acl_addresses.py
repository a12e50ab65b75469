"""White remote address patterns (RemoteAddressStrategyFactory)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acl.addresses import AddressPatternError, parse_pattern


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ("", "127.0.0.1", False),
        ("*", "10.1.2.3", True),
        ("*.*.*.*", "::1", True),
        ("192.168.0.1", "192.168.0.1", True),
        ("192.168.0.1", "192.168.0.2", False),
        ("10.0.0.1,10.0.0.2", "10.0.0.2", True),
        ("10.0.0.1, 10.0.0.2", "10.0.0.3", False),
        ("192.168.1.{1,2,3}", "192.168.1.3", True),
        ("192.168.1.{1,2,3}", "192.168.1.4", False),
        ("192.168.*.*", "192.168.200.7", True),
        ("192.168.*.*", "192.169.0.1", False),
        ("192.168.1.10-20", "192.168.1.15", True),
        ("192.168.1.10-20", "192.168.1.21", False),
        ("10.10.103.*", "10.10.103.4", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("2001:db8::1-ff", "2001:db8::fe", True),
        ("2001:db8::1-ff", "2001:db8::100", False),
        ("2001:db8::*", "2001:db8::abcd", True),
        ("127.0.0.1", "::ffff:127.0.0.1", True),  # a dual-stack socket's view of an IPv4 peer
        ("127.0.0.1", "not an address", False),
    ],
)
def test_matches(pattern: str, address: str, expected: bool) -> None:
    assert parse_pattern(pattern).matches(address) is expected


@pytest.mark.parametrize(
    "bad", ["192.168.1", "300.1.1.1", "192.168.1.x", "192.168.1.20-10", "192.168.*.1", "a.b.c.{1,2}", "1.2.3.4,x"]
)
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(AddressPatternError, match="white address"):
        parse_pattern(bad)


@given(st.text(max_size=40), st.ip_addresses().map(str))
def test_any_text_parses_or_raises_cleanly(text: str, address: str) -> None:
    try:
        pattern = parse_pattern(text)
    except AddressPatternError:
        return
    assert pattern.matches(address) in (True, False)
