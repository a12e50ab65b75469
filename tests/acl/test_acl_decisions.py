"""plain_acl.yml parsing and the allow / deny decision (PlainPermissionManager.validate, 4.9.8)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acl.plain_config import AclConfigError, parse_plain_acl
from acl.signature import sign_request
from acl.validator import PlainAclFile, decide, decide_registration, has_permission
from codec.codes import AclPerm, RequestCode

PLAIN_ACL = """
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB
  - accessKey: rocketmq2
    secretKey: "12345678"
    whiteRemoteAddress: 192.168.1.*
    admin: true
"""
CLIENT = "127.0.0.1"


@pytest.fixture
def config():
    return parse_plain_acl(PLAIN_ACL)


def signed(fields: dict[str, str], body: bytes = b"", key: str = "RocketMQ", secret: str = "12345678") -> dict:
    fields = dict(fields)
    sign_request(fields, body, key, secret)
    return fields


GROUP_A_DENIED = "No default permission for group:groupA"


def send_v2(topic: str, group: str = "pg") -> dict[str, str]:
    return {"a": group, "b": topic, "c": "TBW102", "d": "4"}


def test_the_apache_sample_file_parses(config) -> None:
    assert set(config.accounts) == {"RocketMQ", "rocketmq2"}
    plain = config.accounts["RocketMQ"]
    assert plain.secret_key == "12345678"  # a YAML number, as Java reads it: the text
    assert not plain.admin and config.accounts["rocketmq2"].admin
    assert plain.default_topic_perm == AclPerm.DENY and plain.default_group_perm == AclPerm.SUB
    assert plain.resource_perms["topicB"] == AclPerm.PUB | AclPerm.SUB
    assert plain.resource_perms["%RETRY%groupA"] == AclPerm.DENY
    assert config.first_admin() is config.accounts["rocketmq2"]


def test_right_signature_and_permission_passes(config) -> None:
    assert decide(config, RequestCode.SEND_MESSAGE_V2, signed(send_v2("topicB"), b"x"), b"x", CLIENT) is None


def test_missing_access_key(config) -> None:
    assert decide(config, RequestCode.SEND_MESSAGE_V2, send_v2("topicB"), b"", CLIENT) == "No accessKey is configured"


def test_unknown_access_key(config) -> None:
    fields = signed(send_v2("topicB"), key="nobody12")
    assert decide(config, RequestCode.SEND_MESSAGE_V2, fields, b"", CLIENT) == "No acl config for nobody12"


def test_wrong_secret_or_tampered_request(config) -> None:
    refused = "Check signature failed for accessKey=RocketMQ"
    wrong = signed(send_v2("topicB"), secret="wrong-secret")
    assert decide(config, RequestCode.SEND_MESSAGE_V2, wrong, b"", CLIENT) == refused
    good = signed(send_v2("topicB"), b"body")
    assert decide(config, RequestCode.SEND_MESSAGE_V2, good, b"other body", CLIENT) == refused
    unsigned = {**send_v2("topicB"), "AccessKey": "RocketMQ"}
    assert decide(config, RequestCode.SEND_MESSAGE_V2, unsigned, b"", CLIENT) == refused


@pytest.mark.parametrize(
    ("code", "fields", "expected"),
    [
        (RequestCode.SEND_MESSAGE_V2, send_v2("topicA"), "No default permission for topic:topicA"),
        (RequestCode.SEND_MESSAGE_V2, send_v2("topicC"), "No default permission for topic:topicC"),  # SUB only
        (RequestCode.SEND_MESSAGE_V2, send_v2("unlisted"), "No default permission for topic:unlisted"),
        (RequestCode.SEND_MESSAGE, {"topic": "topicB", "producerGroup": "pg"}, None),
        # A send to a retry topic needs SUB on the group, not PUB on the topic.
        (RequestCode.SEND_MESSAGE_V2, send_v2("%RETRY%groupA", "groupA"), GROUP_A_DENIED),
        (RequestCode.SEND_MESSAGE_V2, send_v2("%RETRY%groupC", "groupC"), None),
        (RequestCode.PULL_MESSAGE, {"topic": "topicC", "consumerGroup": "groupC"}, None),
        (
            RequestCode.PULL_MESSAGE,
            {"topic": "topicC", "consumerGroup": "groupA"},
            "No default permission for group:groupA",
        ),
        (
            RequestCode.PULL_MESSAGE,
            {"topic": "other", "consumerGroup": "unlisted"},
            "No default permission for topic:other",
        ),
        (
            RequestCode.CONSUMER_SEND_MSG_BACK,
            {"group": "groupA", "offset": "1"},
            "No default permission for group:groupA",
        ),
        (RequestCode.UPDATE_CONSUMER_OFFSET, {"topic": "topicC", "consumerGroup": "unlisted"}, None),  # default SUB
        (
            RequestCode.UNREGISTER_CLIENT,
            {"clientID": "c", "consumerGroup": "groupA"},
            "No default permission for group:groupA",
        ),
        (RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": "groupB"}, None),
        (RequestCode.QUERY_MESSAGE, {"topic": "topicA", "key": "k"}, "No default permission for topic:topicA"),
        # Codes Apache 4.9.8 maps to no resource: the signature alone counts.
        (RequestCode.SEND_BATCH_MESSAGE, {"b": "topicA", "a": "pg"}, None),
        (RequestCode.GET_MAX_OFFSET, {"topic": "topicA", "queueId": "0"}, None),
        # The trace topic is always writable by a signed account.
        (RequestCode.SEND_MESSAGE_V2, send_v2("RMQ_SYS_TRACE_TOPIC"), None),
    ],
)
def test_resource_permissions(config, code: int, fields: dict[str, str], expected: str | None) -> None:
    assert decide(config, code, signed(fields), b"", CLIENT) == expected


def test_heartbeat_needs_sub_on_each_group_and_topic(config) -> None:
    def heartbeat(group: str, topic: str) -> bytes:
        consumer = {"groupName": group, "subscriptionDataSet": [{"topic": topic}]}
        data = {"clientID": "c1", "producerDataSet": [{"groupName": "pg"}], "consumerDataSet": [consumer]}
        return json.dumps(data).encode()

    ok = heartbeat("groupC", "topicC")
    assert decide(config, RequestCode.HEART_BEAT, signed({}, ok), ok, CLIENT) is None
    denied = heartbeat("groupC", "topicA")
    assert decide(config, RequestCode.HEART_BEAT, signed({}, denied), denied, CLIENT) == (
        "No default permission for topic:topicA"
    )
    garbage = b"{not json"
    assert "heartbeat body unreadable" in decide(config, RequestCode.HEART_BEAT, signed({}, garbage), garbage, CLIENT)


@pytest.mark.parametrize(
    "code",
    [
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        RequestCode.UPDATE_BROKER_CONFIG,
        RequestCode.DELETE_TOPIC_IN_BROKER,
        RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        RequestCode.DELETE_SUBSCRIPTIONGROUP,
    ],
)
def test_admin_codes_need_an_admin(config, code: int) -> None:
    assert decide(config, code, signed({"topic": "x"}), b"", CLIENT) == (
        f"Need admin permission for request code={int(code)}, but accessKey=RocketMQ is not"
    )
    admin = signed({"topic": "x"}, key="rocketmq2")
    assert decide(config, code, admin, b"", CLIENT) is None


def test_admin_without_resource_permissions_may_do_everything(config) -> None:
    fields = signed(send_v2("anything"), key="rocketmq2")
    assert decide(config, RequestCode.SEND_MESSAGE_V2, fields, b"", CLIENT) is None


def test_white_addresses(config) -> None:
    # The global white list lets anything through, even without an AccessKey.
    assert decide(config, RequestCode.UPDATE_AND_CREATE_TOPIC, {}, b"", "10.10.103.9") is None
    # An account's white address skips the signature check (Apache 4.9.8 does too) ...
    unsigned = {**send_v2("topicA"), "AccessKey": "rocketmq2"}
    assert decide(config, RequestCode.SEND_MESSAGE_V2, unsigned, b"", "192.168.1.20") is None
    # ... but only for that account and address.
    assert decide(config, RequestCode.SEND_MESSAGE_V2, unsigned, b"", "192.168.2.20") == (
        "Check signature failed for accessKey=rocketmq2"
    )


def test_registration_white_list(config) -> None:
    code = RequestCode.REGISTER_BROKER
    assert decide_registration(config, code, {"brokerName": "b"}, b"", "10.10.103.1") is None
    assert decide_registration(config, code, {"brokerName": "b"}, b"", "192.168.1.3") is None  # an account's
    refused = decide_registration(config, code, {"brokerName": "b"}, b"", "127.0.0.1")
    assert refused is not None and "not in the white list" in refused
    by_admin = signed({"brokerName": "b"}, b"{}", key="rocketmq2")
    assert decide_registration(config, code, by_admin, b"{}", "127.0.0.1") is None
    by_user = signed({"brokerName": "b"}, b"{}")
    assert decide_registration(config, code, by_user, b"{}", "127.0.0.1") is not None


def test_permission_table() -> None:
    pub, sub, deny, anyp = AclPerm.PUB, AclPerm.SUB, AclPerm.DENY, AclPerm.ANY
    assert has_permission(pub, pub | sub) and has_permission(sub, sub) and not has_permission(pub, sub)
    assert not has_permission(pub, deny | pub)
    assert has_permission(anyp, sub) and not has_permission(anyp, deny)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("accounts: [", "not valid YAML"),
        ("- just a list", "top level must be a mapping"),
        ("accounts: {accessKey: x}", "accounts must be a list"),
        ("accounts: [{accessKey: short, secretKey: 12345678}]", "longer than 6"),
        ("accounts: [{accessKey: RocketMQ}]", "secretKey are required"),
        ("accounts: [{accessKey: RocketMQ, secretKey: 12345678, topicPerms: [topicA]}]", "is not 'name=PERM'"),
        ("accounts: [{accessKey: RocketMQ, secretKey: 12345678, whiteRemoteAddress: 1.2.3}]", "white address"),
        ("globalWhiteRemoteAddresses: [300.1.1.1]", "white address"),
        ("accounts: [{accessKey: RocketMQ, secretKey: {a: 1}}]", "single value"),
        (b"accounts: \xc3\x28", "YAML"),  # not UTF-8
    ],
)
def test_bad_files_are_refused_with_a_clear_error(text: str | bytes, problem: str) -> None:
    with pytest.raises(AclConfigError, match=r"plain_acl\.yml") as err:
        parse_plain_acl(text)
    assert problem in str(err.value)


def test_unknown_permission_word_is_deny_with_a_warning() -> None:
    config = parse_plain_acl("accounts: [{accessKey: RocketMQ, secretKey: 12345678, defaultTopicPerm: READ}]")
    assert config.accounts["RocketMQ"].default_topic_perm == AclPerm.DENY
    assert any("READ" in w for w in config.warnings)


def test_empty_file_refuses_everything_that_needs_an_account() -> None:
    config = parse_plain_acl("")
    assert decide(config, RequestCode.SEND_MESSAGE_V2, signed(send_v2("t")), b"", CLIENT) == (
        "No acl config for RocketMQ"
    )


@given(st.text(max_size=300))
def test_any_text_parses_or_gives_a_config_error(text: str) -> None:
    with contextlib.suppress(AclConfigError):
        parse_plain_acl(text)


@given(
    code=st.sampled_from([int(c) for c in RequestCode]),
    fields=st.dictionaries(
        st.sampled_from(["AccessKey", "Signature", "topic", "b", "a", "consumerGroup", "group"]), st.text(max_size=10)
    ),
    body=st.binary(max_size=64),
    ip=st.ip_addresses().map(str),
)
def test_decisions_never_raise(code: int, fields: dict[str, str], body: bytes, ip: str) -> None:
    config = parse_plain_acl(PLAIN_ACL)
    result = decide(config, code, fields, body, ip)
    assert result is None or isinstance(result, str)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_is_reloaded_when_it_changes_and_a_bad_edit_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "plain_acl.yml"
    path.write_text(PLAIN_ACL)
    clock = FakeClock()
    acl_file = PlainAclFile(path, clock)
    assert "RocketMQ" in acl_file.current().accounts
    path.write_text("accounts: [{accessKey: another1, secretKey: 87654321}]\n")
    os.utime(path, ns=(1, 1_000_000_000))
    assert "RocketMQ" in acl_file.current().accounts  # looked at once a second at most
    clock.now += 1.5
    assert set(acl_file.current().accounts) == {"another1"}
    path.write_text("accounts: [")
    os.utime(path, ns=(1, 2_000_000_000))
    clock.now += 1.5
    assert set(acl_file.current().accounts) == {"another1"}


def test_unreadable_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(AclConfigError, match="cannot read the ACL file"):
        PlainAclFile(tmp_path / "missing.yml")
