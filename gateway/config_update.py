"""UPDATE_BROKER_CONFIG (``mqadmin updateBrokerConfig``): broker.conf keys changed at run time, applied to the
parts that read them, and written back to the ``--config`` file when there is one (Apache persists its whole
configuration to that file; pocketmq changes only the updated lines and keeps the rest, comments included).

Only keys whose new value takes effect at once are accepted; any other key is refused by name, so a change is
never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from gateway.context import BrokerContext


class ConfigRefused(ValueError):
    pass


def _int(text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigRefused(f"{text!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigRefused(f"{value} is not within [{low}, {high}]")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ConfigRefused(f"{text!r} is neither true nor false")
    return value == "true"


def _set_auto_create(ctx: BrokerContext, text: str) -> None:
    ctx.config.auto_create_topic = ctx.topics.auto_create = _bool(text)


def _set_default_queue_nums(ctx: BrokerContext, text: str) -> None:
    ctx.config.default_topic_queue_nums = ctx.topics.default_queue_nums = _int(text, 1, 1024)


def _set_max_message_size(ctx: BrokerContext, text: str) -> None:
    ctx.config.max_message_size = _int(text, 1, ctx.config.max_frame_size)


def _set_trace_on(ctx: BrokerContext, text: str) -> None:
    ctx.config.trace_on = _bool(text)


def _set_timer_max_delay(ctx: BrokerContext, text: str) -> None:
    ctx.config.timer_max_delay_ms = ctx.delays.max_delay_ms = _int(text, 1, 10 * 365 * 86400) * 1000


def _set_file_reserved_time(ctx: BrokerContext, text: str) -> None:
    try:
        hours = float(text.strip())
    except ValueError:
        raise ConfigRefused(f"{text!r} is not a number of hours") from None
    if not 0 <= hours <= 100 * 365 * 24:
        raise ConfigRefused(f"{hours} hours is not within [0, {100 * 365 * 24}]")
    ctx.config.file_reserved_time_h = hours


def _set_delete_when(ctx: BrokerContext, text: str) -> None:
    hours = [part.strip() for part in text.split(";")]
    if not all(part.isdigit() and int(part) < 24 for part in hours):
        raise ConfigRefused(f"{text!r} is not a list of hours 00-23 separated by ';'")
    ctx.config.delete_when = text.strip()


def _config_int(config_field: str, low: int, high: int) -> Callable[[BrokerContext, str], None]:
    def apply(ctx: BrokerContext, text: str) -> None:
        setattr(ctx.config, config_field, _int(text, low, high))

    return apply


def _policy_setter(config_field: str, policy_field: str, low: int, high: int) -> Callable[[BrokerContext, str], None]:
    def apply(ctx: BrokerContext, text: str) -> None:
        value = _int(text, low, high)
        setattr(ctx.config, config_field, value)
        ctx.transaction_policy = dataclasses.replace(ctx.transaction_policy, **{policy_field: value})
        ctx.transactions.policy = ctx.transaction_policy

    return apply


UPDATABLE: dict[str, Callable[[BrokerContext, str], None]] = {
    "autoCreateTopicEnable": _set_auto_create,
    "defaultTopicQueueNums": _set_default_queue_nums,
    "maxMessageSize": _set_max_message_size,
    "traceOn": _set_trace_on,
    "timerMaxDelaySec": _set_timer_max_delay,
    "transactionTimeOut": _policy_setter("transaction_timeout_ms", "timeout_ms", 0, 86_400_000),
    "transactionCheckInterval": _policy_setter("transaction_check_interval_ms", "interval_ms", 1, 86_400_000),
    "transactionCheckMax": _policy_setter("transaction_check_max", "max_checks", 0, 10_000),
    "fileReservedTime": _set_file_reserved_time,
    "deleteWhen": _set_delete_when,
    "diskMaxUsedSpaceRatio": _config_int("disk_max_used_space_ratio", 10, 95),
    "diskSpaceCleanForciblyRatio": _config_int("disk_space_clean_forcibly_ratio", 30, 85),
}


def parse_properties(text: str) -> dict[str, str]:
    """Java properties as MixAll.properties2String writes them: ``key=value`` lines."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def update(ctx: BrokerContext, values: dict[str, str]) -> None:
    """Check every key and value first, then apply them all, then write the config file."""
    refused = sorted(k for k in values if k not in UPDATABLE)
    if refused:
        raise ConfigRefused(
            f"cannot update {', '.join(refused)} at run time; updatable: {', '.join(sorted(UPDATABLE))}"
        )
    snapshot = (dataclasses.replace(ctx.config), ctx.transaction_policy)
    try:
        for key, value in values.items():
            try:
                UPDATABLE[key](ctx, value)
            except ConfigRefused as err:
                raise ConfigRefused(f"{key}: {err}") from None
    except ConfigRefused:
        _restore(ctx, *snapshot)
        raise
    if ctx.config.config_file is not None:
        rewrite(ctx.config.config_file, values)


def _restore(ctx: BrokerContext, config: object, policy: object) -> None:
    """Undo a partly applied update (a later key was refused)."""
    for field in dataclasses.fields(ctx.config):
        setattr(ctx.config, field.name, getattr(config, field.name))
    ctx.topics.auto_create = ctx.config.auto_create_topic
    ctx.topics.default_queue_nums = ctx.config.default_topic_queue_nums
    ctx.delays.max_delay_ms = ctx.config.timer_max_delay_ms
    ctx.transaction_policy = ctx.transactions.policy = policy  # type: ignore[assignment]


def rewrite(path: Path, values: dict[str, str]) -> None:
    """Replace the lines of the updated keys (or append them), atomically."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pending = dict(values)
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith(("#", "!")) else None
        if key in pending:
            out.append(f"{key}={pending.pop(key)}")
        else:
            out.append(line)
    out += [f"{key}={value}" for key, value in pending.items()]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)
