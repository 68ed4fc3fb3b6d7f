"""`dlq list` shows a dead letter's reason and origin; `dlq replay` sends it back to its
source once the cause is fixed, and the engine then acts on it (real engine, real Kafka)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automation_core.model import Action
from runtime import codec, topics
from runtime.settings import Settings
from tests.helpers import wait_for
from tests.integration.support import read_topic, run_cli, start_cli, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RULES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, WON]}
rules:
  - id: call-won
    trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
    action: {type: plan_activity, subject: Call}
"""
SERVICE = """
  - {id: service, entity_type: DEAL, stages: [NEW, DONE]}
rules:
  - id: call-done
    trigger: {entity_type: DEAL, pipeline: service, stage: DONE}
    action: {type: plan_activity, subject: Follow up}
"""


def apply(s: Settings, tmp_path: Path, text: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = run_cli(s, tmp_path, "rules", "apply", str(path))
    assert result.returncode == 0, result.stderr


def letters(s: Settings, tmp_path: Path, *filters: str) -> list[dict[str, object]]:
    result = run_cli(s, tmp_path, "dlq", "list", "--json", *filters)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_dead_letter_is_listed_with_its_reason_and_acted_on_once_replayed(
    settings: Settings, tmp_path: Path
) -> None:
    apply(settings, tmp_path, RULES)
    engine = start_cli(settings, tmp_path, "engine")
    try:
        event = {
            "event_id": "evt-77",
            "occurred_at": "2026-11-26T10:00:00Z",
            "entity_type": "DEAL",
            "item_id": "77",
            "pipeline_id": "service",
            "stage_id": "DONE",
            "item": {"title": "Boiler", "responsible_id": "u-7", "contacts": []},
        }
        produced = run_cli(
            settings, tmp_path, "events", "produce", "-", input_text=json.dumps(event)
        )
        assert produced.returncode == 0, produced.stderr

        [letter] = wait_for(lambda: letters(settings, tmp_path), timeout=90, what="the dead letter")
        assert letter["reason"] == "unknown_pipeline"
        assert (letter["process"], letter["stage"]) == ("engine", "TRANSFORMATION")
        assert letter["stacktrace"].startswith("Traceback")
        assert letter["source_topic"] == settings.topic(topics.STAGE_CHANGES)
        assert letter["key"] == "DEAL:77"
        assert letters(settings, tmp_path, "--reason", "too_large") == []

        apply(settings, tmp_path, RULES.replace("rules:\n", SERVICE.lstrip("\n"), 1))
        replayed = run_cli(settings, tmp_path, "dlq", "replay", "--reason", "unknown_pipeline")
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.strip() == (
            f"replayed 1 letter(s) to {settings.topic(topics.STAGE_CHANGES)}"
        )

        def acted_on() -> list[Action]:
            found = [
                codec.decode_as(m.value(), Action) for m in read_topic(settings, topics.ACTIONS)
            ]
            return [a for a in found if a.item_key == "DEAL:77"]

        [action] = wait_for(acted_on, timeout=90, what="the replayed event acted on")
    finally:
        assert stop_process(engine) == 0
    assert action.rule_id == "call-done"
