"""Text that cannot be stored: finding it, showing it in a remark, and replacing it with something harmless.

A Python ``str`` may hold lone surrogates (U+D800..U+DFFF without a partner), which a JSON ``\\ud800`` escape
produces; they cannot be encoded as UTF-8, so SQLite, the encoders and every client would fail on them later.
Bytes that are not UTF-8 are the binary header's form of the same problem. The header decoders use these
helpers to accept such a command, set ``RemotingCommand.invalid`` to a remark built here (always ASCII), and
pass on only storable text.
"""

from __future__ import annotations

import re

SHOWN_CHARS = 48  # how much of a bad value a remark quotes (around its first bad character)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_NAME = re.compile("[A-Za-z0-9_$%#@-]{1,64}")


def is_storable(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (holds no lone surrogate)."""
    return text.isascii() or _LONE_SURROGATE.search(text) is None


def storable(text: str) -> str:
    """``text`` with every lone surrogate replaced by ``?``, as Java's ``String.getBytes(UTF_8)`` writes it."""
    return _LONE_SURROGATE.sub("?", text)


def _window(length: int, bad: int) -> tuple[int, int]:
    if length <= SHOWN_CHARS:
        return 0, length
    start = min(max(0, bad - SHOWN_CHARS // 2), length - SHOWN_CHARS)
    return start, start + SHOWN_CHARS


def shown(text: str) -> str:
    """An ASCII-only quotation of ``text`` for a remark: ``ascii()`` of it, cut around its first lone surrogate."""
    match = _LONE_SURROGATE.search(text)
    start, end = _window(len(text), match.start() if match else 0)
    return ("..." if start else "") + ascii(text[start:end]) + ("..." if end < len(text) else "")


def shown_bytes(raw: bytes, bad: int = 0) -> str:
    """An ASCII-only quotation of ``raw`` for a remark, cut around offset ``bad``."""
    start, end = _window(len(raw), bad)
    return ("..." if start else "") + repr(raw[start:end]) + ("..." if end < len(raw) else "")


def field_name(name: str) -> str:
    """A field name as a remark shows it: as is when it is a plain ASCII word, else quoted with ``ascii()``."""
    return name if _PLAIN_NAME.fullmatch(name) else shown(name)


def not_unicode(field: str, value: str) -> str:
    """The remark for a header field whose text holds a lone surrogate."""
    return f"the header field {field} is not valid Unicode text: {shown(value)}"


def name_not_unicode(where: str, name: str) -> str:
    """The remark for a field name (an extFields key) that holds a lone surrogate."""
    return f"a header field name in {where} is not valid Unicode text: {shown(name)}"


def not_utf8(field: str, raw: bytes, err: UnicodeDecodeError) -> str:
    """The remark for a header field whose bytes are not UTF-8."""
    return f"the header field {field} is not valid UTF-8 text: {shown_bytes(raw, err.start)}"


def name_not_utf8(where: str, raw: bytes, err: UnicodeDecodeError) -> str:
    """The remark for a field name (an extFields key) whose bytes are not UTF-8."""
    return f"a header field name in {where} is not valid UTF-8 text: {shown_bytes(raw, err.start)}"
