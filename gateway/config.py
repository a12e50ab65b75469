"""Broker configuration (the subset of Apache's BrokerConfig/MessageStoreConfig that applies here)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from codec.codes import (
    DEFAULT_DELAY_LEVELS,
    DEFAULT_TIMER_MAX_DELAY_MS,
    DEFAULT_TRANSACTION_CHECK_INTERVAL_MS,
    DEFAULT_TRANSACTION_CHECK_MAX,
    DEFAULT_TRANSACTION_TIMEOUT_MS,
    MAX_FRAME_SIZE_DEFAULT,
    MAX_MESSAGE_SIZE_DEFAULT,
)
from remoting.limits import ConnectionLimits


@dataclass(slots=True)
class BrokerConfig:
    broker_name: str = "broker-a"
    cluster: str = "DefaultCluster"
    host: str = "127.0.0.1"  # bind address
    port: int = 10911
    # The gRPC endpoint for 5.x clients (the proxy's port): None turns it off, 0 takes a free port. When the port
    # was not asked for explicitly and is taken, the broker runs without it and says so.
    grpc_port: int | None = 8081
    grpc_port_explicit: bool = False
    # The HTTP port (/metrics): None turns it off, 0 takes a free one; a taken default only logs, as for gRPC.
    http_port: int | None = 8087
    http_port_explicit: bool = False
    grpc_tls_cert: Path | None = None  # PEM; None: a self-signed certificate in the data directory
    grpc_tls_key: Path | None = None
    advertise_host: str = "127.0.0.1"  # the address put in routes, message ids and records
    namesrv_addrs: list[str] = field(default_factory=lambda: ["127.0.0.1:9876"])
    data_dir: Path = Path("pocketmq-data")
    config_file: Path | None = None  # the --config broker.conf, where run-time updates are written back
    auto_create_topic: bool = True
    validate_system_topic_when_update_topic: bool = True  # validateSystemTopicWhenUpdateTopic
    default_topic_queue_nums: int = 4
    sync_flush: bool = False  # flushDiskType=SYNC_FLUSH
    max_message_size: int = MAX_MESSAGE_SIZE_DEFAULT
    max_frame_size: int = MAX_FRAME_SIZE_DEFAULT
    region_id: str = "DefaultRegion"
    trace_on: bool = True
    register_interval_s: float = 30.0
    channel_expiry_ms: int = 120_000
    message_delay_level: str = DEFAULT_DELAY_LEVELS  # messageDelayLevel
    timer_max_delay_ms: int = DEFAULT_TIMER_MAX_DELAY_MS  # timerMaxDelaySec * 1000
    rebalance_lock_max_live_ms: int = 60_000  # rocketmq.broker.rebalance.lockMaxLiveTime
    transaction_timeout_ms: int = DEFAULT_TRANSACTION_TIMEOUT_MS  # transactionTimeOut
    transaction_check_interval_ms: int = DEFAULT_TRANSACTION_CHECK_INTERVAL_MS  # transactionCheckInterval
    transaction_check_max: int = DEFAULT_TRANSACTION_CHECK_MAX  # transactionCheckMax
    # Retention (gateway/retention.py), MessageStoreConfig's names.
    file_reserved_time_h: float = 72.0  # fileReservedTime, hours (pocketmq also takes fractions: 0.5)
    delete_when: str = "04"  # deleteWhen: the hours at which expired messages go, ";"-separated
    disk_max_used_space_ratio: int = 75  # diskMaxUsedSpaceRatio, percent: fuller, expired messages go at any hour
    disk_space_clean_forcibly_ratio: int = 85  # diskSpaceCleanForciblyRatio: fuller, the oldest go whatever age
    clean_file_forcibly_enable: bool = True  # cleanFileForciblyEnable
    clean_resource_interval_ms: int = 10_000  # cleanResourceInterval
    max_long_poll_ms: int = 25_000  # clients time out pulls at 30 s; never hold one that long
    # What one client may cost (remoting.limits); Apache's names where Apache has the setting.
    server_channel_max_idle_s: float = 120.0  # serverChannelMaxIdleTimeSeconds
    server_frame_read_timeout_s: float = 60.0  # serverFrameReadTimeoutSeconds
    write_buffer_high_water_mark: int = 64 * 1024  # writeBufferHighWaterMark (Netty's default when Apache's is 0)
    write_buffer_low_water_mark: int = 32 * 1024  # writeBufferLowWaterMark
    server_max_requests_in_flight: int = 1024  # serverMaxRequestsInFlight, per connection
    server_max_connections: int | None = None  # serverMaxConnections; None: the open-file limit less a reserve
    server_max_buffered_bytes: int = 256 * 1024 * 1024  # serverMaxBufferedBytes, large frames being received
    # ACL 1.0 (docs/acl.md): off by default, as in Apache. The file is Apache's plain_acl.yml.
    acl_enable: bool = False  # aclEnable
    acl_file: Path | None = None  # aclFile / --acl-file; default ${ROCKETMQ_HOME}/conf/plain_acl.yml

    def connection_limits(self) -> ConnectionLimits:
        return ConnectionLimits(
            max_frame_size=self.max_frame_size,
            idle_timeout_s=self.server_channel_max_idle_s,
            frame_timeout_s=self.server_frame_read_timeout_s,
            write_high_water=self.write_buffer_high_water_mark,
            write_low_water=self.write_buffer_low_water_mark,
            max_requests_in_flight=self.server_max_requests_in_flight,
        )

    @property
    def broker_addr(self) -> str:
        return f"{self.advertise_host}:{self.port}"


# broker.conf keys this broker understands, mapped to BrokerConfig fields.
BROKER_CONF_KEYS = {
    "brokerName": "broker_name",
    "brokerClusterName": "cluster",
    "namesrvAddr": "namesrv_addrs",
    "listenPort": "port",
    "brokerIP1": "advertise_host",
    "storePathRootDir": "data_dir",
    "autoCreateTopicEnable": "auto_create_topic",
    "validateSystemTopicWhenUpdateTopic": "validate_system_topic_when_update_topic",
    "defaultTopicQueueNums": "default_topic_queue_nums",
    "flushDiskType": "sync_flush",
    "maxMessageSize": "max_message_size",
    "regionId": "region_id",
    "traceOn": "trace_on",
    "registerNameServerPeriod": "register_interval_s",
    "messageDelayLevel": "message_delay_level",
    "timerMaxDelaySec": "timer_max_delay_ms",
    "rebalanceLockMaxLiveTime": "rebalance_lock_max_live_ms",
    "transactionTimeOut": "transaction_timeout_ms",
    "transactionCheckInterval": "transaction_check_interval_ms",
    "transactionCheckMax": "transaction_check_max",
    "fileReservedTime": "file_reserved_time_h",
    "deleteWhen": "delete_when",
    "diskMaxUsedSpaceRatio": "disk_max_used_space_ratio",
    "diskSpaceCleanForciblyRatio": "disk_space_clean_forcibly_ratio",
    "cleanFileForciblyEnable": "clean_file_forcibly_enable",
    "cleanResourceInterval": "clean_resource_interval_ms",
    "serverChannelMaxIdleTimeSeconds": "server_channel_max_idle_s",
    "serverFrameReadTimeoutSeconds": "server_frame_read_timeout_s",
    "writeBufferHighWaterMark": "write_buffer_high_water_mark",
    "writeBufferLowWaterMark": "write_buffer_low_water_mark",
    "serverMaxRequestsInFlight": "server_max_requests_in_flight",
    "serverMaxConnections": "server_max_connections",
    "serverMaxBufferedBytes": "server_max_buffered_bytes",
    "aclEnable": "acl_enable",
    "aclFile": "acl_file",
}


def broker_conf_values(config: BrokerConfig) -> dict[str, str]:
    """The broker.conf keys pocketmq uses with their current values as Apache writes them (GET_BROKER_CONFIG)."""
    out = {}
    for key, field_name in BROKER_CONF_KEYS.items():
        value = getattr(config, field_name)
        if field_name == "namesrv_addrs":
            text = ";".join(value)
        elif field_name == "sync_flush":
            text = "SYNC_FLUSH" if value else "ASYNC_FLUSH"
        elif field_name == "timer_max_delay_ms":
            text = str(value // 1000)
        elif field_name == "register_interval_s":
            text = str(int(value * 1000))
        elif field_name == "file_reserved_time_h":
            text = str(int(value)) if value == int(value) else str(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        else:
            text = str(value)
        out[key] = text
    return out


def acl_file_path(config: BrokerConfig) -> Path:
    """The ACL file of a broker with ``aclEnable``: ``aclFile`` / ``--acl-file``, else Apache's
    ``${ROCKETMQ_HOME}/conf/plain_acl.yml``."""
    if config.acl_file is not None:
        return config.acl_file
    home = os.environ.get("ROCKETMQ_HOME")
    if home:
        return Path(home) / "conf" / "plain_acl.yml"
    return Path("conf") / "plain_acl.yml"
