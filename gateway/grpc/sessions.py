"""The gRPC clients the broker knows: their settings (from Telemetry) and the stream to push commands on.

A 5.x client opens one Telemetry stream per endpoint as it starts and sends its ``Settings`` first; every other
call names the client in the ``x-mq-client-id`` metadata. Apache's proxy keeps the same two things
(GrpcClientSettingsManager, and the channel per client for transaction back-checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from codec.grpc_v2 import definition_pb2 as d
from codec.grpc_v2 import service_pb2 as pb

CLIENT_ID = "x-mq-client-id"


@dataclass(slots=True)
class Session:
    client_id: str
    settings: d.Settings
    connection_id: int
    send: Callable[[pb.TelemetryCommand], Awaitable[None]] | None = None  # None once its stream ended
    topics: set[str] = field(default_factory=set)


class Sessions:
    def __init__(self) -> None:
        self.by_client: dict[str, Session] = {}

    def update(
        self,
        client_id: str,
        settings: d.Settings,
        connection_id: int,
        send: Callable[[pb.TelemetryCommand], Awaitable[None]],
    ) -> Session:
        session = self.by_client.get(client_id)
        if session is None:
            session = self.by_client[client_id] = Session(client_id, settings, connection_id, send)
        else:
            session.settings, session.connection_id, session.send = settings, connection_id, send
        if settings.HasField("publishing"):
            session.topics = {t.name for t in settings.publishing.topics}
        return session

    def get(self, client_id: str) -> Session | None:
        return self.by_client.get(client_id)

    def connected(self, client_id: str) -> bool:
        """Whether the client's Telemetry stream is open (it has not gone away or terminated)."""
        session = self.by_client.get(client_id)
        return session is not None and session.send is not None

    def stream_ended(self, client_id: str, send: Callable[[pb.TelemetryCommand], Awaitable[None]]) -> None:
        session = self.by_client.get(client_id)
        if session is not None and session.send is send:
            session.send = None

    def terminated(self, client_id: str) -> None:
        self.by_client.pop(client_id, None)
