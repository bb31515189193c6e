"""The `file` destination: notices appended as JSON lines, fsynced before `send` returns.

One notice a line, so the file is readable with `jq`, `tail -f` and `read_notices` (which
`esm redrive` uses). Durability (DESIGN §7): `send` returns only after the line is written,
flushed and, with `fsync: true` (the default), fsynced; the parent directory is fsynced too
when the file is created or rotated, so the file itself survives a crash. A failed write is
cut back off the file, so a later notice never lands glued to half of an earlier one.

Settings:
    path: the file to append to (parent directories are created).
    fsync: fsync each notice (default true). Off trades durability for speed.
    max_bytes: rotate before a write would take the file past this size: the full file is
        renamed `<path>.1`, `<path>.2`, ... (the lowest number is the oldest) and a new one
        started. None (default) never rotates.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from esm.errors import ConfigError, DestinationError
from esm.interfaces import ConnectorContext
from esm.records import Record

try:  # orjson is a dependency; the fallback keeps the reader usable in bare tooling.
    import orjson
except ImportError:  # pragma: no cover - exercised only without orjson installed
    orjson = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileSettings:
    """The `file` destination's keys (rules read by esm.config.schema; checked again here so a
    hand-built instance is held to them too)."""

    path: str = field(metadata={"min_length": 1, "doc": "JSON-lines file to append to"})
    fsync: bool = field(default=True, metadata={"doc": "fsync every notice (durable)"})
    max_bytes: int | None = field(
        default=None, metadata={"min": 1, "doc": "rotate to <path>.N beyond this size"}
    )

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise ConfigError("path: must be a non-empty file path")
        if self.max_bytes is not None and (
            not isinstance(self.max_bytes, int) or self.max_bytes < 1
        ):
            raise ConfigError(f"max_bytes: must be a positive integer, got {self.max_bytes!r}")


class FileDestination:
    """Appends notices to a local file. Safe to call from several threads (one lock).

    Writes go through a raw O_APPEND descriptor, not a buffered file object, so nothing of
    a failed write lingers in a buffer to be flushed later into the middle of the file.
    """

    Settings: ClassVar[type[FileSettings]] = FileSettings

    def __init__(self, settings: FileSettings, context: ConnectorContext) -> None:
        # No I/O here (esm.interfaces): the file is opened by the first send.
        self._settings = settings
        self._path = Path(settings.path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        """Append `notice` as one JSON line; durable when this returns, else DestinationError."""
        line = _encode(notice, self._path)
        with self._lock:
            try:
                self._append(line)
            except OSError as exc:
                self._close_quietly()
                raise DestinationError(
                    f"file destination {self._path}: cannot write notice: {exc}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    # ---- under the lock ----------------------------------------------------------------

    def _append(self, line: bytes) -> None:
        fd = self._open()
        start = os.lseek(fd, 0, os.SEEK_END)
        limit = self._settings.max_bytes
        if limit is not None and start > 0 and start + len(line) > limit:
            fd = self._rotate()
            start = 0
        try:
            _write_all(fd, line)
            if self._settings.fsync:
                os.fsync(fd)
        except OSError:
            _truncate_quietly(fd, start, self._path)
            raise

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self._path.parent.mkdir(parents=True, exist_ok=True)
        created = not self._path.exists()
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.lseek(fd, 0, os.SEEK_END) > 0 and not _ends_with_newline(self._path):
                _write_all(fd, b"\n")  # a crash tore the last line; start on a fresh one
            if created and self._settings.fsync:
                _fsync_dir(self._path.parent)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return fd

    def _rotate(self) -> int:
        self._close_quietly()
        number = 1
        while self._path.with_name(f"{self._path.name}.{number}").exists():
            number += 1
        rotated = self._path.with_name(f"{self._path.name}.{number}")
        os.replace(self._path, rotated)
        log.info("file destination %s rotated to %s", self._path, rotated)
        return self._open()  # creates the new file and fsyncs the directory (the rename)

    def _close_quietly(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        except OSError as exc:
            log.warning("file destination %s: close failed: %s", self._path, exc)


def read_notices(path: str | os.PathLike[str], *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """The notices in a file written by FileDestination, oldest first, read line by line.

    A line that is not a JSON object is skipped with a warning naming the file and line: a
    last line without its newline is a write torn by a crash. With `strict`, any other bad
    line raises ValueError instead.
    """
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            notice = _decode(raw)
            if notice is not None:
                yield notice
                continue
            torn_tail = not raw.endswith(b"\n")
            if strict and not torn_tail:
                raise ValueError(f"{os.fspath(path)}:{number}: not a JSON object notice")
            log.warning("%s:%d: skipping a torn or invalid notice line", path, number)


def _encode(notice: Mapping[str, Any], path: Path) -> bytes:
    try:
        if orjson is not None:
            return orjson.dumps(notice, default=_jsonable, option=orjson.OPT_APPEND_NEWLINE)
        return (json.dumps(notice, default=_jsonable, separators=(",", ":")) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise DestinationError(
            f"file destination {path}: notice is not JSON-serialisable: {exc}"
        ) from exc


def _jsonable(value: Any) -> Any:
    """Mappings that are not dicts (MappingProxyType, frozen views) serialise as objects."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _decode(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw) if orjson is not None else json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate_quietly(fd: int, size: int, path: Path) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        log.warning("file destination %s: could not cut a failed write back: %s", path, exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
