"""Remoting commands: the typed form of one frame (header fields plus body)."""

from __future__ import annotations

from dataclasses import dataclass, field

from codec.codes import FLAG_ONEWAY, FLAG_RESPONSE, SERVER_VERSION, SerializeType


@dataclass(slots=True)
class RemotingCommand:
    """A request or response. ``ext_fields`` always holds Java-style strings, whatever the sender wrote.

    ``invalid`` is set by the decoders when the header was readable but held text that cannot be stored (a lone
    surrogate in JSON, bytes that are not UTF-8 in the binary header): it is a remark naming the first such field,
    the offending text has already been replaced, and a broker answers the request with INVALID_PARAMETER and
    this remark instead of handling it. Encoders ignore it.
    """

    code: int
    opaque: int = 0
    flag: int = 0
    remark: str | None = None
    ext_fields: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    language: str = "JAVA"
    version: int = SERVER_VERSION
    serialize_type: SerializeType = SerializeType.JSON
    invalid: str | None = None

    @property
    def is_response(self) -> bool:
        return bool(self.flag & FLAG_RESPONSE)

    @property
    def is_oneway(self) -> bool:
        return bool(self.flag & FLAG_ONEWAY)

    def response(
        self,
        code: int,
        remark: str | None = None,
        ext_fields: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> RemotingCommand:
        """A response to this request, in the request's serialization, with its opaque."""
        return RemotingCommand(
            code=int(code),
            opaque=self.opaque,
            flag=FLAG_RESPONSE,
            remark=remark,
            ext_fields=ext_fields if ext_fields is not None else {},
            body=body,
            serialize_type=self.serialize_type,
        )


def request(
    code: int, ext_fields: dict[str, str] | None = None, body: bytes = b"", *, oneway: bool = False
) -> RemotingCommand:
    """A new request; the sender assigns ``opaque``."""
    return RemotingCommand(code=int(code), flag=FLAG_ONEWAY if oneway else 0, ext_fields=ext_fields or {}, body=body)
