"""Tag hash codes and TAG subscription expressions (FilterAPI.buildSubscriptionData)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

SUB_ALL = "*"


@functools.lru_cache(maxsize=4096)
def java_string_hash(text: str) -> int:
    """Java ``String.hashCode()`` over UTF-16 code units, as a signed 32-bit int (a lone surrogate is one unit).
    Cached: messages repeat a handful of tags, and the loop costs a microsecond per tag."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def tags_code(tags: str | None) -> int:
    """The tagsCode stored with a message: hash of the whole TAGS value, 0 without tags."""
    return java_string_hash(tags) if tags else 0


@dataclass(slots=True, frozen=True)
class TagFilter:
    """A parsed TAG expression: everything, or a set of tags matched by exact string."""

    expression: str
    tags: frozenset[str]

    @property
    def matches_all(self) -> bool:
        return not self.tags

    def codes(self) -> frozenset[int]:
        return frozenset(java_string_hash(t) for t in self.tags)

    def matches(self, message_tags: str | None) -> bool:
        return not self.tags or (message_tags is not None and message_tags in self.tags)


def parse_tag_expression(expression: str | None) -> TagFilter:
    """``*`` or empty means everything; otherwise ``a || b`` split on ``||``, trimmed, empties dropped."""
    expr = (expression or "").strip()
    if not expr or expr == SUB_ALL:
        return TagFilter(SUB_ALL, frozenset())
    tags = frozenset(t.strip() for t in expr.split("||") if t.strip())
    return TagFilter(expr, tags) if tags else TagFilter(SUB_ALL, frozenset())
