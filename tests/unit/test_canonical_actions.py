"""A rule action's canonical dict: the same bytes as the hand-written writer, read back equal.

Rule versions are content hashes of the canonical dict: a writer that changed one byte
of it would publish every user's rules again. `_reference_action_to_dict` and
`_reference_action_from_dict` are the hand-written writer and reader as they were when
the fields came to be declared once on the spec dataclasses; they stay here, frozen.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from automation_core.canonical import canonical_json, rule_from_spec, rule_to_spec, spec_from_dict
from automation_core.evaluate import rule_index_from
from automation_core.model import EntityType, Rule
from automation_core.rule_errors import InvalidRuleSpec
from automation_core.rule_spec import (
    ACTIVITY_TYPES,
    ActionSpec,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    RuleSpec,
    WebhookSpec,
    is_clients_mode,
)
from automation_core.time_spec import TimeSpec, WorkingCalendar, time_from_dict, time_to_dict

# -- the frozen reference -----------------------------------------------------------------


def _reference_action_to_dict(a: ActionSpec) -> dict[str, Any]:
    if isinstance(a, CreateLeadSpec):
        return {
            "type": "create_lead",
            "title": a.title,
            "responsible": list(a.responsible),
            "pipeline": a.pipeline_id,
            "stage": a.stage_id,
        }
    if isinstance(a, WebhookSpec):
        return {"type": "webhook", "url": a.url, "fields": [list(f) for f in a.fields]}
    if isinstance(a, CopyDealSpec):
        return {
            "type": "copy_deal",
            "title": a.title,
            "suffix": a.suffix,
            "target_pipeline": a.target_pipeline,
            "target_stage": a.target_stage,
            "responsible": a.responsible,
        }
    return {
        "type": "plan_activity",
        "subject": a.subject,
        "description": a.description,
        "deadline": None if a.deadline is None else time_to_dict(a.deadline),
        "responsible": a.responsible,
        "color": a.color,
        "add_to_calendar": a.add_to_calendar,
        "duration_minutes": a.duration_minutes,
        "clients": a.clients,
        "invite": list(a.invite),
        "address": a.address,
        "location": a.location,
        "link": a.link,
        "files": list(a.files),
        "complete_on_stage_exit": a.complete_on_stage_exit,
        **({} if a.activity_type == "task" else {"activity_type": a.activity_type}),
    }


def _reference_action_from_dict(d: dict[str, Any]) -> ActionSpec:
    kind = d["type"]
    if kind == "create_lead":
        return CreateLeadSpec(
            d["title"], tuple(d.get("responsible") or ()), d.get("pipeline"), d.get("stage")
        )
    if kind == "copy_deal":
        return CopyDealSpec(
            d["target_pipeline"],
            d["target_stage"],
            d.get("title"),
            d.get("suffix", " (copy)"),
            d.get("responsible"),
        )
    if kind == "webhook":
        return WebhookSpec(d["url"], tuple((str(n), str(v)) for n, v in d.get("fields") or ()))
    if kind == "plan_activity":
        clients = d.get("clients", "none")
        if not is_clients_mode(clients):
            raise ValueError(f"clients {clients!r}")
        return PlanActivitySpec(
            subject=d["subject"],
            description=d.get("description", ""),
            deadline=None if d.get("deadline") is None else time_from_dict(d["deadline"]),
            responsible=d.get("responsible"),
            color=d.get("color"),
            add_to_calendar=bool(d.get("add_to_calendar", False)),
            duration_minutes=int(d.get("duration_minutes", 30)),
            clients=clients,
            invite=tuple(d.get("invite") or ()),
            address=d.get("address"),
            location=d.get("location"),
            link=d.get("link"),
            files=tuple(d.get("files") or ()),
            complete_on_stage_exit=bool(d.get("complete_on_stage_exit", False)),
            activity_type=_reference_activity_type(d.get("activity_type", "task")),
        )
    raise ValueError(f"unknown action type {kind!r}")


def _reference_activity_type(value: Any) -> str:
    if value not in ACTIVITY_TYPES:
        raise ValueError(f"activity_type {value!r}")
    return str(value)


_READ_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
"""What the hand-written reader raised on a bad dict; `rule_from_spec` turns each into
InvalidRuleSpec."""

# -- strategies: every field of every action ----------------------------------------------

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
optional_texts = st.none() | texts
text_tuples = st.lists(texts, max_size=3).map(tuple)
minutes = st.builds(time, st.integers(0, 23), st.integers(0, 59))
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
calendars = st.builds(
    WorkingCalendar,
    name=texts,
    timezone=texts,
    days=st.lists(st.integers(0, 6), max_size=7).map(tuple),
    hours=st.lists(st.tuples(minutes, minutes), max_size=2).map(tuple),
    holidays=optional_texts,
    days_off=st.frozensets(st.dates(), max_size=2),
    extra_working_days=st.frozensets(st.dates(), max_size=2),
)
# A TimeSpec as its canonical dict can say it: a delay, a date field, or a moment.
_starts = st.one_of(
    st.fixed_dictionaries(
        {"delay_seconds": st.integers(0, 10**9), "delay_months": st.integers(0, 600)}
    ),
    st.fixed_dictionaries({"field": texts, "offset_seconds": st.integers(-(10**9), 10**9)}),
    st.fixed_dictionaries({"absolute": st.datetimes(timezones=offsets)}),
)
time_specs = st.builds(
    lambda start, rest: TimeSpec(**start, **rest),
    _starts,
    st.fixed_dictionaries(
        {
            "at": st.none() | minutes,
            "timezone": optional_texts,
            "working_time": st.none() | calendars,
        }
    ),
)
FIELD_STRATEGIES: dict[type[Any], dict[str, st.SearchStrategy[Any]]] = {
    CreateLeadSpec: {
        "title": texts,
        "responsible": text_tuples,
        "pipeline_id": optional_texts,
        "stage_id": optional_texts,
    },
    CopyDealSpec: {
        "target_pipeline": texts,
        "target_stage": texts,
        "title": optional_texts,
        "suffix": texts,
        "responsible": optional_texts,
    },
    PlanActivitySpec: {
        "subject": texts,
        "description": texts,
        "deadline": st.none() | time_specs,
        "responsible": optional_texts,
        "color": optional_texts,
        "add_to_calendar": st.booleans(),
        "duration_minutes": st.integers(1, 7 * 24 * 60),
        "clients": st.sampled_from(["none", "first", "all", "contact:1", "contact:100"]),
        "invite": text_tuples,
        "address": optional_texts,
        "location": optional_texts,
        "link": optional_texts,
        "files": text_tuples,
        "complete_on_stage_exit": st.booleans(),
        "activity_type": st.sampled_from(ACTIVITY_TYPES),
    },
    WebhookSpec: {"url": texts, "fields": st.lists(st.tuples(texts, texts), max_size=3).map(tuple)},
}
actions: st.SearchStrategy[ActionSpec] = st.one_of(
    *(st.builds(cls, **fields) for cls, fields in FIELD_STRATEGIES.items())
)
_REFERENCE_FIELDS = {
    CreateLeadSpec: {"title", "responsible", "pipeline_id", "stage_id"},
    CopyDealSpec: {"target_pipeline", "target_stage", "title", "suffix", "responsible"},
    PlanActivitySpec: {
        *("subject", "description", "deadline", "responsible", "color", "add_to_calendar"),
        *("duration_minutes", "clients", "invite", "address", "location", "link", "files"),
        *("complete_on_stage_exit", "activity_type"),
    },
    WebhookSpec: {"url", "fields"},
}
"""The fields the reference knows. A field added since is drawn at its default for the
comparison: there it must leave the dict as it was (`omit_default`), or every published
rule would get a new version."""
reference_actions: st.SearchStrategy[ActionSpec] = st.one_of(
    *(
        st.builds(cls, **{k: v for k, v in fields.items() if k in _REFERENCE_FIELDS[cls]})
        for cls, fields in FIELD_STRATEGIES.items()
    )
)


def _rule(spec: dict[str, Any]) -> Rule:
    return Rule("r-1", "v-1", EntityType.DEAL, "sales", "WON", spec)


# -- the properties -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", FIELD_STRATEGIES)
def test_the_strategies_draw_every_field_of_the_action(cls: type[Any]) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == list(FIELD_STRATEGIES[cls])


@given(reference_actions)
def test_every_action_writes_the_same_canonical_dict_as_the_hand_written_writer(
    action: ActionSpec,
) -> None:
    written = rule_to_spec(RuleSpec(action))["action"]
    reference = _reference_action_to_dict(action)
    assert written == reference
    assert canonical_json(written) == canonical_json(reference)


@given(actions, st.none() | time_specs, st.booleans())
def test_every_rule_reads_back_equal_from_its_canonical_dict(
    action: ActionSpec, when: TimeSpec | None, cancel: bool
) -> None:
    spec = RuleSpec(action, None, when, cancel)
    written = rule_to_spec(spec)
    assert json.loads(canonical_json(written)) == written  # JSON values only: no tuples
    assert rule_from_spec(_rule(written)).spec == spec


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=2),
    max_leaves=6,
)


@given(actions, st.data())
def test_a_damaged_canonical_action_reads_as_the_hand_written_reader_read_it(
    action: ActionSpec, data: st.DataObject
) -> None:
    written = _reference_action_to_dict(action)
    keys = sorted(written)
    dropped = data.draw(st.sets(st.sampled_from(keys)), label="dropped")
    changed = data.draw(st.dictionaries(st.sampled_from(keys), json_values), label="changed")
    damaged = {k: v for k, v in written.items() if k not in dropped} | changed
    try:
        expected: ActionSpec | None = _reference_action_from_dict(damaged)
    except _READ_ERRORS:
        expected = None
    if expected is None:
        with pytest.raises(InvalidRuleSpec):
            rule_from_spec(_rule({"action": damaged}))
    else:
        # The reader's equivalence; whether the read spec compiles is tested below.
        assert spec_from_dict({"action": damaged}).action == expected


@pytest.mark.parametrize(
    "action",
    [
        pytest.param({"title": "Repeat"}, id="no type"),
        pytest.param({"type": "send_fax"}, id="an unknown type"),
        pytest.param({"type": ["create_lead"]}, id="a type that is not a string"),
        pytest.param({"type": "create_lead"}, id="create_lead without title"),
        pytest.param({"type": "copy_deal", "target_pipeline": "p"}, id="copy_deal without stage"),
        pytest.param({"type": "plan_activity"}, id="plan_activity without subject"),
        pytest.param({"type": "plan_activity", "subject": "s", "clients": "some"}, id="clients"),
        pytest.param({"type": "plan_activity", "subject": "s", "activity_type": "fax"}, id="type"),
        pytest.param({"type": "plan_activity", "subject": "s", "duration_minutes": "1h"}, id="int"),
        pytest.param({"type": "plan_activity", "subject": "s", "invite": 5}, id="invite"),
        pytest.param({"type": "plan_activity", "subject": "s", "deadline": "soon"}, id="deadline"),
        pytest.param({"type": "webhook"}, id="webhook without url"),
        pytest.param({"type": "webhook", "url": "https://x.test", "fields": [["a"]]}, id="pair"),
    ],
)
def test_a_bad_canonical_action_is_an_invalid_rule_spec_naming_its_first_fault(
    action: dict[str, Any],
) -> None:
    with pytest.raises(_READ_ERRORS) as reference:
        _reference_action_from_dict(action)
    with pytest.raises(InvalidRuleSpec) as caught:
        rule_from_spec(_rule({"action": action}))
    assert str(caught.value) == f"rule 'r-1': invalid spec: {reference.value!r}"


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"action": {"type": "plan_activity", "subject": []}}, id="a list as subject"),
        pytest.param(
            {"action": {"type": "create_lead", "title": "t", "responsible": [False]}},
            id="a responsible that is not text",
        ),
        pytest.param(
            {
                "action": {"type": "create_lead", "title": "t"},
                "condition": {
                    "any": [
                        {
                            "all": [
                                {
                                    "field": "item.amount",
                                    "op": "gt",
                                    "value": "lots",
                                    "type": "decimal",
                                }
                            ]
                        }
                    ]
                },
            },
            id="a decimal comparison with a word",
        ),
        pytest.param(
            {
                "action": {"type": "create_lead", "title": "t"},
                "condition": {
                    "any": [{"all": [{"field": "stage_id", "op": "eq", "value": ["WON"]}]}]
                },
            },
            id="an eq comparison with a list",
        ),
    ],
)
def test_a_read_spec_that_cannot_be_compiled_is_an_invalid_rule_left_out_of_the_index(
    spec: dict[str, Any],
) -> None:
    # Such a record never comes from `rules apply` (validation refuses it); written by
    # hand to the topic, it used to fail at every event it met, now once when indexed.
    spec_from_dict(spec)  # the reader takes it
    with pytest.raises(InvalidRuleSpec):
        rule_from_spec(_rule(spec))
    index = rule_index_from([_rule(spec)])
    assert index.invalid == ("r-1",)
    assert index.by_trigger == {}
