"""`crm-automation rules` commands: validate, test offline, publish, list and delete rules."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
import typer

from automation_core import webhook
from automation_core.canonical import rule_from_spec
from automation_core.errors import InvalidEvent
from automation_core.evaluate import Decision, rule_index_from
from automation_core.event_json import format_timestamp, parse_stage_changed
from automation_core.model import (
    Action,
    CallWebhook,
    CompleteActivities,
    CopyDeal,
    CreateLead,
    Pipeline,
    PlanActivity,
    StageChanged,
)
from automation_core.rule_cycles import creation_cycles
from automation_core.rule_errors import RulesInvalid
from automation_core.rule_spec import PlanActivitySpec
from automation_core.rules_file import ValidatedRules, validate_rules_file
from automation_core.simulate import Step, simulate
from crm_automation import progress
from crm_automation.commands._common import EXIT_KAFKA, kafka_settings
from runtime import kafka_clients, rules_topic
from runtime.codec import records as codec_records
from runtime.codec.json_view import avro_to_json
from runtime.settings import Settings
from scheduler import timer_report

app = typer.Typer(no_args_is_help=True, help="Validate, test and publish automation rules.")


def load_rules(path: Path) -> ValidatedRules:
    """Read and validate a rules file; RulesInvalid lists every problem, OSError if unreadable.

    This is what `rules apply` validates with before publishing anything.
    """
    return validate_rules_file(path.read_text(encoding="utf-8"))


def load_rules_or_exit(path: Path) -> ValidatedRules:
    """`load_rules`, printing every problem and exiting with status 1 when there are any."""
    try:
        return load_rules(path)
    except OSError as exc:
        typer.echo(f"{path}: cannot read: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except RulesInvalid as exc:
        for problem in exc.problems:
            where = f"{path}:{problem.line}" if problem.line else str(path)
            typer.echo(f"{where}: {problem}", err=True)
        typer.echo(f"{len(exc.problems)} problem(s); nothing accepted.", err=True)
        raise typer.Exit(1) from None


def warn_about_cycles(path: Path, rules: ValidatedRules) -> None:
    """One warning line on stderr per cycle of rules that create items for one another."""
    for cycle in creation_cycles(rules.rules):
        typer.echo(
            f"{path}: warning: {cycle.describe()}; the engine stops such a chain at the"
            " third created item (creation_chain_limit, copy_chain_limit)",
            err=True,
        )


def load_events(path: Path) -> list[StageChanged]:
    """StageChanged events from a JSON-lines file (blank lines and `#` comments skipped)."""
    events: list[StageChanged] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            events.append(parse_stage_changed(json.loads(line)))
        except (json.JSONDecodeError, InvalidEvent) as exc:
            raise InvalidEvent(f"{path}:{number}: {exc}") from None
    return events


@app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="Rules file (YAML).")]) -> None:
    """Validate a rules file: print every problem (exit 1) or a summary, and a warning for
    each cycle of rules that can trigger themselves through the items they create."""
    rules = load_rules_or_exit(file)
    warn_about_cycles(file, rules)
    typer.echo(summary(rules))


@app.command("test")
def test(
    rules_file: Annotated[Path, typer.Argument(help="Rules file (YAML).")],
    events_file: Annotated[Path, typer.Argument(help="Stage changes, one JSON object a line.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per step, for tools.")
    ] = False,
) -> None:
    """Run the rules over events offline and print what would happen, and when: the
    created items' own rules included, times in each rule's time zone."""
    rules = load_rules_or_exit(rules_file)
    try:
        events = load_events(events_file)
    except (OSError, InvalidEvent) as exc:
        typer.echo(f"invalid events: {exc}", err=True)
        raise typer.Exit(1) from None
    zones = rule_zones(rules)
    try:
        steps = simulate(events, rule_index_from(rules.rules))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for step in steps:
        if as_json:
            typer.echo(json.dumps(step_json(step), ensure_ascii=False))
        else:
            for line in describe_step(step, zones):
                typer.echo(line)


def summary(rules: ValidatedRules) -> str:
    enabled = sum(1 for r in rules.rules if r.enabled)
    return (
        f"OK: {len(rules.pipelines)} pipeline(s), {len(rules.calendars)} working-time "
        f"calendar(s), {len(rules.rules)} rule(s) ({enabled} enabled)"
    )


def rule_zones(rules: ValidatedRules) -> dict[str, ZoneInfo]:
    """The time zone each rule is written in: its `when`'s, else its deadline's (a zone
    or a working-time calendar's); rules without one are shown in UTC."""
    zones: dict[str, ZoneInfo] = {}
    for rule in rules.rules:
        spec = rule_from_spec(rule).spec
        deadline = spec.action.deadline if isinstance(spec.action, PlanActivitySpec) else None
        for when in (spec.when, deadline):
            if when is None:
                continue
            name = when.timezone or (when.working_time.timezone if when.working_time else None)
            if name is not None:
                zones[rule.id] = ZoneInfo(name)
                break
    return zones


def _at(moment: datetime, zone: ZoneInfo | None) -> str:
    if zone is None or zone.key == "UTC":
        return moment.isoformat()
    return f"{moment.astimezone(zone).isoformat()} ({zone.key})"


def describe_step(step: Step, zones: Mapping[str, ZoneInfo] | None = None) -> list[str]:
    """Plain lines: the event, then one line per rule considered and per side effect."""
    zones = zones or {}
    event, decision = step.event, step.decision
    creator = step.created_by
    at, origin = _at(event.occurred_at, None), ""
    if creator is not None:  # a created item enters when its rule's zone says
        at = _at(event.occurred_at, zones.get(creator.rule_id))
        origin = f" (created by rule {creator.rule_id}, generation {event.copy_depth})"
    lines = [
        f"{at} {event.event_id} {event.key} → "
        f"{event.pipeline_id}/{event.stage_id}: {decision.outcome}{origin}"
    ]
    lines += [
        f"  cancel pending timers of stage entry {c.stage_entry_id}" for c in decision.cancels
    ]
    lines += [f"  {describe_action(a)}" for a in decision.completions]
    actions = {a.action_id: a for a in _all_actions(decision)}
    for ex in decision.executions:
        zone = zones.get(ex.rule_id)
        when = "" if ex.due_at is None else f" at {_at(ex.due_at, zone)}"
        line = f"  rule {ex.rule_id or '-'}: {ex.status.value}{when}"
        action = actions.get(ex.action_id or "")
        if action is not None:
            line += f": {describe_action(action, zone)}"
        if ex.reason:
            line += f" ({ex.reason})"
        lines.append(line)
    if decision.outcome == "processed" and not decision.executions:
        if step.entered:
            lines.append("  no rules for this stage")
        else:
            lines.append("  already in this stage (an update): rules run only on entering it")
    return lines


def _all_actions(decision: Decision) -> list[Action]:
    return [*decision.actions, *(t.action for t in decision.timers if t.action is not None)]


def describe_action(action: Action, zone: ZoneInfo | None = None) -> str:
    p = action.payload
    if isinstance(p, CreateLead):
        return (
            f"create lead {p.lead_id} {p.title!r} for {p.responsible_id}"
            f" in {p.pipeline_id or '-'}/{p.stage_id or '-'}"
        )
    if isinstance(p, CopyDeal):
        return (
            f"copy deal to {p.pipeline_id}/{p.stage_id} as {p.deal_id} {p.item.title!r} "
            f"for {p.item.responsible_id} (copy depth {p.copy_depth})"
        )
    if isinstance(p, PlanActivity):
        extras = [
            f"{p.duration_minutes} min in calendar" if p.add_to_calendar else "",
            f"clients {len(p.clients)}" if p.clients else "",
            f"invitees {', '.join(p.invitee_ids)}" if p.invitee_ids else "",
            f"room {p.location_id}" if p.location_id else "",
            f"address {p.address!r}" if p.address else "",
            f"link {p.link}" if p.link else "",
            f"files {', '.join(p.files)}" if p.files else "",
            "completes on stage exit" if p.complete_on_stage_exit else "",
        ]
        return (
            f"plan {p.activity_type} {p.subject!r} for {p.responsible_id}, deadline "
            f"{_at(p.deadline, zone)}" + "".join(f", {e}" for e in extras if e)
        )
    if isinstance(p, CallWebhook):
        sent = json.dumps(webhook.document(action)["fields"], ensure_ascii=False)
        return f"POST webhook to {p.url} with fields {sent}"
    assert isinstance(p, CompleteActivities)  # noqa: S101 - the payload union is closed
    return f"complete activities of stage {p.stage_id} (entry {action.stage_entry_id})"


def step_json(step: Step) -> dict[str, Any]:
    """One step as plain JSON: the event, its outcome, each rule's execution with the
    action it would produce (the wire record as `events tail` shows it), the cancels and
    completions, and the action that created the item if it is a created one."""
    event, decision = step.event, step.decision
    actions = {a.action_id: a for a in _all_actions(decision)}

    def action_json(action: Action | None) -> Any:
        return None if action is None else avro_to_json(codec_records.action_to_avro(action))

    return {
        "occurred_at": format_timestamp(event.occurred_at),
        "event_id": event.event_id,
        "item_key": event.key,
        "pipeline_id": event.pipeline_id,
        "stage_id": event.stage_id,
        "outcome": decision.outcome,
        "entered": step.entered,
        "created_by": action_json(step.created_by),
        "cancelled_stage_entries": [c.stage_entry_id for c in decision.cancels],
        "completions": [action_json(a) for a in decision.completions],
        "executions": [
            {
                "rule_id": ex.rule_id,
                "rule_version": ex.rule_version,
                "status": ex.status.value,
                "due_at": None if ex.due_at is None else format_timestamp(ex.due_at),
                "reason": ex.reason,
                "action": action_json(actions.get(ex.action_id or "")),
            }
            for ex in decision.executions
        ],
    }


def _describe_plan(plan: rules_topic.Plan, verb: str) -> list[str]:
    lines = []
    for record in plan.upserts:
        kind = "pipeline" if isinstance(record, Pipeline) else "rule"
        lines.append(f"{verb} {kind} {record.id}")
    for key in plan.deletes:
        lines.append(f"{verb} delete {key}")
    for rule_id in plan.cancelled_rules:
        lines.append(f"{verb} cancel pending timers of rule {rule_id}")
    lines.append(
        f"{len(plan.upserts)} to publish, {len(plan.deletes)} to delete, {plan.unchanged} unchanged"
    )
    return lines


class Pending(enum.StrEnum):
    KEEP = "keep"
    CANCEL = "cancel"


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="Rules file (YAML).")],
    prune: Annotated[
        bool, typer.Option(help="Delete published rules missing from the file.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; publish nothing.")] = False,
    pending: Annotated[
        Pending,
        typer.Option(
            help="Pending timers of a changed rule: keep (they fire with the version that"
            " scheduled them) or cancel (recorded as cancelled executions, reason"
            " rule_changed). Deleted and disabled rules' timers are always cancelled."
        ),
    ] = Pending.KEEP,
) -> None:
    """Validate the whole file, then publish what changed to automation.rules; what was
    published is printed once Kafka confirmed all of it (with a progress bar on stderr
    for 500 records or more, when stderr is a terminal)."""
    validated = load_rules_or_exit(file)
    warn_about_cycles(file, validated)
    s = kafka_settings()
    plan = rules_topic.plan_apply(validated, rules_topic.read_published(s), prune)
    # Described before publishing (the pending timers as they are now, before a cancel
    # reaches the scheduler), said only once Kafka confirmed every record.
    lines = _describe_plan(plan, "would" if dry_run else "publish")
    lines += _describe_pending(s, plan, pending, "would" if dry_run else "will")
    if not dry_run and not plan.empty:
        _publish(s, plan, "apply", cancel_changed=pending is Pending.CANCEL)
    for line in lines:
        typer.echo(line)


def _publish(s: Settings, plan: rules_topic.Plan, command: str, cancel_changed: bool) -> None:
    """Publish the plan, a progress bar on a terminal for large ones; exit EXIT_KAFKA when
    Kafka does not confirm every record (nothing is said to be published then)."""
    try:
        with progress.confirmations("records confirmed by Kafka") as confirmed:
            rules_topic.execute(
                s, plan, datetime.now(UTC), cancel_changed=cancel_changed, progress=confirmed
            )
    except kafka_clients.DeliveryFailed as exc:
        typer.echo(f"error: Kafka did not confirm the rules ({exc}); run {command} again", err=True)
        raise typer.Exit(EXIT_KAFKA) from None


def _describe_pending(
    s: Settings, plan: rules_topic.Plan, pending: Pending, verb: str
) -> list[str]:
    """Per changed, disabled or deleted rule: its pending timers and what happens to them."""
    rule_ids = [rule_id for rule_id, _old, _new in plan.changed] + list(plan.cancelled_rules)
    if not rule_ids:
        return []
    counts = _pending_counts(s, rule_ids)
    if isinstance(counts, str):
        return [counts]
    lines = []
    for rule_id, old, new in plan.changed:
        count = counts.get((rule_id, old), 0)
        fate = (
            f"{verb} be cancelled (rule_changed)"
            if pending is Pending.CANCEL
            else f"{verb} keep firing as v{old} (--pending cancel cancels them)"
        )
        lines.append(f"rule {rule_id} v{old} -> v{new}: {count} pending timer(s) of v{old} {fate}")
    for rule_id in plan.cancelled_rules:
        count = sum(n for (r, _version), n in counts.items() if r == rule_id)
        lines.append(
            f"rule {rule_id}: {count} pending timer(s) {verb} be cancelled (rule_cancelled)"
        )
    return lines


def _pending_counts(s: Settings, rule_ids: list[str]) -> dict[tuple[str, str], int] | str:
    """Pending timers by (rule, version) from the scheduler's table, or the line saying
    why the database cannot tell."""
    if s.database_url is None:
        return "pending timers: unknown (no database configured: CRM_AUTOMATION_DATABASE_URL)"
    try:
        with psycopg.connect(s.database_url.get_secret_value(), connect_timeout=5) as conn:
            return timer_report.pending_by_rule_version(conn, rule_ids)
    except psycopg.Error as exc:
        return f"pending timers: unknown (database unreachable: {type(exc).__name__})"


@app.command("list")
def list_rules(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per rule.")] = False,
) -> None:
    """The rules and pipelines the engine uses (read back from automation.rules)."""
    published = rules_topic.read_published(kafka_settings())
    for pipeline in sorted(published.pipelines.values(), key=lambda p: p.id):
        if not as_json:
            typer.echo(
                f"pipeline {pipeline.id} ({pipeline.entity_type}): {' > '.join(pipeline.stages)}"
            )
    for rule in sorted(
        published.rules.values(), key=lambda r: (r.pipeline_id, r.stage_id, r.position, r.id)
    ):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": rule.id,
                        "version": rule.version,
                        "enabled": rule.enabled,
                        "trigger": {
                            "entity_type": rule.entity_type.value,
                            "pipeline": rule.pipeline_id,
                            "stage": rule.stage_id,
                        },
                        "position": rule.position,
                        "spec": rule.spec,
                    }
                )
            )
        else:
            state = "enabled" if rule.enabled else "disabled"
            typer.echo(
                f"rule {rule.id} v{rule.version} {state}: {rule.entity_type.value} "
                f"{rule.pipeline_id}/{rule.stage_id} -> {rule.spec.get('action', {}).get('type')}"
            )


@app.command("delete")
def delete(rule_ids: Annotated[list[str], typer.Argument(help="Rule ids to delete.")]) -> None:
    """Delete rules (tombstones) and cancel their pending timers; what was deleted is
    printed once Kafka confirmed it, with each rule's pending timers."""
    s = kafka_settings()
    published = rules_topic.read_published(s)
    missing = [r for r in rule_ids if r not in published.rules]
    for rule_id in missing:
        typer.echo(f"error: no published rule {rule_id!r}", err=True)
    if missing:
        raise typer.Exit(1)
    plan = rules_topic.plan_delete(rule_ids, published)
    # Counted before the cancels reach the scheduler, said once Kafka confirmed them.
    lines = [f"deleted rule {rule_id}" for rule_id in plan.deletes]
    lines += _describe_pending(s, plan, Pending.CANCEL, "will")
    _publish(s, plan, "delete", cancel_changed=False)
    for line in lines:
        typer.echo(line)
