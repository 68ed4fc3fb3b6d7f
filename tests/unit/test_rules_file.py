"""Rules-file validation: the example file, every kind of problem, versions and specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from automation_core import rules_file
from automation_core.canonical import rule_from_spec, rule_to_spec
from automation_core.rule_errors import RulesInvalid
from automation_core.rules_file import MAX_RULES, validate_rules_file
from automation_core.time_spec import TimeSpec
from tests.unit.rule_builders import PIPELINES, rules_yaml, validated

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "rules.example.yaml"

GOOD = """
- id: call-client
  trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
  action: {type: plan_activity, subject: Call}
"""


def problems(rules: str) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        validated(rules)
    return [str(p) for p in caught.value.problems]


def test_the_example_rules_file_validates() -> None:
    rules = validate_rules_file(EXAMPLE.read_text())
    assert [r.id for r in rules.rules] == ["copy-to-installation", "renewal-lead", "call-client"]
    assert {p.id for p in rules.pipelines} == {"sales", "installation", "leads"}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            GOOD.replace("pipeline: sales", "pipeline: sale"),
            "rules[0] (call-client).trigger.pipeline: unknown pipeline 'sale'",
            id="unknown-pipeline",
        ),
        pytest.param(
            GOOD.replace("APPROVAL", "APPROVL"),
            "rules[0] (call-client).trigger.stage: unknown stage 'APPROVL'",
            id="unknown-stage",
        ),
        pytest.param(
            GOOD.replace("entity_type: DEAL", "entity_type: LEAD"),
            "rules[0] (call-client).trigger.pipeline: pipeline 'sales' holds DEAL",
            id="entity-type-of-pipeline",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, deadline: {delay: 10x}"),
            "rules[0] (call-client).action.deadline.delay: bad duration '10x'",
            id="bad-duration",
        ),
        pytest.param(
            GOOD.replace("{type:", "{color: yellow, type:").replace(
                "action:", "when: {delay: -5m}\n  action:"
            ),
            "rules[0] (call-client).when.delay: must not be negative",
            id="negative-delay",
        ),
        pytest.param(
            GOOD.replace(
                "subject: Call",
                "subject: Call, deadline: {delay: 1d, at: '14:00', timezone: Europe/Berln}",
            ),
            "rules[0] (call-client).action.deadline.timezone: unknown time zone 'Europe/Berln'",
            id="bad-time-zone",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, deadline: {delay: 1d, at: '14:00'}"),
            "rules[0] (call-client).action.deadline: 'at' and 'field' need a 'timezone'",
            id="at-without-zone",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, deadline: {at: '24:00', timezone: UTC}"),
            "rules[0] (call-client).action.deadline.at: bad time of day",
            id="bad-time-of-day",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: 'Call {{ item.secret }}'"),
            "rules[0] (call-client).action.subject: unknown template field '{{ item.secret }}'",
            id="unknown-template-field",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: 'Call {{ item.__class__ }}'"),
            "unknown template field '{{ item.__class__ }}'",
            id="dunder-field",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: 'Call {{ item.title'"),
            "unbalanced placeholder braces",
            id="unbalanced-braces",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: '" + "x" * 4001 + "'"),
            "template longer than 4000 characters",
            id="template-size",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, link: 'javascript:x()'"),
            "action.link: URL scheme 'javascript' not allowed",
            id="link-scheme",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, link: 'https://user:pw@example.com/'"),
            "action.link: URL must not contain user information",
            id="link-userinfo",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, link: 'https://{{ item.title }}/x'"),
            "placeholders may not be part of the link's scheme or host",
            id="link-host-from-field",
        ),
        pytest.param(
            GOOD.replace(
                "subject: Call", "subject: Call, link: 'https://e.com/" + "a" * 2100 + "'"
            ),
            "URL longer than 2048",
            id="link-length",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, files: ['ftp://x.org/a']"),
            "action.files[0]: URL scheme 'ftp' not allowed",
            id="file-scheme",
        ),
        pytest.param(
            GOOD + GOOD,
            "rules[1] (call-client).id: duplicate rule id (first at rules[0])",
            id="duplicate-id",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subjct: Call"),
            "action.subjct: unknown key (did you mean 'subject'?)",
            id="typo-key",
        ),
        pytest.param(
            GOOD.replace("trigger:", "trigerr: {}\n  trigger:"),
            "rules[0] (call-client).trigerr: unknown key (did you mean 'trigger'?)",
            id="typo-rule-key",
        ),
        pytest.param(
            GOOD.replace("plan_activity, subject: Call", "copy_deal, target_pipeline: leads"),
            "copy_deal needs a DEAL pipeline",
            id="copy-to-lead-pipeline",
        ),
        pytest.param(
            GOOD.replace(
                "plan_activity, subject: Call",
                "copy_deal, target_pipeline: installation, target_stage: WON",
            ),
            "action.target_stage: stage 'WON' is not in target pipeline 'installation'",
            id="target-stage-outside-pipeline",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, color: mauve"),
            "action.color: unknown colour 'mauve'",
            id="colour",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, clients: some"),
            "action.clients: expected none, first, all or {contact: N}",
            id="clients",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, calendar: {duration: 90s}"),
            "action.calendar.duration: expected whole minutes",
            id="calendar-duration",
        ),
        pytest.param(
            GOOD.replace("subject: Call", "subject: Call, location: room-1"),
            "action.location: room 'room-1' is booked only with the activity in the calendar:"
            " add `calendar: true`",
            id="room-without-calendar",
        ),
        pytest.param(
            GOOD.replace(
                "action:", "condition: {all: [{field: amount, op: gt, value: lots}]}\n  action:"
            ),
            "condition.any[0].all[0].value: 'lots' is not a decimal",
            id="condition-value-type",
        ),
        pytest.param(
            GOOD.replace(
                "action:", "condition: {all: [{field: amount, op: between, value: '1'}]}\n  action:"
            ),
            "condition.any[0].all[0].op: unknown op 'between'",
            id="condition-op",
        ),
        pytest.param(
            GOOD.replace(
                "action:", "condition: {all: [{field: secret, op: eq, value: '1'}]}\n  action:"
            ),
            "condition.any[0].all[0].field: unknown field 'secret'",
            id="condition-field",
        ),
        pytest.param(
            GOOD.replace("action:", "when: {field: title, timezone: UTC}\n  action:"),
            "when.field: 'title' is not a date field",
            id="when-field-not-a-date",
        ),
        pytest.param(
            GOOD.replace("action:", "when: {delay: 1d, working_time: night}\n  action:"),
            "when.working_time: unknown working-time calendar 'night'",
            id="unknown-calendar",
        ),
        pytest.param(
            GOOD.replace("plan_activity", "send_sms"),
            "action.type: unknown action type 'send_sms'",
            id="unknown-action",
        ),
        pytest.param(
            GOOD.replace("call-client", "call client"),
            "rules[0] (call client).id: expected an id",
            id="bad-id",
        ),
    ],
)
def test_each_invalid_rule_is_reported_with_its_path(rules: str, expected: str) -> None:
    assert any(expected in p for p in problems(rules)), problems(rules)


def test_every_problem_is_reported_not_just_the_first() -> None:
    bad = GOOD.replace("APPROVAL", "X") + GOOD.replace("call-client", "b").replace(
        "subject: Call", "subject: Call, color: mauve, clients: some"
    )
    assert len(problems(bad)) == 3


def test_calendar_problems_are_reported() -> None:
    text = (
        PIPELINES.replace("Europe/Berlin", "Mars/Base").replace("holidays: DE", "holidays: XX")
        + "rules: []"
    )
    with pytest.raises(RulesInvalid) as caught:
        validate_rules_file(text)
    messages = [str(p) for p in caught.value.problems]
    assert "working_time.office.timezone: unknown time zone 'Mars/Base'" in messages
    assert any(m.startswith("working_time.office.holidays: unknown holiday") for m in messages)


def test_too_many_rules_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_RULES == 10_000
    monkeypatch.setattr(rules_file, "MAX_RULES", 3)
    many = "".join(GOOD.replace("call-client", f"r{n}") for n in range(4))
    assert problems(many) == ["rules: 4 rules; at most 3 are allowed"]


def test_yaml_one_one_surprises_are_avoided() -> None:
    rules = validate_rules_file(
        rules_yaml(
            GOOD.replace(
                "subject: Call", "subject: Call, deadline: {delay: 1d, at: 14:00, timezone: UTC}"
            )
        )
    )
    assert rules.rules[0].spec["action"]["deadline"]["at"] == "14:00"
    with pytest.raises(RulesInvalid, match="duplicate key"):
        validate_rules_file(rules_yaml(GOOD.replace("subject: Call", "subject: A, subject: B")))


def test_the_version_changes_with_the_content_and_only_then() -> None:
    one = validated(GOOD).rules[0]
    assert validated(GOOD).rules[0].version == one.version
    assert validated(GOOD.replace("Call", "Ring")).rules[0].version != one.version
    assert validated(GOOD + "  enabled: false\n").rules[0].version != one.version


def test_a_spec_round_trips_through_its_typed_form() -> None:
    for rule in validate_rules_file(EXAMPLE.read_text()).rules:
        assert rule_to_spec(rule_from_spec(rule).spec) == rule.spec


def test_a_rule_carries_its_working_time_calendar_inline() -> None:
    rule = validate_rules_file(EXAMPLE.read_text()).rules[1]
    assert rule.spec["when"]["working_time"] == {
        "name": "office",
        "timezone": "Europe/Berlin",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "hours": ["09:00-18:00"],
        "holidays": "DE",
    }


def test_the_worked_examples_of_the_docs_validate() -> None:
    doc = (EXAMPLE.parents[1] / "docs" / "rules.md").read_text()
    block = doc.split("## Worked examples")[1].split("```yaml")[1].split("```")[0]
    assert block.lstrip().startswith("pipelines:"), "the worked example is a whole file"
    assert len(validate_rules_file(block).rules) == 5


def test_calendar_months_are_a_delay_unit_and_travel_in_the_spec() -> None:
    rule = validated(
        GOOD.replace("action:", "when: {delay: 6mo, timezone: Europe/Berlin}\n  action:")
    )
    rule_spec = rule.rules[0].spec
    assert rule_spec["when"] == {"delay_seconds": 0, "delay_months": 6, "timezone": "Europe/Berlin"}
    assert rule_to_spec(rule_from_spec(rule.rules[0]).spec) == rule_spec
    assert rule_from_spec(rule.rules[0]).spec.when == TimeSpec(
        delay_months=6, timezone="Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("when", "message"),
    [
        pytest.param(
            "{field: close_date, offset: -1mo, timezone: UTC}",
            "when.offset: bad duration '-1mo' (months, 'mo', only in a delay)",
            id="months-in-an-offset",
        ),
        pytest.param("{delay: 121mo}", "when.delay: duration '121mo' is longer", id="too-long"),
        pytest.param("{delay: 6mo6mo}", "when.delay: bad duration '6mo6mo' (a unit", id="twice"),
    ],
)
def test_month_delays_are_validated(when: str, message: str) -> None:
    found = problems(GOOD.replace("action:", f"when: {when}\n  action:"))
    assert any(message in p for p in found), found


# A second calendar under PIPELINES' `working_time:` mapping, and one rule that uses it.
COMPANY_CALENDAR = """  company:
    timezone: Europe/Berlin
    holidays: DE
    days_off: [DAYS_OFF]
    extra_working_days: [EXTRA]
rules:
- id: call-client
  trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
  when: {delay: 1h, working_time: company}
  action: {type: plan_activity, subject: Call}
"""


def company(days_off: str, extra: str) -> str:
    return COMPANY_CALENDAR.replace("DAYS_OFF", days_off).replace("EXTRA", extra)


def test_company_days_off_and_extra_working_days_travel_with_the_calendar() -> None:
    rule = validate_rules_file(PIPELINES + company("2026-12-24, 2026-12-31", "2026-12-05"))
    calendar = rule.rules[0].spec["when"]["working_time"]
    assert calendar["days_off"] == ["2026-12-24", "2026-12-31"]
    assert calendar["extra_working_days"] == ["2026-12-05"]
    assert rule_to_spec(rule_from_spec(rule.rules[0]).spec) == rule.rules[0].spec


@pytest.mark.parametrize(
    ("days_off", "extra", "message"),
    [
        pytest.param(
            "2026-12-32",
            "",
            "working_time.company.days_off[0]: expected a date like 2026-12-24, got '2026-12-32'",
            id="bad-date",
        ),
        pytest.param(
            "2026-12-24",
            "2026-12-24",
            "working_time.company: 2026-12-24 is both a day off and an extra working day",
            id="both",
        ),
    ],
)
def test_company_dates_are_validated(days_off: str, extra: str, message: str) -> None:
    with pytest.raises(RulesInvalid) as caught:
        validate_rules_file(PIPELINES + company(days_off, extra))
    assert message in [str(p) for p in caught.value.problems]
