"""The `sqlite` window store (`window_state: {type: sqlite, path: …}`): tumbling-window
documents of a source that keeps no windows itself (Kafka), one row per (mapping, lane) in
a local SQLite file. For one replica, or several on one host sharing the file; replicas on
several hosts need a shared store (`redis`, `dynamodb`), since a rebalance can hand a
partition to any of them. `synchronous=FULL`: a document is durable when `save_window`
returns (esm.interfaces.KeepsWindows)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import orjson

from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    mapping TEXT NOT NULL, lane TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (mapping, lane))
"""


@dataclass(frozen=True, slots=True)
class SqliteWindowStoreSettings:
    path: str = field(default="esm-windows.sqlite", metadata={
        "min_length": 1, "doc": "SQLite file holding the window documents"})


class SqliteWindowStore:
    """Window documents in a SQLite file; the connection opens on first use."""

    Settings: ClassVar[type[SqliteWindowStoreSettings]] = SqliteWindowStoreSettings

    def __init__(self, settings: SqliteWindowStoreSettings, context: ConnectorContext) -> None:
        self.path = settings.path
        self.mapping = context.mapping
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def load_window(self, lane: str) -> Mapping[str, Any] | None:
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT document FROM windows WHERE mapping = ? AND lane = ?",
                    (self.mapping, lane)).fetchone()
            except (OSError, sqlite3.Error) as exc:
                raise SourceUnavailable(f"window store {self.path}: {exc}") from exc
        return None if row is None else dict(orjson.loads(row[0]))

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        with self._lock:
            try:
                self._db().execute(
                    "INSERT INTO windows (mapping, lane, document) VALUES (?, ?, ?) ON CONFLICT"
                    " (mapping, lane) DO UPDATE SET document = excluded.document",
                    (self.mapping, lane, orjson.dumps(document).decode()))
            except (OSError, sqlite3.Error) as exc:
                raise SourceUnavailable(f"window store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
