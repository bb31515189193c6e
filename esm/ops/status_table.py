"""`esm status`: fetch `/mappings` from a running daemon and print it as a table."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

COLUMNS = (
    ("NAME", "name"), ("STATE", "state"), ("READY", "ready"), ("SOURCE", "source"),
    ("TARGET", "target"), ("LAG", "lag"), ("IN-FLIGHT", "inFlightBatches"),
    ("RESTARTS", "readerRestarts"), ("LAST RESULT", "lastProcessingResult"),
    ("REASON", "stateTransitionReason"),
)


class StatusUnavailable(RuntimeError):
    """The daemon could not be reached or did not answer with a mapping list."""


def url_for(listen: str) -> str:
    """The URL to reach a server that listens on `listen` from this machine: a wildcard
    address (0.0.0.0, ::) is reached through loopback."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def fetch_mappings(base_url: str, timeout_seconds: float = 5.0) -> list[dict[str, Any]]:
    url = base_url.rstrip("/") + "/mappings"
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310
            value = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StatusUnavailable(f"cannot read {url}: {exc}") from exc
    if not isinstance(value, list):
        raise StatusUnavailable(f"{url} did not return a list of mappings")
    return value


def render_table(mappings: Sequence[dict[str, Any]]) -> str:
    """One header line and one line per mapping, columns padded to their widest cell."""
    rows = [[title for title, _ in COLUMNS]]
    rows += [[_cell(m.get(key)) for _, key in COLUMNS] for m in mappings]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    if not mappings:
        lines.append("(no mappings)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
    return str(value)
