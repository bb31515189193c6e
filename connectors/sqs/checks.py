"""Cross-field configuration rules for SQS mappings (pure; called by the config loader).

Each problem is a short `path: problem` string; the loader adds the file and mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class _Settings(Protocol):
    @property
    def queue_url(self) -> str: ...

    @property
    def visibility_timeout_seconds(self) -> int | None: ...

    @property
    def max_receive_count(self) -> int | None: ...


def check_mapping_rules(settings: _Settings, mapping: Mapping[str, Any]) -> list[str]:
    """FIFO limits (ESM-SPEC §1.2, checklist 1), the visibility-timeout rule (ESM-SPEC §1.2:
    the function timeout must not exceed the queue's visibility timeout; AWS rejects it) and
    esm's daemon-side dead-lettering, which needs both `max_receive_count` and a destination."""
    problems = _fifo_problems(settings, mapping)
    problems += _destination_problems(settings, mapping)
    visibility = settings.visibility_timeout_seconds
    target_timeout = _number((mapping.get("target") or {}).get("timeout_seconds"))
    if visibility is not None and target_timeout is not None and target_timeout > visibility:
        problems.append(
            f"source.visibility_timeout_seconds: {visibility} s is less than the target "
            f"timeout ({target_timeout:g} s); the queue visibility timeout must be at least "
            "the function timeout (AWS recommends 6 times)")
    return problems


def _fifo_problems(settings: _Settings, mapping: Mapping[str, Any]) -> list[str]:
    if not settings.queue_url.endswith(".fifo"):
        return []
    problems = []
    batch_size = _number(mapping.get("batch_size"))
    if batch_size is not None and batch_size > 10:
        problems.append("batch_size: must be at most 10 for FIFO queues")
    window = _number(mapping.get("maximum_batching_window_in_seconds"))
    if window:
        problems.append("maximum_batching_window_in_seconds: not supported for FIFO queues "
                        "(must be 0)")
    return problems


def _destination_problems(settings: _Settings, mapping: Mapping[str, Any]) -> list[str]:
    on_failure = ((mapping.get("destination_config") or {}).get("on_failure"))
    if on_failure and settings.max_receive_count is None:
        return ["destination_config.on_failure: an SQS mapping dead-letters through the "
                "queue's redrive policy; set source.max_receive_count to have esm send "
                "messages to this destination instead"]
    if not on_failure and settings.max_receive_count is not None:
        return ["source.max_receive_count: needs destination_config.on_failure (where "
                "messages received more often go)"]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
