"""With no stack running, a command that needs Kafka or Postgres fails at once with one
line: the address, where it came from, what to do, and the exit code of its kind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "crm-automation")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port bound by this test and never listened on: a connection to it is refused, and
    no other process can take it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, silent_port: int) -> Path:
    """A home whose local stack is not running: its port file names the silent port."""
    (tmp_path / "stack").mkdir()
    ports = {name: silent_port for name in ("kafka", "kafka_controller", "postgres", "caldav")}
    (tmp_path / "stack" / "ports.json").write_text(json.dumps(ports))
    return tmp_path


def run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_AUTOMATION_")}
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603
        [CLI, *args],
        env={**clean, "CRM_AUTOMATION_HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("args", "code", "service"),
    [
        (("rules", "list"), 4, "Kafka"),
        (("topics", "create"), 4, "Kafka"),
        (("events", "tail", "automation.actions"), 4, "Kafka"),
        (("timers", "stats"), 5, "Postgres"),
        (("db", "migrate"), 5, "Postgres"),
    ],
)
def test_a_command_without_its_service_fails_fast_in_one_line_naming_the_port_file(
    home: Path, args: tuple[str, ...], code: int, service: str
) -> None:
    result, seconds = run(home, *args)
    assert result.returncode == code, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {service} does not answer at 127.0.0.1:") or lines[
        0
    ].startswith(f"error: {service} does not answer at postgresql://")
    assert f"(from the local stack's port file {home / 'stack' / 'ports.json'})" in lines[0]
    assert "crm-automation stack up" in lines[0]
    assert seconds < 15


def test_a_configured_kafka_that_does_not_answer_is_named_with_its_setting(
    home: Path, silent_port: int
) -> None:
    address = f"127.0.0.1:{silent_port}"
    result, _seconds = run(home, "rules", "list", CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS=address)
    assert result.returncode == 4
    assert result.stderr.splitlines() == [
        f"error: Kafka does not answer at {address} (from CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS):"
        " check the setting"
    ]


def test_version_prints_the_installed_version(home: Path) -> None:
    result, _seconds = run(home, "--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("crm-automation ")
    assert result.stdout.split()[1][0].isdigit()
