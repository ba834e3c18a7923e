"""Optional API keys: bearer authentication for every route but liveness (and, by a setting, metrics).

``/readyz`` answers without a key too, but then only ``{"ready": ...}`` and its status code, which is
what health checks need; the API documentation is public (it holds no data and spends nothing).

Keys come from ``UNIRG_API_KEYS`` (comma-separated) and from ``UNIRG_API_KEY_HASHES_FILE``, a file of
sha256 hex digests (one per line, optionally followed by a name) so that the service's host never holds
the keys themselves; ``unirg keys new`` makes a key and its line. With neither set, no key is needed
(the service binds to 127.0.0.1 by default).

A presented key is hashed and compared with every known digest by ``hmac.compare_digest``, all of
them every time, so neither the comparison nor the position of a match leaks through timing. Requests
are counted per key name in ``unirg_requests_by_key_total``; the key itself is never logged or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from reward_service import metrics
from reward_service.api import playground
from reward_service.settings import Settings

#: Routes answered without a key: liveness for orchestrators, the API documentation (the schema
#: holds no data and spends nothing; Swagger UI's Authorize button then sends the key for "Try it
#: out") and the playground's static page (a browser cannot send a key when it opens a page; the page
#: asks for one and sends it with every call that scores).
PUBLIC_PATHS = (
    frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
    | playground.PUBLIC_PATHS
)
PUBLIC_PREFIXES = ("/static-offline-docs/", *playground.PUBLIC_PREFIXES)
METRICS_PATH = "/metrics"
#: Answered without a key, but only with its status: health checks of Docker, compose and load balancers
#: cannot send a key; the details (profiles, endpoints, errors) need one.
SUMMARY_PATHS = frozenset({"/readyz"})

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class ApiKeyFileError(ValueError):
    """``UNIRG_API_KEY_HASHES_FILE`` cannot be read or has a malformed line."""


def key_digest(key: str) -> str:
    """The sha256 hex digest of a key: what a hashes file holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KnownKey:
    name: str
    digest: bytes


class KeyRing:
    """The accepted keys, by digest."""

    def __init__(self, keys: Sequence[KnownKey]) -> None:
        self._keys = tuple(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        keys = []
        for secret in settings.api_keys:
            digest = key_digest(secret.get_secret_value())
            keys.append(KnownKey(f"key-{digest[:8]}", bytes.fromhex(digest)))
        if settings.api_key_hashes_file is not None:
            keys += _read_hashes(settings.api_key_hashes_file)
        return cls(keys)

    def identify(self, key: str) -> str | None:
        """The name of ``key`` when it is accepted, else None (compares against every known digest)."""
        presented = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known in self._keys:
            if hmac.compare_digest(presented, known.digest) and found is None:
                found = known.name
        return found


def _read_hashes(path: Path) -> list[KnownKey]:
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ApiKeyFileError(f"cannot read UNIRG_API_KEY_HASHES_FILE {path}: {exc}") from exc
    keys = []
    for number, line in enumerate(lines, start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        digest, _, name = content.partition(" ")
        digest = digest.lower()
        if not _HEX_DIGEST.fullmatch(digest):
            raise ApiKeyFileError(
                f"{path}:{number}: expected a sha256 hex digest (64 characters, e.g. from `unirg keys hash`), "
                f"then an optional name; got {digest[:20]!r}"
            )
        keys.append(KnownKey(name.strip() or f"key-{digest[:8]}", bytes.fromhex(digest)))
    return keys


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return None


class ApiKeyMiddleware:
    """Answers 401 (with how to send the key) unless the request carries an accepted bearer key."""

    def __init__(self, app: ASGIApp, keys: KeyRing, *, metrics_public: bool) -> None:
        self.app = app
        self.keys = keys
        self.metrics_public = metrics_public

    def _is_public(self, path: str) -> bool:
        return (
            path in PUBLIC_PATHS
            or path.startswith(PUBLIC_PREFIXES)
            or (self.metrics_public and path == METRICS_PATH)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or self._is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        name = self.keys.identify(token) if token else None
        if scope["path"] in SUMMARY_PATHS:
            scope.setdefault("state", {})["authenticated"] = name is not None
            await self.app(scope, receive, send)
            return
        if name is None:
            reason = "missing" if token is None else ("malformed" if token == "" else "invalid")
            metrics.AUTH_FAILURES.labels(reason=reason).inc()
            await _unauthorized(reason, send)
            return
        metrics.labelled(metrics.REQUESTS_BY_KEY, name).inc()
        await self.app(scope, receive, send)


_HOW_TO_SEND = (
    "send the key as the header `Authorization: Bearer <key>` (curl: -H 'Authorization: Bearer <key>'; "
    "clients and adapters: UNIRG_REWARD_API_KEY)"
)
_MESSAGES = {
    "missing": f"this service needs an API key: {_HOW_TO_SEND}",
    "malformed": f"the Authorization header is not a bearer key: {_HOW_TO_SEND}",
    "invalid": "the API key is not accepted by this service: check it against UNIRG_API_KEYS or "
    "UNIRG_API_KEY_HASHES_FILE on the server",
}


async def _unauthorized(reason: str, send: Send) -> None:
    body = json.dumps({"detail": _MESSAGES[reason]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="unirg"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
