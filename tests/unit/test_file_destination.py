"""connectors.file.destination: durable JSON-lines notices, and the reader for them."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import connectors.file.destination as file_module
from connectors.file.destination import FileDestination, read_notices
from esm.clock import FakeClock
from esm.errors import ConfigError, DestinationError
from esm.interfaces import ConnectorContext
from esm.registry import resolve


def destination(path: Path, **settings: Any) -> FileDestination:
    context = ConnectorContext(mapping="m", stop=threading.Event(), clock=FakeClock())
    return FileDestination(FileDestination.Settings(path=str(path), **settings), context)


def test_each_notice_is_appended_as_one_json_line(tmp_path: Path) -> None:
    # Given a destination in a directory that does not exist yet
    path = tmp_path / "dead" / "letters" / "orders.jsonl"
    dest = destination(path)
    # When two notices are sent
    dest.send({"requestContext": {"condition": "RecordAgeExceeded"}, "n": 1}, [])
    dest.send({"n": 2, "text": "ünïcode"}, [])
    dest.close()
    # Then the file holds them as two lines, in order
    assert path.read_bytes().count(b"\n") == 2
    assert list(read_notices(path)) == [
        {"requestContext": {"condition": "RecordAgeExceeded"}, "n": 1},
        {"n": 2, "text": "ünïcode"},
    ]


def test_constructor_does_no_io(tmp_path: Path) -> None:
    path = tmp_path / "later" / "n.jsonl"
    dest = destination(path)
    assert not path.parent.exists()
    dest.close()  # closing an unopened destination is fine
    assert not path.parent.exists()


def test_a_new_destination_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    first = destination(path)
    first.send({"n": 1}, [])
    first.close()
    second = destination(path)
    second.send({"n": 2}, [])
    second.close()
    assert [n["n"] for n in read_notices(path)] == [1, 2]


def test_send_after_close_reopens_the_file(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    dest = destination(path)
    dest.send({"n": 1}, [])
    dest.close()
    dest.send({"n": 2}, [])
    dest.close()
    assert [n["n"] for n in read_notices(path)] == [1, 2]


@pytest.mark.parametrize(("fsync", "expected_min"), [(True, 3), (False, 0)])
def test_every_notice_is_fsynced_before_send_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool, expected_min: int,
) -> None:
    # Given fsync on (the default) or off, and a recorder around os.fsync
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(file_module.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    dest = destination(tmp_path / "n.jsonl", fsync=fsync)
    # When three notices are sent
    for n in range(3):
        dest.send({"n": n}, [])
    dest.close()
    # Then each was fsynced (plus the directory once on creation), or none at all
    assert len(synced) >= expected_min
    if not fsync:
        assert synced == []


def test_concurrent_senders_never_interleave_lines(tmp_path: Path) -> None:
    # Given one destination shared by eight threads
    path = tmp_path / "n.jsonl"
    dest = destination(path, fsync=False)
    blob = "x" * 5000  # larger than a pipe buffer, so torn writes would show

    def sender(thread: int) -> None:
        for n in range(100):
            dest.send({"thread": thread, "n": n, "blob": blob}, [])

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dest.close()
    # Then every line is a whole notice, and each thread's notices are in its order
    notices = list(read_notices(path, strict=True))
    assert len(notices) == 800
    for thread in range(8):
        assert [x["n"] for x in notices if x["thread"] == thread] == list(range(100))


def test_a_failed_write_is_cut_back_off_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a disk that fills up halfway through one notice
    path = tmp_path / "n.jsonl"
    dest = destination(path)
    dest.send({"n": 1}, [])
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if b"poison" in bytes(data):
            real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(file_module.os, "write", half_then_full)
    # When that notice is sent / Then DestinationError names the file
    with pytest.raises(DestinationError, match=str(path)):
        dest.send({"n": 2, "poison": True}, [])
    # And once space is back, the next notice lands on a clean line
    monkeypatch.setattr(file_module.os, "write", real_write)
    dest.send({"n": 3}, [])
    dest.close()
    assert [n["n"] for n in read_notices(path, strict=True)] == [1, 3]


def test_unwritable_path_raises_destination_error_naming_it(tmp_path: Path) -> None:
    # Given a path whose parent is a regular file
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    dest = destination(blocker / "n.jsonl")
    # When sending / Then a DestinationError that names the path
    with pytest.raises(DestinationError, match="not-a-dir/n.jsonl"):
        dest.send({"n": 1}, [])


def test_unserialisable_notice_raises_destination_error(tmp_path: Path) -> None:
    dest = destination(tmp_path / "n.jsonl")
    with pytest.raises(DestinationError, match="not JSON-serialisable"):
        dest.send({"bad": object()}, [])


def test_read_only_mappings_in_a_notice_are_written_as_objects(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    dest = destination(path)
    dest.send({"payload": MappingProxyType({"Records": [MappingProxyType({"a": 1})]})}, [])
    dest.close()
    assert list(read_notices(path)) == [{"payload": {"Records": [{"a": 1}]}}]


def test_a_torn_last_line_is_skipped_and_the_next_notice_starts_on_a_fresh_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a file whose last write was torn by a crash
    path = tmp_path / "n.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "cut')
    # Then the reader tolerates the torn tail, even in strict mode
    assert list(read_notices(path, strict=True)) == [{"n": 1}]
    # When a destination appends after the crash
    dest = destination(path)
    dest.send({"n": 3}, [])
    dest.close()
    # Then the new notice is intact and the torn one is skipped with a warning naming it
    with caplog.at_level(logging.WARNING):
        assert list(read_notices(path)) == [{"n": 1}, {"n": 3}]
    assert "n.jsonl:2" in caplog.text


def test_strict_reading_rejects_a_bad_line_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_bytes(b'{"n": 1}\nnot json\n[1, 2]\n{"n": 4}\n')
    assert list(read_notices(path)) == [{"n": 1}, {"n": 4}]
    with pytest.raises(ValueError, match="n.jsonl:2: not a JSON object notice"):
        list(read_notices(path, strict=True))


def test_rotation_keeps_each_file_under_max_bytes_and_loses_nothing(tmp_path: Path) -> None:
    # Given a 100-byte limit and notices of about 40 bytes
    path = tmp_path / "n.jsonl"
    dest = destination(path, max_bytes=100)
    # When ten are sent
    for n in range(10):
        dest.send({"n": n, "pad": "x" * 20}, [])
    dest.close()
    # Then full files are renamed .1, .2, ... and every notice is in one of them, in order
    files = sorted(tmp_path.glob("n.jsonl.*"), key=lambda p: int(p.suffix[1:])) + [path]
    assert len(files) >= 4
    assert all(p.stat().st_size <= 100 for p in files)
    assert [x["n"] for p in files for x in read_notices(p)] == list(range(10))


def test_a_notice_larger_than_max_bytes_is_still_written(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    dest = destination(path, max_bytes=10)
    dest.send({"n": 1, "pad": "x" * 50}, [])
    dest.send({"n": 2, "pad": "x" * 50}, [])
    dest.close()
    assert [x["n"] for x in read_notices(Path(f"{path}.1"))] == [1]
    assert [x["n"] for x in read_notices(path)] == [2]


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"path": ""}, "path: must be a non-empty"), ({"path": "a", "max_bytes": 0}, "max_bytes")],
)
def test_invalid_settings_are_rejected(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FileDestination.Settings(**settings)


def test_the_registry_resolves_file_to_this_destination() -> None:
    assert resolve("destinations", "file") is FileDestination
