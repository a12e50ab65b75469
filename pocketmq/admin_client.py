"""The commands that talk to a running broker (``pocketmq send``, ``peek``, ``groups``...) do it through its JSON
admin API on the HTTP port (gateway/admin_api.py). Where that is: ``--http URL``, else ``--ready-file PATH`` (what
``pocketmq up --ready-file`` wrote), else ``POCKETMQ_HTTP``, else http://127.0.0.1:8087."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_HTTP = "http://127.0.0.1:8087"
TIMEOUT_S = 35.0  # the port answers within 30 s (gateway/http_endpoint.py)


class AdminError(RuntimeError):
    """The broker refused (its error text), or could not be reached."""


def add_endpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http", default=None, help=f"the broker's HTTP port (default {DEFAULT_HTTP}; env POCKETMQ_HTTP)")
    p.add_argument(
        "--ready-file", default=None, help="take the HTTP address from what `pocketmq up --ready-file` wrote"
    )


def endpoint(args: argparse.Namespace) -> str:
    if getattr(args, "http", None):
        url = str(args.http)
        return url if "://" in url else f"http://{url}"
    if getattr(args, "ready_file", None):
        try:
            ready = json.loads(Path(args.ready_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AdminError(f"cannot read the ready file {args.ready_file}: {err}") from None
        if not ready.get("httpEndpoint"):
            raise AdminError(f"{args.ready_file}: that pocketmq runs without its HTTP port")
        return str(ready["httpEndpoint"])
    return os.environ.get("POCKETMQ_HTTP") or DEFAULT_HTTP


class AdminClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def get(self, path: str, **query: Any) -> Any:
        params = {k: str(v) for k, v in query.items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self._call(urllib.request.Request(self.base_url + path + suffix))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        return self._call(urllib.request.Request(self.base_url + path, data=data, headers=headers, method="POST"))

    def _call(self, req: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as err:
            with err:  # it holds its connection open until closed
                try:
                    detail = json.loads(err.read()).get("error", "")
                except (ValueError, AttributeError):
                    detail = ""
            raise AdminError(f"{err.code} {err.reason}: {detail}".rstrip(": ")) from None
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise AdminError(f"cannot reach pocketmq at {self.base_url}: {reason}") from None
