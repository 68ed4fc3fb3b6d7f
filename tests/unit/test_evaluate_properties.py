"""Properties of evaluation: deterministic, stable ids, nothing due before its event, idempotent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from automation_core import ids
from automation_core.evaluate import ItemState, evaluate, rule_index_from
from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from automation_core.rules_file import validate_rules_file

EXAMPLE = validate_rules_file(
    (Path(__file__).resolve().parents[2] / "config" / "rules.example.yaml").read_text()
)
INDEX = rule_index_from(EXAMPLE.rules)

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
items = st.builds(
    Item,
    title=texts,
    responsible_id=st.sampled_from(["u-1", "u-7"]),
    amount=st.none() | st.decimals(min_value=Decimal(0), max_value=Decimal(10**9), places=2),
    currency=st.sampled_from([None, "EUR", "CHF", "USD"]),
    company=st.none() | st.builds(Company, id=st.just("c-1"), title=texts),
    contacts=st.lists(st.builds(Contact, id=st.just("p-1"), name=texts), max_size=2).map(tuple),
    fields=st.dictionaries(st.sampled_from(["UF_CONTRACT_NO", "UF_X"]), texts, max_size=2),
)
events = st.builds(
    StageChanged,
    event_id=st.text(alphabet="abcdef0123456789-", min_size=1, max_size=12),
    occurred_at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    entity_type=st.just(EntityType.DEAL),
    item_id=st.sampled_from(["1", "2"]),
    pipeline_id=st.just("sales"),
    stage_id=st.sampled_from(["NEW", "APPROVAL", "WON"]),
    item=items,
    copy_depth=st.integers(0, 4),
)
states = st.none() | st.builds(
    ItemState,
    pipeline_id=st.just("sales"),
    stage_id=st.sampled_from(["NEW", "LOST"]),
    stage_entry_id=st.just("evt-0"),
    last_occurred_at=st.just(datetime(2019, 1, 1, tzinfo=UTC)),
    recent_event_ids=st.just(("evt-0",)),
)


@settings(max_examples=150, deadline=None)
@given(events, states)
def test_evaluation_is_deterministic(event: StageChanged, state: ItemState | None) -> None:
    assert evaluate(event, state, INDEX) == evaluate(event, state, INDEX)


@settings(max_examples=150, deadline=None)
@given(events, states)
def test_no_timer_is_due_before_its_event(event: StageChanged, state: ItemState | None) -> None:
    decision = evaluate(event, state, INDEX)
    for timer in decision.timers:
        assert timer.due_at is not None and timer.due_at > event.occurred_at
    for action in decision.actions:
        assert action.due_at is None


@settings(max_examples=150, deadline=None)
@given(events, states)
def test_a_duplicated_event_yields_nothing_new(
    event: StageChanged, state: ItemState | None
) -> None:
    first = evaluate(event, state, INDEX)
    assert first.new_state is not None
    later = first.new_state
    again = evaluate(event, later, INDEX)
    assert again.outcome == "duplicate"
    assert (again.actions, again.timers, again.executions, again.new_state) == ((), (), (), None)


@settings(max_examples=100, deadline=None)
@given(events, st.text(min_size=1, max_size=8))
def test_ids_depend_only_on_item_event_rule_and_version(event: StageChanged, other: str) -> None:
    decision = evaluate(event, None, INDEX)
    moved = evaluate(
        dataclasses.replace(event, occurred_at=event.occurred_at + timedelta(hours=1)),
        None,
        INDEX,
    )
    ids = [e.action_id for e in decision.executions]
    assert ids == [e.action_id for e in moved.executions]
    assert len(set(ids)) == len(ids)
    renamed = evaluate(dataclasses.replace(event, event_id=event.event_id + other), None, INDEX)
    assert not set(ids) & {e.action_id for e in renamed.executions}
    # Another item whose producer reused the event id: ids of its own.
    other_item = evaluate(dataclasses.replace(event, item_id=event.item_id + other), None, INDEX)
    assert not set(ids) & {e.action_id for e in other_item.executions}


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text(), st.text(), st.integers(min_value=0, max_value=10_000))
def test_action_ids_hash_the_compact_json_of_their_parts(
    item_key: str, event_id: str, rule_id: str, version: str, index: int
) -> None:
    # Ids are a contract (sinks dedupe on them): the material must stay byte for byte
    # the compact JSON array docs/architecture.md describes.
    material = json.dumps([item_key, event_id, rule_id, version, index], separators=(",", ":"))
    expected = hashlib.sha256(material.encode()).hexdigest()[:32]
    assert ids.action_id(item_key, event_id, rule_id, version, index) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text())
def test_completion_ids_hash_the_json_of_their_parts(
    item_key: str, event_id: str, stage_entry_id: str
) -> None:
    material = json.dumps(["complete_activities", item_key, event_id, stage_entry_id])
    expected = hashlib.sha256(material.encode()).hexdigest()[:32]
    assert ids.completion_id(item_key, event_id, stage_entry_id) == expected
