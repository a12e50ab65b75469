"""Fault injection on remoting requests: the rules in force, and what each action does to a request.

The rules (``remoting.fault_rules``) are checked in the order they were added; the first active rule that matches
and fires decides. ``respond`` answers with its code and a remark saying it was injected, instead of the handler;
``delay`` lets the handler run, then holds its answer back (on a task: later requests on the connection are not
held); ``drop`` lets the handler run and never sends its answer; ``close`` closes the connection instead.
Rules for gRPC calls (``method``) are chosen here too (``choose_call``); the gRPC server carries out their actions
(``remoting.grpc_server.CallFault``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import anyio

from codec.command import RemotingCommand
from remoting.connection import Connection, HandlerResult, Step
from remoting.fault_rules import Action, CallFacts, FaultRule, FaultRuleError, parse_rule, request_facts
from runtime.completion import Completion

Handler = Callable[[RemotingCommand, Connection], HandlerResult | Awaitable[HandlerResult]]

MAX_RULES = 256  # one admin client cannot make the rule list grow without bound
CLIENT_ID_ATTRIBUTE = "clientId"  # Connection.attributes key set by the broker from the connection's heartbeats


class FaultInjector:
    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.rules: list[FaultRule] = []
        # The same rules by protocol, in the same order: each side checks only its own, and hooks itself in only
        # while it has some.
        self.remoting_rules: list[FaultRule] = []
        self.grpc_rules: list[FaultRule] = []
        self.on_change = on_change  # the rule list became empty or not empty (installs / removes the hook)
        self._next_id = 1
        # Injections of rules that were removed since, so the totals (and /metrics counters) never go down.
        self.removed_injected: dict[tuple[int, str], int] = {}

    def add(self, fields: Mapping[str, Any]) -> FaultRule:
        if len(self.rules) >= MAX_RULES:
            raise FaultRuleError(f"already {MAX_RULES} rules; remove some first")
        rule = parse_rule(fields, self._next_id)
        self._next_id += 1
        self.rules.append(rule)
        self._split()
        return rule

    def remove(self, rule_id: int) -> FaultRule | None:
        for i, rule in enumerate(self.rules):
            if rule.id == rule_id:
                del self.rules[i]
                self._forget(rule)
                self._split()
                return rule
        return None

    def clear(self) -> int:
        removed, self.rules = self.rules, []
        for rule in removed:
            self._forget(rule)
        self._split()
        return len(removed)

    def _split(self) -> None:
        self.remoting_rules = [r for r in self.rules if not r.grpc]
        self.grpc_rules = [r for r in self.rules if r.grpc]
        self.on_change()

    def _forget(self, rule: FaultRule) -> None:
        if rule.injected:
            self.removed_injected[(rule.id, rule.action.value)] = rule.injected

    def injected_counts(self) -> dict[tuple[int, str], int]:
        """Faults injected per (rule id, action), removed rules included."""
        counts = dict(self.removed_injected)
        counts.update({(r.id, r.action.value): r.injected for r in self.rules})
        return counts

    def choose(self, cmd: RemotingCommand, conn: Connection) -> FaultRule | None:
        """The rule that injects a fault into this request, if any (counting the match)."""
        facts = request_facts(cmd.code, cmd.ext_fields, conn.attributes.get(CLIENT_ID_ATTRIBUTE), cmd.language)
        for rule in self.remoting_rules:
            if not rule.exhausted and rule.matches(facts):
                if rule.fire():
                    return rule
                return None  # the first matching rule decides, also when its fraction says no this time
        return None

    def choose_call(self, facts: CallFacts) -> FaultRule | None:
        """The rule that injects a fault into this gRPC call, if any (counting the match)."""
        for rule in self.grpc_rules:
            if not rule.exhausted and rule.matches_call(facts):
                return rule if rule.fire() else None
        return None

    def apply(
        self, rule: FaultRule, cmd: RemotingCommand, conn: Connection, handler: Handler, is_step: bool
    ) -> HandlerResult | Awaitable[HandlerResult]:
        if rule.action is Action.RESPOND:
            return cmd.response(rule.response_code, rule.injected_remark(), ext_fields=dict(rule.header) or None)
        if rule.action is Action.CLOSE:
            conn.close(f"fault rule {rule.id} closes it")
            return None
        result = handler(cmd, conn)
        if rule.action is Action.DELAY:
            return then(result, _delayed(rule.delay_ms / 1000), is_step)
        return then(result, _dropped, is_step)


AnswerHook = Callable[[RemotingCommand | None], Awaitable[RemotingCommand | None]]


async def _dropped(response: RemotingCommand | None) -> None:
    return None


def _delayed(seconds: float) -> AnswerHook:
    async def later(response: RemotingCommand | None) -> RemotingCommand | None:
        await anyio.sleep(seconds)  # cancelled with the connection's held requests when it closes
        return response

    return later


def then(result: Any, hook: AnswerHook, is_step: bool) -> Any:
    """``result`` (whatever a handler returns; ``is_step``: the handler is a coroutine function) with ``hook``
    applied to its answer once there is one.

    A step (a coroutine handler's coroutine, or ``Step``) stays a step, so arrival order is kept, and what it
    returns goes through ``then`` again. Anything else waits on a task of the connection, as a held pull does."""
    if isinstance(result, Step):
        return Step(_step_then(result.work, hook))
    if is_step and inspect.iscoroutine(result):
        return _step_then(result, hook)
    return _answer_then(result, hook)


async def _step_then(work: Coroutine[Any, Any, Any], hook: AnswerHook) -> Any:
    return then(await work, hook, False)


async def _answer_then(result: Any, hook: AnswerHook) -> RemotingCommand | None:
    if isinstance(result, Completion | asyncio.Future) or inspect.isawaitable(result):
        result = await result
    return await hook(result)
