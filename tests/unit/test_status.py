"""Mapping states as Prometheus gauges and the `esm status` table (esm.ops.status,
esm.ops.status_table)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from esm.cli import main
from esm.ops.status import StatusCollector
from esm.ops.status_table import render_table, url_for


def snap(name: str, state: str, ready: bool, **more: object) -> dict[str, object]:
    return {"name": name, "state": state, "ready": ready, "source": "kafka", "target": "http",
            "lag": 12.0, "inFlightBatches": 1, "readerRestarts": 0,
            "lastProcessingResult": "OK", **more}


def test_collector_exports_enabled_ready_and_state_per_mapping():
    registry = CollectorRegistry()
    registry.register(StatusCollector(lambda: [snap("a", "Enabled", True),
                                               snap("b", "Disabled", False)]))
    text = generate_latest(registry).decode()
    assert 'esm_mapping_enabled{mapping="a"} 1.0' in text
    assert 'esm_mapping_enabled{mapping="b"} 0.0' in text
    assert 'esm_mapping_ready{mapping="b"} 0.0' in text
    assert 'esm_mapping_state{mapping="b",state="Disabled"} 1.0' in text
    assert 'esm_mapping_state{mapping="b",state="Enabled"} 0.0' in text


def test_table_has_a_header_and_one_aligned_row_per_mapping():
    table = render_table([snap("orders", "Enabled", True),
                          snap("billing-long-name", "Disabled", False, lag=None)])
    header, first, second = table.splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "READY"]
    assert first.split()[:6] == ["orders", "Enabled", "yes", "kafka", "http", "12"]
    assert second.split()[:6] == ["billing-long-name", "Disabled", "no", "kafka", "http", "-"]
    assert header.index("STATE") == first.index("Enabled") == second.index("Disabled")


def test_empty_table_says_so():
    assert render_table([]).endswith("(no mappings)")


def test_status_command_fails_with_exit_1_when_no_daemon_answers(capsys):
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read http://127.0.0.1:9/mappings" in capsys.readouterr().err


def test_url_for_reaches_wildcard_listeners_through_loopback():
    assert url_for("0.0.0.0:9102") == "http://127.0.0.1:9102"
    assert url_for("[::]:9102") == "http://127.0.0.1:9102"
    assert url_for("[::1]:9") == "http://[::1]:9"
    assert url_for("10.0.0.5:9102") == "http://10.0.0.5:9102"


def test_status_command_takes_the_address_from_the_config_file(tmp_path, capsys):
    # Given a config whose server listens on a port nothing serves
    path = tmp_path / "esm.yaml"
    path.write_text('mappings: [{name: a, source: {type: memory}, target: {type: python, '
                    'handler: "esm.demo.handlers:handle"}}]\nserver: {listen: "0.0.0.0:9"}\n')
    # When esm status is pointed at the file
    code = main(["status", str(path)])
    # Then it tried that address
    assert code == 1 and "http://127.0.0.1:9/mappings" in capsys.readouterr().err
