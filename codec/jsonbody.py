"""JSON bodies in the fastjson dialect: lenient on input (bare integer keys), compact and standard on output."""

from __future__ import annotations

import json
import re
from typing import Any

from codec.errors import CodecError

# A bare integer object key, as fastjson writes Map<Long, String> (e.g. brokerAddrs {0:"host:port"}).
_BARE_INT_KEY = re.compile(r"([{,]\s*)(-?\d+)(\s*:)")


def loads(body: bytes | str) -> Any:
    """Parse a body, accepting fastjson's unquoted integer keys."""
    try:
        text = body.decode() if isinstance(body, bytes | bytearray) else body
    except UnicodeDecodeError as err:
        raise CodecError(f"JSON body is not UTF-8: {err}") from err
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(_BARE_INT_KEY.sub(r'\1"\2"\3', text))
    except ValueError as err:
        raise CodecError(f"body is not valid JSON: {err}") from err


def dumps(obj: Any) -> bytes:
    """Compact standard JSON (Go's route parser breaks on whitespace; Rust needs quoted keys)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
