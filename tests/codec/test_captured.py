"""Frames captured from the stock C++ client (PyPI rocketmq 0.4.4) decode as that client meant them.

Provenance: compat_tests/cpp/captured/PROVENANCE.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codec.batch import decode_batch
from codec.command import RemotingCommand
from codec.frame import FrameDecoder, encode_frame
from codec.headers import PullMessageRequestHeader, decode_header, decode_send_header
from codec.heartbeat import parse_heartbeat
from codec.properties import decode_properties

CAPTURED = Path(__file__).parents[2] / "compat_tests" / "cpp" / "captured"
INDEX = json.loads((CAPTURED / "frames.json").read_text())


def frame(name: str) -> RemotingCommand:
    (cmd,) = FrameDecoder().feed((CAPTURED / name).read_bytes())
    return cmd


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_every_captured_frame_decodes_to_its_recorded_header(entry: dict) -> None:
    cmd = frame(entry["file"])
    header = entry["header"]
    assert (cmd.code, cmd.language, cmd.version, cmd.opaque, cmd.flag) == (
        header["code"], "CPP", 63, header["opaque"], header["flag"]
    )  # fmt: skip
    # Numbers the C++ client writes as JSON numbers arrive as the Java text of those numbers.
    for key, value in header.get("extFields", {}).items():
        assert cmd.ext_fields[key] == (value if isinstance(value, str) else str(value))
    # Re-encoding in our canonical form decodes back to the same command.
    assert FrameDecoder().feed(encode_frame(cmd)) == [cmd]


def test_single_send() -> None:
    cmd = frame("cpp-0.4.4-send.bin")
    h = decode_send_header(cmd.ext_fields, v2=False)
    assert (h.topic, h.producer_group, h.queue_id, h.batch) == ("CaptureTopic", "CaptureProducerGroup", 0, False)
    props = decode_properties(h.properties or "")
    assert (props["TAGS"], props["KEYS"], props["color"]) == ("TagA", "KEY-0000", "blue")
    assert cmd.body == b"Hello pocketmq from the C++ client #0"


def test_batch_send_says_batch_with_1_and_carries_items() -> None:
    cmd = frame("cpp-0.4.4-send-batch.bin")
    assert cmd.code == 10 and cmd.ext_fields["batch"] == "1"
    items = decode_batch(cmd.body)
    assert len(items) == 2
    assert all("UNIQ_KEY" in decode_properties(i.properties) for i in items)


def test_consumer_heartbeat_is_normalised() -> None:
    hb = parse_heartbeat(frame("cpp-0.4.4-heartbeat-consumer.bin").body)
    (consumer,) = hb.consumers
    assert (consumer.group, consumer.consume_type, consumer.message_model) == (
        "CaptureConsumerGroup", "CONSUME_PASSIVELY", "CLUSTERING"
    )  # fmt: skip
    sub = consumer.subscriptions["CaptureTopic"]
    assert sub.tag_filter.tags == {"TagA", "TagB"}  # rebuilt from subString, not the bogus codeSet
    assert sub.sub_version > 0
    assert "%RETRY%CaptureConsumerGroup" in consumer.subscriptions


def test_pull_posts_its_subscription_and_suspends() -> None:
    h = decode_header(PullMessageRequestHeader, frame("cpp-0.4.4-pull.bin").ext_fields)
    assert (h.topic, h.subscription, h.sys_flag, h.suspend_timeout_millis, h.max_msg_nums) == (
        "CaptureTopic", "TagA || TagB", 6, 15000, 32
    )  # fmt: skip
