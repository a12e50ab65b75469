"""The broker's gRPC listener: the MessagingService methods on a ``GrpcServer`` with the broker's TLS and limits.

Imported when the broker starts its gRPC endpoint, after the remoting one is up: protobuf, h2 and the generated
modules are not part of the remoting start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.grpc.faults import CallFaults
from gateway.grpc.service import MessagingService
from remoting.grpc_server import GrpcLimits, GrpcServer
from remoting.grpc_tls import self_signed, server_context

if TYPE_CHECKING:
    from gateway.broker import Broker

__all__ = ["CallFaults", "build"]


def build(broker: Broker) -> tuple[GrpcServer, MessagingService]:
    config = broker.config
    service = MessagingService(broker.ctx, broker.send_handler)

    def tls():  # type: ignore[no-untyped-def]
        if config.grpc_tls_cert is not None and config.grpc_tls_key is not None:
            return server_context(config.grpc_tls_cert, config.grpc_tls_key)
        return server_context(*self_signed(config.data_dir))

    limits = GrpcLimits(max_message_size=config.max_frame_size, idle_timeout_s=config.server_channel_max_idle_s)
    server = GrpcServer(service.methods(), tls_context=tls, limits=limits, slots=broker.server.slots, name="grpc")
    return server, service
