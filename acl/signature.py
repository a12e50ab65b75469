"""The request signature of ACL 1.0 (AclClientRPCHook / AclUtils.combineRequestContent / AclSigner).

The signed content is the values of the request's ext fields sorted by field name (Java's ``TreeMap``: by UTF-16
code unit), without ``Signature`` (and, on the broker, without ``_UNIQUE_KEY_QUERY``), concatenated, UTF-8 encoded,
then the body. The signature is base64 of HmacSHA1 over it keyed with the secret key's UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from codec.codes import ACL_ACCESS_KEY_FIELD, ACL_SIGNATURE_FIELD, UNIQUE_MSG_QUERY_FLAG

_UNSIGNED_FIELDS = frozenset({ACL_SIGNATURE_FIELD, UNIQUE_MSG_QUERY_FLAG})
_CLIENT_UNSIGNED_FIELDS = frozenset({ACL_SIGNATURE_FIELD})


def _java_order(name: str) -> bytes:
    # String.compareTo compares UTF-16 code units; UTF-16-BE bytes sort the same way.
    return name.encode("utf-16-be", "surrogatepass")


def signed_content(ext_fields: Mapping[str, str], body: bytes, *, as_client: bool = False) -> bytes:
    """What the broker signs: sorted field values (all but the signature fields), then the body. ``as_client``:
    what the client's hook signs, which keeps ``_UNIQUE_KEY_QUERY`` (the Java client adds it to every
    QUERY_MESSAGE before signing, so Apache 4.9's broker refuses those; pocketmq accepts either)."""
    unsigned = _CLIENT_UNSIGNED_FIELDS if as_client else _UNSIGNED_FIELDS
    names = [n for n in ext_fields if n not in unsigned]
    # Code point order is Java's order unless a name holds characters beyond U+D7FF (rare: sort those the Java way).
    if "".join(names).isascii():
        names.sort()
    else:
        names.sort(key=_java_order)
    text = "".join(ext_fields[n] for n in names)
    return text.encode("utf-8", "surrogatepass") + body


class Signer:
    """HmacSHA1 keyed once with one secret key; ``sign`` copies the keyed state instead of re-keying."""

    __slots__ = ("_keyed",)

    def __init__(self, secret_key: str) -> None:
        self._keyed = hmac.new(secret_key.encode("utf-8", "surrogatepass"), digestmod=hashlib.sha1)

    def sign(self, content: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(content)
        return base64.b64encode(mac.digest()).decode("ascii")

    def verify(self, content: bytes, signature: str | None) -> bool:
        if signature is None:
            return False
        return hmac.compare_digest(self.sign(content).encode(), signature.encode("utf-8", "surrogatepass"))


def sign_request(ext_fields: dict[str, str], body: bytes, access_key: str, secret_key: str) -> None:
    """Add ``AccessKey`` and ``Signature`` as a signing client does (the name server client of a broker, tests)."""
    ext_fields[ACL_ACCESS_KEY_FIELD] = access_key
    ext_fields[ACL_SIGNATURE_FIELD] = Signer(secret_key).sign(signed_content(ext_fields, body, as_client=True))
