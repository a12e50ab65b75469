"""Stopping a broker and starting a new one on the same data directory keeps messages, offsets and topics."""

from __future__ import annotations

import json

from codec.codes import PullSysFlag, RequestCode
from codec.message_id import decode_offset_msg_id


async def test_messages_offsets_and_topics_survive_a_restart(cluster, namesrv, open_broker_client, ns_client, call):
    first = await cluster.start_broker()
    bc = await open_broker_client(first)
    sent = [await bc.send_ok("Durable", f"m{i}".encode(), queue_id=i % 2, properties={"KEYS": f"k{i}"})
            for i in range(5)]  # fmt: skip
    commit = {"consumerGroup": "cg", "topic": "Durable", "queueId": "0", "commitOffset": "2"}
    assert (await bc.invoke(RequestCode.UPDATE_CONSUMER_OFFSET, commit)).code == 0
    # An offset committed through a pull just before stopping must be flushed too.
    await bc.pull("Durable", 1, 1, sys_flag=PullSysFlag.COMMIT_OFFSET, commit_offset=1)
    await bc.heartbeat("c1", "cg", {"Durable": "*"})
    before = {q: (await bc.pull("Durable", q, 0)).body for q in (0, 1)}
    await cluster.stop(first)

    second = await cluster.start_broker()
    bc = await open_broker_client(second)
    for q in (0, 1):
        response = await bc.pull("Durable", q, 0)
        assert response.code == 0
        assert response.body == before[q]  # the stored records, byte for byte
    assert await bc.max_offset("Durable", 0) == 3
    assert await bc.max_offset("Durable", 1) == 2
    for queue_id, expected in (("0", "2"), ("1", "1")):
        query = await bc.invoke(RequestCode.QUERY_CONSUMER_OFFSET,
                                {"consumerGroup": "cg", "topic": "Durable", "queueId": queue_id})  # fmt: skip
        assert (query.code, query.ext_fields) == (0, {"offset": expected})

    topics = json.loads((await bc.invoke(RequestCode.GET_ALL_TOPIC_CONFIG)).body)["topicConfigTable"]
    assert topics["Durable"]["writeQueueNums"] == 4
    assert "%RETRY%cg" in topics

    # New messages continue both the queue offsets and the commit log.
    after = await bc.send_ok("Durable", b"m5", queue_id=0)
    assert after.ext_fields["queueOffset"] == "3"
    old_phys = [decode_offset_msg_id(r.ext_fields["msgId"])[2] for r in sent]
    new_phys = decode_offset_msg_id(after.ext_fields["msgId"])[2]
    assert new_phys > max(old_phys)
    # The key index survived as well.
    found = await bc.invoke(RequestCode.QUERY_MESSAGE, {"topic": "Durable", "key": "k3", "maxNum": "4",
                                                        "beginTimestamp": "0", "endTimestamp": str(2**62)})  # fmt: skip
    assert found.code == 0

    # The name server routes the topic to the new broker.
    route = json.loads((await call(ns_client, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "Durable"})).body)
    assert route["brokerDatas"][0]["brokerAddrs"] == {"0": second.config.broker_addr}
