"""The ROCKETMQ binary command header (serializeType 1, RocketMQSerializable).

Every length is checked against the header before it is used. Java decodes text with ``new String(bytes, UTF_8)``,
which replaces bad bytes silently; here such text is replaced too, but the command carries ``invalid`` so that
the broker refuses it rather than store a changed name.
"""

from __future__ import annotations

import struct

from codec.codes import LanguageCode, SerializeType
from codec.command import RemotingCommand
from codec.errors import CodecError
from codec.text import field_name, name_not_utf8, not_utf8

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


def _undecodable(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")  # U+FFFD for each bad sequence, as Java's new String(bytes, UTF_8)


def decode_binary_header(header: bytes, body: bytes) -> RemotingCommand:
    """Decode a binary header. Lengths that do not fit raise CodecError; text that is not UTF-8 yields a command
    with ``invalid`` naming the first such field (the text decoded with replacement characters)."""
    data = header if type(header) is bytes else bytes(header)
    size = len(data)
    invalid = None
    try:
        code, language, version, opaque, flag = _FIXED.unpack_from(data, 0)
        pos = _FIXED.size
        (remark_len,) = _I32.unpack_from(data, pos)
        pos += 4
        if remark_len < 0 or pos + remark_len > size:
            raise CodecError(f"binary header remark length {remark_len} exceeds the header")
        remark = None
        if remark_len:
            raw = data[pos : pos + remark_len]
            try:
                remark = raw.decode()
            except UnicodeDecodeError as err:
                remark, invalid = _undecodable(raw), not_utf8("remark", raw, err)
        pos += remark_len
        (ext_len,) = _I32.unpack_from(data, pos)
        pos += 4
        if ext_len < 0 or pos + ext_len > size:
            raise CodecError(f"binary header extFields length {ext_len} exceeds the header")
        end = pos + ext_len
        ext: dict[str, str] = {}
        while pos < end:
            (key_len,) = _I16.unpack_from(data, pos)
            pos += 2
            if key_len < 0 or pos + key_len > end:
                raise CodecError(f"binary header key length {key_len} exceeds extFields")
            raw = data[pos : pos + key_len]
            try:
                key = raw.decode()
            except UnicodeDecodeError as err:
                key = _undecodable(raw)
                invalid = invalid or name_not_utf8("extFields", raw, err)
            pos += key_len
            (value_len,) = _I32.unpack_from(data, pos)
            pos += 4
            if value_len < 0 or pos + value_len > end:
                raise CodecError(f"binary header value length {value_len} exceeds extFields")
            raw = data[pos : pos + value_len]
            try:
                value = raw.decode()
            except UnicodeDecodeError as err:
                value = _undecodable(raw)
                invalid = invalid or not_utf8(f"extFields.{field_name(key)}", raw, err)
            pos += value_len
            if key and value:  # Java decodes zero-length keys and values as null
                ext[key] = value
    except struct.error as err:
        raise CodecError(f"truncated binary header: {err}") from err
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
        invalid=invalid,
    )


def encode_binary_header(cmd: RemotingCommand) -> bytes:
    if not -32768 <= cmd.code <= 32767:
        raise CodecError(f"code {cmd.code} does not fit the binary header's int16")
    try:
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
    except (struct.error, KeyError, UnicodeEncodeError) as err:
        raise CodecError(f"command cannot be written as a binary header: {err!r}") from err
    return b"".join(parts)
