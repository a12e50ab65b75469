"""The ``pocketmq`` command: ``up`` (name server + broker in one process), ``namesrv``, ``broker``, ``clock``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from acl.plain_config import AclConfigError
from acl.validator import PlainAclFile
from gateway.broker import Broker
from gateway.clock import Clock, SystemClock, VirtualClock
from gateway.config import BrokerConfig, acl_file_path
from nameserver.server import NameServer
from pocketmq import __version__, cli_hooks, quick_look
from pocketmq.admin_client import AdminError
from pocketmq.clock_command import add_clock_command, run_clock_command
from pocketmq.settings import apply_broker_conf, env, frame_limit, local_address, read_broker_conf
from pocketmq.testing.serve import Endpoints
from remoting.limits import ConnectionLimits, ConnectionSlots
from runtime.gc_tuning import freeze_startup_objects, tune_for_server
from store.inspect import pending_half_messages

log = logging.getLogger("pocketmq")

# option -> (environment variable suffix, help)
BROKER_OPTIONS = {
    "data_dir": ("DATA_DIR", "where the SQLite store lives (default ./pocketmq-data)"),
    "host": ("HOST", "bind address (default 127.0.0.1)"),
    "broker_port": ("BROKER_PORT", "broker port (default 10911; 0 picks a free one)"),
    "advertise_host": ("ADVERTISE_HOST", "address put in routes (default: the bind host, or this host's address)"),
    "broker_name": ("BROKER_NAME", "broker name (default broker-a)"),
    "cluster": ("CLUSTER", "cluster name (default DefaultCluster)"),
    "config": ("CONFIG", "a RocketMQ broker.conf file (key=value)"),
    "grpc_port": ("GRPC_PORT", "gRPC port for 5.x clients (default 8081; 0 picks a free one; -1 turns it off)"),
    "http_port": ("HTTP_PORT", "HTTP port for /metrics (default 8087; 0 picks a free one; -1 turns it off)"),
    "grpc_tls_cert": ("GRPC_TLS_CERT", "PEM certificate for the gRPC port (default: self-signed, in the data dir)"),
    "grpc_tls_key": ("GRPC_TLS_KEY", "PEM private key of that certificate"),
    "ready_file": ("READY_FILE", "once every port accepts, write the addresses here as JSON (for test harnesses)"),
    "acl_file": ("ACL_FILE", "turn ACL 1.0 on with this plain_acl.yml (see docs/acl.md; broker.conf: aclEnable)"),
    "clock": ("CLOCK", "system (default) or virtual: time starts at now and moves only by `pocketmq clock advance`"),
    "trace": ("TRACE", "append one JSON line per request, response and gRPC call to this file (docs/testing.md)"),
}
CLOCK_MODES = ("system", "virtual")


def _add_broker_options(p: argparse.ArgumentParser) -> None:
    for name, (var, text) in BROKER_OPTIONS.items():
        kind = int if name.endswith("port") else str
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"{text}; env POCKETMQ_{var}")


def _opt(args: argparse.Namespace, name: str, var: str) -> str | None:
    value = getattr(args, name, None)
    return str(value) if value is not None else env(var)


def make_clock(args: argparse.Namespace) -> Clock:
    """The broker's clock from ``--clock`` / ``POCKETMQ_CLOCK``."""
    mode = (_opt(args, "clock", "CLOCK") or "system").strip().lower()
    if mode not in CLOCK_MODES:
        raise SystemExit(f"--clock must be one of {', '.join(CLOCK_MODES)}, not {mode!r}")
    if mode == "virtual":
        log.warning("virtual clock: time stands still until `pocketmq clock advance DURATION` moves it")
        return VirtualClock()
    return SystemClock()


def build_broker_config(args: argparse.Namespace, namesrv_addrs: list[str] | None) -> BrokerConfig:
    config = BrokerConfig()
    config_file = _opt(args, "config", "CONFIG")
    if config_file:
        config.config_file = Path(config_file)
        unknown = apply_broker_conf(config, read_broker_conf(Path(config_file)))
        if unknown:
            log.warning("%s: ignoring keys pocketmq does not use: %s", config_file, ", ".join(sorted(unknown)))
    if namesrv_addrs is not None:
        config.namesrv_addrs = namesrv_addrs
    if (v := _opt(args, "data_dir", "DATA_DIR")) is not None:
        config.data_dir = Path(v)
    elif not config_file:
        config.data_dir = Path("pocketmq-data")
    if (v := _opt(args, "host", "HOST")) is not None:
        config.host = v
    if (v := _opt(args, "broker_port", "BROKER_PORT")) is not None:
        config.port = int(v)
    if (v := _opt(args, "broker_name", "BROKER_NAME")) is not None:
        config.broker_name = v
    if (v := _opt(args, "cluster", "CLUSTER")) is not None:
        config.cluster = v
    advertise = _opt(args, "advertise_host", "ADVERTISE_HOST")
    if advertise is not None:
        config.advertise_host = advertise
    elif not (config_file and "brokerIP1" in read_broker_conf(Path(config_file))):
        config.advertise_host = local_address() if config.host in ("0.0.0.0", "::", "") else config.host
    if (v := _opt(args, "grpc_port", "GRPC_PORT")) is not None:
        config.grpc_port = None if int(v) < 0 else int(v)
        config.grpc_port_explicit = True
    if (v := _opt(args, "http_port", "HTTP_PORT")) is not None:
        config.http_port = None if int(v) < 0 else int(v)
        config.http_port_explicit = True
    if (v := _opt(args, "grpc_tls_cert", "GRPC_TLS_CERT")) is not None:
        config.grpc_tls_cert = Path(v)
    if (v := _opt(args, "grpc_tls_key", "GRPC_TLS_KEY")) is not None:
        config.grpc_tls_key = Path(v)
    if (v := _opt(args, "acl_file", "ACL_FILE")) is not None:
        config.acl_file = Path(v)
        config.acl_enable = True
    if (config.grpc_tls_cert is None) != (config.grpc_tls_key is None):
        raise SystemExit("--grpc-tls-cert and --grpc-tls-key go together")
    config.max_frame_size = frame_limit()
    return config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pocketmq", description="A RocketMQ-compatible name server and broker.")
    p.add_argument("--version", action="version", version=f"pocketmq {__version__}")
    p.add_argument("--log-level", default=env("LOG_LEVEL") or "INFO", help="logging level (env POCKETMQ_LOG_LEVEL)")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run a name server and one broker in one process")
    _add_broker_options(up)
    up.add_argument(
        "--namesrv-port", type=int, default=None, help="name server port (default 9876); env POCKETMQ_NAMESRV_PORT"
    )
    ns = sub.add_parser("namesrv", help="run a name server alone")
    ns.add_argument("--host", default=None, help="bind address (default 127.0.0.1); env POCKETMQ_HOST")
    ns.add_argument("--port", type=int, default=None, help="port (default 9876); env POCKETMQ_NAMESRV_PORT")
    ns.add_argument(
        "--acl-file",
        default=None,
        help="accept broker registrations only from this plain_acl.yml's white lists or signed by its admin "
        "account; env POCKETMQ_ACL_FILE",
    )
    br = sub.add_parser("broker", help="run a broker that registers with name servers")
    _add_broker_options(br)
    br.add_argument("--namesrv-addr", default=None, help="HOST:PORT[;HOST:PORT...]; env POCKETMQ_NAMESRV_ADDR")
    quick_look.add_commands(sub)
    tx = sub.add_parser("transactions", help="list pending transactional half messages (age, checks)")
    tx.add_argument("--data-dir", default=None, help="the broker's data dir (default ./pocketmq-data)")
    add_clock_command(sub)
    cli_hooks.add_parsers(sub)
    return p


def list_transactions(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir or env("DATA_DIR") or "pocketmq-data")
    now = int(time.time() * 1000)
    halves = pending_half_messages(data_dir / "store.db")
    _print(f"{len(halves)} pending half message(s) in {data_dir}")
    if halves:
        _print(
            f"{'offset':>14}  {'producer group':<24} {'transaction id':<34} {'age s':>8} {'checks':>6} "
            f"{'next check s':>12}"
        )
    for h in halves:
        _print(
            f"{h.phys_offset:>14}  {h.producer_group:<24} {h.transaction_id:<34} {(now - h.created_ms) / 1000:>8.1f} "
            f"{h.check_times:>6} {(h.next_check_ms - now) / 1000:>12.1f}"
        )


def _print(line: str) -> None:
    print(line, flush=True)


async def _until_signal(on_signal: anyio.abc.CancelScope, brokers: list[Broker]) -> None:
    """On SIGINT or SIGTERM, let the broker (once there is one in ``brokers``) answer what it holds, then stop."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            for broker in brokers:
                await broker.drain()
            on_signal.cancel()
            return


def start_trace(broker: Broker, args: argparse.Namespace) -> None:
    """``--trace FILE``: the protocol trace from the first request on."""
    path = _opt(args, "trace", "TRACE")
    if path:
        try:
            broker.hooks.trace_on(Path(path))
        except OSError as err:
            raise SystemExit(f"pocketmq: cannot write the trace to {path}: {err.strerror or err}") from None
        log.info("protocol trace: appending to %s", path)


def load_acl(config: BrokerConfig) -> PlainAclFile | None:
    """The ACL file when ACL is on; raises AclConfigError (before anything listens) when it cannot be used."""
    return PlainAclFile(acl_file_path(config)) if config.acl_enable else None


async def start_up(
    tg: anyio.abc.TaskGroup, args: argparse.Namespace, config: BrokerConfig, acl: PlainAclFile | None
) -> tuple[Broker, str]:
    """A name server and a broker in ``tg`` (``pocketmq up``), both listening when this returns; the broker and
    the name server address."""
    host = _opt(args, "host", "HOST") or "127.0.0.1"
    ns_port = int(_opt(args, "namesrv_port", "NAMESRV_PORT") or 9876)
    # One process, one file-descriptor limit and one heap: both listeners share the connection budget.
    slots = ConnectionSlots(config.server_max_connections, config.server_max_buffered_bytes)
    namesrv = NameServer(host, ns_port, limits=config.connection_limits(), slots=slots, acl_file=acl)
    ns_port = await tg.start(namesrv.run)
    ns_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    config.namesrv_addrs = [f"{ns_host}:{ns_port}"]
    broker = Broker(config, clock=make_clock(args), slots=slots, acl_file=acl)
    broker.hooks.attach(namesrv.server.dispatch, "namesrv")  # fault rules and the trace cover both servers
    start_trace(broker, args)
    await tg.start(broker.run)
    _print(f"pocketmq name server listening on {host}:{ns_port}")
    _print(f"pocketmq broker {config.broker_name} ({config.cluster}) listening on {config.host}:{config.port}, "
           f"advertised as {config.broker_addr}, data in {config.data_dir}")  # fmt: skip
    _print(f"namesrvAddr={ns_host}:{ns_port}")
    return broker, f"{ns_host}:{ns_port}"


async def serve_up(tg: anyio.abc.TaskGroup, args: argparse.Namespace, config: BrokerConfig) -> Endpoints:
    """``start_up``, then wait until the gRPC and HTTP ports are settled too (pocketmq.testing in a thread)."""
    broker, namesrv_addr = await start_up(tg, args, config, load_acl(config))
    return Endpoints.from_ready_file(await ready_info(broker, namesrv_addr))


async def run_up(args: argparse.Namespace) -> None:
    config = build_broker_config(args, None)
    acl = load_acl(config)
    async with anyio.create_task_group() as tg:
        brokers: list[Broker] = []
        tg.start_soon(_until_signal, tg.cancel_scope, brokers)
        broker, namesrv_addr = await start_up(tg, args, config, acl)
        brokers.append(broker)
        tg.start_soon(_announce_grpc, broker)
        tg.start_soon(_announce_http, broker)
        tg.start_soon(_write_ready_file, _opt(args, "ready_file", "READY_FILE"), broker, namesrv_addr)
        freeze_startup_objects()


async def _announce_grpc(broker: Broker) -> None:
    """The gRPC endpoint starts after the remoting one (its imports stay out of the start-up time)."""
    await broker.grpc_settled.wait()
    if broker.grpc_port is not None:
        _print(f"pocketmq gRPC endpoint (TLS and plaintext) listening on {broker.config.host}:{broker.grpc_port}")
        _print(f"grpcEndpoints={broker.grpc_host}:{broker.grpc_port}")


async def _announce_http(broker: Broker) -> None:
    await broker.http_settled.wait()
    if broker.http_port is not None:
        _print(f"pocketmq HTTP port (/metrics) listening on {broker.config.host}:{broker.http_port}")
        _print(f"httpEndpoint={broker.grpc_host}:{broker.http_port}")


async def _write_ready_file(path: str | None, broker: Broker, namesrv_addr: str) -> None:
    """``--ready-file``: once the gRPC and HTTP ports are settled (the remoting ones already listen), the addresses
    as one JSON object, written to a temporary name and renamed, so a reader never sees half of it."""
    if not path:
        return
    ready = await ready_info(broker, namesrv_addr)
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(ready, indent=2) + "\n", encoding="utf-8")
    temporary.replace(target)
    log.info("ready: addresses written to %s", target)


async def ready_info(broker: Broker, namesrv_addr: str) -> dict[str, Any]:
    """The addresses of a started broker, once its gRPC and HTTP ports are settled (the ``--ready-file``)."""
    await broker.grpc_settled.wait()
    await broker.http_settled.wait()
    host = broker.grpc_host
    return {
        "namesrvAddr": namesrv_addr,
        "brokerAddr": broker.config.broker_addr,
        "brokerName": broker.config.broker_name,
        "cluster": broker.config.cluster,
        "grpcEndpoint": f"{host}:{broker.grpc_port}" if broker.grpc_port is not None else None,
        "httpEndpoint": f"http://{host}:{broker.http_port}" if broker.http_port is not None else None,
        "dataDir": str(broker.config.data_dir.resolve()),
        "clock": "virtual" if isinstance(broker.ctx.clock, VirtualClock) else "system",
        "pid": os.getpid(),
    }


async def run_namesrv(args: argparse.Namespace) -> None:
    host = args.host or env("HOST") or "127.0.0.1"
    port = int(args.port if args.port is not None else env("NAMESRV_PORT") or 9876)
    acl_path = args.acl_file or env("ACL_FILE")
    acl = PlainAclFile(Path(acl_path)) if acl_path else None
    namesrv = NameServer(host, port, limits=ConnectionLimits(max_frame_size=frame_limit()), acl_file=acl)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_until_signal, tg.cancel_scope, [])
        port = await tg.start(namesrv.run)
        _print(f"pocketmq name server listening on {host}:{port}")
        _print(f"namesrvAddr={host if host not in ('0.0.0.0', '::') else local_address()}:{port}")


async def run_broker(args: argparse.Namespace) -> None:
    addrs = _opt(args, "namesrv_addr", "NAMESRV_ADDR")
    config = build_broker_config(args, [a for a in addrs.split(";") if a] if addrs else None)
    broker = Broker(config, clock=make_clock(args))
    start_trace(broker, args)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_until_signal, tg.cancel_scope, [broker])
        port = await tg.start(broker.run)
        _print(f"pocketmq broker {config.broker_name} ({config.cluster}) listening on {config.host}:{port}, "
               f"advertised as {config.broker_addr}, data in {config.data_dir}")  # fmt: skip
        _print(f"namesrvAddr={';'.join(config.namesrv_addrs)}")
        tg.start_soon(_announce_grpc, broker)
        tg.start_soon(_announce_http, broker)
        tg.start_soon(_write_ready_file, _opt(args, "ready_file", "READY_FILE"), broker, ";".join(config.namesrv_addrs))
        freeze_startup_objects()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "transactions":
        list_transactions(args)
        return
    if args.command in quick_look.COMMANDS:
        try:
            quick_look.run(args, _print)
        except AdminError as err:
            raise SystemExit(f"pocketmq {args.command}: {err}") from None
        return
    if args.command == "clock":
        run_clock_command(args)
        return
    if args.command in cli_hooks.COMMANDS:
        raise SystemExit(cli_hooks.run(args))
    runner = {"up": run_up, "namesrv": run_namesrv, "broker": run_broker}[args.command]
    tune_for_server()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(runner, args, backend="asyncio", backend_options={"use_uvloop": True})
    except AclConfigError as err:  # asked for ACL with a file it cannot use: refuse to run open
        raise SystemExit(f"pocketmq: {err}") from None
