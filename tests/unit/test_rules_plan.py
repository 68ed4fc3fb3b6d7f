"""What `rules apply` plans against what is published: edited rules are told apart from
disabled and deleted ones, since their pending timers are handled differently."""

from __future__ import annotations

import dataclasses

from runtime import rules_topic
from tests.unit.rule_builders import validated

RULES = """
- id: renewal
  trigger: {entity_type: DEAL, pipeline: sales, stage: WON}
  when: {delay: 180d}
  action: {type: create_lead, title: "TITLE"}
- id: call
  trigger: {entity_type: DEAL, pipeline: sales, stage: APPROVAL}
  action: {type: plan_activity, subject: Call}
"""


def published(text: str) -> rules_topic.Published:
    rules = validated(text)
    return rules_topic.Published(
        rules={r.id: r for r in rules.rules}, pipelines={p.id: p for p in rules.pipelines}
    )


def test_an_edited_rule_is_planned_as_changed_with_both_versions() -> None:
    before = published(RULES.replace("TITLE", "Renew"))
    after = validated(RULES.replace("TITLE", "Renew now"))
    plan = rules_topic.plan_apply(after, before, prune=False)
    old, new = before.rules["renewal"].version, after.rules[0].version
    assert old != new
    assert plan.changed == (("renewal", old, new),)
    assert plan.cancelled_rules == ()
    assert [r.id for r in plan.upserts] == ["renewal"]


def test_a_disabled_or_pruned_rule_is_cancelled_not_changed() -> None:
    before = published(RULES.replace("TITLE", "Renew"))
    after = validated(RULES.replace("TITLE", "Renew"))
    disabled = dataclasses.replace(after, rules=(
        dataclasses.replace(after.rules[0], enabled=False, version="v-disabled"),
    ))  # fmt: skip
    plan = rules_topic.plan_apply(disabled, before, prune=True)
    assert plan.changed == ()
    assert plan.cancelled_rules == ("renewal", "call")
    assert rules_topic.plan_apply(after, before, prune=False).changed == ()
