"""Request-reply: SEND_REPLY_MESSAGE(_V2) is pushed to the requester (PUSH_REPLY_MESSAGE_TO_CLIENT) and stored."""

from __future__ import annotations

import json

import anyio

from codec.codes import RequestCode
from codec.command import request
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


async def test_a_requester_that_never_answers_does_not_hold_up_the_responder(bc, open_broker_client, wire, monkeypatch):
    """The push waits for the requester in a task of its own: the responder's next request is answered at once."""
    monkeypatch.setattr("gateway.handlers.reply.PUSH_REPLY_TIMEOUT_S", 1.0)
    requester = await open_broker_client(bc.broker)
    await register_producer(requester, "silent@1")  # gets the push, never answers it
    reply = request(RequestCode.SEND_REPLY_MESSAGE_V2, wire.send_fields(
        "DefaultCluster_REPLY_TOPIC", properties=reply_props("silent@1"), v2=True), b"late")  # fmt: skip
    probe = request(RequestCode.GET_MAX_OFFSET, {"topic": "DefaultCluster_REPLY_TOPIC", "queueId": "0"})
    reply.opaque, probe.opaque = 901, 902
    started = anyio.current_time()
    await bc.client.stream.send(encode_frame(reply) + encode_frame(probe))
    first = await bc.client.receive(timeout=3)
    assert first.opaque == 902 and first.code == 0, (first.opaque, first.remark)
    assert anyio.current_time() - started < 0.5
    push = await requester.client.receive(timeout=3)
    assert (push.code, push.body) == (RequestCode.PUSH_REPLY_MESSAGE_TO_CLIENT, b"late")
    second = await bc.client.receive(timeout=3)
    assert second.opaque == 901 and second.code == 1 and "TimeoutError" in second.remark, second.remark
    assert await bc.max_offset("DefaultCluster_REPLY_TOPIC", 0) == 1  # stored all the same


async def test_a_requester_that_leaves_during_the_push_gets_the_reply_stored(bc, open_broker_client, wire, caplog):
    """Seen in CI with the Go client: the requester's connection closed while the push waited for its answer; that
    was a traceback in the log, and is now a stored reply reported as not pushed."""
    requester = await open_broker_client(bc.broker)
    await register_producer(requester, "leaving@1")
    reply = request(RequestCode.SEND_REPLY_MESSAGE_V2, wire.send_fields(
        "DefaultCluster_REPLY_TOPIC", properties=reply_props("leaving@1"), v2=True), b"too late")  # fmt: skip
    reply.opaque = 77
    await bc.client.stream.send(encode_frame(reply))
    push = await requester.client.receive(timeout=3)
    assert push.code == RequestCode.PUSH_REPLY_MESSAGE_TO_CLIENT
    await requester.client.aclose()  # gone before answering the push
    answer = await bc.client.receive(timeout=3)
    assert answer.opaque == 77 and answer.code == 1 and "ConnectionError" in answer.remark, answer.remark
    assert await bc.max_offset("DefaultCluster_REPLY_TOPIC", 0) == 1
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
