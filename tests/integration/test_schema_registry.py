"""The whole pipeline in the schema registry wire format, on a real Apicurio Registry.

Every process runs with `CRM_AUTOMATION_WIRE_FORMAT=schema-registry`; one event comes in
that format and one in single-object encoding (a producer that has not moved yet). Then
every topic our processes write is read with confluent-kafka's own `AvroDeserializer`, as
Kafka Connect, ksqlDB or any stock consumer would read it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from runtime import topics
from runtime.codec.framing import REGISTRY_MAGIC
from runtime.schema_registry import RECORDS_BY_TOPIC
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import read_topic, run_cli, start_cli, stop_process
from tests.integration.test_pipeline import event

pytestmark = pytest.mark.integration

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, WON]}
  - {id: installation, entity_type: DEAL, stages: [NEW, DONE]}
rules:
  - id: copy-to-installation
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: copy_deal, target_pipeline: installation}
  - id: call-a-minute-later
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    when: {delay: 1m}
    action: {type: plan_activity, subject: Call}
"""


def records(s: Settings, contract: str) -> list[bytes]:
    """Every value of the topic `contract`, read up to its end."""
    return [message.value() or b"" for message in read_topic(s, contract)]


def test_every_topic_is_readable_by_a_stock_deserializer_and_both_input_formats_are_acted_on(
    settings: Settings, tmp_path: Path, registry_url: str
) -> None:
    registry = {
        "CRM_AUTOMATION_WIRE_FORMAT": "schema-registry",
        "CRM_AUTOMATION_SCHEMA_REGISTRY_URL": registry_url,
    }
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    applied = run_cli(settings, tmp_path, "rules", "apply", str(rules), **registry)
    assert applied.returncode == 0, applied.stderr
    # Ten minutes ago: the call's timer is due at once.
    at = {"occurred_at": f"{datetime.now(UTC) - timedelta(minutes=10):%Y-%m-%dT%H:%M:%SZ}"}
    moved, not_moved = event("evt-1", "4711") | at, event("evt-2", "4712") | at
    processes = [
        start_cli(settings, tmp_path, command, *args, **registry)
        for command, *args in (("engine",), ("scheduler",), ("sink", "postgres"))
    ]
    try:
        for line, env in ((moved, registry), (not_moved, {})):
            produced = run_cli(
                settings, tmp_path, "events", "produce", "-", input_text=json.dumps(line), **env
            )
            assert produced.returncode == 0, produced.stderr
        assert settings.database_url is not None
        url = settings.database_url.get_secret_value()

        def stored() -> tuple[list[Any], list[Any]] | None:
            with psycopg.connect(url) as conn:
                copies = conn.execute(
                    "SELECT source_item_key, pipeline_id FROM deals ORDER BY 1"
                ).fetchall()
                calls = conn.execute("SELECT subject FROM activities").fetchall()
            return (copies, calls) if len(copies) == 2 and len(calls) == 2 else None

        copies, calls = wait_for(stored, timeout=120, what="two copies and two fired calls")
    finally:
        codes = [stop_process(process) for process in processes]
    assert codes == [0, 0, 0]
    assert copies == [("DEAL:4711", "installation"), ("DEAL:4712", "installation")]
    assert calls == [("Call",), ("Call",)]
    assert records(settings, topics.DLQ) == [], "a consumer could not read a message"
    tail = run_cli(
        settings, tmp_path, "events", "tail", topics.STAGE_CHANGES, "--from-beginning",
        "--max", "4", "--timeout", "10", **registry,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    tailed = [json.loads(line) for line in tail.stdout.splitlines()]
    events = sorted(line["value"]["event_id"] for line in tailed)
    assert events[-2:] == ["evt-1", "evt-2"], tail.stdout

    with SchemaRegistryClient({"url": registry_url}) as client:
        stock = AvroDeserializer(client)
        read: dict[str, list[dict[str, Any]]] = {}
        for contract in RECORDS_BY_TOPIC:
            values = records(settings, contract)
            if contract == topics.STAGE_CHANGES:  # the one event its producer wrote single-object
                (_,) = (v for v in values if v[:1] != REGISTRY_MAGIC)
                values = [v for v in values if v[:1] == REGISTRY_MAGIC]
            assert all(v[:1] == REGISTRY_MAGIC for v in values), contract
            context = SerializationContext(settings.topic(contract), MessageField.VALUE)
            read[contract] = [stock(value, context) for value in values]

    changes = read[topics.STAGE_CHANGES]  # evt-1 and the announcements of the two copies
    assert sorted((c["item_id"] == "4711", c["created_by_automation"]) for c in changes) == [
        (False, True), (False, True), (True, False),
    ]  # fmt: skip
    assert {r.get("id") for r in read[topics.RULES]} >= {"copy-to-installation", "sales"}
    assert sorted(c["kind"] for c in read[topics.TIMERS]) == ["SCHEDULE", "SCHEDULE"]
    assert sorted(a["rule_id"] for a in read[topics.ACTIONS]) == [
        "call-a-minute-later", "call-a-minute-later", "copy-to-installation",
        "copy-to-installation",
    ]  # fmt: skip
    assert {(x["rule_id"], x["status"]) for x in read[topics.EXECUTIONS]} >= {
        ("copy-to-installation", "fired"), ("call-a-minute-later", "scheduled"),
    }  # fmt: skip
