"""A local HTTP receiver for webhook tests: records every request, answers ``fail_first`` of
them with 500, and verifies Standard Webhooks signatures with the specification's library."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


class Receiver:
    def __init__(self, fail_first: int = 0):
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = 500 if len(owner.requests) <= owner.fail_first else 204
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """The payload of every request, each signature checked with ``secret`` (raises if not)."""
        out = []
        for r in self.requests:
            headers = {k.lower(): v for k, v in r["headers"].items()}
            out.append(Webhook(secret).verify(r["body"], headers))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def payload_types(receiver: Receiver) -> list[str]:
    return [json.loads(r["body"])["type"] for r in receiver.requests]
