"""ACL 1.0 in front of a dispatch table: the broker's server RPC hook (BrokerController.initialAcl) and pocketmq's
name-server check of broker registrations.

A refused request is answered as Apache 4.9 answers an AclException thrown by the hook: ``SYSTEM_ERROR`` (1) with
the remark ``org.apache.rocketmq.acl.common.AclException: <reason>`` (Apache appends the Java stack frame).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from codec.codes import ACL_EXCEPTION_CLASS, ResponseCode
from codec.command import RemotingCommand
from remoting.connection import Connection
from remoting.server import DispatchTable
from runtime.logs import RateLimitedLog

log = logging.getLogger("pocketmq.acl")
# A client retrying with a wrong secret must not flood the log: at most 20 lines per 10 s.
_refusals = RateLimitedLog(log, interval_s=10.0, burst=20)


def refusal(cmd: RemotingCommand, reason: str) -> RemotingCommand:
    return cmd.response(ResponseCode.SYSTEM_ERROR, f"{ACL_EXCEPTION_CLASS}: {reason}")


# (request code, ext fields, body, remote IP) -> None to let the request through, else why not.
Decide = Callable[[int, Mapping[str, str], bytes, str], str | None]


class AclGuard:
    """Checks requests with ``decide`` (acl.validator). ``codes``: the request codes to check (None: all)."""

    def __init__(self, decide: Decide, codes: Collection[int] | None = None) -> None:
        self.decide = decide
        self.codes = frozenset(codes) if codes is not None else None

    def __call__(self, cmd: RemotingCommand, conn: Connection) -> RemotingCommand | None:
        if self.codes is not None and cmd.code not in self.codes:
            return None
        reason = self.decide(cmd.code, cmd.ext_fields, cmd.body, conn.peer[0])
        if reason is None:
            return None
        _refusals.info("refused request code %d from %s: %s", cmd.code, conn.peer_text, reason)
        return refusal(cmd, reason)

    def install(self, table: DispatchTable) -> DispatchTable:
        table.guard(self)
        return table
