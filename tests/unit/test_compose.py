"""docker-compose.yml and Dockerfile, checked without Docker: schema, CLI commands, settings."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from crm_automation.cli import app
from runtime.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
PROCESSORS = {
    "engine": ["engine"],
    "scheduler": ["scheduler"],
    "sink-postgres": ["sink", "postgres"],
    "sink-calendar": ["sink", "calendar"],
}
# Where the image keeps the repository (Dockerfile WORKDIR before the switch).
IMAGE_APP_DIR = "/app/"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    return dict(_compose()["services"])


def _cli_commands(service: dict[str, Any]) -> list[list[str]]:
    """The crm-automation argument lists a service runs (its command, or its sh -c script)."""
    entrypoint = service.get("entrypoint")
    command = service.get("command", [])
    if entrypoint is None:  # the image's ENTRYPOINT ["crm-automation"]
        return [list(command)]
    assert entrypoint == ["sh", "-c"], "custom entrypoints other than sh -c are not checked"
    script = " ".join(command)
    steps = [shlex.split(step) for step in re.split(r"\s*&&\s*", script.strip())]
    assert all(step[0] == "crm-automation" for step in steps), script
    return [step[1:] for step in steps]


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"crm-automation {' '.join(args)}: {result.output}"
    return result.output


def test_the_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    # The schema declares draft-07 (as "…/draft-07/schema", without the "#" jsonschema
    # looks up), so name the validator.
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(_compose())


def _docker_compose_config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    # Debian's docker-compose 1.29 validates and interpolates the file without a Docker
    # daemon; `make tools` installs it (scripts/ensure-tool).
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is required (make tools; Debian: docker-compose)"
    return subprocess.run(
        [docker_compose, "--file", str(compose_file), "config", "--quiet"],
        cwd=compose_file.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_accepts_the_compose_file() -> None:
    result = _docker_compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_the_docker_compose_check_rejects_a_malformed_service(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["engine"]["depends_on"] = {"init": {"condition": "when_it_feels_like"}}
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(yaml.safe_dump(broken))
    result = _docker_compose_config(compose_file)
    assert result.returncode != 0
    assert "when_it_feels_like" in result.stderr


def test_the_schema_check_rejects_a_malformed_service() -> None:
    broken = _compose()
    broken["services"]["engine"]["depends_on"] = {"init": {"condition": "when_it_feels_like"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(broken)


def test_compose_runs_the_stack_each_processor_prometheus_grafana_and_init() -> None:
    services = _services()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("postgres:")
    assert "radicale" in services["radicale"]["entrypoint"]
    for name in ["init", "radicale", *PROCESSORS]:
        assert services[name]["build"] == ".", name
    assert "./config/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    grafana_volumes = services["grafana"]["volumes"]
    assert "./config/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    assert "./config/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_volumes
    for name in PROCESSORS:
        assert services[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )


def test_every_image_is_pinned_to_an_exact_version() -> None:
    # A floating tag (postgres:16, latest) changes what `docker compose pull` runs
    # without a change here; our own image is built from the Dockerfile.
    exact = re.compile(r"^v?\d+\.\d+(\.\d+)?$")
    for name, service in _services().items():
        if "build" in service:
            continue
        tag = service["image"].rpartition(":")[2]
        assert exact.match(tag), f"{name}: {service['image']} is not an exact version"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim$", dockerfile, flags=re.MULTILINE)


def test_kafka_keeps_its_data_in_a_named_volume() -> None:
    compose = _compose()
    kafka = compose["services"]["kafka"]
    log_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dir}" in kafka["volumes"]
    assert "kafka-data" in compose["volumes"]


@pytest.mark.parametrize("name", list(PROCESSORS))
def test_each_processor_service_runs_its_cli_command(name: str) -> None:
    service = _services()[name]
    assert _cli_commands(service) == [PROCESSORS[name]]
    usage = _help(PROCESSORS[name])
    assert f"{' '.join(PROCESSORS[name])} [OPTIONS]" in usage


def test_the_init_service_creates_topics_migrates_and_applies_the_example_rules() -> None:
    steps = _cli_commands(_services()["init"])
    assert [step[:2] for step in steps] == [
        ["topics", "create"],
        ["db", "migrate"],
        ["rules", "apply"],
    ]
    for step in steps:
        _help(step[:2])
    rules_file = steps[2][2]
    assert rules_file.startswith(IMAGE_APP_DIR)
    local = ROOT / rules_file.removeprefix(IMAGE_APP_DIR)
    result = CliRunner().invoke(app, ["rules", "validate", str(local)])
    assert result.exit_code == 0, result.output


def test_a_command_that_does_not_exist_fails_the_check() -> None:
    result = CliRunner().invoke(app, ["sink", "elasticsearch", "--help"])
    assert result.exit_code != 0


@pytest.mark.parametrize("name", ["init", *PROCESSORS])
def test_every_crm_automation_variable_is_a_settings_field_with_a_valid_value(name: str) -> None:
    environment = _services()[name]["environment"]
    values = {}
    for key, value in environment.items():
        assert key.startswith(ENV_PREFIX), key
        field = key.removeprefix(ENV_PREFIX).lower()
        assert field in Settings.model_fields, f"{key} is not a setting"
        values[field] = value
    settings = Settings(**values)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.metrics_host == "0.0.0.0"  # noqa: S104 - scraped from other containers


def test_processor_ports_and_readiness_checks_match_settings_and_prometheus() -> None:
    services = _services()
    settings = Settings()
    port = {
        "engine": settings.engine_metrics_port,
        "scheduler": settings.scheduler_metrics_port,
        "sink-postgres": settings.sink_postgres_metrics_port,
        "sink-calendar": settings.sink_calendar_metrics_port,
    }
    prometheus = yaml.safe_load((ROOT / "config" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    for name in PROCESSORS:
        assert f"{name}:{port[name]}" in targets
        assert services[name]["ports"] == [f"{port[name]}:{port[name]}"]
        assert f"http://127.0.0.1:{port[name]}/readyz" in " ".join(
            services[name]["healthcheck"]["test"]
        )


def test_radicale_runs_with_options_radicale_knows() -> None:
    entrypoint = _services()["radicale"]["entrypoint"]
    assert entrypoint[:3] == ["python", "-m", "radicale"]
    usage = subprocess.run(
        [sys.executable, "-m", "radicale", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for option in entrypoint[3:]:
        assert option.split("=", 1)[0] in usage, option


def test_the_dockerfile_copies_every_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, flags=re.MULTILINE))
    find = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.packages.find]")[1]
    packages = set(re.findall(r'"([a-z_]+)\*"', find.split("\n[", 1)[0]))
    assert packages <= copied
    assert all((ROOT / path).exists() for path in copied)
    assert 'ENTRYPOINT ["crm-automation"]' in dockerfile
    assert "USER nobody" in dockerfile
