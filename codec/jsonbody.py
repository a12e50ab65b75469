"""JSON bodies in the fastjson dialect: lenient on input (bare integer keys), compact and standard on output.

orjson reads and writes. Reading refuses invalid UTF-8, lone surrogates and nesting deeper than
``MAX_BODY_DEPTH`` (every RocketMQ body nests less than 8 deep; a deeper one only makes work for whoever walks
it), each as a CodecError. Writing gives the bytes ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``
gave (tests/codec/test_json_orjson.py), except that some orjson versions (3.8 to 3.10 at least) spell floats
with large or small exponents their own way (``1e16`` for ``1e+16``); no body the broker writes holds a float.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import orjson

from codec.errors import CodecError

MAX_BODY_DEPTH = 32

# fastjson writes a Map<Long, String> with bare integer keys (e.g. brokerAddrs {0:"host:port"}): quoted in one C
# pass over the whole text. A key-like run inside a string gets quoted too, but that can only break the document
# (the inserted quote ends the string, and a number cannot follow a string), never change it; small bodies then
# get a second, string-aware try.
_BARE_INT_KEY = re.compile(rb"([{,]\s*)(-?[0-9]+)(\s*:)")
_BARE_INT_KEY_AT = re.compile(r"-?[0-9]+\s*:")  # where orjson's error points (a str index)
_JSON_STRING = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")', re.DOTALL)
STRING_AWARE_LIMIT = 64 * 1024
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


@functools.cache
def _shallow(limit: int) -> re.Pattern[bytes]:
    """Bracket sequences (with ``limit`` closers appended) whose depth never exceeds ``limit``.

    A group at depth ``limit`` may hold no further group; a closer with nothing open is skipped, as a parser
    would fail there anyway. Possessive loops: no backtracking, linear time.
    """
    inner = b""
    for _ in range(limit - 1):
        inner = rb"(?:\[" + inner + rb"\])*+"
    return re.compile(rb"(?:\]|\[" + inner + rb"\])*+")


def nests_at_most(text: bytes, limit: int) -> bool:
    """Whether JSON text nests at most ``limit`` deep, brackets inside strings not counted. Linear, in C.

    For text that is not JSON the answer bounds what a parser could build from it before it fails.
    """
    if text.count(b"[") + text.count(b"{") <= limit:  # every normal header, most bodies
        return True
    if b"\\" in text:
        text = _ESCAPE.sub(b"", text)  # no escaped quote may end a string (outside strings a parser stops here)
    skeleton = text.translate(None, _NOT_STRUCTURE)  # quotes and brackets
    tail = b""
    if skeleton.count(b'"') % 2:  # the last string is unterminated: its brackets count
        cut = skeleton.rfind(b'"')
        skeleton, tail = skeleton[:cut], skeleton[cut + 1 :]
    # Every string is closed now: dropping each '""' (an empty string, or two strings joined) in one pass leaves
    # only the strings that hold brackets to take apart.
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[0::2])
    skeleton = (skeleton + tail).translate(_SQUARE)
    return _shallow(limit).fullmatch(skeleton + b"]" * limit) is not None


def _quoted_outside_strings(data: bytes) -> bytes:
    """``data`` with bare integer keys quoted only between strings (strings split out, the rest joined on NUL)."""
    if b"\x00" in data:  # never in valid JSON
        return data
    pieces = _JSON_STRING.split(data)  # text, string, text, string, ..., text
    pieces[0::2] = _BARE_INT_KEY.sub(rb'\1"\2"\3', b"\x00".join(pieces[0::2])).split(b"\x00")
    return b"".join(pieces)


def _lenient(data: bytes) -> Any:
    """Parse ``data`` with its bare integer keys quoted; raises ValueError when that does not make it JSON."""
    try:
        return orjson.loads(_BARE_INT_KEY.sub(rb'\1"\2"\3', data))
    except ValueError:
        if len(data) > STRING_AWARE_LIMIT:
            raise
    return orjson.loads(_quoted_outside_strings(data))


def loads(body: bytes | bytearray | memoryview | str) -> Any:
    """Parse a body, accepting fastjson's unquoted integer keys. Raises CodecError on anything else."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if not nests_at_most(data, MAX_BODY_DEPTH):
        raise CodecError(f"JSON body nests deeper than {MAX_BODY_DEPTH} levels")
    try:
        return orjson.loads(data)
    except (ValueError, TypeError) as err:  # orjson.JSONDecodeError is a ValueError
        problem = err
    doc, pos = getattr(problem, "doc", None), getattr(problem, "pos", None)
    if isinstance(doc, str) and isinstance(pos, int) and _BARE_INT_KEY_AT.match(doc, pos):  # fails at a bare key
        try:
            return _lenient(data)
        except (ValueError, TypeError):
            pass
    raise CodecError(f"body is not valid JSON: {problem}") from problem


def dumps(obj: Any) -> bytes:
    """Compact standard JSON (Go's route parser breaks on whitespace; Rust needs quoted keys)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        pass
    try:  # what orjson refuses and json writes: integers beyond 64 bits, non-string keys
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError) as err:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise CodecError(f"cannot write {type(obj).__name__} as JSON: {err}") from err


def mq_key(broker: str, topic: str, queue_id: int) -> str:
    """A MessageQueue map key in fastjson's object-key form (only Java admin tools read these bodies)."""
    return json.dumps({"brokerName": broker, "queueId": queue_id, "topic": topic}, separators=(",", ":"))
