"""A webhook receiver on loopback for the alert tests: keeps what it took, and answers as a
test tells it to (a status, a sequence of statuses, a delay, redirects)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver(ThreadingHTTPServer):
    """Answers every request with ``statuses`` in turn, then ``status``, after ``delay``
    seconds; a path in ``redirects`` with its redirect. What it answered 2xx is kept."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, Any]] = []
        """(method, path, body) of each request answered 2xx, in order."""
        self.status = 200
        self.statuses: list[int] = []
        """Statuses to answer first, in turn, before ``status``."""
        self.delay = 0.0
        self.redirects: dict[str, tuple[int, str]] = {}
        """Paths answered with a redirect: status and Location."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    @property
    def received(self) -> list[Any]:
        """The bodies answered 2xx, in order."""
        with self.lock:
            return [body for _, _, body in self.requests]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification answered 2xx, in order."""
        return [alert for body in self.received for alert in body["alerts"]]

    def told(self, rule: str) -> list[str]:
        """The states ``rule``'s alerts were told in, in order."""
        return [alert["state"] for alert in self.alerts if alert["rule"] == rule]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        time.sleep(self.server.delay)
        if self.path in self.server.redirects:
            status, location = self.server.redirects[self.path]
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.server.lock:
            statuses = self.server.statuses
            status = statuses.pop(0) if statuses else self.server.status
            if status < 300:
                body = json.loads(raw) if raw else None
                self.server.requests.append((self.command, self.path, body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET = _answer

    def log_message(self, *args: Any) -> None:
        return None


@contextlib.contextmanager
def receiving(port: int = 0) -> Iterator[Receiver]:
    """A receiver on ``port`` (any free one by default), serving from a thread of its own."""
    server = Receiver(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
