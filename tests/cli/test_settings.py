"""Command-line settings: broker.conf parsing, environment variables and their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketmq.cli import build_broker_config, parser
from pocketmq.settings import apply_broker_conf, read_broker_conf

BROKER_CONF = """\
# a RocketMQ broker.conf
brokerClusterName = TestCluster
brokerName=broker-x
brokerId=0
namesrvAddr=10.0.0.1:9876;10.0.0.2:9876
listenPort=20911
brokerIP1=192.0.2.7
storePathRootDir=/var/lib/rmq
autoCreateTopicEnable=false
defaultTopicQueueNums=8
flushDiskType=SYNC_FLUSH
maxMessageSize=1048576
deleteWhen=01;13
fileReservedTime=0.5
diskMaxUsedSpaceRatio=60
"""


def test_broker_conf_keys_apply_and_unknown_keys_are_reported(tmp_path: Path) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text(BROKER_CONF)
    args = parser().parse_args(["broker", "--config", str(conf)])
    config = build_broker_config(args, None)
    assert config.cluster == "TestCluster"
    assert config.broker_name == "broker-x"
    assert config.namesrv_addrs == ["10.0.0.1:9876", "10.0.0.2:9876"]
    assert config.port == 20911
    assert config.advertise_host == "192.0.2.7"
    assert config.data_dir == Path("/var/lib/rmq")
    assert config.auto_create_topic is False
    assert config.default_topic_queue_nums == 8
    assert config.sync_flush is True
    assert config.max_message_size == 1048576
    from gateway.config import BrokerConfig

    config = BrokerConfig()
    assert sorted(apply_broker_conf(config, read_broker_conf(conf))) == ["brokerId"]
    assert (config.delete_when, config.file_reserved_time_h, config.disk_max_used_space_ratio) == ("01;13", 0.5, 60)


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text("brokerName=from-file\nbrokerClusterName=file-cluster\nlistenPort=1000\n")
    monkeypatch.setenv("POCKETMQ_BROKER_NAME", "from-env")
    monkeypatch.setenv("POCKETMQ_CLUSTER", "env-cluster")
    args = parser().parse_args(["up", "--config", str(conf), "--broker-name", "from-flag"])
    config = build_broker_config(args, ["127.0.0.1:9876"])
    assert config.broker_name == "from-flag"
    assert config.cluster == "env-cluster"
    assert config.port == 1000


def test_defaults_for_up() -> None:
    config = build_broker_config(parser().parse_args(["up"]), ["127.0.0.1:9876"])
    assert (config.host, config.port, config.advertise_host) == ("127.0.0.1", 10911, "127.0.0.1")
    assert (config.broker_name, config.cluster) == ("broker-a", "DefaultCluster")
    assert config.data_dir == Path("pocketmq-data")
    assert config.auto_create_topic and config.default_topic_queue_nums == 4 and not config.sync_flush


def test_advertise_host_defaults_to_a_real_address_when_binding_everything() -> None:
    config = build_broker_config(parser().parse_args(["up", "--host", "0.0.0.0"]), ["127.0.0.1:9876"])
    assert config.advertise_host not in ("0.0.0.0", "")
    explicit = build_broker_config(
        parser().parse_args(["up", "--host", "0.0.0.0", "--advertise-host", "192.0.2.9"]), ["127.0.0.1:9876"]
    )
    assert explicit.advertise_host == "192.0.2.9"


def test_transactions_lists_pending_half_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from pocketmq.cli import main
    from store.migrations import migrate

    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "store.db", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO half_messages VALUES (4096, 'payments', 'TX1', 'pending', 2, 0, 0, NULL)")
    conn.execute("INSERT INTO half_messages VALUES (8192, 'payments', 'TX2', 'committed', 0, 0, 0, 5)")
    conn.close()
    main(["transactions", "--data-dir", str(data)])
    out = capsys.readouterr().out
    assert "1 pending half message(s)" in out
    assert "payments" in out and "TX1" in out and "TX2" not in out


def test_connection_limits_and_system_topic_check_come_from_broker_conf(tmp_path: Path) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text(
        "serverChannelMaxIdleTimeSeconds=30\nserverFrameReadTimeoutSeconds=5\nwriteBufferHighWaterMark=0\n"
        "writeBufferLowWaterMark=1024\nserverMaxRequestsInFlight=16\nserverMaxConnections=100\n"
        "serverMaxBufferedBytes=1048576\nvalidateSystemTopicWhenUpdateTopic=false\n"
    )
    config = build_broker_config(parser().parse_args(["broker", "--config", str(conf)]), None)
    limits = config.connection_limits()
    assert (limits.idle_timeout_s, limits.frame_timeout_s) == (30.0, 5.0)
    assert (limits.write_high_water, limits.write_low_water) == (64 * 1024, 1024)  # 0 keeps Netty's default
    assert limits.max_requests_in_flight == 16
    assert (config.server_max_connections, config.server_max_buffered_bytes) == (100, 1048576)
    assert config.validate_system_topic_when_update_topic is False
