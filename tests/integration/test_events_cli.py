"""`crm-automation events produce` and `events tail` against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from automation_core.event_json import parse_stage_changed
from runtime import kafka_clients, topics
from runtime.dlq import DeadLetter
from runtime.settings import Settings

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("crm-automation"))


def _event(event_id: str, item_id: str, entity_type: str = "DEAL") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": "2026-11-26T10:00:00Z",
        "entity_type": entity_type,
        "item_id": item_id,
        "pipeline_id": "sales",
        "stage_id": "WON",
        "previous_stage_id": "NEGOTIATION",
        "item": {
            "title": "Maintenance Müller GmbH",
            "responsible_id": "u-7",
            "amount": "12000.00",
            "currency": "EUR",
            "company": {"id": "c-1", "title": "Müller GmbH"},
            "contacts": [{"id": "p-1", "name": "Anna", "last_name": "Müller"}],
            "fields": {"UF_CONTRACT_NO": "MV-17"},
        },
    }


@pytest.fixture
def settings(stack: Any) -> Settings:
    """The stack's settings under a topic prefix of this test's own, topic created."""
    s: Settings = stack.settings.model_copy(
        update={"topic_prefix": f"test-{uuid.uuid4().hex[:8]}.", "partitions": 3}
    )
    admin = AdminClient(kafka_clients.admin_config(s))
    name = s.topic(topics.STAGE_CHANGES)
    futures = admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    try:
        futures[name].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return s


def _cli(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka_bootstrap_servers),
        "CRM_AUTOMATION_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [CLI, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def _tail(settings: Settings, topic: str, count: int) -> list[dict[str, Any]]:
    result = _cli(
        settings,
        "events",
        "tail",
        topic,
        "--from-beginning",
        "--max",
        str(count),
        "--timeout",
        "20",
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_produce_skips_an_invalid_line_reports_it_and_fails_and_tail_shows_the_rest(
    settings: Settings, tmp_path: Path
) -> None:
    lines = tmp_path / "events.jsonl"
    bad = _event("evt-3", "3")
    bad["item"]["amount"] = 12000.5
    lines.write_text(
        "\n".join(
            json.dumps(e)
            for e in (
                _event("evt-1", "4711"),
                _event("evt-2", "42", "LEAD"),
                bad,
            )
        )
        + "\n",
        encoding="utf-8",
    )

    produced = _cli(settings, "events", "produce", str(lines))

    assert produced.returncode == 1
    assert "line 3: item.amount: amounts are decimals, never floats" in produced.stderr
    assert "produced 2, invalid 1" in produced.stdout

    messages = _tail(settings, "crm.stage-changes", 2)
    assert sorted(m["key"] for m in messages) == ["DEAL:4711", "LEAD:42"]
    by_key = {m["key"]: m for m in messages}
    assert by_key["DEAL:4711"]["topic"] == settings.topic(topics.STAGE_CHANGES)
    assert by_key["DEAL:4711"]["schema"] == "StageChanged"
    value = by_key["DEAL:4711"]["value"]
    assert value["event_id"] == "evt-1"
    assert value["occurred_at"] == "2026-11-26T10:00:00Z"
    assert value["item"]["amount"] == "12000.00"
    # What tail prints is valid `events produce` input again.
    assert parse_stage_changed(value).key == "DEAL:4711"
    assert {"partition", "offset"} <= by_key["LEAD:42"].keys()


def test_strict_produce_sends_nothing_when_any_line_is_invalid(settings: Settings) -> None:
    stdin = (
        json.dumps(_event("evt-1", "1")) + "\n{not json\n" + json.dumps(_event("evt-2", "2")) + "\n"
    )

    produced = _cli(settings, "events", "produce", "--strict", "-", stdin=stdin)

    assert produced.returncode == 1
    assert "line 2: invalid JSON" in produced.stderr
    assert "nothing produced" in produced.stdout
    # A later valid event is the only thing on the topic: nothing came before it.
    assert (
        _cli(
            settings, "events", "produce", "-", stdin=json.dumps(_event("evt-9", "9")) + "\n"
        ).returncode
        == 0
    )
    everything = _cli(
        settings,
        "events",
        "tail",
        "crm.stage-changes",
        "--from-beginning",
        "--max",
        "2",
        "--timeout",
        "3",
    )
    assert [json.loads(line)["key"] for line in everything.stdout.splitlines()] == ["DEAL:9"]


def test_tail_prints_an_undecodable_message_as_an_error_object(settings: Settings) -> None:
    producer = Producer(kafka_clients.producer_config(settings))
    kafka_clients.produce_and_confirm(
        producer,
        [
            kafka_clients.Outgoing(
                settings.topic(topics.STAGE_CHANGES), b"DEAL:1", b'{"event_id": "json, not avro"}'
            )
        ],
    )

    [message] = _tail(settings, settings.topic(topics.STAGE_CHANGES), 1)

    assert message["key"] == "DEAL:1"
    assert message["error"] == "bad_magic"
    assert "value" not in message
    assert "headers" not in message


def test_tail_shows_a_dead_letters_headers_with_its_reason(settings: Settings) -> None:
    topics.create_topics(AdminClient(kafka_clients.admin_config(settings)), settings)
    letter = DeadLetter(
        key=b"DEAL:1",
        value=b"not avro",
        source_topic=settings.topic(topics.STAGE_CHANGES),
        source_partition=2,
        source_offset=41,
        error_class="InvalidMessage",
        reason="bad_magic",
        message="does not start with C3 01",
    )
    producer = Producer(kafka_clients.producer_config(settings))
    kafka_clients.produce_and_confirm(
        producer,
        [
            kafka_clients.Outgoing(
                settings.topic(topics.DLQ), letter.key, letter.value, letter.headers()
            )
        ],
    )

    [message] = _tail(settings, settings.topic(topics.DLQ), 1)

    assert message["headers"] == {
        name: value.decode() if isinstance(value, bytes) else value
        for name, value in letter.headers()
    }
    reasons = [v for k, v in message["headers"].items() if k.endswith("reason")]
    assert reasons == ["bad_magic"]
