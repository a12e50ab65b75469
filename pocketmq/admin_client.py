"""A small client of the broker's JSON admin API (``/api/...`` on the HTTP port), for the CLI and pocketmq.testing."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_HTTP = "http://127.0.0.1:8087"


class AdminError(RuntimeError):
    """The broker refused the request (its ``error`` text), or could not be reached."""


def endpoint_from(http: str | None, ready_file: str | None) -> str:
    """The HTTP endpoint: ``--http``, else the ``httpEndpoint`` of a ``--ready-file``, else ``POCKETMQ_HTTP``, else
    the default port."""
    http = http or (None if ready_file else os.environ.get("POCKETMQ_HTTP"))
    if http:
        return http if "://" in http else f"http://{http}"
    if ready_file:
        try:
            ready = json.loads(Path(ready_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AdminError(f"cannot read the ready file {ready_file}: {err}") from None
        endpoint = ready.get("httpEndpoint") if isinstance(ready, dict) else None
        if not endpoint:
            raise AdminError(f"{ready_file} names no httpEndpoint (is the HTTP port off?)")
        return str(endpoint)
    return DEFAULT_HTTP


def call(endpoint: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """GET ``path`` (or POST ``body`` as JSON); the decoded answer, or AdminError with the broker's reason."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(endpoint.rstrip("/") + path, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        with err:  # it holds the connection open until closed
            try:
                reason = json.loads(err.read()).get("error") or err.reason
            except (ValueError, AttributeError):
                reason = err.reason
        raise AdminError(f"{path}: {reason} (HTTP {err.code})") from None
    except (urllib.error.URLError, OSError) as err:
        raise AdminError(f"cannot reach pocketmq at {endpoint}: {getattr(err, 'reason', err)}") from None
