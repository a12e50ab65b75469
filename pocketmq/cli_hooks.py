"""``pocketmq fault ...`` and ``pocketmq trace ...``: fault rules and the protocol trace of a running pocketmq, over
its admin API (``--http URL`` or ``--ready-file PATH``), and a trace file printed readably.

    pocketmq fault add --code SEND_MESSAGE_V2 --topic T --respond SYSTEM_BUSY --times 3
    pocketmq fault add --method SendMessage --respond TOO_MANY_REQUESTS --times 1     (a gRPC rule)
    pocketmq fault list | remove ID | clear
    pocketmq trace on [FILE] | off | status
    pocketmq trace FILE [--code X] [--topic T] [--client ID]
    pocketmq trace --follow [--code X] [--topic T] [--client ID]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from pocketmq.admin_client import AdminClient, AdminError, add_endpoint_options, endpoint
from pocketmq.trace_follow import follow
from pocketmq.trace_print import TraceFilter, print_trace

COMMANDS = ("fault", "trace")
TRACE_ACTIONS = ("on", "off", "status")


def add_parsers(sub: Any) -> None:
    fault = sub.add_parser("fault", help="inject faults into requests of a running pocketmq (docs/testing.md)")
    actions = fault.add_subparsers(dest="fault_command", required=True)
    add = actions.add_parser("add", help="add a rule")
    add.add_argument("--code", help="request code(s), number or name, comma-separated (default: any)")
    add.add_argument("--method", help="gRPC (5.x) method(s), e.g. SendMessage, comma-separated, or * for any: "
                                      "a rule for gRPC calls instead of remoting requests")  # fmt: skip
    add.add_argument("--topic")
    add.add_argument("--group")
    add.add_argument("--client-id")
    add.add_argument("--language", help="JAVA, CPP, GO, NODE_JS, RUST, PYTHON, ...")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--respond", help="answer with this response code (number or name, e.g. SYSTEM_BUSY; "
                                        "with --method a v2 Code, e.g. TOO_MANY_REQUESTS)")  # fmt: skip
    what.add_argument("--delay-ms", type=int, help="serve the request, answer after this many milliseconds")
    what.add_argument("--drop", action="store_true", help="serve the request, never answer")
    what.add_argument("--close", action="store_true", help="close the connection instead")
    add.add_argument("--remark", help="text added to the injected answer's remark")
    add.add_argument("--header", action="append", metavar="NAME=VALUE",
                     help="a header field of the injected answer (with --respond; repeat for more)")  # fmt: skip
    add.add_argument("--after", type=int, help="let the first N matching requests through untouched")
    how_often = add.add_mutually_exclusive_group()
    how_often.add_argument("--times", type=int, help="only the next N matching requests")
    how_often.add_argument("--fraction", help="each matching request with this probability (0..1]")
    add.add_argument("--seed", type=int, help="seed of the fraction's random numbers (repeatable runs)")
    add_endpoint_options(add)
    for name, text in (("list", "the rules with their counts"), ("clear", "remove every rule")):
        add_endpoint_options(actions.add_parser(name, help=text))
    remove = actions.add_parser("remove", help="remove one rule")
    remove.add_argument("id", type=int)
    add_endpoint_options(remove)

    trace = sub.add_parser(
        "trace",
        help="trace frames (on [FILE] | off | status), print a trace file, or follow the live trace",
        description="pocketmq trace on [FILE] | off | status  (a running pocketmq; on without a file: in memory, "
        "for the console and --follow);  pocketmq trace FILE [filters];  pocketmq trace --follow [filters]",
    )
    trace.add_argument("words", nargs="*", metavar="on [FILE] | off | status | FILE")
    trace.add_argument("--follow", action="store_true", help="print the live trace of a running pocketmq as it comes")
    trace.add_argument("--code", help="only this request or response code (number or name) or gRPC method")
    trace.add_argument("--topic", help="only frames of this topic")
    trace.add_argument("--client", help="only frames of clients whose id contains this")
    add_endpoint_options(trace)


def _rule(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "code": args.code, "method": args.method, "topic": args.topic, "group": args.group, "clientId": args.client_id,
        "language": args.language, "respond": args.respond, "remark": args.remark, "delayMs": args.delay_ms,
        "drop": args.drop or None, "close": args.close or None, "times": args.times, "fraction": args.fraction,
        "seed": args.seed, "after": args.after, "header": _header_fields(args.header),
    }  # fmt: skip
    return {k: v for k, v in fields.items() if v is not None}


def _header_fields(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise AdminError(f"--header takes NAME=VALUE, not {pair!r}")
        out[name] = value
    return out


def _show_rule(rule: dict[str, Any]) -> str:
    counts = f"matched {rule.get('matched', 0)}, injected {rule.get('injected', 0)}"
    described = {k: v for k, v in rule.items() if k not in ("id", "matched", "injected", "exhausted")}
    done = ", exhausted" if rule.get("exhausted") else ""
    return f"rule {rule['id']}: {json.dumps(described, ensure_ascii=False)} ({counts}{done})"


def run(args: argparse.Namespace) -> int:
    """Run ``fault`` or ``trace``; the exit status."""
    try:
        if args.command == "fault":
            return _fault(args)
        return _trace(args)
    except AdminError as err:
        print(f"pocketmq {args.command}: {err}", file=sys.stderr)
        return 1


def _fault(args: argparse.Namespace) -> int:
    api = AdminClient(endpoint(args))
    if args.fault_command == "add":
        print(_show_rule(api.post("/api/faults", _rule(args))))
    elif args.fault_command == "list":
        rules = api.get("/api/faults")["rules"]
        for rule in rules:
            print(_show_rule(rule))
        if not rules:
            print("no fault rules")
    elif args.fault_command == "remove":
        print("removed " + _show_rule(api.post("/api/faults/remove", {"id": args.id})))
    else:
        print(f"removed {api.post('/api/faults/clear', {})['removed']} rule(s)")
    return 0


def _trace(args: argparse.Namespace) -> int:
    words = args.words
    wanted = TraceFilter(code=args.code, topic=args.topic, client=args.client)
    if not words and not args.follow:
        print("pocketmq trace: on [FILE], off, status, a FILE to print, or --follow", file=sys.stderr)
        return 2
    if args.follow:
        if words:
            print("pocketmq trace --follow takes no file; pocketmq trace FILE prints one", file=sys.stderr)
            return 2
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it
            follow(AdminClient(endpoint(args)), wanted, sys.stdout, sys.stderr)
        return 0
    if words[0] in TRACE_ACTIONS:
        api = AdminClient(endpoint(args))
        if words[0] == "on":
            if len(words) > 2:
                print("pocketmq trace on [FILE]: at most one file (ending in .jsonl)", file=sys.stderr)
                return 2
            # Resolved here: the broker runs on this machine, and a relative path means this directory.
            wanted_trace = {"file": str(Path(words[1]).resolve())} if len(words) == 2 else {"live": True}
            status = api.post("/api/trace/on", wanted_trace)
        elif words[0] == "off":
            status = api.post("/api/trace/off", {})
        else:
            status = api.get("/api/trace")
        print(json.dumps(status))
        return 0
    if len(words) != 1:
        print("pocketmq trace FILE: one file to print", file=sys.stderr)
        return 2
    try:
        with open(words[0], encoding="utf-8", errors="replace") as source:
            print_trace(source, sys.stdout, sys.stderr, wanted)
    except OSError as err:
        print(f"pocketmq trace: cannot read {words[0]}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0
