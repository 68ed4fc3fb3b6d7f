"""Builders for the pure-core tests: events, items and rules from a few lines of YAML."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from automation_core.evaluate import RuleIndex, rule_index_from
from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from automation_core.rules_file import ValidatedRules, validate_rules_file

PIPELINES = """
pipelines:
  - {id: sales, entity_type: DEAL, stages: [NEW, APPROVAL, PAYMENT, WON, LOST]}
  - {id: installation, entity_type: DEAL, stages: [NEW, SCHEDULED, DONE]}
  - {id: leads, entity_type: LEAD, stages: [NEW, IN_PROCESS, CONVERTED]}
working_time:
  office: {timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00",
           holidays: DE}
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def item(**changes: Any) -> Item:
    base = Item(
        title="Maintenance Müller GmbH",
        responsible_id="u-7",
        amount=Decimal("12000.00"),
        currency="EUR",
        company=Company("c-1", "Müller GmbH"),
        contacts=(
            Contact("p-1", "Anna", "Müller", "anna@example.com", "+49 30 1234"),
            Contact("p-2", "Ben", "Kurz", "ben@example.com"),
        ),
        begin_date=date(2026, 11, 1),
        close_date=date(2026, 11, 30),
        fields={"UF_CONTRACT_NO": "MV-17", "UF_BUDGET": "5000", "UF_TAGS": ["vip", "north"]},
    )
    return replace(base, **changes)


def event(
    stage: str = "WON",
    *,
    event_id: str = "evt-1",
    at: str = "2026-11-26T10:00:00Z",
    pipeline: str = "sales",
    entity: EntityType = EntityType.DEAL,
    item_id: str = "4711",
    **changes: Any,
) -> StageChanged:
    return StageChanged(
        event_id=event_id,
        occurred_at=utc(at),
        entity_type=entity,
        item_id=item_id,
        pipeline_id=pipeline,
        stage_id=stage,
        item=changes.pop("the_item", item()),
        **changes,
    )


def rules_yaml(rules: str) -> str:
    return PIPELINES + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


def validated(rules: str) -> ValidatedRules:
    return validate_rules_file(rules_yaml(rules))


def index(rules: str) -> RuleIndex:
    return rule_index_from(validated(rules).rules)


def pipelines_of(rules: str) -> dict[str, Any]:
    return {p.id: p for p in validated(rules).pipelines}
