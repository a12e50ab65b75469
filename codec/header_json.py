"""The JSON command header (serializeType 0), as fastjson writes and as every client accepts it.

Parsed and written with orjson, after a check that the header nests at most MAX_HEADER_DEPTH deep. orjson
refuses what cannot be stored (invalid UTF-8, lone surrogates); a header refused only because a string holds a
lone surrogate (JSON ``"\\ud800"``) is read again with the standard library, so that the broker can answer it:
the command comes back with ``invalid`` set to a remark naming the field, and the bad text replaced
(see codec.text).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from codec.codes import LanguageCode, SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.jsonbody import dumps, nests_at_most
from codec.text import field_name, is_storable, name_not_unicode, not_unicode, storable

_LANGUAGE_BY_ORDINAL = {lang.value: lang.name for lang in LanguageCode}
_LANGUAGE_NAMES = frozenset(_LANGUAGE_BY_ORDINAL.values())
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1  # code, opaque, flag and version are Java ints

# A remoting header nests 2 deep (the object and its extFields). Checked before parsing: orjson before 3.9.x
# has no depth limit of its own (and crashes on a million brackets), and the stdlib fallback recurses in C.
MAX_HEADER_DEPTH = 16


def java_text(value: Any) -> str:
    """Render an extFields value as the Java string the field would hold (C++ and ali-ons send numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    try:  # an object or array as fastjson would hand it to a String field: its JSON text
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as err:
        raise CodecError(f"an extFields value cannot be written back as JSON text: {err}") from err


def _language_name(value: Any) -> str:
    if isinstance(value, str) and value in _LANGUAGE_NAMES:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _LANGUAGE_BY_ORDINAL.get(value, "OTHER")
    return "OTHER"


def _int_field(obj: dict[str, Any], name: str, default: int = 0) -> int:
    value = obj.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):  # named by type: repr of a deep list recurses
        shown = "an array" if isinstance(value, list) else "an object" if isinstance(value, dict) else repr(value)
        raise CodecError(f"header field {name} is not an integer: {shown}")
    try:
        number = int(value)
    except ValueError as err:
        raise CodecError(f"header field {name} is not an integer: {value[:40]!a}") from err
    if not _INT_MIN <= number <= _INT_MAX:
        raise CodecError(f"header field {name} is out of the range of a Java int: {str(value)[:40]}")
    return number


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _clean(value: Any, path: str, found: list[str]) -> Any:
    """``value`` with every lone surrogate replaced; the remark for the first one goes to ``found``."""
    if isinstance(value, str):
        if is_storable(value):
            return value
        if not found:
            found.append(not_unicode(path, value))
        return storable(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not is_storable(key):
                if not found:
                    found.append(name_not_unicode(path or "the header", key))
                key = storable(key)
            name = field_name(key)
            out[key] = _clean(item, f"{path}.{name}" if path else name, found)
        return out
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", found) for i, item in enumerate(value)]
    return value


def _read_unstorable(header: bytes, err: ValueError) -> tuple[Any, str]:
    """The second reading of a header orjson refused: succeeds only when a lone surrogate was the whole problem."""
    refused = CodecError(f"header is not valid JSON: {err}")
    try:
        obj = json.loads(header.decode(), parse_constant=_refuse_constant)  # strict UTF-8: no surrogate bytes
    except (ValueError, RecursionError):
        raise refused from err
    found: list[str] = []
    obj = _clean(obj, "", found)
    if not found:
        raise refused from err
    return obj, found[0]


def decode_json_header(header: bytes, body: bytes) -> RemotingCommand:
    """Decode a JSON header. Raises CodecError; a lone surrogate instead yields a command with ``invalid`` set."""
    if not nests_at_most(header, MAX_HEADER_DEPTH):
        raise CodecError(f"JSON header nests deeper than {MAX_HEADER_DEPTH} levels")
    invalid = None
    try:
        obj = orjson.loads(header)
    except (ValueError, TypeError) as err:  # orjson.JSONDecodeError is a ValueError
        obj, invalid = _read_unstorable(bytes(header), err)
    if not isinstance(obj, dict):
        raise CodecError("JSON header is not an object")
    raw_ext = obj.get("extFields")
    if raw_ext is None:
        ext: dict[str, str] = {}
    elif isinstance(raw_ext, dict):
        ext = raw_ext  # the parser's own fresh dict, kept when every value is already a string
        for value in raw_ext.values():
            if type(value) is not str:  # numbers from C++ and ali-ons, nulls: rebuilt as the Java text
                ext = {k: java_text(v) for k, v in raw_ext.items() if v is not None}
                break
    else:
        raise CodecError("extFields is not an object")
    code, opaque, flag, version = obj.get("code"), obj.get("opaque", 0), obj.get("flag", 0), obj.get("version", 0)
    if not (
        type(code) is int
        and type(opaque) is int
        and type(flag) is int
        and type(version) is int
        and _INT_MIN <= code <= _INT_MAX
        and _INT_MIN <= opaque <= _INT_MAX
        and _INT_MIN <= flag <= _INT_MAX
        and _INT_MIN <= version <= _INT_MAX
    ):  # the usual header takes the checks above; anything else is read (or refused) field by field
        if "code" not in obj:
            raise CodecError("JSON header has no code")
        code, opaque = _int_field(obj, "code"), _int_field(obj, "opaque")
        flag, version = _int_field(obj, "flag"), _int_field(obj, "version")
    remark = obj.get("remark")
    return RemotingCommand(
        code=code,
        opaque=opaque,
        flag=flag,
        remark=remark if isinstance(remark, str) else None,
        ext_fields=ext,
        body=body,
        language=_language_name(obj.get("language")),
        version=version,
        serialize_type=SerializeType.JSON,
        invalid=invalid,
    )


def encode_json_header(cmd: RemotingCommand) -> bytes:
    """Compact JSON with every field the strictest client (Rust) requires; extFields values are strings."""
    obj: dict[str, Any] = {"code": cmd.code}
    if cmd.ext_fields:
        obj["extFields"] = cmd.ext_fields
    obj["flag"] = cmd.flag
    obj["language"] = cmd.language
    obj["opaque"] = cmd.opaque
    if cmd.remark is not None:
        obj["remark"] = cmd.remark
    obj["serializeTypeCurrentRPC"] = "JSON"
    obj["version"] = cmd.version
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return dumps(obj)  # what orjson refuses (an int beyond 64 bits, say) the way json wrote it
