"""Rules that can trigger themselves through the items they create.

A rule whose action creates an item (a deal copy, a lead) makes that item enter a stage;
the rules of that stage run for it, and may create another item, and so on. When such a
chain comes back to a rule already in it, the rule set can create items for ever but for
the engine's chain limit (`actions.CREATION_CHAIN_LIMIT`): `rules validate` and `rules
apply` warn about each such cycle, naming its rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from automation_core.canonical import rule_from_spec
from automation_core.evaluate import Trigger
from automation_core.model import EntityType, Rule
from automation_core.rule_errors import InvalidRuleSpec
from automation_core.rule_spec import CopyDealSpec, CreateLeadSpec


@dataclass(frozen=True)
class Cycle:
    """Rules in the order they trigger one another; the last one triggers the first."""

    rules: tuple[Rule, ...]

    def describe(self) -> str:
        if len(self.rules) == 1:
            (rule,) = self.rules
            return (
                f"rule {rule.id} can trigger itself: the item it creates enters"
                f" {rule.pipeline_id}/{rule.stage_id}, where it runs again"
            )
        path = " → ".join(r.id for r in (*self.rules, self.rules[0]))
        return f"rules {', '.join(r.id for r in self.rules)} can trigger each other: {path}"


def creation_cycles(rules: Iterable[Rule]) -> list[Cycle]:
    """Every cycle of enabled rules that create items entering each other's stages.

    One cycle per strongly connected group of rules (a rule on its own counts when it
    triggers itself), each as one closed path through all of the group's rules where
    there is one, in file order of its first rule.
    """
    enabled = [r for r in rules if r.enabled]
    by_trigger: dict[Trigger, list[Rule]] = {}
    for rule in enabled:
        by_trigger.setdefault(_trigger(rule), []).append(rule)
    following = {
        rule.id: [n.id for n in by_trigger.get(entered, ())]
        for rule in enabled
        if (entered := _entered(rule)) is not None
    }
    by_id = {r.id: r for r in enabled}
    order = {r.id: i for i, r in enumerate(enabled)}
    cycles = []
    for group in _strongly_connected(list(by_id), following):
        if len(group) == 1 and group[0] not in following.get(group[0], ()):
            continue
        members = sorted(group, key=order.__getitem__)
        path = _closed_path(members, following) or members
        cycles.append(Cycle(tuple(by_id[i] for i in path)))
    return sorted(cycles, key=lambda c: order[c.rules[0].id])


def _trigger(rule: Rule) -> Trigger:
    return (str(rule.entity_type), rule.pipeline_id, rule.stage_id)


def _entered(rule: Rule) -> Trigger | None:
    """The trigger the item `rule` creates enters, if it creates one that enters a stage."""
    try:
        action = rule_from_spec(rule).spec.action
    except InvalidRuleSpec:
        return None
    if isinstance(action, CopyDealSpec):
        return (str(EntityType.DEAL), action.target_pipeline, action.target_stage)
    if isinstance(action, CreateLeadSpec) and action.pipeline_id and action.stage_id:
        return (str(EntityType.LEAD), action.pipeline_id, action.stage_id)
    return None


def _strongly_connected(nodes: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a rules file may hold 10,000 rules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, next_edge = work.pop()
            if next_edge == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if next_edge < len(targets):
                work.append((node, next_edge + 1))
                target = targets[next_edge]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def _closed_path(members: list[str], edges: Mapping[str, list[str]]) -> list[str] | None:
    """A path from the first member back to it through every member, if one is short to
    find (depth-first, members only); None otherwise."""
    inside = set(members)
    start = members[0]
    path = [start]
    seen = {start}

    def extend(node: str) -> bool:
        if len(path) == len(members):
            return start in edges.get(node, ())
        for target in edges.get(node, ()):
            if target in inside and target not in seen:
                path.append(target)
                seen.add(target)
                if extend(target):
                    return True
                path.pop()
                seen.discard(target)
        return False

    return path if len(members) <= 12 and extend(start) else None
