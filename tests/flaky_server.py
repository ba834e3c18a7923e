"""A loopback HTTP server in front of the real reward service that fails on demand.

Each request takes the next action from a script (or the default action when the script is empty):

* ``"ok"``: forward the request to the real service and relay its answer;
* ``"500"``, ``"502"``, ``"503"``, ``"408"``, ``"422"``: answer that status with a JSON body;
* ``"429:N"``: answer 429 with ``Retry-After: N``;
* ``"413:N"``: answer 413 when the request holds more than N items, else forward (recorded as
  ``"413"`` or ``"ok"``);
* ``"drop"``: read the request, then close the connection without answering.

Every request is recorded (path, number of items), so tests count attempts.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Attempt:
    method: str
    path: str
    items: int | None
    action: str
    body: bytes = b""


@dataclass
class FlakyServer:
    upstream: str
    default_action: str = "ok"
    script: deque[str] = field(default_factory=deque)
    attempts: list[Attempt] = field(default_factory=list)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, actions: Iterable[str]) -> None:
        with self.lock:
            self.script.extend(actions)

    def next_action(self) -> str:
        with self.lock:
            return self.script.popleft() if self.script else self.default_action

    def record(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def score_attempts(self) -> list[Attempt]:
        with self.lock:
            return [attempt for attempt in self.attempts if attempt.path.startswith("/v1/score")]


def _handler(server_state: FlakyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            items = None
            if body:
                try:
                    items = len(json.loads(body).get("items", []))
                except (ValueError, AttributeError):
                    items = None
            action = server_state.next_action()
            if action.startswith("413:"):
                action = "413" if items is not None and items > int(action[4:]) else "ok"
            server_state.record(Attempt(self.command, self.path, items, action, body))
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if action == "ok":
                upstream = httpx.request(
                    self.command,
                    server_state.upstream + self.path,
                    content=body or None,
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
                self._answer(upstream.status_code, upstream.content, {})
                return
            status, _, retry_after = action.partition(":")
            headers = {"Retry-After": retry_after} if retry_after else {}
            self._answer(int(status), json.dumps({"detail": f"injected {status}"}).encode(), headers)

        def _answer(self, status: int, content: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        do_GET = _serve
        do_POST = _serve

    return Handler


@contextmanager
def flaky_server(upstream: str, default_action: str = "ok") -> Iterator[FlakyServer]:
    """Run a :class:`FlakyServer` on a free loopback port for the duration of the block."""
    state = FlakyServer(upstream=upstream.rstrip("/"), default_action=default_action)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="flaky-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
