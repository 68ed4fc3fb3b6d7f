"""`crm-automation rules` commands: validate and test rules files offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from automation_core.errors import InvalidEvent
from automation_core.evaluate import Decision, rule_index_from
from automation_core.event_json import parse_stage_changed
from automation_core.model import (
    Action,
    CompleteActivities,
    CopyDeal,
    CreateLead,
    PlanActivity,
    StageChanged,
)
from automation_core.rule_errors import RulesInvalid
from automation_core.rules_file import ValidatedRules, validate_rules_file
from automation_core.simulate import Step, simulate

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
            typer.echo(f"{path}: {problem}", err=True)
        typer.echo(f"{len(exc.problems)} problem(s); nothing accepted.", err=True)
        raise typer.Exit(1) from None


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
    """Validate a rules file: print every problem (exit 1) or a summary."""
    rules = load_rules_or_exit(file)
    typer.echo(summary(rules))


@app.command("test")
def test(
    rules_file: Annotated[Path, typer.Argument(help="Rules file (YAML).")],
    events_file: Annotated[Path, typer.Argument(help="Stage changes, one JSON object a line.")],
) -> None:
    """Run the rules over events offline and print what would happen, and when."""
    rules = load_rules_or_exit(rules_file)
    try:
        events = load_events(events_file)
    except (OSError, InvalidEvent) as exc:
        typer.echo(f"invalid events: {exc}", err=True)
        raise typer.Exit(1) from None
    pipelines = {p.id: p for p in rules.pipelines}
    for step in simulate(events, rule_index_from(rules.rules), pipelines):
        for line in describe_step(step):
            typer.echo(line)


def summary(rules: ValidatedRules) -> str:
    enabled = sum(1 for r in rules.rules if r.enabled)
    return (
        f"OK: {len(rules.pipelines)} pipeline(s), {len(rules.calendars)} working-time "
        f"calendar(s), {len(rules.rules)} rule(s) ({enabled} enabled)"
    )


def describe_step(step: Step) -> list[str]:
    """Plain lines: the event, then one line per rule considered and per side effect."""
    event, decision = step.event, step.decision
    lines = [
        f"{event.occurred_at.isoformat()} {event.event_id} {event.key} → "
        f"{event.pipeline_id}/{event.stage_id}: {decision.outcome}"
    ]
    lines += [f"  cancel pending timers of stage entry {c.stage_entry_id}"
              for c in decision.cancels]
    lines += [f"  {describe_action(a)}" for a in decision.completions]
    actions = {a.action_id: a for a in _all_actions(decision)}
    for ex in decision.executions:
        when = "" if ex.due_at is None else f" at {ex.due_at.isoformat()}"
        line = f"  rule {ex.rule_id or '-'}: {ex.status.value}{when}"
        action = actions.get(ex.action_id or "")
        if action is not None:
            line += f": {describe_action(action)}"
        if ex.reason:
            line += f" ({ex.reason})"
        lines.append(line)
    if decision.outcome == "processed" and not decision.executions:
        lines.append("  no rules for this stage")
    return lines


def _all_actions(decision: Decision) -> list[Action]:
    return [*decision.actions, *(t.action for t in decision.timers if t.action is not None)]


def describe_action(action: Action) -> str:
    p = action.payload
    if isinstance(p, CreateLead):
        return (f"create lead {p.lead_id} {p.title!r} for {p.responsible_id}"
                f" in {p.pipeline_id or '-'}/{p.stage_id or '-'}")
    if isinstance(p, CopyDeal):
        return (f"copy deal to {p.pipeline_id}/{p.stage_id} as {p.deal_id} {p.item.title!r} "
                f"for {p.item.responsible_id} (copy depth {p.copy_depth})")
    if isinstance(p, PlanActivity):
        extras = [f"{p.duration_minutes} min in calendar" if p.add_to_calendar else "",
                  f"clients {len(p.clients)}" if p.clients else "",
                  "completes on stage exit" if p.complete_on_stage_exit else ""]
        return (f"plan activity {p.subject!r} for {p.responsible_id}, deadline "
                f"{p.deadline.isoformat()}" + "".join(f", {e}" for e in extras if e))
    assert isinstance(p, CompleteActivities)  # noqa: S101 - the payload union is closed
    return f"complete activities of stage {p.stage_id} (entry {action.stage_entry_id})"
