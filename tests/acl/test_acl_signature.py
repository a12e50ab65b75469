"""The ACL 1.0 signature against vectors computed by Apache's own code.

Vectors: rocketmq-acl 4.9.8 from Maven Central, ``new AclClientRPCHook(new SessionCredentials("RocketMQ",
"12345678")).doBeforeRequest(...)`` on a SEND_MESSAGE_V2 request (code 310) with the ext fields below and the body
``"hello é"`` in UTF-8, and ``AclUtils.calSignature(new byte[0], "12345678")`` (run with javac/java 17 when written).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from acl.signature import Signer, sign_request, signed_content

SEND_V2_FIELDS = {
    "AccessKey": "RocketMQ",
    "a": "pg",
    "b": "TopicA",
    "c": "TBW102",
    "d": "4",
    "e": "0",
    "f": "0",
    "g": "1700000000000",
    "h": "0",
    "i": "UNIQ_KEY\x01ABC\x02WAIT\x01true\x02",
    "j": "0",
    "k": "false",
    "m": "false",
}
SEND_V2_BODY = "hello é".encode()
SEND_V2_SIGNATURE = "so+AjKPF8rWX9E8zr08tikaSp4Q="  # from AclClientRPCHook 4.9.8
EMPTY_SIGNATURE = "beQgVA0KNM4WtCe68fj2DEn3WWU="  # AclUtils.calSignature(new byte[0], "12345678")


def test_java_client_signature_vector() -> None:
    assert Signer("12345678").sign(signed_content(SEND_V2_FIELDS, SEND_V2_BODY)) == SEND_V2_SIGNATURE


def test_empty_content_vector() -> None:
    assert Signer("12345678").sign(b"") == EMPTY_SIGNATURE


def test_signature_and_unique_query_flag_are_not_signed() -> None:
    fields = {**SEND_V2_FIELDS, "Signature": "anything", "_UNIQUE_KEY_QUERY": "true"}
    assert signed_content(fields, SEND_V2_BODY) == signed_content(SEND_V2_FIELDS, SEND_V2_BODY)


def test_values_in_java_string_order() -> None:
    # Upper case sorts before lower case, as String.compareTo; the body comes last.
    assert signed_content({"b": "2", "B": "1", "a": "3"}, b"!") == b"132!"


def test_sign_request_adds_what_a_client_adds() -> None:
    fields = {k: v for k, v in SEND_V2_FIELDS.items() if k != "AccessKey"}
    sign_request(fields, SEND_V2_BODY, "RocketMQ", "12345678")
    assert fields["AccessKey"] == "RocketMQ"
    assert fields["Signature"] == SEND_V2_SIGNATURE


def test_verify() -> None:
    signer = Signer("12345678")
    content = signed_content(SEND_V2_FIELDS, SEND_V2_BODY)
    assert signer.verify(content, SEND_V2_SIGNATURE)
    assert not signer.verify(content, None)
    assert not signer.verify(content, "so+AjKPF8rWX9E8zr08tikaSp4Q")
    assert not signer.verify(content, "\udcff non-ascii é")
    assert not Signer("123456789").verify(content, SEND_V2_SIGNATURE)


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6), st.binary(max_size=32), st.text())
def test_sign_then_verify_round_trip(fields: dict[str, str], body: bytes, secret: str) -> None:
    signer = Signer(secret)
    signature = signer.sign(signed_content(fields, body))
    assert signer.verify(signed_content({**fields, "Signature": signature}, body), signature)


def test_names_beyond_the_bmp_sort_as_java_does() -> None:
    # UTF-16: the emoji's surrogate pair (0xD83D...) sorts before U+FFFD, unlike code point order.
    assert signed_content({"\ufffd": "1", "\U0001f600": "2"}, b"") == b"21"
