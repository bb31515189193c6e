"""The progress file of `esm redrive`: ids of notices already replayed, one per line.

Each id is appended and fsynced right after its notice was replayed successfully, so an
interrupted redrive (Ctrl-C, crash, kill -9) re-run with the same file skips what was done
and replays the rest. A notice may be replayed twice only if the process dies between the
target's answer and the fsync: at-least-once, as everywhere in esm (ESM-SPEC §7).
"""

from __future__ import annotations

import os
from pathlib import Path


class DoneLog:
    """Append-only set of done notice ids backed by `path` (created on first `mark`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.exists():
            # A torn last line (crash mid-write) is not a complete id: ignore it.
            text = self.path.read_text(encoding="utf-8")
            lines = text.split("\n")
            complete = lines if text.endswith("\n") else lines[:-1]
            self.done = {line for line in complete if line}
        self._fd: int | None = None

    def __contains__(self, notice_id: str) -> bool:
        return notice_id in self.done

    def mark(self, notice_id: str) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, (notice_id + "\n").encode())
        os.fsync(self._fd)
        self.done.add(notice_id)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
