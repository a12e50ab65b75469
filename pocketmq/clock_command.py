"""``pocketmq clock advance 2h`` and ``pocketmq clock show``: the virtual clock of a running broker, through its
HTTP admin API (``POST /api/clock/advance``, ``GET /api/clock``; found as pocketmq.admin_client finds it)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.clock import parse_duration
from pocketmq.admin_client import AdminClient, AdminError, add_endpoint_options, endpoint


def advance(http_endpoint: str, duration: str | int) -> dict[str, Any]:
    """Move the broker's virtual clock by ``duration`` (``"2h"``, ``"90s"``, ``"500ms"`` or ms) and return what the
    advance did (``nowMs``, ``steps``, ``delivered``, ``checksSent``, ``expired``). ValueError for a bad duration,
    AdminError when the broker refuses (409: not a virtual clock) or cannot be reached."""
    ms = duration if isinstance(duration, int) else parse_duration(duration)
    url = http_endpoint if "://" in http_endpoint else f"http://{http_endpoint}"
    answer: dict[str, Any] = AdminClient(url).post("/api/clock/advance", {"ms": ms})
    return answer


def add_clock_command(sub: Any) -> None:
    clock = sub.add_parser("clock", help="show or move a running broker's virtual clock (--clock virtual)")
    actions = clock.add_subparsers(dest="clock_action", required=True)
    adv = actions.add_parser("advance", help="move the clock forward, firing everything due on the way in order")
    adv.add_argument("duration", help="2h, 90s, 500ms, 1h30m, 1.5d, or plain milliseconds")
    add_endpoint_options(adv)
    show = actions.add_parser("show", help="print the clock's mode and time")
    add_endpoint_options(show)


def run_clock_command(args: argparse.Namespace) -> None:
    try:
        where = endpoint(args)
        if args.clock_action == "advance":
            try:
                ms = parse_duration(args.duration)
            except ValueError as err:
                raise SystemExit(f"pocketmq clock advance: {err}") from None
            done = advance(where, ms)
            print(
                f"clock at {done['now']} (+{done['advancedMs']} ms in {done['steps']} step(s)): "
                f"{done['delivered']} delivered, {done['checksSent']} transaction check(s), "
                f"{done['expired']} expired",
                flush=True,
            )
        else:
            now = AdminClient(where).get("/api/clock")
            print(f"{now['mode']} clock at {now['now']} ({now['nowMs']} ms)", flush=True)
    except AdminError as err:
        raise SystemExit(f"pocketmq clock: {err}") from None
