"""The pull consumer of the stock C++ client (PyPI ``rocketmq`` 0.4.4): ``PullConsumer.pull(topic, expression,
max_num)`` against pocketmq.

The wrapper's ``pull`` fetches the topic's queues (FetchSubscriptionMessageQueues), then pulls each queue from the
offset it keeps itself (class attribute ``offset_table``, starting at 0) until the broker answers NO_NEW_MSG, with
the expression posted along with every pull (there is no heartbeat subscription behind a pull consumer). The
driver (``compat_tests/cpp/driver.py pull``) runs that generator to its end twice in one process: the first pass
must hand over exactly the messages sent (and matching the expression), each once, intact, queue by queue in
offset order, with the offsets and unique ids the send results named; the second pass must find nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compat_tests.harness import PocketMQ
from compat_tests.test_cpp import DRIVER, PROPS, client_home, cpp_client, diagnostics, item, produce, unique

pytestmark = pytest.mark.compat

__all__ = ["client_home", "cpp_client"]  # fixtures shared with test_cpp.py (cpp_client is autouse)

QUEUES = 4  # the C++ producer auto-creates the topic with its default of 4 queues


def pull(server: PocketMQ, home: Path, topic: str, group: str, expr: str, max_num: int) -> list[dict[str, Any]]:
    """One pull-consumer process, two passes; every JSON line it printed, asserting it ended cleanly."""
    cmd = [
        sys.executable, str(DRIVER), "--namesrv", server.namesrv_addr, "--log-dir", str(home),
        "pull", "--topic", topic, "--group", group, "--expr", expr, "--max-num", str(max_num), "--passes", "2",
        "--timeout", "45", *[arg for p in PROPS for arg in ("--prop", p)],
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"pull consumer hung; stderr: {exc.stderr!r}\n{diagnostics(server, home)}")
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
    assert proc.returncode == 0 and lines and lines[-1]["event"] == "done", (
        f"pull consumer failed, rc={proc.returncode}: {lines[-5:]}\nstderr: {proc.stderr[-2000:]}\n"
        f"{diagnostics(server, home)}"
    )
    return lines


@pytest.mark.parametrize(("expr", "tags"), [("*", None), ("a || b", {"a", "b"})], ids=["all", "tags-a-or-b"])
def test_pull_consumer_reads_each_queue_in_order(
    pocketmq: PocketMQ, client_home: Path, expr: str, tags: set[str] | None
) -> None:
    """``pull(topic, expr)``: every matching message exactly once, intact (body, tags, keys, user properties,
    unique id), at the queue offset its send result named, each queue in offset order and in send order; the
    offsets the wrapper ends on are the queues' ends; a second run of ``pull`` gets nothing."""
    topic = unique("CppPull")
    items = [
        item(f"pull #{i} ünïcødé ✓ ".encode() + bytes(range(1, 32)) + b"\xff\x80", tags=("a", "b", "c")[i % 3],
             keys=[f"pull-{i}", "shared key"], color=("red", "blue")[i % 2], seq=str(i),
             note=f"spaces, ünïcødé and = : ; signs #{i}")
        for i in range(14)
    ]  # fmt: skip
    items.append(item(b"no tag at all", keys=["pull-untagged"], seq="untagged"))
    sent = produce(pocketmq, client_home, topic, unique("CppPG"), "sync", items)
    by_key = {it["keys"][0]: (i, it, sent[i]) for i, it in enumerate(items)}
    wanted = {it["keys"][0] for it in items if tags is None or it["tags"] in tags}

    # max_num 2: several pulls per queue, so the client follows nextBeginOffset from one pull to the next.
    lines = pull(pocketmq, client_home, topic, unique("CppPullG"), expr, max_num=2)
    first = [ln for ln in lines if ln["event"] == "message" and ln["pass"] == 0]
    again = [ln for ln in lines if ln["event"] == "message" and ln["pass"] == 1]
    ends = {ln["pass"]: ln for ln in lines if ln["event"] == "pass-end"}

    got_keys = [(m["keys"] or "").split(" ")[0] for m in first]
    assert sorted(got_keys) == sorted(wanted), f"pulled {sorted(got_keys)}, expected {sorted(wanted)}"
    for m, key in zip(first, got_keys, strict=True):
        _, it, result = by_key[key]
        assert m["topic"] == topic, key
        assert m["body"] == it["body"], f"{key}: body differs ({m['body_len']} bytes received)"
        assert (m["tags"] or None) == it["tags"], key
        assert m["keys"] == " ".join(it["keys"]), key
        assert {p: m["props"][p] or None for p in PROPS} == {p: it["props"].get(p) for p in PROPS}, key
        assert m["uniq_key"] == result["msg_id"], key
        assert m["queue_offset"] == result["queue_offset"], key
        assert m["reconsume_times"] == 0, key

    per_queue: dict[int, list[dict[str, Any]]] = {}
    for m in first:
        per_queue.setdefault(m["queue_id"], []).append(m)
    assert set(per_queue) <= set(range(QUEUES)), sorted(per_queue)
    runs = [q for i, q in enumerate(m["queue_id"] for m in first) if i == 0 or first[i - 1]["queue_id"] != q]
    assert len(runs) == len(set(runs)), f"queues not read one after the other: {runs}"
    for queue, msgs in per_queue.items():
        offsets = [m["queue_offset"] for m in msgs]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), (queue, offsets)
        order = [by_key[(m["keys"] or "").split(" ")[0]][0] for m in msgs]
        assert order == sorted(order), f"queue {queue} not in send order: {order}"
        if tags is None:
            assert offsets == list(range(len(msgs))), (queue, offsets)

    if tags is None:  # 15 sync sends round robin over 4 queues
        assert sorted(len(msgs) for msgs in per_queue.values()) == [3, 4, 4, 4]
    # Each queue was pulled to its end: the next offsets add up to everything sent, filtered or not.
    next_offsets = ends[0]["offsets"]
    assert len(next_offsets) == QUEUES and sum(next_offsets.values()) == len(items), next_offsets
    for queue, msgs in per_queue.items():
        assert next_offsets[str(queue)] > msgs[-1]["queue_offset"], (queue, next_offsets)
    assert ends[0]["count"] == len(wanted)
    assert not again and ends[1]["count"] == 0, f"a second pull() found more: {again}"
    assert ends[1]["offsets"] == next_offsets
