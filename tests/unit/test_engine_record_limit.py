"""Engine handler: outputs over the record limit, undeclared pipelines, counted metrics."""

from __future__ import annotations

import collections
import dataclasses

from prometheus_client import CollectorRegistry

from automation_core.rules_file import validate_rules_file
from runtime import codec
from runtime.dlq import HEADER_REASON
from runtime.settings import Settings
from streams.handler import MAX_RECORD_BYTES, Source, StageChangeHandler
from streams.metrics import EngineMetrics
from streams.rules_registry import RulesRegistry
from tests.reliability.harness import RULES, Load

SOURCE = Source("crm.stage-changes", 0, 7)


def handler(metrics: CollectorRegistry | None = None) -> StageChangeHandler:
    registry = RulesRegistry()
    rules = validate_rules_file(RULES)
    for record in (*rules.pipelines, *rules.rules):
        key = f"pipeline:{record.id}" if hasattr(record, "stages") else record.id
        registry.apply(key.encode(), codec.encode(record))
    engine_metrics = EngineMetrics.create(metrics or CollectorRegistry())
    return StageChangeHandler(Settings(), registry, engine_metrics)


def big_won_event(blob_bytes: int) -> tuple[bytes, bytes]:
    load = Load.__new__(Load)  # only its event builder is used
    load._count, load.run_id, load.users = 0, "u", ["u-1"]
    load._random = __import__("random").Random(1)
    event = load.new_event("WON")
    event = dataclasses.replace(
        event, item=dataclasses.replace(event.item, fields={"UF_BLOB": "x" * blob_bytes})
    )
    return event.key.encode(), codec.encode(event)


def test_an_event_whose_copied_deal_is_over_the_record_limit_becomes_a_too_large_dead_letter():
    key, value = big_won_event(MAX_RECORD_BYTES)

    handled = handler().handle(key, value, None, SOURCE)

    (letter,) = handled.out
    assert letter.topic == "automation.dlq"
    assert dict(letter.headers or [])[HEADER_REASON] == b"too_large"
    assert letter.value is None  # the original itself is over the limit: not copied
    assert handled.new_state is None


def test_an_event_just_under_the_limit_is_processed():
    key, value = big_won_event(100_000)

    handled = handler().handle(key, value, None, SOURCE)

    assert {out.topic for out in handled.out} == {
        "automation.actions", "automation.timers", "automation.executions"
    }  # fmt: skip


def test_an_event_of_an_undeclared_pipeline_or_stage_or_without_id_is_a_dead_letter():
    key, value = big_won_event(0)
    event = codec.decode(value)
    for change, reason in (({"pipeline_id": "nope"}, b"unknown_pipeline"),
                           ({"stage_id": "NOPE"}, b"unknown_stage"),
                           ({"event_id": ""}, b"invalid_event")):  # fmt: skip
        bad = codec.encode(dataclasses.replace(event, **change))

        (letter,) = handler().handle(key, bad, None, SOURCE).out

        assert dict(letter.headers or [])[HEADER_REASON] == reason


def test_counts_reach_the_metrics_when_the_batch_publishes_them():
    registry = CollectorRegistry()
    h = handler(registry)
    key, value = big_won_event(10)
    handled = [h.handle(key, value, None, SOURCE) for _ in range(2)]
    executions = [o for o in handled[0].out if o.topic == "automation.executions"]

    def value_of(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value_of("crm_automation_events_total", outcome="processed") == 0  # not yet
    h.publish_counts()
    assert value_of("crm_automation_events_total", outcome="processed") == 2
    counted = sum(
        s.value
        for m in registry.collect()
        if m.name == "crm_automation_rule_executions"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert counted == 2 * len(executions) > 0
    h.publish_counts()  # nothing new: nothing added twice
    assert value_of("crm_automation_events_total", outcome="processed") == 2


def test_each_label_set_counts_what_the_produced_records_say():
    registry = CollectorRegistry()
    h = handler(registry)
    key, value = big_won_event(10)
    first = h.handle(key, value, None, SOURCE)
    # The same item moves on: the stage left cancels its timers and completes activities.
    event = codec.decode(value)
    moved = dataclasses.replace(event, event_id="e-next", stage_id="NEW")
    second = h.handle(key, codec.encode(moved), first.new_state, SOURCE)
    h.publish_counts()

    expected: collections.Counter[tuple[str, ...]] = collections.Counter()
    for out in (*first.out, *second.out):
        record = codec.decode(out.value or b"")
        if out.topic == "automation.executions":
            expected["crm_automation_rule_executions_total", record.status.value] += 1
        elif out.topic == "automation.actions":
            expected["crm_automation_actions_total", record.kind.value, record.mode.value] += 1
        else:
            expected["crm_automation_timer_commands_total", record.kind.value] += 1
            if record.action is not None:
                action = record.action
                expected["crm_automation_actions_total", action.kind.value, action.mode.value] += 1
    counted = collections.Counter(
        {
            (s.name, *s.labels.values()): int(s.value)
            for m in registry.collect()
            for s in m.samples
            if s.name in {name for name, *_ in expected} and s.value
        }
    )
    assert {k[0] for k in expected} == {
        "crm_automation_rule_executions_total",
        "crm_automation_actions_total",
        "crm_automation_timer_commands_total",
    }
    assert counted == expected
    assert registry.get_sample_value("crm_automation_events_total", {"outcome": "processed"}) == 2
