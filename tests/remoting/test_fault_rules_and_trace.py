"""Pure parts of fault injection and the trace: rule parsing and matching, trace lines, the bounded writer, the
printer and its filters."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from codec.codes import RequestCode, ResponseCode
from pocketmq.trace_print import TraceFilter, format_line, print_trace
from remoting.fault_rules import Action, FaultRuleError, parse_code, parse_rule, request_facts
from remoting.trace import MAX_VALUE_CHARS, TraceWriter, clipped_fields, encode_line


def test_codes_by_number_or_name() -> None:
    assert parse_code("send_message_v2", RequestCode, "code") == 310
    assert parse_code(" 310 ", RequestCode, "code") == 310
    assert parse_code(2, ResponseCode, "respond") == 2
    assert parse_code(9999, RequestCode, "code") == 9999  # codes pocketmq does not know can still be matched
    for bad in ("SEND", True, 1.5, None, 1 << 20):
        with pytest.raises(FaultRuleError):
            parse_code(bad, RequestCode, "code")


def test_rule_parsing() -> None:
    rule = parse_rule({"code": "SEND_MESSAGE,SEND_MESSAGE_V2", "language": "go", "respond": "SUCCESS"}, 1)
    assert rule.codes == {10, 310} and rule.language == "GO"
    assert rule.action is Action.RESPOND and rule.response_code == 0  # 0 is a code, not "no action"
    assert parse_rule({"delayMs": "250"}, 2).delay_ms == 250
    assert parse_rule({"close": True, "times": 3}, 3).times == 3
    seeded = parse_rule({"drop": True, "fraction": "0.25"}, 4)
    assert seeded.fraction == 0.25 and seeded.seed == 4  # the rule id when no seed is given
    for fields in ({"drop": True, "times": 2, "fraction": 0.5}, {"drop": True, "seed": 1},
                   {"drop": True, "fraction": float("nan")}, {"delayMs": 10**9}, {"drop": True, "topic": 5},
                   {"drop": True, "topic": "x" * 1000}, {"drop": True, "code": list(range(100))}):  # fmt: skip
        with pytest.raises(FaultRuleError):
            parse_rule(fields, 9)


def test_matching_and_counting() -> None:
    rule = parse_rule({"code": 310, "topic": "T", "group": "pg", "respond": 2, "times": 2}, 1)
    v2 = request_facts(310, {"a": "pg", "b": "T"}, "cid", "JAVA")
    assert (v2.topic, v2.group) == ("T", "pg")
    assert rule.matches(v2)
    assert not rule.matches(request_facts(310, {"a": "pg", "b": "U"}, None, "JAVA"))
    assert not rule.matches(request_facts(10, {"producerGroup": "pg", "topic": "T"}, None, "JAVA"))
    pull = request_facts(11, {"consumerGroup": "cg", "topic": "T", "b": "ignored"}, None, "GO")
    assert (pull.topic, pull.group) == ("T", "cg")
    assert rule.fire() and rule.fire() and rule.exhausted
    assert rule.to_json()["injected"] == 2 and rule.to_json()["exhausted"]


def test_after_lets_the_first_matches_through() -> None:
    rule = parse_rule({"code": "PULL_MESSAGE", "respond": "PULL_NOT_FOUND", "after": 2, "times": 1}, 1)
    assert [rule.fire() for _ in range(3)] == [False, False, True]
    assert (rule.matched, rule.injected, rule.exhausted) == (3, 1, True)  # an exhausted rule is no longer asked
    assert rule.to_json()["after"] == 2


def test_an_injected_answer_carries_the_header_given() -> None:
    rule = parse_rule({"respond": "PULL_NOT_FOUND", "header": {"nextBeginOffset": 10, "minOffset": "0"}}, 1)
    assert rule.header == {"nextBeginOffset": "10", "minOffset": "0"}
    assert rule.to_json()["header"] == {"nextBeginOffset": "10", "minOffset": "0"}
    for fields, problem in (
        ({"drop": True, "header": {"a": "1"}}, "header only goes with respond"),
        ({"respond": 1, "header": ["a"]}, "header must be an object"),
        ({"respond": 1, "header": {"a": {"b": 1}}}, "the value of a must be text"),
        ({"respond": 1, "header": {"a": True}}, "the value of a must be text"),
        ({"respond": 1, "header": {"": "1"}}, "field names must be text"),
        ({"respond": 1, "header": {f"f{i}": i for i in range(40)}}, "at most 32 fields"),
        ({"respond": 1, "after": -1}, "after must be 0.."),
    ):
        with pytest.raises(FaultRuleError, match=problem):
            parse_rule(fields, 2)


def test_a_fraction_follows_its_seed() -> None:
    def draws(seed: int) -> list[bool]:
        rule = parse_rule({"drop": True, "fraction": 0.3, "seed": seed}, 1)
        return [rule.fire() for _ in range(200)]

    assert draws(7) == draws(7) != draws(8)
    assert 30 < sum(draws(7)) < 90


def test_trace_lines() -> None:
    fields = clipped_fields({"a": "pg", "i": "p" * 2000})
    assert (
        fields["a"] == "pg" and fields["i"].startswith("p" * MAX_VALUE_CHARS) and fields["i"].endswith("(2000 chars)")
    )
    line = json.loads(encode_line({"ts": 0.5, "dir": "request", "fields": fields, "lang": "CPP"}))
    assert line["time"] == "1970-01-01T00:00:00.500000Z" and line["lang"] == "CPP"
    assert next(iter(line)) == "time"
    assert json.loads(encode_line({"ts": 1.0, "remark": "lone \ud800"}))["remark"] == "lone \ud800"


def test_the_writer_drops_and_counts_what_the_disk_cannot_take(tmp_path: Path) -> None:
    writer = TraceWriter(tmp_path / "t.jsonl", max_queued=8)
    for i in range(20_000):
        writer.put({"ts": 1.0, "i": i})
    writer.close()
    written = (tmp_path / "t.jsonl").read_text().splitlines()
    assert writer.dropped > 0 and writer.written == len(written) and writer.written + writer.dropped == 20_000
    assert all(json.loads(x)["i"] >= 0 for x in written)


def test_the_writer_refuses_a_path_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        TraceWriter(tmp_path / "no" / "such.jsonl")


REQUEST = {"time": "2026-12-02T14:52:26.123456Z", "proto": "remoting", "server": "broker", "dir": "request",
           "conn": 12, "client": "10.0.0.1@42", "lang": "CPP", "ver": 479, "code": 310, "name": "SEND_MESSAGE_V2",
           "opaque": 7, "oneway": False, "topic": "T", "group": "G", "fields": {}, "body": 12}  # fmt: skip
RESPONSE = {"time": "2026-12-02T14:52:26.125000Z", "proto": "remoting", "server": "broker", "dir": "response",
            "conn": 12, "client": "10.0.0.1@42", "lang": "CPP", "ver": 479, "request": 310,
            "requestName": "SEND_MESSAGE_V2", "opaque": 7, "topic": "T", "group": "G", "latencyMs": 1.5, "code": 2,
            "name": "SYSTEM_BUSY", "remark": "[pocketmq fault rule 1] injected SYSTEM_BUSY"}  # fmt: skip
CALL = {"time": "2026-12-02T14:52:27.000100Z", "proto": "grpc", "server": "broker", "dir": "call", "conn": "g3",
        "client": "cid", "lang": "JAVA", "ver": "5.0.7", "method": "SendMessage", "status": 0, "statusName": "OK",
        "latencyMs": 3.2, "topic": "U"}  # fmt: skip


def test_printed_lines() -> None:
    assert format_line(REQUEST) == (
        "14:52:26.123456 broker  12    CPP 479 10.0.0.1@42 -> SEND_MESSAGE_V2(310) #7 topic=T group=G body=12"
    )
    assert format_line(RESPONSE) == (
        "14:52:26.125000 broker  12    CPP 479 10.0.0.1@42 <- SYSTEM_BUSY(2) #7 for SEND_MESSAGE_V2 1.50 ms topic=T "
        "group=G remark='[pocketmq fault rule 1] injected SYSTEM_BUSY'"
    )
    assert format_line(CALL) == "14:52:27.000100 grpc    g3    JAVA 5.0.7 cid == SendMessage OK 3.20 ms topic=U"
    assert "NO ANSWER" in format_line({**RESPONSE, "code": None, "name": "NO_ANSWER"})
    refused = {**CALL, "code": 42900, "name": "TOO_MANY_REQUESTS", "fault": "fault rule 4"}
    assert "== SendMessage OK/TOO_MANY_REQUESTS [fault rule 4] 3.20 ms" in format_line(refused)
    assert "== SendMessage OK 3.20 ms" in format_line({**CALL, "code": 20000, "name": "OK"})


def test_filters_and_unreadable_lines() -> None:
    text = "\n".join([json.dumps(REQUEST), "{not json", json.dumps(RESPONSE), json.dumps(CALL), "[1]", ""])

    def printed(wanted: TraceFilter) -> tuple[list[str], str]:
        out, err = io.StringIO(), io.StringIO()
        print_trace(io.StringIO(text), out, err, wanted)
        return out.getvalue().splitlines(), err.getvalue()

    everything, err = printed(TraceFilter())
    assert len(everything) == 3 and err == "2 line(s) were not trace lines and were skipped\n"
    assert len(printed(TraceFilter(code="send_message_v2"))[0]) == 2  # the request and its response
    assert len(printed(TraceFilter(code="310"))[0]) == 2
    assert len(printed(TraceFilter(code="SYSTEM_BUSY"))[0]) == 1
    assert len(printed(TraceFilter(code="SendMessage"))[0]) == 1
    assert len(printed(TraceFilter(topic="T"))[0]) == 2
    assert len(printed(TraceFilter(client="10.0.0.1"))[0]) == 2
    assert printed(TraceFilter(topic="T", client="cid"))[0] == []
