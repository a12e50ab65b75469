"""``pocketmq clock advance 2h`` and ``pocketmq clock show``: the virtual clock of a running broker, through its
HTTP admin API (``POST /api/clock/advance``, ``GET /api/clock``)."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.clock import parse_duration

DEFAULT_HTTP = "127.0.0.1:8087"
# An advance waits for everything due on the way; the broker answers within its own 30 s limit.
REQUEST_TIMEOUT_S = 40.0


class ClockCommandError(RuntimeError):
    """The broker could not be reached, or refused (the message says why)."""


def clock_request(http_endpoint: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON request to the admin API at ``http_endpoint`` (``HOST:PORT`` or ``http://HOST:PORT``)."""
    base = http_endpoint if "://" in http_endpoint else f"http://{http_endpoint}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error", err.reason)
        except ValueError:
            message = err.reason
        raise ClockCommandError(f"{method} {path}: {err.code} {message}") from None
    except (urllib.error.URLError, OSError) as err:
        raise ClockCommandError(f"cannot reach pocketmq's HTTP port at {base}: {err}") from None


def advance(http_endpoint: str, duration: str | int) -> dict[str, Any]:
    """Move the broker's virtual clock by ``duration`` (``"2h"``, ``"90s"``, ``"500ms"`` or ms) and return what the
    advance did (``nowMs``, ``steps``, ``delivered``, ``checksSent``, ``expired``)."""
    ms = duration if isinstance(duration, int) else parse_duration(duration)
    return clock_request(http_endpoint, "POST", "/api/clock/advance", {"ms": ms})


def add_clock_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clock = sub.add_parser("clock", help="show or move a running broker's virtual clock (--clock virtual)")
    actions = clock.add_subparsers(dest="clock_action", required=True)
    adv = actions.add_parser("advance", help="move the clock forward, firing everything due on the way in order")
    adv.add_argument("duration", help="2h, 90s, 500ms, 1h30m, 1.5d, or plain milliseconds")
    show = actions.add_parser("show", help="print the clock's mode and time")
    for p in (adv, show):
        where = p.add_mutually_exclusive_group()
        where.add_argument("--http", default=None, help=f"the broker's HTTP port, HOST:PORT (default {DEFAULT_HTTP})")
        where.add_argument("--ready-file", default=None, help="the --ready-file of `pocketmq up`: its httpEndpoint")


def _http_endpoint(args: argparse.Namespace) -> str:
    if args.ready_file:
        try:
            ready = json.loads(Path(args.ready_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SystemExit(f"pocketmq clock: cannot read the ready file {args.ready_file}: {err}") from None
        endpoint = ready.get("httpEndpoint") if isinstance(ready, dict) else None
        if not endpoint:
            raise SystemExit(f"pocketmq clock: {args.ready_file} has no httpEndpoint (was --http-port -1 given?)")
        return str(endpoint)
    if args.http:
        return str(args.http)
    port = os.environ.get("POCKETMQ_HTTP_PORT")
    return f"127.0.0.1:{port}" if port else DEFAULT_HTTP


def run_clock_command(args: argparse.Namespace) -> None:
    endpoint = _http_endpoint(args)
    try:
        if args.clock_action == "advance":
            try:
                ms = parse_duration(args.duration)
            except ValueError as err:
                raise SystemExit(f"pocketmq clock advance: {err}") from None
            done = advance(endpoint, ms)
            print(
                f"clock at {done['now']} (+{done['advancedMs']} ms in {done['steps']} step(s)): "
                f"{done['delivered']} delivered, {done['checksSent']} transaction check(s), "
                f"{done['expired']} expired",
                flush=True,
            )
        else:
            now = clock_request(endpoint, "GET", "/api/clock")
            print(f"{now['mode']} clock at {now['now']} ({now['nowMs']} ms)", flush=True)
    except ClockCommandError as err:
        raise SystemExit(f"pocketmq clock: {err}") from None
