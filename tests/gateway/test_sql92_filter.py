"""SQL92 property filters on the broker: from heartbeats, posted with pulls, checked at consumer start, kept across
a restart, and never applied to retry topics."""

from __future__ import annotations

import json

from codec.codes import PullSysFlag, RequestCode
from codec.record import decode_records


def sql_heartbeat(client_id: str, group: str, topic: str, expression: str) -> bytes:
    sub = {"classFilterMode": False, "codeSet": [], "expressionType": "SQL92", "subString": expression,
           "subVersion": 1, "tagsSet": [], "topic": topic}  # fmt: skip
    consumer = {"consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET", "consumeType": "CONSUME_PASSIVELY",
                "groupName": group, "messageModel": "CLUSTERING", "subscriptionDataSet": [sub]}  # fmt: skip
    return json.dumps({"clientID": client_id, "consumerDataSet": [consumer], "producerDataSet": []}).encode()


async def fill(bc, topic: str) -> None:
    for price, tag in ((50, "a"), (150, "a"), (250, "b"), (350, "c")):
        await bc.send_ok(topic, f"p{price}".encode(), properties={"price": str(price), "TAGS": tag})


async def test_a_heartbeat_sql92_subscription_filters_pulls(bc):
    await fill(bc, "Priced")
    body = sql_heartbeat("c1", "sqlg", "Priced", "TAGS IN ('a','b') AND price > 100")
    assert (await bc.invoke(RequestCode.HEART_BEAT, body=body)).code == 0
    assert [m.body for m in await bc.pull_records("Priced", 0, 0, group="sqlg")] == [b"p150", b"p250"]


async def test_a_sql92_expression_posted_with_the_pull(bc):
    await fill(bc, "Posted")
    ext = {"consumerGroup": "lite", "topic": "Posted", "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
           "sysFlag": str(int(PullSysFlag.SUBSCRIPTION)), "commitOffset": "0", "suspendTimeoutMillis": "0",
           "subscription": "price >= 250", "subVersion": "1", "expressionType": "SQL92"}  # fmt: skip
    response = await bc.invoke(RequestCode.PULL_MESSAGE, ext)
    assert response.code == 0
    assert [m.body for m in decode_records(response.body)] == [b"p250", b"p350"]
    bad = await bc.invoke(RequestCode.PULL_MESSAGE, ext | {"subscription": "price >>> 1"})
    assert bad.code == 23 and "price >>> 1" in bad.remark


async def test_nothing_matching_advances_the_offset(bc):
    await fill(bc, "NoMatch")
    await bc.invoke(RequestCode.HEART_BEAT, body=sql_heartbeat("c1", "none", "NoMatch", "price > 1000"))
    response = await bc.pull("NoMatch", 0, 0, group="none")
    assert (response.code, response.ext_fields["nextBeginOffset"]) == (20, "4")


async def test_check_client_config(bc):
    def body(expr: str, etype: str = "SQL92") -> bytes:
        sub = {"topic": "T", "subString": expr, "expressionType": etype}
        return json.dumps({"clientId": "c", "group": "g", "subscriptionData": sub}).encode()

    assert (await bc.invoke(RequestCode.CHECK_CLIENT_CONFIG, body=body("a > 1 AND b = 'x'"))).code == 0
    bad = await bc.invoke(RequestCode.CHECK_CLIENT_CONFIG, body=body("a >"))
    assert bad.code == 23 and "a >" in bad.remark
    assert (await bc.invoke(RequestCode.CHECK_CLIENT_CONFIG, body=body("x || y", "TAG"))).code == 0


async def test_retry_topics_are_not_sql_filtered(bc):
    await bc.send_ok("%RETRY%sqlr", b"failed-before", properties={"price": "1"})
    await bc.invoke(RequestCode.HEART_BEAT, body=sql_heartbeat("c1", "sqlr", "%RETRY%sqlr", "price > 100"))
    assert [m.body for m in await bc.pull_records("%RETRY%sqlr", 0, 0, group="sqlr")] == [b"failed-before"]


async def test_the_filter_applies_right_after_a_restart_before_any_heartbeat(cluster, namesrv, open_broker_client):
    first = await cluster.start_broker()
    bc = await open_broker_client(first)
    await fill(bc, "Remembered")
    await bc.invoke(RequestCode.HEART_BEAT, body=sql_heartbeat("c1", "memo", "Remembered", "price < 100"))
    await cluster.stop(first)
    second = await cluster.start_broker()
    bc = await open_broker_client(second)
    assert [m.body for m in await bc.pull_records("Remembered", 0, 0, group="memo")] == [b"p50"]
