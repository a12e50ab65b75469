"""What the invariant checker costs per call on the hot paths (gateway/invariants.py), on and off.

    python bench/invariants_bench.py [--body 1024] [--batch 32]

Prints µs per pull answer (``--batch`` records of ``--body`` bytes, as PullHandler.read hands them over), per
acked send and per POP delivery. The end-to-end figure (throughput with the checker on vs off, stock Java client)
comes from ``POCKETMQ_INVARIANTS=off python bench/compare.py --quick --only pocketmq`` against a run without it.
"""

from __future__ import annotations

import argparse
import timeit

from codec.properties import encode_properties
from codec.record import StoredMessage, decode_record, encode_record, set_offsets
from gateway.invariants import InvariantChecker


def records(count: int, body: int) -> list[bytes]:
    out = []
    props = encode_properties(
        {"UNIQ_KEY": "7F0000010001" + "0" * 20, "KEYS": "order-1", "TAGS": "TagA", "WAIT": "true"}
    )
    for offset in range(count):
        record = encode_record(StoredMessage("BenchTopic", 0, b"x" * body, props, store_timestamp=1))
        set_offsets(record, offset, offset * 2000)
        out.append(bytes(record))
    return out


def per_call_us(fn, number: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def report(checker: InvariantChecker, batch: list[bytes], body: bytes, message: StoredMessage, size: int) -> None:
    def pull(locked: bool) -> None:
        # Always the same offset: the frontier check runs, and nothing is skipped.
        checker.pull_served("g", "BenchTopic", 0, 0, locked, 0, 10**9, len(batch), batch, False)

    unlocked, locked = per_call_us(lambda: pull(False), 20_000), per_call_us(lambda: pull(True), 20_000)
    send = per_call_us(lambda: checker.send_acked("BenchTopic", 0, 5, 6), 200_000)
    pop = per_call_us(lambda: checker.delivered("g", message), 200_000)
    print(
        f"checker {'on ' if checker.enabled else 'off'}: pull of {len(batch)} x {size} B {unlocked:.2f} µs "
        f"(orderly queue {locked:.2f} µs), acked send {send:.3f} µs, POP delivery {pop:.3f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    batch = records(args.batch, args.body)
    body = b"".join(batch)
    message, _ = decode_record(batch[0])
    for enabled in (True, False):
        report(InvariantChecker(lambda: 0, enabled=enabled), batch, body, message, args.body)
    print(f"for scale: b''.join of the same pull body {per_call_us(lambda: b''.join(batch), 20_000):.2f} µs")


if __name__ == "__main__":
    main()
