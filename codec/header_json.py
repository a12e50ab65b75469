"""The JSON command header (serializeType 0), as fastjson writes and as every client accepts it."""

from __future__ import annotations

import json
from typing import Any

from codec.codes import LanguageCode, SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError

_LANGUAGE_BY_ORDINAL = {lang.value: lang.name for lang in LanguageCode}
_LANGUAGE_NAMES = frozenset(_LANGUAGE_BY_ORDINAL.values())


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
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


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
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CodecError(f"header field {name} is not an integer: {value!r}")
    try:
        return int(value)
    except ValueError as err:
        raise CodecError(f"header field {name} is not an integer: {value!r}") from err


def decode_json_header(header: bytes, body: bytes) -> RemotingCommand:
    try:
        obj = json.loads(header)
    except (UnicodeDecodeError, ValueError) as err:
        raise CodecError(f"header is not valid JSON: {err}") from err
    if not isinstance(obj, dict):
        raise CodecError("JSON header is not an object")
    raw_ext = obj.get("extFields")
    if raw_ext is None:
        ext: dict[str, str] = {}
    elif isinstance(raw_ext, dict):
        ext = {str(k): java_text(v) for k, v in raw_ext.items() if v is not None}
    else:
        raise CodecError("extFields is not an object")
    if "code" not in obj:
        raise CodecError("JSON header has no code")
    remark = obj.get("remark")
    return RemotingCommand(
        code=_int_field(obj, "code"),
        opaque=_int_field(obj, "opaque"),
        flag=_int_field(obj, "flag"),
        remark=remark if isinstance(remark, str) else None,
        ext_fields=ext,
        body=body,
        language=_language_name(obj.get("language")),
        version=_int_field(obj, "version"),
        serialize_type=SerializeType.JSON,
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
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
