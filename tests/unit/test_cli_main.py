"""`crm-automation` entry point: invalid configuration is reported before any command runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from crm_automation import cli
from crm_automation.commands._common import configured_settings, settings


@pytest.fixture(autouse=True)
def fresh_settings_and_logging() -> Iterator[None]:
    """Settings read from this test's environment; the root logger as pytest left it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configured_settings.cache_clear()
    settings.cache_clear()
    yield
    configured_settings.cache_clear()
    settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_an_invalid_security_protocol_stops_every_command_with_exit_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_AUTOMATION_KAFKA_SECURITY_PROTOCOL", "SASL_SSL_PLEASE")
    monkeypatch.setattr("sys.argv", ["crm-automation", "topics", "create"])

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # Named by the variable the user set (issue 17), with the values it may take.
    assert err.startswith("error: CRM_AUTOMATION_KAFKA_SECURITY_PROTOCOL: Input should be ")
    assert "'SASL_SSL'" in err


def test_sasl_without_a_password_is_reported_with_the_variables_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("CRM_AUTOMATION_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CRM_AUTOMATION_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setattr("sys.argv", ["crm-automation", "topics", "create"])

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code == 2
    assert "CRM_AUTOMATION_KAFKA_SASL_PASSWORD" in capsys.readouterr().err
