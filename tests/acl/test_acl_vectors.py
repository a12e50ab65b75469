"""pocketmq's ACL decisions against Apache's own: every request in tests/vectors/acl-decisions-4.9.8.json was signed
by rocketmq-acl 4.9.8's AclClientRPCHook and judged by its PlainAccessValidator (see tests/vectors/PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acl.plain_config import parse_plain_acl
from acl.validator import decide

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "acl-decisions-4.9.8.json").read_text("utf-8"))
CONFIG = parse_plain_acl(VECTORS["plain_acl.yml"])
# Where pocketmq deliberately differs (docs/acl.md): Apache's broker leaves _UNIQUE_KEY_QUERY out of the signed
# content although the client's hook signs it, so it refuses every signed QUERY_MESSAGE of the Java client.
POCKETMQ_DIFFERS = {"unique-key-query-flag-not-signed": None}


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_same_decision_as_apache(case: dict) -> None:
    remote_ip = case["remote"].rpartition(":")[0]
    body = case.get("body", "").encode()
    expected = POCKETMQ_DIFFERS.get(case["name"], case["refusal"])
    assert decide(CONFIG, case["code"], case["fields"], body, remote_ip) == expected
