"""The ROCKETMQ binary command header (serializeType 1, RocketMQSerializable)."""

from __future__ import annotations

import struct

from codec.codes import LanguageCode, SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError

_FIXED = struct.Struct(
    ">h"  # code (int16)
    "B"  # language
    "h"  # version (int16)
    "i"  # opaque
    "i"  # flag
)
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_LANGUAGE_BY_ORDINAL = {lang.value: lang.name for lang in LanguageCode}


def decode_binary_header(header: bytes, body: bytes) -> RemotingCommand:
    view = memoryview(header)
    size = len(view)
    try:
        code, language, version, opaque, flag = _FIXED.unpack_from(view, 0)
        pos = _FIXED.size
        (remark_len,) = _I32.unpack_from(view, pos)
        pos += 4
        if remark_len < 0 or pos + remark_len > size:
            raise CodecError(f"binary header remark length {remark_len} exceeds the header")
        remark = bytes(view[pos : pos + remark_len]).decode() if remark_len else None
        pos += remark_len
        (ext_len,) = _I32.unpack_from(view, pos)
        pos += 4
        if ext_len < 0 or pos + ext_len > size:
            raise CodecError(f"binary header extFields length {ext_len} exceeds the header")
        end = pos + ext_len
        ext: dict[str, str] = {}
        while pos < end:
            (key_len,) = _I16.unpack_from(view, pos)
            pos += 2
            if key_len < 0 or pos + key_len > end:
                raise CodecError(f"binary header key length {key_len} exceeds extFields")
            key = bytes(view[pos : pos + key_len]).decode()
            pos += key_len
            (value_len,) = _I32.unpack_from(view, pos)
            pos += 4
            if value_len < 0 or pos + value_len > end:
                raise CodecError(f"binary header value length {value_len} exceeds extFields")
            value = bytes(view[pos : pos + value_len]).decode()
            pos += value_len
            if key and value:  # Java decodes zero-length keys and values as null
                ext[key] = value
    except (struct.error, UnicodeDecodeError) as err:
        raise CodecError(f"truncated or malformed binary header: {err}") from err
    return RemotingCommand(
        code=code,
        opaque=opaque,
        flag=flag,
        remark=remark,
        ext_fields=ext,
        body=body,
        language=_LANGUAGE_BY_ORDINAL.get(language, "OTHER"),
        version=version,
        serialize_type=SerializeType.ROCKETMQ,
    )


def encode_binary_header(cmd: RemotingCommand) -> bytes:
    if not -32768 <= cmd.code <= 32767:
        raise CodecError(f"code {cmd.code} does not fit the binary header's int16")
    remark = cmd.remark.encode() if cmd.remark else b""
    parts = [
        _FIXED.pack(cmd.code, LanguageCode[cmd.language].value, cmd.version, cmd.opaque, cmd.flag),
        _I32.pack(len(remark)),
        remark,
    ]
    entries = []
    for key, value in cmd.ext_fields.items():
        k, v = key.encode(), value.encode()
        entries += [_I16.pack(len(k)), k, _I32.pack(len(v)), v]
    ext = b"".join(entries)
    parts += [_I32.pack(len(ext)), ext]
    return b"".join(parts)
