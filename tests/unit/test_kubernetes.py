"""deploy/kubernetes: every manifest valid against the Kubernetes schemas (offline, from
kubernetes-validate), and one Deployment per processor with the right command, port and
health probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from crm_automation.supervisor import processors
from runtime.config_check import known_variables
from runtime.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def manifests(*extra: str) -> list[dict[str, Any]]:
    found = []
    for name in [*kustomization()["resources"], *extra]:
        found += [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    return found


def deployments() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in manifests("sink-webhook.yaml")
        if d["kind"] == "Deployment"
    }


@pytest.mark.parametrize(
    "doc", manifests("sink-webhook.yaml"), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    broken = dict(deployments()["engine"], spec={"replicas": "two"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_each_processor_has_a_deployment_with_its_command_port_and_probes() -> None:
    settings = Settings(webhook_allowed_hosts=["hooks.example.com"])
    found = deployments()
    assert set(found) == {p.name for p in processors(settings)}
    for processor in processors(settings):
        spec = found[processor.name]["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        [container] = spec["template"]["spec"]["containers"]
        assert tuple(container["args"]) == processor.args
        assert container["ports"] == [{"name": "metrics", "containerPort": processor.metrics_port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["resources"]["requests"]["memory"]
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(processor.metrics_port)


def test_every_processor_of_the_default_set_is_deployed_and_each_has_a_disruption_budget() -> None:
    applied = manifests()
    components = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in applied
        if d["kind"] == "Deployment"
    }
    assert components == {p.name for p in processors(Settings())}
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for d in applied
        if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets == components


def test_the_configuration_files_name_only_real_settings() -> None:
    for name in ("config.env", "secret.example.env"):
        keys = {
            line.split("=", 1)[0]
            for line in (DEPLOY / name).read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert keys and keys <= known_variables(), name
    [generator] = kustomization()["configMapGenerator"]
    assert generator["envs"] == ["config.env"]
