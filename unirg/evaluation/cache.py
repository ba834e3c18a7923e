"""The evaluation's disk cache: one row per (component fingerprint, reference, candidate).

A re-run of ``unirg eval`` after adding a system, a study or a profile computes only the new pairs.
SQLite (standard library) keeps one file that several runs may share; values are JSON.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_LOOKUP_CHUNK = 500  # SQLite's default limit on host parameters is 999


def result_key(fingerprint: str, reference: str, candidate: str) -> str:
    canonical = json.dumps([fingerprint, reference, candidate], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache:
    """A persistent map from :func:`result_key` to a JSON value; ``path=None`` keeps nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path)
            self._db.execute(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        if self._db is not None:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(
                    f"SELECT key, value FROM results WHERE key IN ({marks})", chunk
                ):
                    found[key] = json.loads(value)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, values: Mapping[str, Any]) -> None:
        if self._db is None or not values:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)",
                [(key, json.dumps(value, default=str)) for key, value in values.items()],
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
