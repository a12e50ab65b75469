"""Codec errors. Each carries the RocketMQ response code a broker answers with when it stems from a request."""

from __future__ import annotations

from codec.codes import ResponseCode


class CodecError(Exception):
    """Bytes that cannot be decoded (a broken frame, header or record)."""

    response_code: ResponseCode = ResponseCode.SYSTEM_ERROR


class FrameTooLarge(CodecError):
    """A frame announces more bytes than the configured maximum; refused before buffering its body."""


class HeaderFieldError(CodecError):
    """A request's extFields lack a required field or carry one that does not parse as its Java type."""


class MessageFormatError(CodecError):
    """A message body, batch body or property string that breaks the layout rules."""

    response_code = ResponseCode.MESSAGE_ILLEGAL
