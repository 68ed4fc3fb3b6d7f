"""The webhook action: what a rule may say, what it sends, and how a request is judged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from automation_core.model import CallWebhook
from automation_core.rule_errors import RulesInvalid
from automation_core.webhook import document
from sinks.webhook.delivery import (
    address_allowed,
    body_of,
    host_allowed,
    retry_after_seconds,
    signature,
    verify_signature,
)
from tests.unit.rule_builders import validated
from tests.unit.test_actions import run

WEBHOOK = """
- id: notify-erp
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  action:
    type: webhook
    url: %s
    fields:
      title: "Won: {{ item.title }}"
      contract: "{{ item.UF_CONTRACT_NO }}"
      empty: ""
"""


def problems(rules: str) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        validated(rules)
    return [str(p) for p in caught.value.problems]


def test_a_won_deal_posts_the_item_and_the_rendered_fields_in_the_rules_order() -> None:
    decision = run(WEBHOOK % "https://erp.example.com/hooks/crm?src=crm")
    [action] = decision.actions
    assert isinstance(action.payload, CallWebhook)
    assert action.payload.fields == (
        ("title", "Won: Maintenance Müller GmbH"),
        ("contract", "MV-17"),
        ("empty", ""),
    )

    doc = document(action)

    assert doc["action_id"] == action.action_id
    assert (doc["entity_type"], doc["item_id"]) == ("DEAL", "4711")
    assert (doc["pipeline_id"], doc["stage_id"]) == ("sales", "WON")
    assert doc["occurred_at"] == "2026-11-26T10:00:00Z"
    assert doc["fields"] == {
        "title": "Won: Maintenance Müller GmbH",
        "contract": "MV-17",
        "empty": "",
    }
    assert doc["item"]["company"] == {"id": "c-1", "title": "Müller GmbH"}
    assert doc["item"]["amount"] == "12000.00"
    assert json.loads(body_of(action)) == doc


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://erp.example.com/hook", "must use https"),
        ("https://user:pw@erp.example.com/hook", "user information"),
        ("https://{{ item.UF_HOST }}/hook", "placeholders belong in its fields"),
        ("https://erp.example.com/{{ item.title }}", "placeholders belong in its fields"),
        ("ftp://erp.example.com/", "not allowed"),
        ("https:///nohost", "no host"),
    ],
)
def test_a_webhook_url_must_be_fixed_https_without_credentials(url: str, expected: str) -> None:
    found = problems(WEBHOOK % json.dumps(url))
    assert any("action.url" in p and expected in p for p in found), found


def test_field_names_and_templates_are_checked() -> None:
    rules = """
- id: notify
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  action:
    type: webhook
    url: https://erp.example.com/hook
    fields: {"1st": "x", ok: "{{ item.nope }}", n: 5}
"""
    found = problems(rules)
    assert any("fields.1st" in p and "field name" in p for p in found), found
    assert any("fields.ok" in p for p in found), found
    assert any("fields.n" in p and "string" in p for p in found), found


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("hooks.example.com", ["hooks.example.com"], True),
        ("HOOKS.example.com.", ["hooks.example.com"], True),
        ("a.hooks.example.com", ["*.hooks.example.com"], True),
        ("hooks.example.com", ["*.hooks.example.com"], False),
        ("evil-hooks.example.com", ["*.hooks.example.com"], False),
        ("hooks.example.com.evil.net", ["hooks.example.com"], False),
        ("other.example.com", [], False),
    ],
)
def test_only_allowlisted_hosts_are_called(host: str, allowed: list[str], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - an address refused, not bound
        ("224.0.0.1", False),
    ],
)
def test_private_loopback_and_link_local_addresses_are_not_reached(
    address: str, expected: bool
) -> None:
    assert address_allowed(address) is expected


def test_a_receiver_accepts_the_signature_only_for_the_same_secret_body_and_a_recent_time() -> None:
    secret, body = b"s3cret", b'{"action_id":"a-1"}'
    header = signature(secret, 1_700_000_000, body)
    assert verify_signature(secret, header, body, now=1_700_000_100)
    assert not verify_signature(b"other", header, body, now=1_700_000_100)
    assert not verify_signature(secret, header, body + b" ", now=1_700_000_100)
    assert not verify_signature(secret, header, body, now=1_700_000_000 + 301)  # a replay
    assert not verify_signature(secret, "v1=abc", body, now=1_700_000_000)


def test_retry_after_is_read_as_seconds_or_a_date_and_capped() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Tue, 01 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Tue, 01 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("86400", now) == 300.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
