"""Shared pieces of the integration tests: isolated settings, CLI processes, topic reads."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from runtime import db, kafka_clients, topics
from runtime.settings import Settings

CLI = str(Path(sys.executable).with_name("crm-automation"))
ROOT = Path(__file__).resolve().parents[2]


def cli_env(s: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a `crm-automation` process needs to use exactly these settings.

    Endpoint ports from `reserve_port` are handed over as sockets (pass `inherited_fds`
    of this environment to Popen): the test session holds them bound, so no other
    process can take them between the pick and the processor's start.
    """
    env = {
        **os.environ,
        "CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers or "",
        "CRM_AUTOMATION_DATABASE_URL": s.database_url.get_secret_value() if s.database_url else "",
        "CRM_AUTOMATION_CALDAV_URL": s.caldav_url or "",
        "CRM_AUTOMATION_TOPIC_PREFIX": s.topic_prefix,
        "CRM_AUTOMATION_PARTITIONS": str(s.partitions),
        "CRM_AUTOMATION_HOME": str(tmp_path),
        "CRM_AUTOMATION_ENGINE_METRICS_PORT": str(s.engine_metrics_port),
        "CRM_AUTOMATION_SINK_POSTGRES_METRICS_PORT": str(s.sink_postgres_metrics_port),
        "CRM_AUTOMATION_SINK_CALENDAR_METRICS_PORT": str(s.sink_calendar_metrics_port),
        "CRM_AUTOMATION_SCHEDULER_METRICS_PORT": str(s.scheduler_metrics_port),
        **extra,
    }
    env["CRM_AUTOMATION_METRICS_SOCKETS"] = json.dumps(_handed_over(env))
    return env


def start_cli(
    s: Settings, tmp_path: Path, *args: str, faults: Sequence[str] = (), **extra: str
) -> subprocess.Popen[bytes]:
    """Start `crm-automation ARGS` in the background, its output in a log under tmp_path.

    `faults` (`NAME=SECONDS`, see tests/faults.py) start it through the fault launcher.
    """
    log = open(tmp_path / f"{'-'.join(args)}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
    env = cli_env(s, tmp_path, **extra)
    command = [CLI, *args]
    if faults:
        command = [sys.executable, "-m", "tests.faults", *faults, "--", *args]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=log, pass_fds=inherited_fds(env)
        )
    finally:
        log.close()


def run_cli(
    s: Settings, tmp_path: Path, *args: str, input_text: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env=cli_env(s, tmp_path, **extra),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_RESERVED: dict[int, socket.socket] = {}
"""Ports this test session holds bound for processors' endpoints, by port."""


def reserve_port() -> int:
    """A port on 127.0.0.1 bound by this session until it ends, for a processor's endpoint.

    A processor started with `start_cli` (or `cli_env`'s `inherited_fds`) serves on the
    bound socket itself; nobody else can take the port, not even between two restarts.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    _RESERVED[port] = sock
    return port


def _handed_over(env: dict[str, str]) -> dict[int, int]:
    ports = (int(v) for k, v in env.items() if k.endswith("_METRICS_PORT") and v.isdigit())
    return {port: _RESERVED[port].fileno() for port in ports if port in _RESERVED}


def inherited_fds(env: dict[str, str]) -> tuple[int, ...]:
    """The file descriptors a process started with `env` must inherit."""
    return tuple(json.loads(env.get("CRM_AUTOMATION_METRICS_SOCKETS", "{}")).values())


@pytest.fixture
def settings(stack: Any, tmp_path: Path) -> Iterator[Settings]:
    """The stack under this test's own topic prefix and its own fresh database."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(stack.database_url, dbname=name)
    db.migrate(url)
    s: Settings = stack.settings.model_copy(
        update={
            "topic_prefix": f"test-{uuid.uuid4().hex[:8]}.",
            "partitions": 3,
            "database_url": SecretStr(url),
            "home": tmp_path,
            "scheduler_metrics_port": reserve_port(),
            "engine_metrics_port": reserve_port(),
            "sink_postgres_metrics_port": reserve_port(),
            "sink_calendar_metrics_port": reserve_port(),
        }
    )
    topics.create_topics(AdminClient(kafka_clients.admin_config(s)), s)
    yield s
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def metric_sum(port: int, name: str, **labels: str) -> float:
    """The sum of a process's `name` samples whose labels include `labels`, from its
    /metrics endpoint (0 while the endpoint is not up yet)."""
    try:
        with urllib.request.urlopen(  # noqa: S310 (local http)
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def set_max_message_bytes(s: Settings, topic: str, value: int) -> None:
    """The broker refuses records over `value` bytes on `topic` (1,048,588: its default)."""
    admin = AdminClient(kafka_clients.admin_config(s))
    entry = ConfigEntry(
        "max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(
        ConfigResource.Type.TOPIC, s.topic(topic), incremental_configs=[entry]
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=30)


class TopicReader:
    """Reads a topic from the beginning; `until` polls with a deadline."""

    def __init__(self, s: Settings, topic: str) -> None:
        self._consumer = Consumer(
            kafka_clients.consumer_config(
                s, f"test-reader-{uuid.uuid4().hex[:8]}", **{"isolation.level": "read_uncommitted"}
            )
        )
        self._consumer.subscribe([s.topic(topic)])
        self.messages: list[tuple[float, Any]] = []

    def until(self, count: int, timeout: float) -> list[tuple[float, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages in {timeout}s")
            message = self._consumer.poll(0.05)
            if message is not None and message.error() is None:
                self.messages.append((time.time(), message))
        return self.messages

    def close(self) -> None:
        self._consumer.close()


def read_topic(settings: Settings, topic: str) -> list[Message]:
    """Every message of the contract topic `topic`, read up to its end (no group joined)."""
    name = settings.topic(topic)
    consumer = Consumer(kafka_clients.consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    found: list[Message] = []
    try:
        for partition in consumer.list_topics(name, timeout=10).topics[name].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), 10)
            consumer.assign([TopicPartition(name, partition, low)])
            position = low
            while position < high:
                message = consumer.poll(10)
                assert message is not None, f"{name}[{partition}] stalled at {position}"
                if message.error() is None:
                    found.append(message)
                    position = (message.offset() or 0) + 1
    finally:
        consumer.close()
    return found
