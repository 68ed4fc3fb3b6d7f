"""The processors' shared parts: readiness, the HTTP endpoints, JSON logs, lag arithmetic."""

from __future__ import annotations

import json
import logging
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from runtime.consumer_lag import partition_lag
from runtime.health import Readiness, consuming, serve
from runtime.logging_setup import JsonFormatter
from runtime.settings import Settings


def _handed_over_port() -> tuple[int, Settings]:
    """A bound port and the settings that hand its socket to `serve`, which owns it then."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    return port, Settings(metrics_sockets={port: sock.detach()})


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Readiness, Counter]]:
    registry = CollectorRegistry()
    counter = Counter("crm_automation_test_things_total", "Things.", registry=registry)
    readiness = consuming("test processor")
    port, settings = _handed_over_port()
    server = serve(settings, port, registry, readiness)
    assert server is not None
    yield f"http://127.0.0.1:{port}", readiness, counter
    server.shutdown()
    server.server_close()


def test_readyz_is_503_with_the_reason_until_the_processor_polled_then_200(
    endpoint: tuple[str, Readiness, Counter],
) -> None:
    url, readiness, _ = endpoint
    assert _get(f"{url}/readyz") == (503, "consuming: test processor has not polled Kafka yet\n")
    assert _get(f"{url}/healthz") == (200, "ok\n")

    readiness.ready()

    assert _get(f"{url}/readyz") == (200, "ready\n")


def test_metrics_are_served_next_to_the_health_endpoints(
    endpoint: tuple[str, Readiness, Counter],
) -> None:
    url, _, counter = endpoint
    counter.inc(3)
    status, body = _get(f"{url}/metrics")
    assert status == 200
    assert "crm_automation_test_things_total 3.0" in body
    assert _get(f"{url}/nothing")[0] == 404


def test_the_endpoint_listens_on_loopback_only_by_default() -> None:
    assert Settings().metrics_host == "127.0.0.1"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = serve(Settings(), port, CollectorRegistry(), Readiness())
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_a_handed_over_socket_that_is_not_the_ports_is_refused_and_left_open() -> None:
    port, _ = _handed_over_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        settings = Settings(metrics_sockets={port: other.fileno()})
        with pytest.raises(RuntimeError, match="not bound to it"):
            serve(settings, port, CollectorRegistry(), Readiness())
        assert other.getsockname()[1] != port  # still open and usable


def test_a_handed_over_descriptor_that_is_not_open_is_a_clear_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port, fd = int(sock.getsockname()[1]), sock.fileno()
    sock.close()
    with pytest.raises(RuntimeError, match="not an open socket"):
        serve(Settings(metrics_sockets={port: fd}), port, CollectorRegistry(), Readiness())


def test_a_failing_probe_makes_the_process_unready_with_its_reason() -> None:
    readiness = Readiness()
    state = {"db": "database unreachable (OperationalError)"}
    readiness.add_probe("postgres", lambda: state["db"])
    assert readiness.status() == (False, "postgres: database unreachable (OperationalError)")

    state["db"] = None  # type: ignore[assignment]

    assert readiness.status() == (True, "ready")


def test_a_condition_can_become_unmet_again_after_it_was_met() -> None:
    readiness = Readiness().require("kafka", "not read yet")
    readiness.ready("kafka")
    readiness.not_ready("kafka", "broker did not answer")
    assert readiness.status() == (False, "kafka: broker did not answer")


def test_json_log_lines_carry_time_level_logger_message_and_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "sinks.x", logging.ERROR, __file__, 1, "failed action_id=%s", ("a-1",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "sinks.x"
    assert entry["message"] == "failed action_id=a-1"
    assert entry["time"].endswith("+00:00")
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.parametrize(
    ("committed", "low", "high", "lag"),
    [
        pytest.param(10, 0, 15, 5, id="behind"),
        pytest.param(15, 0, 15, 0, id="caught-up"),
        pytest.param(-1001, 3, 15, 12, id="never-committed-counts-from-low-watermark"),
        pytest.param(2, 5, 15, 10, id="committed-below-retention-counts-from-low"),
    ],
)
def test_partition_lag_is_messages_between_the_committed_offset_and_the_high_watermark(
    committed: int, low: int, high: int, lag: int
) -> None:
    assert partition_lag(committed, low, high) == lag
