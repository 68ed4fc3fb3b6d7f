"""Configuration problems are told by variable name, and misspelt variables are not
silently ignored."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from runtime.config_check import describe, unknown_variables
from runtime.settings import Settings


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles() -> None:
    environ = {
        "CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVER": "localhost:9092",
        "CRM_AUTOMATION_WEBHOOK_SECERT": "x",
        "CRM_AUTOMATION_SOMETHING_ELSE": "1",
        "CRM_AUTOMATION_PARTITIONS": "3",
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == [
        "warning: CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVER is not a setting and is ignored"
        " (did you mean CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS?)",
        "warning: CRM_AUTOMATION_SOMETHING_ELSE is not a setting and is ignored",
        "warning: CRM_AUTOMATION_WEBHOOK_SECERT is not a setting and is ignored"
        " (did you mean CRM_AUTOMATION_WEBHOOK_SECRET?)",
    ]


def test_an_invalid_value_is_reported_by_its_variable_without_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_AUTOMATION_PARTITIONS", "six")
    with pytest.raises(ValidationError) as caught:
        Settings()
    lines = describe(caught.value)
    assert lines == [
        "error: CRM_AUTOMATION_PARTITIONS: Input should be a valid integer,"
        " unable to parse string as an integer"
    ]


def test_a_list_setting_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com-s3cret")
    with pytest.raises(SettingsError) as caught:
        Settings()
    assert describe(caught.value) == [
        "error: CRM_AUTOMATION_WEBHOOK_ALLOWED_HOSTS: expected JSON (a list or an object)"
    ]
