"""Conditions: every op, strict typing, OR of AND-groups, fields of item, company, contacts."""

from __future__ import annotations

from typing import Any

import pytest

from automation_core.conditions import compare, evaluate_condition
from automation_core.model import Company
from automation_core.rule_spec import Comparison, Condition
from tests.unit.rule_builders import event, item


@pytest.mark.parametrize(
    ("field", "op", "value", "value_type", "expected"),
    [
        pytest.param("item.amount", "eq", "12000", "decimal", True, id="eq-decimal-scale-free"),
        pytest.param("item.amount", "ne", "12000", "decimal", False, id="ne-decimal"),
        pytest.param("item.amount", "gt", "9999.99", "decimal", True, id="gt-decimal"),
        pytest.param("item.amount", "gt", "100000", "decimal", False, id="gt-decimal-false"),
        pytest.param("item.amount", "ge", "12000.00", "decimal", True, id="ge-decimal"),
        pytest.param("item.amount", "lt", "12000.01", "decimal", True, id="lt-decimal"),
        pytest.param("item.amount", "le", "11999", "decimal", False, id="le-decimal"),
        pytest.param("item.close_date", "gt", "2026-11-29", "date", True, id="gt-date"),
        pytest.param("item.close_date", "lt", "2026-11-29", "date", False, id="lt-date"),
        pytest.param("item.currency", "eq", "EUR", "string", True, id="eq-string"),
        pytest.param("item.currency", "in", ("USD", "EUR"), "string", True, id="in-list"),
        pytest.param("item.currency", "in", ("USD",), "string", False, id="in-list-false"),
        pytest.param(
            "item.title", "contains", "müller", "string", True, id="contains-case-insensitive"
        ),
        pytest.param(
            "item.UF_BUDGET",
            "gt",
            "999",
            "decimal",
            True,
            id="custom-field-compared-as-decimal-not-text",
        ),
        pytest.param("item.UF_TAGS", "contains", "vip", "string", True, id="contains-in-list"),
        pytest.param("item.UF_TAGS", "eq", "north", "string", True, id="eq-any-list-element"),
        pytest.param("item.UF_TAGS", "ne", "north", "string", False, id="ne-every-list-element"),
        pytest.param("item.UF_TAGS", "ne", "south", "string", True, id="ne-no-list-element"),
        pytest.param("item.UF_TAGS", "in", ("south", "vip"), "string", True, id="in-any-element"),
        pytest.param("item.UF_TAGS", "in", ("south",), "string", False, id="in-no-element"),
        pytest.param("item.UF_TAGS", "lt", "p", "string", True, id="lt-any-list-element"),
        pytest.param("item.UF_TAGS", "gt", "w", "string", False, id="gt-no-list-element"),
        pytest.param("item.UF_MISSING", "empty", None, "string", True, id="empty-missing"),
        pytest.param("item.UF_CONTRACT_NO", "not_empty", None, "string", True, id="not-empty"),
        pytest.param("item.UF_CONTRACT_NO", "empty", None, "string", False, id="empty-false"),
        pytest.param("company.title", "eq", "Müller GmbH", "string", True, id="company-title"),
        pytest.param("company.id", "ne", "c-2", "string", True, id="company-id-ne"),
        pytest.param("contact.email", "eq", "anna@example.com", "string", True, id="first-contact"),
        pytest.param("contacts.email", "eq", "ben@example.com", "string", True, id="any-contact"),
        pytest.param(
            "contact.email", "eq", "ben@example.com", "string", False, id="first-contact-only"
        ),
        pytest.param("contacts", "not_empty", None, "string", True, id="contacts-not-empty"),
        pytest.param("stage_id", "eq", "WON", "string", True, id="stage-id"),
        pytest.param("pipeline_id", "in", ("sales",), "string", True, id="pipeline-id"),
    ],
)
def test_each_comparison_op_gives_the_expected_result(
    field: str, op: str, value: Any, value_type: Any, expected: bool
) -> None:
    outcome = compare(Comparison(field, op, value, value_type), event())
    assert outcome.matched is expected
    assert (outcome.reason is None) is expected


def test_a_type_mismatch_is_false_with_a_reason_not_an_exception() -> None:
    outcome = compare(Comparison("item.UF_CONTRACT_NO", "gt", "5", "decimal"), event())
    assert outcome.matched is False
    assert outcome.reason == "item.UF_CONTRACT_NO gt: type mismatch (expected decimal)"


def test_an_empty_field_never_satisfies_an_ordering_comparison() -> None:
    ev = event(the_item=item(amount=None))
    assert compare(Comparison("item.amount", "gt", "0", "decimal"), ev).matched is False
    assert compare(Comparison("item.amount", "ne", "0", "decimal"), ev).matched is True


def test_a_condition_is_an_or_of_and_groups() -> None:
    rich = Comparison("item.amount", "gt", "100000", "decimal")
    euro = Comparison("item.currency", "eq", "EUR", "string")
    has_company = Comparison("company.id", "not_empty", None)
    condition = Condition(((rich, euro), (euro, has_company)))
    assert evaluate_condition(condition, event()).matched is True
    no_company = event(the_item=item(company=None))
    outcome = evaluate_condition(condition, no_company)
    assert outcome.matched is False
    assert outcome.reason == (
        "condition false: any[0].all[0] item.amount gt: false; "
        "any[1].all[1] company.id not_empty: is empty"
    )


def test_reasons_do_not_quote_field_values() -> None:
    ev = event(the_item=item(company=Company("c-9", "Secret Client Ltd")))
    outcome = compare(Comparison("company.title", "eq", "Other", "string"), ev)
    assert outcome.reason is not None and "Secret" not in outcome.reason
