"""Request-reply: SEND_REPLY_MESSAGE(_V2) is pushed to the requester (PUSH_REPLY_MESSAGE_TO_CLIENT) and stored."""

from __future__ import annotations

import json

import anyio

from codec.codes import RequestCode
from codec.frame import encode_frame
from codec.properties import decode_properties


async def register_producer(bc, client_id: str) -> None:
    body = json.dumps({"clientID": client_id, "producerDataSet": [{"groupName": "requesters"}]}).encode()
    assert (await bc.invoke(RequestCode.HEART_BEAT, body=body)).code == 0


def reply_props(client_id: str) -> dict[str, str]:
    return {"MSG_TYPE": "reply", "REPLY_TO_CLIENT": client_id, "CORRELATION_ID": "corr-1", "CLUSTER": "DefaultCluster"}


async def test_a_reply_is_pushed_to_the_requester_and_stored(bc, open_broker_client):
    requester = await open_broker_client(bc.broker)
    await register_producer(requester, "requester@1")
    result = {}

    async def answer_push() -> None:
        push = await requester.client.receive(timeout=3)
        result["push"] = push
        await requester.client.stream.send(encode_frame(push.response(0)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_push)
        response = await bc.send("DefaultCluster_REPLY_TOPIC", b"the answer", properties=reply_props("requester@1"),
                                 code=RequestCode.SEND_REPLY_MESSAGE_V2)  # fmt: skip
    assert response.code == 0, response.remark
    push = result["push"]
    assert (push.code, push.is_oneway, push.body) == (RequestCode.PUSH_REPLY_MESSAGE_TO_CLIENT, False, b"the answer")
    props = decode_properties(push.ext_fields["properties"])
    assert (props["CORRELATION_ID"], props["MSG_TYPE"]) == ("corr-1", "reply")
    assert int(props["PUSH_REPLY_TIME"]) > 0
    assert push.ext_fields["topic"] == "DefaultCluster_REPLY_TOPIC"
    assert push.ext_fields["storeHost"].endswith(f":{bc.broker.config.port}")
    assert [m.body for m in await bc.pull_records("DefaultCluster_REPLY_TOPIC", 0, 0)] == [b"the answer"]


async def test_a_reply_for_an_absent_requester_is_stored_and_reported(bc, wire):
    ext = wire.send_fields("DefaultCluster_REPLY_TOPIC", properties=reply_props("gone@1"), v2=False)  # Go: code 324
    response = await bc.invoke(RequestCode.SEND_REPLY_MESSAGE, ext, b"orphan")
    assert response.code == 1 and "gone@1" in response.remark
    assert await bc.max_offset("DefaultCluster_REPLY_TOPIC", 0) == 1
