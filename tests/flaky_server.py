"""A stand-in in front of the real reward service that fails on demand.

:class:`FlakyServer` answers as its script says; reach it through ``flaky.transport`` (an
``httpx.MockTransport``, for clients that accept a transport) or, for code that only takes a URL (the
framework adapters, a spawned process), on a loopback port with :func:`flaky_server`. Its upstream is an
``httpx.Client`` on the real service: the app in this process (tests/in_process.py) or ``unirg serve``.

Each request takes the next action from a script (or the default action when the script is empty):

* ``"ok"``: forward the request (its body, content type and API key) upstream and relay the answer;
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
from collections.abc import Iterable, Iterator, Mapping
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


#: The answer to a request: status, JSON body and extra headers; None means "drop the connection".
Answer = tuple[int, bytes, dict[str, str]] | None


@dataclass
class FlakyServer:
    upstream: httpx.Client
    default_action: str = "ok"
    script: deque[str] = field(default_factory=deque)
    attempts: list[Attempt] = field(default_factory=list)
    #: Where clients reach it: a name for ``transport`` users, the loopback URL under :func:`flaky_server`.
    base_url: str = "http://flaky.test"
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

    def answer(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Record one request (``path`` with its query) and answer it as the script says."""
        items = None
        if body:
            try:
                items = len(json.loads(body).get("items", []))
            except (ValueError, AttributeError):
                items = None
        action = self.next_action()
        if action.startswith("413:"):
            action = "413" if items is not None and items > int(action[4:]) else "ok"
        self.record(Attempt(method, path, items, action, body))
        if action == "drop":
            return None
        if action == "ok":
            forwarded = {"Content-Type": "application/json"}
            if "authorization" in headers:
                forwarded["Authorization"] = headers["authorization"]
            upstream = self.upstream.request(
                method, path, content=body or None, headers=forwarded, timeout=60
            )
            return upstream.status_code, upstream.content, {}
        status, _, retry_after = action.partition(":")
        extra = {"Retry-After": retry_after} if retry_after else {}
        return int(status), json.dumps({"detail": f"injected {status}"}).encode(), extra

    @property
    def transport(self) -> httpx.MockTransport:
        """A transport (sync and async) that answers like the loopback server, without a socket."""
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        answer = self.answer(request.method, request.url.raw_path.decode(), request.content, request.headers)
        if answer is None:  # what httpx raises when a server closes the connection without answering
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        status, content, headers = answer
        return httpx.Response(
            status, content=content, headers={"Content-Type": "application/json", **headers}
        )


def _handler(server_state: FlakyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = server_state.answer(self.command, self.path, body, headers)
            if answer is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._answer(*answer)

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
def flaky_server(upstream: httpx.Client, default_action: str = "ok") -> Iterator[FlakyServer]:
    """Run a :class:`FlakyServer` on a free loopback port for the duration of the block."""
    state = FlakyServer(upstream=upstream, default_action=default_action)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # Polled every 50 ms for shutdown (the default 0.5 s would add that to every test's teardown).
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="flaky-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
