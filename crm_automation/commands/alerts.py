"""`crm-automation alerts` commands: the Prometheus alert rules, ready to deploy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import yaml

from crm_automation.commands._common import configured_settings
from runtime.settings import http_url

# The real file is config/prometheus/alerts.yml (docker-compose mounts that directory
# into Prometheus); the package holds a link to it so an installed CLI can read it.
ALERT_RULES = Path(__file__).resolve().parents[1] / "monitoring" / "alerts.yml"

app = typer.Typer(no_args_is_help=True, help="Prometheus alert rules.")


def absolute_runbooks(rules: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A copy of the rules in which every relative `runbook_url` (a path in this
    repository, `docs/operations.md#<alert>`) is resolved against `base_url`, the URL the
    repository's files are published under; absolute links are kept."""
    base = base_url.rstrip("/") + "/"
    resolved = copy.deepcopy(rules)
    for group in resolved["groups"]:
        for rule in group["rules"]:
            annotations = rule.get("annotations", {})
            link = annotations.get("runbook_url")
            if link is not None and not urlsplit(link).scheme:
                annotations["runbook_url"] = base + link.lstrip("/")
    return resolved


class _RulesDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as literal blocks, readable as written."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _represent_str)


def _checked_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return http_url(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} {exc}") from None


@app.command("rules")
def rules(
    docs_base_url: Annotated[
        str | None,
        typer.Option(
            "--docs-base-url",
            callback=_checked_url,
            help=(
                "http(s) URL the repository's files are published under"
                " (default: CRM_AUTOMATION_DOCS_BASE_URL)."
            ),
        ),
    ] = None,
) -> None:
    """Print the alert rules (config/prometheus/alerts.yml) as a Prometheus rule file whose
    runbook_url annotations are absolute links into the published docs."""
    base_url = docs_base_url or configured_settings().docs_base_url
    if base_url is None:
        typer.echo(
            "error: no docs base URL: pass --docs-base-url or set CRM_AUTOMATION_DOCS_BASE_URL"
            " (where this repository's files are published, e.g."
            " https://github.com/<org>/crm-automation/blob/main/)",
            err=True,
        )
        raise typer.Exit(2)
    resolved = absolute_runbooks(yaml.safe_load(ALERT_RULES.read_text()), base_url)
    typer.echo(f"# crm-automation alert rules (`crm-automation alerts rules`); docs: {base_url}")
    typer.echo(yaml.dump(resolved, Dumper=_RulesDumper, sort_keys=False, width=100), nl=False)
