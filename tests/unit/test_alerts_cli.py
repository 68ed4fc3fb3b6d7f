"""`crm-automation alerts rules`: the alert rules with absolute runbook links."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from crm_automation.cli import app
from crm_automation.commands import alerts
from crm_automation.commands._common import configured_settings

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "config" / "prometheus" / "alerts.yml"
BASE_URL = "https://git.example.com/acme/crm-automation/blob/v1.2.0/"


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CRM_AUTOMATION_DOCS_BASE_URL", raising=False)
    configured_settings.cache_clear()
    yield
    configured_settings.cache_clear()


def _alert_rules(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def _printed(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["alerts", "rules", *args])
    assert result.exit_code == 0, result.output
    printed: dict[str, Any] = yaml.safe_load(result.stdout)
    return printed


def test_the_package_reads_the_rules_prometheus_is_given() -> None:
    assert alerts.ALERT_RULES.resolve() == SOURCE.resolve()


def test_every_alert_links_its_runbook_under_the_docs_base_url() -> None:
    printed = _alert_rules(_printed("--docs-base-url", BASE_URL))
    source = _alert_rules(yaml.safe_load(SOURCE.read_text()))
    assert [rule["alert"] for rule in printed] == [rule["alert"] for rule in source]
    for rule, original in zip(printed, source, strict=True):
        relative = original["annotations"]["runbook_url"]
        assert rule["annotations"]["runbook_url"] == BASE_URL + relative
        assert rule["expr"] == original["expr"]


def test_a_base_url_without_a_trailing_slash_still_ends_in_a_path_separator() -> None:
    printed = _alert_rules(_printed("--docs-base-url", BASE_URL.rstrip("/")))
    assert all(rule["annotations"]["runbook_url"].startswith(BASE_URL) for rule in printed)


def test_the_base_url_comes_from_the_setting_without_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_AUTOMATION_DOCS_BASE_URL", "http://docs.internal/crm/")
    printed = _alert_rules(_printed())
    assert all(
        rule["annotations"]["runbook_url"].startswith("http://docs.internal/crm/docs/")
        for rule in printed
    )


def test_the_printed_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (make tools; Debian: apt-get install prometheus)"
    result = CliRunner().invoke(app, ["alerts", "rules", "--docs-base-url", BASE_URL])
    (tmp_path / "alerts.yml").write_text(result.stdout)
    check = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://docs.example.com/", id="not-http"),
        pytest.param("docs.example.com/crm", id="no-scheme"),
        pytest.param("https://", id="no-host"),
    ],
)
def test_a_base_url_that_is_not_http_is_refused_naming_the_option(url: str) -> None:
    result = CliRunner().invoke(app, ["alerts", "rules", "--docs-base-url", url])
    assert result.exit_code == 2
    # Click's error box may wrap the message: compare it as one line of words.
    message = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for '--docs-base-url'" in message
    assert "must be an absolute http:// or https:// URL" in message


def test_without_a_base_url_the_command_says_how_to_give_one() -> None:
    result = CliRunner().invoke(app, ["alerts", "rules"])
    assert result.exit_code == 2
    assert "--docs-base-url" in result.output
    assert "CRM_AUTOMATION_DOCS_BASE_URL" in result.output


def test_absolute_runbook_links_are_kept() -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "rules": [
                    {"alert": "A", "annotations": {"runbook_url": "https://wiki/a"}},
                    {"alert": "B", "annotations": {"runbook_url": "docs/operations.md#b"}},
                    {"record": "r", "expr": "up"},
                ],
            }
        ]
    }
    resolved = alerts.absolute_runbooks(rules, "http://docs/")
    links = [
        rule.get("annotations", {}).get("runbook_url") for rule in resolved["groups"][0]["rules"]
    ]
    assert links == ["https://wiki/a", "http://docs/docs/operations.md#b", None]
    assert rules["groups"][0]["rules"][1]["annotations"]["runbook_url"] == "docs/operations.md#b"
