"""ACL 1.0 in a running broker and name server (in-process): refusals as Apache 4.9 answers them, admin codes,
signed broker registrations, and a broker that will not start open."""

from __future__ import annotations

from pathlib import Path

import pytest

from acl.plain_config import AclConfigError
from acl.signature import sign_request
from acl.validator import PlainAclFile
from codec.codes import RequestCode, ResponseCode
from codec.command import request
from gateway.broker import Broker

PLAIN_ACL = """
accounts:
  - accessKey: user-key
    secretKey: user-secret
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: SUB
  - accessKey: admin-key
    secretKey: admin-secret
    admin: true
"""
ACL_REMARK = "org.apache.rocketmq.acl.common.AclException: "


def signed(code: int, fields: dict[str, str], key: str, secret: str, body: bytes = b""):
    fields = dict(fields)
    sign_request(fields, body, key, secret)
    return request(code, fields, body)


@pytest.fixture
def acl_path(tmp_path: Path) -> Path:
    path = tmp_path / "plain_acl.yml"
    path.write_text(PLAIN_ACL)
    return path


async def test_broker_checks_every_request(cluster, acl_path: Path) -> None:
    await cluster.start_namesrv(acl_file=PlainAclFile(acl_path))
    broker = await cluster.start_broker(acl_enable=True, acl_file=acl_path)
    client = await cluster.connect(broker)
    offset = {"topic": "TBW102", "queueId": "0"}

    unsigned = await client.invoke(request(RequestCode.GET_MAX_OFFSET, offset))
    assert (unsigned.code, unsigned.remark) == (ResponseCode.SYSTEM_ERROR, ACL_REMARK + "No accessKey is configured")
    wrong = await client.invoke(signed(RequestCode.GET_MAX_OFFSET, offset, "user-key", "not-the-secret"))
    assert wrong.remark == ACL_REMARK + "Check signature failed for accessKey=user-key"
    right = await client.invoke(signed(RequestCode.GET_MAX_OFFSET, offset, "user-key", "user-secret"))
    assert right.code == ResponseCode.SUCCESS

    create = {"topic": "AclTopic", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6"}
    by_user = await client.invoke(signed(RequestCode.UPDATE_AND_CREATE_TOPIC, create, "user-key", "user-secret"))
    assert by_user.code == ResponseCode.SYSTEM_ERROR
    assert by_user.remark == ACL_REMARK + "Need admin permission for request code=17, but accessKey=user-key is not"
    by_admin = await client.invoke(signed(RequestCode.UPDATE_AND_CREATE_TOPIC, create, "admin-key", "admin-secret"))
    assert by_admin.code == ResponseCode.SUCCESS

    unknown = await client.invoke(request(9999, {}))
    assert unknown.remark == ACL_REMARK + "No accessKey is configured"  # as Apache's hook: before the code is looked up

    # The broker signed its registration with the admin account, so the name server took it.
    ns = await cluster.connect(cluster.namesrv)
    route = await ns.invoke(request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}))
    assert route.code == ResponseCode.SUCCESS


async def test_name_server_refuses_unsigned_registrations_outside_the_white_list(cluster, acl_path: Path) -> None:
    namesrv = await cluster.start_namesrv(acl_file=PlainAclFile(acl_path))
    ns = await cluster.connect(namesrv)
    header = {"brokerName": "rogue", "brokerAddr": "127.0.0.1:1", "clusterName": "c", "brokerId": "0",
              "haServerAddr": "127.0.0.1:2"}  # fmt: skip
    body = b'{"topicConfigSerializeWrapper": {"topicConfigTable": {}}}'
    refused = await ns.invoke(request(RequestCode.REGISTER_BROKER, header, body))
    assert refused.code == ResponseCode.SYSTEM_ERROR
    assert "not in the white list" in (refused.remark or "")
    by_user = await ns.invoke(signed(RequestCode.REGISTER_BROKER, header, "user-key", "user-secret", body))
    assert by_user.code == ResponseCode.SYSTEM_ERROR
    # Everything else (routes for clients) is unchecked, as in Apache.
    info = await ns.invoke(request(RequestCode.GET_BROKER_CLUSTER_INFO, {}))
    assert info.code == ResponseCode.SUCCESS


def test_broker_refuses_to_start_without_a_usable_acl_file(cluster, tmp_path: Path) -> None:
    with pytest.raises(AclConfigError, match="cannot read"):
        Broker(cluster.broker_config(acl_enable=True, acl_file=tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("accounts: [{accessKey: short, secretKey: x}]")
    with pytest.raises(AclConfigError, match="longer than 6"):
        Broker(cluster.broker_config(acl_enable=True, acl_file=bad))


async def test_acl_off_installs_no_check(cluster) -> None:
    broker = await cluster.start_broker()
    assert broker.acl_file is None
    client = await cluster.connect(broker)
    response = await client.invoke(request(RequestCode.GET_MAX_OFFSET, {"topic": "TBW102", "queueId": "0"}))
    assert response.code == ResponseCode.SUCCESS
