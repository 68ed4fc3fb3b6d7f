"""Hypothesis strategies of the domain records, shared by the codec tests (any value the
domain allows, including the edges the wire format must carry: time zones, decimals, text
outside the BMP)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from automation_core.model import (
    Action,
    ActionMode,
    CallWebhook,
    Client,
    Company,
    CompleteActivities,
    Contact,
    CopyDeal,
    CreateLead,
    EntityType,
    Execution,
    ExecutionStatus,
    Item,
    Pipeline,
    PlanActivity,
    Rule,
    StageChanged,
    TimerCommand,
    TimerCommandKind,
)

# Avro strings are UTF-8: lone surrogates cannot be encoded, so they are not domain text.
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
int32 = st.integers(-(2**31), 2**31 - 1)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# timestamp-millis: the wire keeps milliseconds, in any offset (decoded as the same instant).
timestamps = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
amounts = st.decimals(allow_nan=False, allow_infinity=False)
field_values = st.one_of(st.none(), text, st.lists(text, max_size=3))
companies = st.builds(Company, id=ids, title=text)
contacts = st.builds(
    Contact,
    id=ids,
    name=text,
    last_name=st.none() | text,
    email=st.none() | text,
    phone=st.none() | text,
)
items = st.builds(
    Item,
    title=text,
    responsible_id=ids,
    amount=st.none() | amounts,
    currency=st.none() | text,
    company=st.none() | companies,
    contacts=st.lists(contacts, max_size=3).map(tuple),
    begin_date=st.none() | st.dates(),
    close_date=st.none() | st.dates(),
    fields=st.dictionaries(text, field_values, max_size=4),
)


def stage_changes_of(item_strategy: st.SearchStrategy[Item]) -> st.SearchStrategy[StageChanged]:
    """Stage changes whose items come from `item_strategy`."""
    return st.builds(
        StageChanged,
        event_id=ids,
        occurred_at=timestamps,
        entity_type=st.sampled_from(EntityType),
        item_id=ids,
        pipeline_id=ids,
        stage_id=ids,
        item=item_strategy,
        previous_stage_id=st.none() | ids,
        created_by_automation=st.booleans(),
        copy_depth=st.integers(0, 2**31 - 1),
        source_item_key=st.none() | ids,
    )


stage_changes = stage_changes_of(items)
pipelines = st.builds(
    Pipeline,
    id=ids,
    entity_type=st.sampled_from(EntityType),
    stages=st.lists(ids, min_size=1, max_size=5).map(tuple),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=10,
)
rules = st.builds(
    Rule,
    id=ids,
    version=ids,
    entity_type=st.sampled_from(EntityType),
    pipeline_id=ids,
    stage_id=ids,
    spec=st.dictionaries(text, json_values, max_size=4),
    enabled=st.booleans(),
    position=int32,
    after_previous=st.booleans(),
)
payloads = st.one_of(
    st.builds(
        CreateLead,
        lead_id=ids,
        title=text,
        responsible_id=ids,
        company=st.none() | companies,
        contacts=st.lists(contacts, max_size=2).map(tuple),
        is_repeat=st.booleans(),
        pipeline_id=st.none() | ids,
        stage_id=st.none() | ids,
        copy_depth=int32,
    ),
    st.builds(
        CopyDeal,
        deal_id=ids,
        pipeline_id=ids,
        stage_id=ids,
        item=items,
        source_item_key=ids,
        copy_depth=int32,
    ),
    st.builds(
        PlanActivity,
        activity_id=ids,
        subject=text,
        description=text,
        deadline=timestamps,
        duration_minutes=int32,
        responsible_id=ids,
        stage_id=ids,
        color=st.none() | text,
        add_to_calendar=st.booleans(),
        clients=st.lists(
            st.builds(
                Client,
                id=ids,
                kind=st.sampled_from(["contact", "company"]),
                name=text,
                email=st.none() | text,
            ),
            max_size=2,
        ).map(tuple),
        invitee_ids=st.lists(ids, max_size=2).map(tuple),
        address=st.none() | text,
        location_id=st.none() | ids,
        link=st.none() | text,
        files=st.lists(text, max_size=2).map(tuple),
        complete_on_stage_exit=st.booleans(),
        activity_type=st.sampled_from(["call", "meeting", "task", "email"]),
    ),
    st.builds(CompleteActivities, stage_id=ids, completed_at=timestamps),
    st.builds(
        CallWebhook,
        url=text,
        pipeline_id=ids,
        stage_id=ids,
        item=items,
        fields=st.lists(st.tuples(ids, text), max_size=3).map(tuple),
    ),
)
actions = st.builds(
    Action,
    action_id=ids,
    rule_id=ids,
    rule_version=ids,
    item_key=ids,
    event_id=ids,
    stage_entry_id=ids,
    occurred_at=timestamps,
    mode=st.sampled_from(ActionMode),
    payload=payloads,
    due_at=st.none() | timestamps,
)
timer_commands = st.builds(
    TimerCommand,
    kind=st.sampled_from(TimerCommandKind),
    issued_at=timestamps,
    item_key=st.none() | ids,
    stage_entry_id=st.none() | ids,
    rule_id=st.none() | ids,
    due_at=st.none() | timestamps,
    action=st.none() | actions,
    rule_version=st.none() | ids,
)
executions = st.builds(
    Execution,
    rule_id=ids,
    item_key=ids,
    event_id=ids,
    status=st.sampled_from(ExecutionStatus),
    recorded_at=timestamps,
    action_id=st.none() | ids,
    rule_version=st.none() | ids,
    due_at=st.none() | timestamps,
    reason=st.none() | text,
)
records = st.one_of(stage_changes, pipelines, rules, actions, timer_commands, executions)
