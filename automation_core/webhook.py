"""The webhook action: what a rule may name, and the JSON document a receiver gets.

A rule names a fixed https URL (no placeholders: a template could point the request at
another host) and named fields, each a template over the allowlisted fields. The webhook
sink POSTs `document(action)` as JSON; the document is built here so that `rules test`
shows exactly what would be sent.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from automation_core.event_json import format_timestamp, item_to_json
from automation_core.links import url_problem
from automation_core.model import Action, CallWebhook, StageChanged
from automation_core.rule_spec import WebhookSpec
from automation_core.templates import render

MAX_FIELDS = 50
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def url_problem_of(url: str) -> str | None:
    """Why `url` cannot be a webhook's target, or None: https only, a host, no user
    information, no placeholders."""
    if "{" in url or "}" in url:
        return "a webhook URL is fixed: placeholders belong in its fields"
    problem = url_problem(url)
    if problem is not None:
        return problem
    if urlsplit(url).scheme.lower() != "https":
        return "a webhook URL must use https"
    return None


def field_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        return (
            f"expected a field name (a letter or _, then letters, digits or _; at most 64), "
            f"got {name!r}"
        )
    return None


def build(spec: WebhookSpec, event: StageChanged) -> CallWebhook:
    return CallWebhook(
        url=spec.url,
        pipeline_id=event.pipeline_id,
        stage_id=event.stage_id,
        item=event.item,
        fields=tuple((name, render(template, event)) for name, template in spec.fields),
    )


def document(action: Action) -> dict[str, Any]:
    """The JSON document POSTed for a webhook action."""
    payload = action.payload
    if not isinstance(payload, CallWebhook):
        raise TypeError(f"not a webhook action: {action.kind}")
    entity_type, _, item_id = action.item_key.partition(":")
    out: dict[str, Any] = {
        "action_id": action.action_id,
        "rule_id": action.rule_id,
        "rule_version": action.rule_version,
        "event_id": action.event_id,
        "occurred_at": format_timestamp(action.occurred_at),
        "entity_type": entity_type,
        "item_id": item_id,
        "pipeline_id": payload.pipeline_id,
        "stage_id": payload.stage_id,
        "item": item_to_json(payload.item),
        "fields": dict(payload.fields),
    }
    if action.due_at is not None:
        out["due_at"] = format_timestamp(action.due_at)
    return out
