"""Turning ACL on: broker.conf ``aclEnable`` / ``aclFile``, ``--acl-file``, Apache's default path, and a process that
refuses to start with an unusable file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import BrokerConfig, acl_file_path
from pocketmq.cli import build_broker_config, parser


def test_broker_conf_keys(tmp_path: Path) -> None:
    conf = tmp_path / "broker.conf"
    conf.write_text(f"aclEnable=true\naclFile={tmp_path / 'acl.yml'}\n")
    config = build_broker_config(parser().parse_args(["broker", "--config", str(conf)]), None)
    assert config.acl_enable is True
    assert acl_file_path(config) == tmp_path / "acl.yml"


def test_acl_is_off_by_default() -> None:
    config = build_broker_config(parser().parse_args(["broker"]), None)
    assert config.acl_enable is False and config.acl_file is None


def test_acl_file_option_turns_it_on(tmp_path: Path) -> None:
    config = build_broker_config(parser().parse_args(["up", "--acl-file", str(tmp_path / "a.yml")]), None)
    assert config.acl_enable is True and config.acl_file == tmp_path / "a.yml"


def test_default_path_is_apaches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ROCKETMQ_HOME", str(tmp_path))
    assert acl_file_path(BrokerConfig(acl_enable=True)) == tmp_path / "conf" / "plain_acl.yml"


@pytest.mark.parametrize("content", [None, "accounts: [{accessKey: x, secretKey: y}]"], ids=["missing", "invalid"])
def test_up_refuses_to_start_open(tmp_path: Path, content: str | None) -> None:
    acl = tmp_path / "plain_acl.yml"
    if content is not None:
        acl.write_text(content)
    cmd = [sys.executable, "-m", "pocketmq", "up", "--data-dir", str(tmp_path / "data"), "--namesrv-port", "0",
           "--broker-port", "0", "--grpc-port", "-1", "--http-port", "-1", "--acl-file", str(acl)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 1
    assert f"pocketmq: {acl}:" in proc.stderr and "Traceback" not in proc.stderr
    assert "listening" not in proc.stdout
