"""Fault rules: which requests a rule matches and what it does to them. Pure: no I/O, no clock.

A rule is parsed from JSON (the admin API, the CLI and ``pocketmq.testing`` all send the same object)::

    {"code": "SEND_MESSAGE_V2", "topic": "T", "group": "G", "clientId": "...", "language": "GO",
     "respond": "SYSTEM_BUSY", "remark": "...",      # or "delayMs": 500, or "drop": true, or "close": true
     "header": {"nextBeginOffset": "10"},             # respond only: the injected answer's header fields
     "after": 2,                                      # let the first 2 matches through untouched
     "times": 3}                                      # or "fraction": 0.25 with "seed": 7

Every match criterion is optional (none: every request). ``code`` is a request code's number or name, or a list
of them. A rule lets its first ``after`` matches pass, then fires on its next ``times`` matches (then it is
exhausted but stays listed with its counts), or on each match with probability ``fraction`` drawn from its own RNG
seeded with ``seed`` (repeatable runs), or, with neither, on every match. ``header`` gives an injected answer the
header fields a client needs to act on it (a PULL_NOT_FOUND with a ``nextBeginOffset`` moves a consumer on: the
way to break delivery order on purpose). Bad input raises ``FaultRuleError`` naming the field.

A rule is for one protocol. With ``method`` it acts on gRPC (5.x) calls: ``method`` names MessagingService methods
(``"SendMessage"``, a list, or ``"*"`` for any), ``respond`` takes an ``apache.rocketmq.v2.Code`` name or number
(``TOO_MANY_REQUESTS``), and ``code`` and ``header`` do not go with it. Without ``method`` it acts on remoting
requests, as it always did.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from codec.codes import (
    GROUP_HEADER_FIELDS,
    GRPC_METHODS,
    SEND_V2_REQUEST_CODES,
    LanguageCode,
    RequestCode,
    ResponseCode,
)

MAX_TEXT = 256  # characters of a topic, group or client id in a rule
MAX_DELAY_MS = 600_000
MAX_TIMES = 1_000_000_000
MAX_HEADER_FIELDS = 32
ANY_METHOD = "*"
TELEMETRY = "Telemetry"  # a stream whose first message comes after the call starts: no topic or group to match
_METHODS_BY_LOWER = {m.lower(): m for m in GRPC_METHODS}


class FaultRuleError(ValueError):
    """A rule that cannot be used; the message says which field and why."""


class Action(StrEnum):
    RESPOND = "respond"  # answer with a response code instead of handling the request
    DELAY = "delay"  # handle it, then hold the answer back
    DROP = "drop"  # handle it, never answer (the answer is lost on its way back)
    CLOSE = "close"  # close the connection instead of handling the request


@dataclass(slots=True, frozen=True)
class RequestFacts:
    """What a rule can match on, taken from one request and its connection."""

    code: int
    topic: str | None
    group: str | None
    client_id: str | None
    language: str


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ was half the cost of checking a call
class CallFacts:
    """What a rule can match on in a gRPC call: its method, the resources its request names, its metadata."""

    method: str
    topic: str | None
    group: str | None
    client_id: str | None
    language: str | None


def request_facts(code: int, ext: Mapping[str, str], client_id: str | None, language: str) -> RequestFacts:
    if code in SEND_V2_REQUEST_CODES:
        topic, group = ext.get("b"), ext.get("a")
    else:
        topic = ext.get("topic")
        group = next((ext[f] for f in GROUP_HEADER_FIELDS if f in ext), None)
    return RequestFacts(code, topic, group, client_id, language)


@dataclass(slots=True)
class FaultRule:
    id: int
    action: Action
    grpc: bool = False  # acts on gRPC calls (the rule names methods), not on remoting requests
    codes: frozenset[int] | None = None
    methods: frozenset[str] | None = None  # gRPC: the methods it matches; None: any
    topic: str | None = None
    group: str | None = None
    client_id: str | None = None
    language: str | None = None
    response_code: int = ResponseCode.SYSTEM_BUSY  # gRPC: an apache.rocketmq.v2.Code
    remark: str = ""
    header: dict[str, str] = field(default_factory=dict)  # ext fields of the injected answer
    delay_ms: int = 0
    after: int = 0  # matches let through before the rule fires
    times: int | None = None  # fire on this many matches, then stop
    fraction: float | None = None  # fire on each match with this probability
    seed: int | None = None
    matched: int = 0  # requests the rule matched while active
    injected: int = 0  # faults it injected
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.injected >= self.times

    def matches(self, facts: RequestFacts) -> bool:
        return (
            (self.codes is None or facts.code in self.codes)
            and (self.topic is None or facts.topic == self.topic)
            and (self.group is None or facts.group == self.group)
            and (self.client_id is None or facts.client_id == self.client_id)
            and (self.language is None or facts.language == self.language)
        )

    def matches_call(self, facts: CallFacts) -> bool:
        return (
            (self.methods is None or facts.method in self.methods)
            and (self.topic is None or facts.topic == self.topic)
            and (self.group is None or facts.group == self.group)
            and (self.client_id is None or facts.client_id == self.client_id)
            and (self.language is None or facts.language == self.language)
        )

    def fire(self) -> bool:
        """Count one match; whether the fault is injected this time."""
        self.matched += 1
        if self.matched <= self.after:
            return False
        if self.fraction is not None and self.rng.random() >= self.fraction:
            return False
        self.injected += 1
        return True

    def injected_remark(self) -> str:
        name = v2_code_name(self.response_code) if self.grpc else _name(ResponseCode, self.response_code)
        text = f"[pocketmq fault rule {self.id}] injected {name}"
        return f"{text}: {self.remark}" if self.remark else text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "action": self.action.value}
        if self.codes is not None:
            out["code"] = [_name(RequestCode, c) for c in sorted(self.codes)]
        if self.grpc:
            out["method"] = [m for m in GRPC_METHODS if m in self.methods] if self.methods is not None else ANY_METHOD
        criteria = {"topic": self.topic, "group": self.group, "clientId": self.client_id, "language": self.language}
        out.update({key: value for key, value in criteria.items() if value is not None})
        if self.action is Action.RESPOND:
            out["respond"] = v2_code_name(self.response_code) if self.grpc else _name(ResponseCode, self.response_code)
            if self.remark:
                out["remark"] = self.remark
            if self.header:
                out["header"] = dict(self.header)
        if self.action is Action.DELAY:
            out["delayMs"] = self.delay_ms
        if self.after:
            out["after"] = self.after
        if self.times is not None:
            out["times"] = self.times
        if self.fraction is not None:
            out["fraction"] = self.fraction
            out["seed"] = self.seed
        out.update(matched=self.matched, injected=self.injected, exhausted=self.exhausted)
        return out


def _name(enum: type[RequestCode] | type[ResponseCode], value: int) -> str | int:
    try:
        return enum(value).name
    except ValueError:
        return value


def parse_code(value: Any, enum: type[RequestCode] | type[ResponseCode], what: str) -> int:
    """A code given as its number or its name (any case); FaultRuleError for anything else."""
    if isinstance(value, bool):
        raise FaultRuleError(f"{what} must be a number or a name, not {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        try:
            return int(enum[value.strip().upper()])
        except KeyError:
            hint = " (a v2 Code: gRPC rules, with method, take those)" if _is_v2_code(value) else ""
            raise FaultRuleError(f"{what}: no {enum.__name__} named {value[:60]!r}{hint}") from None
    else:
        raise FaultRuleError(f"{what} must be a number or a name, not {type(value).__name__}")
    if not -(1 << 15) <= number < (1 << 15):
        raise FaultRuleError(f"{what} {number} is outside the 16-bit range of codes")
    return number


def _v2_codes() -> Any:
    # Imported when a gRPC rule is parsed or shown: protobuf is not part of the remoting start-up.
    from codec.grpc_v2 import definition_pb2

    return definition_pb2.Code


def _is_v2_code(name: str) -> bool:
    try:
        return name.strip().upper() in _v2_codes().DESCRIPTOR.values_by_name
    except ImportError:
        return False


def v2_code_name(value: int) -> str | int:
    try:
        return str(_v2_codes().Name(value))
    except ValueError:
        return value


def parse_v2_code(value: Any, what: str) -> int:
    """An ``apache.rocketmq.v2.Code`` given as its number or its name (any case); FaultRuleError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FaultRuleError(f"{what} must be an apache.rocketmq.v2.Code, a number or a name, not {value!r}"[:200])
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if number >= 1 << 31:
            raise FaultRuleError(f"{what} {number} is outside the int32 range of v2 codes")
        return number
    codes = _v2_codes()
    if text.upper() in codes.DESCRIPTOR.values_by_name:
        return int(codes.Value(text.upper()))
    hint = (
        "; that is a remoting response code: gRPC rules answer with v2 codes such as TOO_MANY_REQUESTS"
        if text.upper() in ResponseCode.__members__
        else " (e.g. TOO_MANY_REQUESTS, INTERNAL_SERVER_ERROR, PROXY_TIMEOUT)"
    )
    raise FaultRuleError(f"{what}: no apache.rocketmq.v2.Code named {text[:60]!r}{hint}")


def _methods(value: Any) -> frozenset[str] | None:
    """gRPC method names (any case, comma-separated or a list) as MessagingService spells them; None for any."""
    items = value if isinstance(value, list) else value.split(",") if isinstance(value, str) else [value]
    if len(items) > len(GRPC_METHODS) + 1:
        raise FaultRuleError(f"method: at most {len(GRPC_METHODS)} methods")
    out: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise FaultRuleError(f"method must be a gRPC method's name, not {type(item).__name__}")
        name = item.strip()
        if not name:
            continue
        if name == ANY_METHOD:
            return None
        known = _METHODS_BY_LOWER.get(name.lower())
        if known is None:
            raise FaultRuleError(f"method: MessagingService has no method {name[:60]!r}; it has "
                                 f"{', '.join(GRPC_METHODS)} (or {ANY_METHOD} for any)")  # fmt: skip
        out.add(known)
    if not out:
        raise FaultRuleError(f"method: name at least one gRPC method (or {ANY_METHOD} for any)")
    return frozenset(out)


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FaultRuleError(f"{name} must be a string")
    if len(value) > MAX_TEXT:
        raise FaultRuleError(f"{name} is longer than {MAX_TEXT} characters")
    return value


def _whole(fields: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FaultRuleError(f"{name} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise FaultRuleError(f"{name} must be a whole number, not {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise FaultRuleError(f"{name} must be {low}..{high}, not {number}")
    return number


KNOWN_FIELDS = frozenset(
    {"code", "method", "topic", "group", "clientId", "language", "respond", "remark", "header", "delayMs", "drop",
     "close", "after", "times", "fraction", "seed"}
)  # fmt: skip


def parse_rule(fields: Mapping[str, Any], rule_id: int) -> FaultRule:
    """A rule from its JSON object; FaultRuleError says what is wrong with it."""
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        raise FaultRuleError(f"unknown field(s) {', '.join(unknown)[:200]}; known: {', '.join(sorted(KNOWN_FIELDS))}")
    rule = FaultRule(rule_id, _action(fields))
    codes, methods = fields.get("code"), fields.get("method")
    if methods is not None and methods != "" and methods != []:
        if codes is not None and codes != "" and codes != []:
            raise FaultRuleError("a rule is for remoting requests (code) or for gRPC calls (method), not both")
        rule.grpc, rule.methods = True, _methods(methods)
    elif codes is not None and codes != "" and codes != []:
        items = codes if isinstance(codes, list) else str(codes).split(",") if isinstance(codes, str) else [codes]
        if len(items) > 64:
            raise FaultRuleError("code: at most 64 request codes")
        rule.codes = frozenset(parse_code(c, RequestCode, "code") for c in items)
    rule.topic, rule.group, rule.client_id = _text(fields, "topic"), _text(fields, "group"), _text(fields, "clientId")
    language = _text(fields, "language")
    if language is not None:
        if language.upper() not in LanguageCode.__members__:
            raise FaultRuleError(f"language: {language!r} is none of {', '.join(LanguageCode.__members__)}")
        rule.language = language.upper()
    if rule.grpc and rule.methods == {TELEMETRY} and (rule.topic is not None or rule.group is not None):
        raise FaultRuleError("a Telemetry call starts before its first message: it has no topic or group to match")
    if rule.action is Action.RESPOND and rule.grpc:
        rule.response_code = parse_v2_code(fields["respond"], "respond")
        rule.remark = _text(fields, "remark") or ""
        if fields.get("header"):
            raise FaultRuleError("header is for remoting answers: a gRPC answer's status has only a code and message")
    elif rule.action is Action.RESPOND:
        rule.response_code = parse_code(fields["respond"], ResponseCode, "respond")
        rule.remark = _text(fields, "remark") or ""
        rule.header = _header(fields.get("header"))
    elif rule.action is Action.DELAY:
        rule.delay_ms = _whole(fields, "delayMs", 0, MAX_DELAY_MS) or 0
    if rule.action is not Action.RESPOND and fields.get("header"):
        raise FaultRuleError("header only goes with respond (it is the injected answer's header)")
    rule.after = _whole(fields, "after", 0, MAX_TIMES) or 0
    rule.times = _whole(fields, "times", 1, MAX_TIMES)
    fraction = fields.get("fraction")
    if fraction is not None:
        if rule.times is not None:
            raise FaultRuleError("times and fraction do not go together: pick one")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float | str):
            raise FaultRuleError("fraction must be a number in (0, 1]")
        try:
            rule.fraction = float(fraction)
        except ValueError:
            raise FaultRuleError(f"fraction must be a number in (0, 1], not {str(fraction)[:40]!r}") from None
        if not 0.0 < rule.fraction <= 1.0:  # also refuses NaN
            raise FaultRuleError(f"fraction must be in (0, 1], not {fraction}")
        rule.seed = _whole(fields, "seed", -(1 << 62), 1 << 62)
        if rule.seed is None:
            rule.seed = rule_id
        rule.rng = random.Random(rule.seed)
    elif fields.get("seed") is not None:
        raise FaultRuleError("seed only goes with fraction")
    return rule


def _header(value: Any) -> dict[str, str]:
    """Header fields of an injected answer: names and values as text (numbers are written as text)."""
    if value is None or value == {}:
        return {}
    if not isinstance(value, Mapping):
        raise FaultRuleError('header must be an object of field names and values, e.g. {"nextBeginOffset": "10"}')
    if len(value) > MAX_HEADER_FIELDS:
        raise FaultRuleError(f"header: at most {MAX_HEADER_FIELDS} fields")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name or len(name) > MAX_TEXT:
            raise FaultRuleError(f"header: field names must be text of 1..{MAX_TEXT} characters")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise FaultRuleError(f"header: the value of {name} must be text or a number")
        text = str(item)
        if len(text) > MAX_TEXT:
            raise FaultRuleError(f"header: the value of {name} is longer than {MAX_TEXT} characters")
        out[name] = text
    return out


def _action(fields: Mapping[str, Any]) -> Action:
    keys = {Action.RESPOND: "respond", Action.DELAY: "delayMs", Action.DROP: "drop", Action.CLOSE: "close"}
    chosen = [action for action, key in keys.items() if _given(fields.get(key))]
    if len(chosen) != 1:
        raise FaultRuleError("a rule needs exactly one action: respond (a response code), delayMs, drop or close")
    return chosen[0]


def _given(value: Any) -> bool:
    # Not ``in (None, False, "")``: 0 equals False, and "respond": 0 (SUCCESS) is a valid action.
    return value is not None and value is not False and value != ""
