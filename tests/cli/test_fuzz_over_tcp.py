"""Over-TCP fuzzing of ``pocketmq up`` (issue 10): a few thousand malformed frames on both ports, slow writers,
never-reading readers and garbage after valid requests, all at once, while a well-behaved client works on its own
connection. The process must stay up, that client must see no error, memory must stay bounded and the log must
hold no traceback. bench/soak.py runs the same attack at a much larger scale."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bench.hostile import Tally, Victim, blaster, never_reader, rss_kib, sample_rss, slow_writer
from pocketmq.testing import serve

SECONDS = 8.0
RSS_LIMIT_MIB = 160


@pytest.mark.slow
def test_the_server_survives_a_fuzzing_campaign_and_serves_a_well_behaved_client(tmp_path: Path) -> None:
    conf = {"serverFrameReadTimeoutSeconds": "2", "serverChannelMaxIdleTimeSeconds": "20"}
    # serve() fails the test if the process dies, does not exit 0 on SIGTERM or logs a traceback.
    with serve(data_dir=tmp_path, broker_conf=conf, grpc=False, http=False) as mq:
        campaign_against(mq.pid, port_of(mq.namesrv_addr), port_of(mq.broker_addr))


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def campaign_against(pid: int, ns_port: int, broker_port: int) -> None:
    rng = random.Random(20261201)
    tally = Tally()
    victim = Victim("127.0.0.1", broker_port)
    peak = [0]

    async def campaign() -> tuple[list[bool], list[int]]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, peak, stop))
        victim_task = asyncio.create_task(victim.run(SECONDS))
        await asyncio.sleep(0.5)  # the victim's topic exists before anyone pulls from it
        blasts = [blaster("127.0.0.1", port, random.Random(rng.random()), 750, tally)
                  for port in (broker_port, ns_port, broker_port, ns_port)]  # fmt: skip
        slow = [slow_writer("127.0.0.1", broker_port, 2 * 1024 * 1024, 1536 * 1024, 5.0) for _ in range(20)]
        greedy = [never_reader("127.0.0.1", broker_port, 3000, 1024, 5.0) for _ in range(10)]
        results = await asyncio.gather(*blasts, asyncio.gather(*slow), asyncio.gather(*greedy))
        await victim_task
        stop.set()
        await sampler
        return results[-2], results[-1]

    closed, taken = asyncio.run(campaign())
    assert victim.errors == [], victim.errors[:5]
    assert victim.rounds > 50
    assert tally.frames >= 3000
    assert all(closed), "a slow writer was not cut off by the frame timeout"
    assert max(taken) < 16 * 1024 * 1024  # a never-reader was stopped being read long before its 3000 pulls
    assert peak[0] / 1024 < RSS_LIMIT_MIB, f"peak RSS {peak[0] / 1024:.0f} MiB"
    assert rss_kib(pid) / 1024 < RSS_LIMIT_MIB
