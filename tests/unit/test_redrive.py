"""`esm redrive`: replaying on-failure notices from a file destination to the mapping's
target, with dry run, progress, summary, and idempotent re-runs (esm.redrive.replay*)."""

from __future__ import annotations

import io
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.redis.destination import RedisStreamDestinationSettings
from connectors.redis.destination import iter_notices as redis_notices
from esm.cli import main
from esm.redrive.replay import redrive
from esm.redrive.sources import NoticeEntry, file_notices, notice_id
from esm.redrive.state import DoneLog

_received: list[int] = []
_fail_ids: set[int] = set()


def handle(event: dict[str, Any], context: Any) -> None:
    """The mapping's target: fails for ids in _fail_ids, records the others."""
    ids = [json.loads(r["body"])["id"] for r in event["Records"]]
    if _fail_ids & set(ids):
        raise ValueError(f"still failing: {ids}")
    _received.extend(ids)


@pytest.fixture(autouse=True)
def _reset() -> None:
    _received.clear()
    _fail_ids.clear()


def notice(ids: list[int], with_payload: bool = True) -> dict[str, Any]:
    records = [{"eventSource": "esm:memory", "messageId": f"lane-0:{n}",
                "body": json.dumps({"id": n})} for n in ids]
    value: dict[str, Any] = {"requestContext": {"requestId": f"req-{ids}",
                                                "condition": "RetryAttemptsExhausted"},
                             "version": "1.0"}
    if with_payload:
        value["payload"] = {"Records": records}
    return value


def setup_mapping(tmp_path: Path, notices: list[dict[str, Any]]) -> tuple[Path, Path]:
    dead = tmp_path / "dead.jsonl"
    dead.write_text("".join(json.dumps(n) + "\n" for n in notices))
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: memory}}
    target: {{type: python, handler: "tests.unit.test_redrive:handle"}}
    destination_config: {{on_failure: {{type: file, path: "{dead}"}}}}
""")
    return config, dead


def run_cli(config: Path, state: Path, *extra: str) -> int:
    return main(["redrive", str(config), "--mapping", "orders", "--state", str(state),
                 "--progress", "off", *extra])


def test_replays_every_notice_payload_to_the_target_and_prints_a_summary(tmp_path, capsys):
    # Given two dead-lettered batches in the mapping's file destination
    config, _ = setup_mapping(tmp_path, [notice([1, 2]), notice([3])])
    # When they are redriven
    code = run_cli(config, tmp_path / "state")
    # Then the target received every record and the summary says so
    assert code == 0
    assert sorted(_received) == [1, 2, 3]
    out = capsys.readouterr().out
    assert "2 notice(s)" in out and re.search(r"replayed\s+2", out)


def test_a_rerun_skips_notices_already_replayed(tmp_path, capsys):
    # Given a completed redrive
    config, _ = setup_mapping(tmp_path, [notice([1]), notice([2])])
    assert run_cli(config, tmp_path / "state") == 0
    _received.clear()
    # When it runs again with the same progress file
    code = run_cli(config, tmp_path / "state")
    # Then nothing is replayed twice
    assert code == 0 and _received == []
    assert re.search(r"already done \(skipped\)\s+2", capsys.readouterr().out)


def test_a_notice_that_fails_again_is_not_marked_and_is_retried_next_run(tmp_path):
    # Given one batch whose record still fails
    config, _ = setup_mapping(tmp_path, [notice([1]), notice([2])])
    _fail_ids.add(2)
    # When redriven, then fixed and redriven again
    first = run_cli(config, tmp_path / "state")
    _fail_ids.clear()
    second = run_cli(config, tmp_path / "state")
    # Then the first run exits 1 and the second replays only the failed notice
    assert (first, second) == (1, 0)
    assert _received == [1, 2]


def test_dry_run_invokes_nothing_and_writes_no_progress(tmp_path, capsys):
    config, _ = setup_mapping(tmp_path, [notice([1]), notice([2], with_payload=False)])
    code = run_cli(config, tmp_path / "state", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0 and _received == []
    assert not (tmp_path / "state").exists()
    assert "(dry run)" in out and re.search(r"would replay\s+1", out)
    assert re.search(r"no payload \(skipped\)\s+1", out)


def test_unknown_mapping_and_source_without_produce_hook_are_bad_input(tmp_path, capsys):
    config, dead = setup_mapping(tmp_path, [notice([1])])
    assert main(["redrive", str(config), "--mapping", "nope", "--progress", "off"]) == 2
    assert "no mapping named 'nope'" in capsys.readouterr().err
    kinesis = tmp_path / "kinesis.yaml"
    kinesis.write_text(f"""
mappings:
  - name: orders
    source: {{type: kinesis, stream_name: s, starting_position: TRIM_HORIZON,
              region: us-east-1}}
    target: {{type: python, handler: "tests.unit.test_redrive:handle"}}
    destination_config: {{on_failure: {{type: file, path: "{dead}"}}}}
""")
    assert run_cli(kinesis, tmp_path / "state", "--to", "source") == 2
    assert "no produce hook" in capsys.readouterr().err


def test_interrupted_redrive_stops_between_notices_and_resumes_later(tmp_path):
    # Given three notices and a stop requested after the first replay
    entries = [NoticeEntry(f"n{i}", notice([i])) for i in range(3)]
    stop = threading.Event()
    replayed: list[dict[str, Any]] = []

    def replay(event: dict[str, Any]) -> None:
        replayed.append(event)
        stop.set()

    done = DoneLog(tmp_path / "state")
    summary = redrive(entries, replay, done, stop=stop)
    done.close()
    # When a new run starts with the same progress file
    again = DoneLog(tmp_path / "state")
    rest = redrive(entries, lambda event: None, again)
    # Then the first run was interrupted after one and the second did only the other two
    assert summary.interrupted and summary.replayed == 1 and len(replayed) == 1
    assert (rest.already_done, rest.replayed) == (1, 2)


def test_progress_bar_reaches_the_total(tmp_path):
    stream = io.StringIO()
    entries = [NoticeEntry(f"n{i}", notice([i])) for i in range(4)]
    redrive(entries, lambda event: None, DoneLog(tmp_path / "s"), progress_stream=stream)
    assert stream.getvalue().rstrip().endswith("4/4 replayed=4 failed=0")


def test_progress_file_ignores_a_torn_last_line(tmp_path):
    path = tmp_path / "state"
    path.write_text("a\nb\npartial")
    assert DoneLog(path).done == {"a", "b"}


def test_notice_ids_are_stable_for_equal_content_and_differ_otherwise(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text(json.dumps(notice([1])) + "\n" + json.dumps(notice([2])) + "\n")
    ids = [entry.id for entry in file_notices(str(path))]
    assert ids[0] == notice_id(notice([1])) and ids[0] != ids[1]


def test_payload_given_as_escaped_json_string_is_replayed(tmp_path):
    value = notice([5])
    value["payload"] = json.dumps(value["payload"])
    events: list[dict[str, Any]] = []
    summary = redrive([NoticeEntry("x", value)], events.append, DoneLog(tmp_path / "s"))
    assert summary.replayed == 1 and events[0]["Records"][0]["messageId"] == "lane-0:5"


class PagingRedis:
    """XRANGE over an in-memory stream, honouring min (inclusive or '(' exclusive) and count."""

    def __init__(self, n: int) -> None:
        self.entries = [(f"{i}-0".encode(), {b"body": json.dumps(notice([i])).encode()})
                        for i in range(1, n + 1)]
        self.calls = 0

    def xrange(self, name: str, min: str, max: str, count: int) -> list[Any]:  # noqa: A002
        self.calls += 1
        if min == "-":
            start = 0
        else:
            after = int(min.lstrip("(").split("-")[0])
            start = next((i for i, (eid, _) in enumerate(self.entries)
                          if int(eid.decode().split("-")[0]) > after), len(self.entries))
        return self.entries[start:start + count]


def test_redis_notices_page_through_the_whole_stream_once():
    client = PagingRedis(1001)
    settings = RedisStreamDestinationSettings(stream="dead")
    entries = list(redis_notices(settings, {}, client=client))
    assert len(entries) == 1001 and len({nid for nid, _ in entries}) == 1001
    assert entries[0][0] == "redis:1-0" and entries[-1][1]["payload"]["Records"][0][
        "messageId"] == "lane-0:1001"
    assert client.calls == 3


def iter_notices(settings: Any, environ: Any) -> Any:
    """The redrive hook of the fake destination below (this module is its module)."""
    yield "hook-1", notice([41])
    yield "hook-2", notice([42])


@dataclass(frozen=True, slots=True)
class HookSettings:
    pass


class HookDestination:
    """A destination whose module offers `iter_notices`, as connectors may."""

    Settings = HookSettings

    def __init__(self, settings: Any, context: Any) -> None: ...

    def send(self, notice: Any, records: Any) -> None: ...

    def close(self) -> None: ...


def test_a_destination_module_with_iter_notices_is_redriven_through_that_hook(tmp_path):
    # Given a mapping whose destination connector module defines iter_notices
    config = tmp_path / "esm.yaml"
    config.write_text("""
mappings:
  - name: orders
    source: {type: memory}
    target: {type: python, handler: "tests.unit.test_redrive:handle"}
    destination_config: {on_failure: {type: "tests.unit.test_redrive:HookDestination"}}
""")
    # When it is redriven
    code = run_cli(config, tmp_path / "state")
    # Then the hook's notices reached the target and their ids went to the progress file
    assert code == 0 and _received == [41, 42]
    assert (tmp_path / "state").read_text().split() == ["hook-1", "hook-2"]


def test_unsupported_destination_type_is_bad_input(tmp_path, capsys):
    config = tmp_path / "esm.yaml"
    config.write_text("""
mappings:
  - name: orders
    source: {type: memory}
    target: {type: python, handler: "tests.unit.test_redrive:handle"}
    destination_config:
      on_failure: {type: sns, topic_arn: "arn:aws:sns:us-east-1:000000000000:dlq"}
""")
    assert run_cli(config, tmp_path / "state") == 2
    assert "redrive from a 'sns' destination is not supported" in capsys.readouterr().err
