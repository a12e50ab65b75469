"""pocketmq inside other programs' tests: ``serve()`` starts a name server and a broker on free loopback ports with a
fresh store, waits until every port accepts, and stops them at the end.

    from pocketmq.testing import serve

    with serve() as mq:                      # a subprocess (``pocketmq up --ready-file``)
        producer = Producer(namesrv=mq.namesrv_addr)
    with serve(in_process=True) as mq:       # a thread of this process
        ...

Fault rules and the protocol trace: ``add_fault(mq, code="SEND_MESSAGE_V2", respond="SYSTEM_BUSY", times=1)``,
``faults(mq)``, ``clear_faults(mq)``, ``trace_on(mq, path)``, ``trace_off(mq)`` (docs/testing.md).

For pytest the plugin (``pocketmq.testing.plugin``, registered through the ``pytest11`` entry point) gives the same
as fixtures. Other languages run ``pocketmq up --ready-file PATH`` and wait for PATH (docs/testing.md).
"""

from __future__ import annotations

from pocketmq.testing.faults import AdminError, add_fault, clear_faults, faults, remove_fault, trace_off, trace_on
from pocketmq.testing.serve import Endpoints, ServeError, serve

__all__ = [
    "AdminError",
    "Endpoints",
    "ServeError",
    "add_fault",
    "clear_faults",
    "faults",
    "remove_fault",
    "serve",
    "trace_off",
    "trace_on",
]
