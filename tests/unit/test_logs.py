"""Log lines: text or JSON, mapping/lane context, secrets redacted (esm.ops.logs)."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from esm.config.loading import load_config
from esm.ops import logs


@pytest.fixture
def capture():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    yield stream
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def test_json_lines_carry_mapping_and_lane_context(capture):
    logs.configure("INFO", "json", stream=capture)
    with logs.log_context(mapping="orders", lane="orders-3"):
        logging.getLogger("esm.test").info("batch of %d settled", 5)
    entry = json.loads(capture.getvalue())
    assert entry["mapping"] == "orders" and entry["lane"] == "orders-3"
    assert entry["message"] == "batch of 5 settled" and entry["level"] == "INFO"


def test_text_lines_show_context_in_brackets_and_omit_it_when_absent(capture):
    logs.configure("INFO", "text", stream=capture)
    with logs.log_context(mapping="orders"):
        logging.getLogger("esm.test").warning("slow target")
    logging.getLogger("esm.test").warning("no context")
    first, second = capture.getvalue().splitlines()
    assert "esm.test [mapping=orders]: slow target" in first
    assert "esm.test: no context" in second


@pytest.mark.parametrize("name", ["esm-lane-billing_2", "esm-reader-billing",
                                  "esm-mapping-billing", "esm-admin-billing"])
def test_mapping_comes_from_esm_thread_names_when_nothing_is_bound(capture, name):
    logs.configure("INFO", "json", stream=capture)
    thread = threading.Thread(target=lambda: logging.getLogger("w").info("x"), name=name)
    thread.start()
    thread.join()
    assert json.loads(capture.getvalue())["mapping"] == "billing"


def test_configured_secrets_and_credential_patterns_are_redacted(capture):
    logs.configure("INFO", "json", secrets=["hunter2-token"], stream=capture)
    log = logging.getLogger("esm.test")
    log.info("auth failed with hunter2-token")
    log.info("connecting to redis://app:pa55word@cache:6379/0")
    log.info("header Authorization: Bearer abc.def.ghi")
    log.info("settings password=letmein, user=bob")
    messages = [json.loads(line)["message"] for line in capture.getvalue().splitlines()]
    text = "\n".join(messages)
    for secret in ("hunter2-token", "pa55word", "abc.def.ghi", "letmein"):
        assert secret not in text
    assert "redis://app:***@cache:6379/0" in messages[1] and "user=bob" in messages[3]


def test_secrets_in_tracebacks_are_redacted_too(capture):
    logs.configure("INFO", "text", secrets=["hunter2-token"], stream=capture)
    try:
        raise RuntimeError("token hunter2-token rejected")
    except RuntimeError:
        logging.getLogger("esm.test").exception("failed")
    assert "hunter2-token" not in capture.getvalue() and "RuntimeError" in capture.getvalue()


def test_secrets_in_finds_the_server_token_and_secret_settings(tmp_path):
    path = tmp_path / "esm.yaml"
    path.write_text("""
mappings:
  - name: a
    source: {type: memory}
    target: {type: python, handler: "esm.demo.handlers:handle"}
server: {auth_token: "${TOKEN}"}
""")
    config = load_config([str(path)], {"TOKEN": "tok-12345"})
    assert "tok-12345" in logs.secrets_in(config)


def test_secrets_added_later_are_redacted_from_then_on(capture):
    redactor = logs.configure("INFO", "text", secrets=["first-secret"], stream=capture)
    redactor.add(["second-secret"])
    logging.getLogger("esm.test").info("first-secret and second-secret")
    assert "secret" not in capture.getvalue().split(": ", 1)[1].replace("***", "")
