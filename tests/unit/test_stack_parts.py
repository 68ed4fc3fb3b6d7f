"""The local stack's pure parts: Java version parsing, remembered ports, ids, URL masking."""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crm_automation.stack.kafka import cluster_id
from crm_automation.stack.kafka_jars import java_major_version
from crm_automation.stack.processes import PidFile, PortBook, process_alive
from crm_automation.stack.stack import mask_password
from tests.helpers import wait_for


@pytest.mark.parametrize(
    ("output", "major"),
    [
        pytest.param('openjdk version "17.0.15" 2025-04-15', 17, id="openjdk-17"),
        pytest.param('openjdk version "21" 2023-09-19', 21, id="no-minor"),
        pytest.param('java version "1.8.0_392"', 8, id="java-8-old-scheme"),
        pytest.param("command not found", None, id="garbage"),
    ],
)
def test_java_major_version_reads_both_version_schemes(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


def test_ports_are_remembered_per_component_and_distinct(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    kafka, controller = book.port("kafka"), book.port("kafka_controller")
    assert kafka != controller
    again = PortBook(tmp_path / "ports.json")
    assert (again.port("kafka"), again.port("kafka_controller")) == (kafka, controller)


def test_ports_picked_in_parallel_by_several_books_are_all_remembered(tmp_path: Path) -> None:
    # The stack starts Kafka, Postgres and Radicale in parallel threads, and processes may
    # share a home: no pick may overwrite another's or read a half-written file.
    path = tmp_path / "stack" / "ports.json"
    names = [f"server-{i}" for i in range(40)]
    start = threading.Barrier(8)

    def pick(worker: int) -> dict[str, int]:
        book = PortBook(path)
        start.wait()
        return {name: book.port(name) for name in names[worker::8]}

    with ThreadPoolExecutor(max_workers=8) as pool:
        picked = {k: v for part in pool.map(pick, range(8)) for k, v in part.items()}
    assert json.loads(path.read_text()) == picked
    assert len(set(picked.values())) == len(names)
    assert [p.name for p in path.parent.iterdir() if p.name != "ports.json.lock"] == ["ports.json"]


def test_a_configured_port_wins_and_is_not_recorded(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    assert book.port("postgres", configured=15432) == 15432
    assert not (tmp_path / "ports.json").exists()


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_a_pid_file_pointing_at_another_program_is_stale(tmp_path: Path) -> None:
    pid_file = PidFile(tmp_path / "x.pid", marker="kafka.Kafka /nowhere/server.properties")
    pid_file.write(os.getpid())  # alive, but not the server the marker names
    assert pid_file.running_pid() is None
    assert not pid_file.path.exists()


def test_process_alive_sees_this_process() -> None:
    assert process_alive(os.getpid())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "postgresql://app:s3cret@db:5432/crm", "postgresql://app:***@db:5432/crm", id="password"
        ),
        pytest.param("postgresql://app@db/crm", "postgresql://app@db/crm", id="no-password"),
    ],
)
def test_external_database_urls_are_shown_without_password(url: str, shown: str) -> None:
    assert mask_password(url) == shown


def test_wait_for_returns_the_first_truthy_value_and_fails_after_its_deadline() -> None:
    values = iter([0, None, "ready"])
    assert wait_for(lambda: next(values), timeout=5, interval=0) == "ready"
    with pytest.raises(AssertionError, match="never"):
        wait_for(lambda: False, timeout=0.05, interval=0.01, what="never")
