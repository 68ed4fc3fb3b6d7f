"""Prometheus config: promtool unit tests of the alert rules, scrape config, runbook links."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required (Debian: apt-get install prometheus; .ci/run installs it)"
    return path


def _promtool_run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    result = _promtool_run("test", "rules", ALERTS_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_fails_when_an_expected_alert_does_not_fire(tmp_path: Path) -> None:
    # Guards the guard: a wrong expectation must make the promtool run above fail.
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    broken = ALERTS_TEST.read_text().replace(
        'description: "5000 messages behind', 'description: "4999 messages behind'
    )
    assert broken != ALERTS_TEST.read_text()
    (tmp_path / ALERTS_TEST.name).write_text(broken)
    result = _promtool_run("test", "rules", ALERTS_TEST.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "CrmAutomationConsumerLagGrowing" in result.stdout + result.stderr


def test_every_alert_fires_in_a_test_case_and_stays_silent_in_another() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in _alert_rules()}
    assert len(alerts) >= 6
    assert alerts - firing == set(), "alerts never expected to fire"
    assert alerts - silent == set(), "alerts never expected to stay silent"
    assert (firing | silent) - alerts == set(), "tests name alerts that do not exist"


def test_the_alert_rules_and_scrape_config_pass_promtool_checks() -> None:
    rules = _promtool_run("check", "rules", ALERTS.name)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = _promtool_run("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_scrape_targets_are_the_four_processors_on_their_default_metrics_ports() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        group["labels"]["process"]: group["targets"]
        for job in config["scrape_configs"]
        for group in job["static_configs"]
    }
    s = Settings()
    assert targets == {
        "engine": [f"engine:{s.engine_metrics_port}"],
        "scheduler": [f"scheduler:{s.scheduler_metrics_port}"],
        "sink-postgres": [f"sink-postgres:{s.sink_postgres_metrics_port}"],
        "sink-calendar": [f"sink-calendar:{s.sink_calendar_metrics_port}"],
    }


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_links_to_its_runbook_section_in_operations_md(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "docs/operations.md"
    anchors = {
        _github_anchor(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in anchors, f"no heading for #{anchor} in docs/operations.md"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
