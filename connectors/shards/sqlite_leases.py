"""The embedded lease table and checkpoint store: one SQLite file (`checkpoint: {type: sqlite}`).

The default for a single replica. Because every lease write is one conditional UPDATE and
SQLite serialises writers across processes (WAL mode, busy timeout), several daemons on one
host sharing the file also split shards correctly. `synchronous=FULL` makes a checkpoint
durable before `checkpoint()` returns. Also usable as a plain `esm.interfaces.CheckpointStore`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from connectors.shards.leases import Lease
from esm.errors import SourceUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    mapping TEXT NOT NULL, shard_id TEXT NOT NULL, owner TEXT, counter INTEGER NOT NULL,
    checkpoint TEXT NOT NULL, parents TEXT NOT NULL DEFAULT '[]', window TEXT,
    PRIMARY KEY (mapping, shard_id))
"""
# Files written before tumbling windows lack the column.
_ADD_WINDOW = "ALTER TABLE leases ADD COLUMN window TEXT"


class SqliteLeaseTable:
    """Lease rows in a local SQLite file; the connection opens on first use."""

    def __init__(self, path: str, busy_timeout_seconds: float = 10.0) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_seconds,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(leases)")}
                if "window" not in columns:
                    conn.execute(_ADD_WINDOW)
            except (OSError, sqlite3.Error) as exc:
                raise SourceUnavailable(f"checkpoint file {self.path}: {exc}") from exc
            self._conn = conn
        return self._conn

    def _write(self, sql: str, params: tuple[object, ...]) -> bool:
        with self._lock:
            try:
                return self._db().execute(sql, params).rowcount == 1
            except sqlite3.Error as exc:
                raise SourceUnavailable(f"checkpoint file {self.path}: {exc}") from exc

    def list(self, mapping: str) -> list[Lease]:
        with self._lock:
            try:
                rows = self._db().execute(
                    "SELECT shard_id, owner, counter, checkpoint, parents, window FROM leases"
                    " WHERE mapping = ? ORDER BY shard_id", (mapping,)).fetchall()
            except sqlite3.Error as exc:
                raise SourceUnavailable(f"checkpoint file {self.path}: {exc}") from exc
        return [Lease(r[0], r[1], int(r[2]), r[3], tuple(json.loads(r[4])), r[5]) for r in rows]

    def create(self, mapping: str, lease: Lease) -> bool:
        return self._write(
            "INSERT OR IGNORE INTO leases (mapping, shard_id, owner, counter, checkpoint,"
            " parents) VALUES (?, ?, ?, ?, ?, ?)",
            (mapping, lease.shard_id, lease.owner, lease.counter, lease.checkpoint,
             json.dumps(list(lease.parent_ids))))

    def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        return self._write(
            "UPDATE leases SET counter = counter + 1 WHERE mapping = ? AND shard_id = ?"
            " AND owner = ? AND counter = ?", (mapping, shard_id, owner, counter))

    def take(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        return self._write(
            "UPDATE leases SET owner = ?, counter = counter + 1 WHERE mapping = ?"
            " AND shard_id = ? AND counter = ?", (owner, mapping, shard_id, counter))

    def checkpoint(self, mapping: str, shard_id: str, owner: str, checkpoint: str) -> bool:
        return self._write(
            "UPDATE leases SET checkpoint = ? WHERE mapping = ? AND shard_id = ? AND owner = ?",
            (checkpoint, mapping, shard_id, owner))

    def save_window(self, mapping: str, shard_id: str, owner: str, window: str) -> bool:
        return self._write(
            "UPDATE leases SET window = ? WHERE mapping = ? AND shard_id = ? AND owner = ?",
            (window, mapping, shard_id, owner))

    def release(self, mapping: str, shard_id: str, owner: str) -> bool:
        return self._write(
            "UPDATE leases SET owner = NULL WHERE mapping = ? AND shard_id = ? AND owner = ?",
            (mapping, shard_id, owner))

    # -- esm.interfaces.CheckpointStore ---------------------------------------------------

    def load(self, mapping: str, lane: str) -> str | None:
        for lease in self.list(mapping):
            if lease.shard_id == lane:
                return lease.checkpoint
        return None

    def save(self, mapping: str, lane: str, position: str) -> None:
        self._write(
            "INSERT INTO leases (mapping, shard_id, owner, counter, checkpoint) VALUES"
            " (?, ?, NULL, 0, ?) ON CONFLICT (mapping, shard_id) DO UPDATE SET"
            " checkpoint = excluded.checkpoint", (mapping, lane, position))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
