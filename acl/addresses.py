"""White remote address patterns of plain_acl.yml (RemoteAddressStrategyFactory).

Forms: blank (matches nothing), ``*`` / ``*.*.*.*`` / ``*:*:*:*:*:*:*:*`` (everything), one address
(``192.168.0.1``, ``::1``), a comma list (``10.0.0.1,10.0.0.2``), a brace list in the last part
(``192.168.1.{1,2,3}``), and ranges where trailing parts are ``*`` or ``a-b`` (``192.168.*.*``,
``192.168.1.10-20``, ``2001:db8::1-ff``). IPv6 addresses are compared in their full form.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass


class AddressPatternError(ValueError):
    """A white address the file cannot mean (Apache refuses these at load time too)."""


@dataclass(frozen=True, slots=True)
class AddressPattern:
    text: str
    everything: bool = False
    exact: frozenset[str] = frozenset()  # normalised addresses
    # A range: the address's parts (IPv4 octets or IPv6 groups), each a (low, high) bound; None when not a range.
    ranges: tuple[tuple[int, int], ...] | None = None
    ipv6: bool = False

    def matches(self, address: str) -> bool:
        if self.everything:
            return True
        if not self.exact and self.ranges is None:
            return False
        normal = _normalise(address)
        if normal is None:
            return False
        if normal in self.exact:
            return True
        if self.ranges is None:
            return False
        parts = _parts(normal)
        if parts is None or (len(parts) == 8) != self.ipv6:
            return False
        return all(low <= value <= high for value, (low, high) in zip(parts, self.ranges, strict=True))


NOTHING = AddressPattern("")


@functools.lru_cache(maxsize=4096)  # peers are few and come back with every request
def _normalise(address: str) -> str | None:
    """An address in the form patterns are stored in, or None when it is not an address."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.exploded.upper() if ip.version == 6 else str(ip)


def _parts(normal: str) -> list[int] | None:
    if ":" in normal:
        return [int(p, 16) for p in normal.split(":")]
    return [int(p) for p in normal.split(".")]


def parse_pattern(text: str | None) -> AddressPattern:
    """A pattern from its text in the file; raises AddressPatternError naming the bad text."""
    text = (text or "").strip()
    if not text:
        return NOTHING
    if text in ("*", "*.*.*.*", "*:*:*:*:*:*:*:*"):
        return AddressPattern(text, everything=True)
    if text.endswith("}"):
        head, brace, items = text.rpartition("{")
        if not brace or not head.endswith((".", ":")):
            raise AddressPatternError(f"white address {text!r}: a brace list must be the last part")
        return _exact(text, [head + item.strip() for item in items[:-1].split(",") if item.strip()])
    if "," in text:
        return _exact(text, [item.strip() for item in text.split(",") if item.strip()])
    if "*" in text or "-" in text:
        return _range(text)
    return _exact(text, [text])


def _exact(text: str, addresses: list[str]) -> AddressPattern:
    normal = set()
    for address in addresses:
        n = _normalise(address)
        if n is None:
            raise AddressPatternError(f"white address {text!r}: {address!r} is not an IP address")
        normal.add(n)
    return AddressPattern(text, exact=frozenset(normal))


def _range(text: str) -> AddressPattern:
    ipv6 = ":" in text
    if ipv6:
        if "::" in text:
            head, _, tail = text.partition("::")
            head_items = head.split(":") if head else []
            tail_items = tail.split(":") if tail else []
            items = [*head_items, *["0"] * (8 - len(head_items) - len(tail_items)), *tail_items]
        else:
            items = text.split(":")
        width, top, base = 8, 0xFFFF, 16
    else:
        items = text.split(".")
        width, top, base = 4, 255, 10
    if len(items) != width:
        raise AddressPatternError(f"white address {text!r}: expected {width} parts")
    bounds = []
    ranged = False
    for item in items:
        item = item.strip()
        try:
            if item == "*":
                bounds.append((0, top))
                ranged = True
            elif "-" in item:
                low_text, _, high_text = item.partition("-")
                low, high = int(low_text, base), int(high_text, base)
                if not 0 <= low <= high <= top:
                    raise ValueError(item)
                bounds.append((low, high))
                ranged = True
            else:
                if ranged:
                    raise ValueError(item)  # only the trailing parts may be ranges
                value = int(item, base)
                if not 0 <= value <= top:
                    raise ValueError(item)
                bounds.append((value, value))
        except ValueError:
            raise AddressPatternError(f"white address {text!r}: {item!r} is not a number, '*' or 'a-b'") from None
    return AddressPattern(text, ranges=tuple(bounds), ipv6=ipv6)
