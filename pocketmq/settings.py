"""Command-line settings: flags, then ``POCKETMQ_*`` environment variables, then a broker.conf file, then defaults."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from codec.codes import MAX_FRAME_SIZE_DEFAULT
from gateway.config import BROKER_CONF_KEYS, BrokerConfig

log = logging.getLogger("pocketmq")


def read_broker_conf(path: Path) -> dict[str, str]:
    """Parse RocketMQ's key=value broker.conf (``#`` comments, blank lines, spaces around ``=``)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    return values


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _hours(text: str) -> float:
    """fileReservedTime: whole hours in Apache; pocketmq also takes a fraction (0.25 is 15 minutes)."""
    hours = float(text)
    if not 0 <= hours <= 100 * 365 * 24:
        raise ValueError(f"fileReservedTime={text}: hours from 0 up")
    return hours


def apply_broker_conf(config: BrokerConfig, values: dict[str, str]) -> list[str]:
    """Apply known keys to ``config``; return the unknown keys (reported once by the caller)."""
    unknown = []
    for key, value in values.items():
        field = BROKER_CONF_KEYS.get(key)
        if field is None:
            unknown.append(key)
        elif field == "namesrv_addrs":
            config.namesrv_addrs = [a.strip() for a in value.split(";") if a.strip()]
        elif field == "data_dir":
            config.data_dir = Path(value).expanduser()
        elif field == "sync_flush":
            config.sync_flush = value.strip().upper() == "SYNC_FLUSH"
        elif field == "acl_file":
            config.acl_file = Path(value).expanduser() if value.strip() else None
        elif field in (
            "auto_create_topic",
            "trace_on",
            "validate_system_topic_when_update_topic",
            "clean_file_forcibly_enable",
            "acl_enable",
        ):
            setattr(config, field, _bool(value))
        elif field in (
            "port",
            "default_topic_queue_nums",
            "max_message_size",
            "rebalance_lock_max_live_ms",
            "transaction_timeout_ms",
            "transaction_check_interval_ms",
            "transaction_check_max",
            "server_max_requests_in_flight",
            "server_max_connections",
            "server_max_buffered_bytes",
            "disk_max_used_space_ratio",
            "disk_space_clean_forcibly_ratio",
            "clean_resource_interval_ms",
        ):
            setattr(config, field, int(value))
        elif field in ("server_channel_max_idle_s", "server_frame_read_timeout_s"):
            setattr(config, field, float(value))
        elif field in ("write_buffer_high_water_mark", "write_buffer_low_water_mark"):
            if int(value) > 0:  # Apache's 0 means Netty's default, which is ours
                setattr(config, field, int(value))
        elif field == "timer_max_delay_ms":
            config.timer_max_delay_ms = int(value) * 1000
        elif field == "file_reserved_time_h":
            config.file_reserved_time_h = _hours(value)
        elif field == "register_interval_s":
            config.register_interval_s = min(max(int(value) / 1000, 10.0), 60.0)
        else:
            setattr(config, field, value)
    return unknown


def local_address() -> str:
    """An address of this host that other machines can use (for routes when binding 0.0.0.0)."""
    try:
        addr = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return addr


def env(name: str) -> str | None:
    value = os.environ.get("POCKETMQ_" + name)
    return value if value else None


def frame_limit() -> int:
    value = env("MAX_FRAME_SIZE")
    return int(value) if value else MAX_FRAME_SIZE_DEFAULT
