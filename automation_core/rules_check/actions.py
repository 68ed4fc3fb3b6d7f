"""A rule's action: create_lead, copy_deal, plan_activity, webhook."""

from __future__ import annotations

from typing import Any

from automation_core import webhook
from automation_core.colors import COLORS, HEX_COLOR
from automation_core.links import url_problem
from automation_core.model import EntityType
from automation_core.rule_spec import (
    ACTIVITY_TYPES,
    ActionSpec,
    CopyDealSpec,
    CreateLeadSpec,
    PlanActivitySpec,
    WebhookSpec,
    is_clients_mode,
)
from automation_core.rules_check.limits import (
    _ACTION_KEYS,
    MAX_ACTIVITY_MINUTES,
    MAX_FILES,
    MAX_INVITEES,
)
from automation_core.rules_check.shapes import clients_mode, join_path, kind_of
from automation_core.rules_check.when import TimeChecks
from automation_core.templates import fill_placeholders


class ActionChecks(TimeChecks):
    # -- actions ----------------------------------------------------------------------

    def action(self, raw: Any, path: str, entity: EntityType | None) -> ActionSpec | None:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in _ACTION_KEYS:
            if isinstance(raw, dict):
                self.add(
                    join_path(path, "type"),
                    f"unknown action type {kind!r} (one of {', '.join(_ACTION_KEYS)})",
                )
            else:
                self.add(path, f"expected a mapping, got {kind_of(raw)}")
            return None
        if kind == "create_lead":
            return self.create_lead(raw, path)
        if kind == "copy_deal":
            return self.copy_deal(raw, path, entity)
        if kind == "webhook":
            return self.webhook(raw, path)
        return self.plan_activity(raw, path)

    def webhook(self, raw: Any, path: str) -> WebhookSpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["webhook"], ("url",))
        if a is None:
            return None
        url = self.text(a.get("url"), join_path(path, "url"))
        if url is not None and (problem := webhook.url_problem_of(url)) is not None:
            self.add(join_path(path, "url"), problem)
            url = None
        fields: list[tuple[str, str]] = []
        raw_fields, fields_path = a.get("fields"), join_path(path, "fields")
        if raw_fields is not None and not isinstance(raw_fields, dict):
            self.add(
                fields_path, f"expected a mapping of names to templates, got {kind_of(raw_fields)}"
            )
        elif raw_fields is not None and len(raw_fields) > webhook.MAX_FIELDS:
            self.add(fields_path, f"at most {webhook.MAX_FIELDS} fields")
        elif raw_fields is not None:
            for name, template in raw_fields.items():
                field_path = join_path(fields_path, str(name))
                if (problem := webhook.field_name_problem(name)) is not None:
                    self.add(field_path, problem)
                    continue
                text = self.text(template, field_path, template=True, allow_empty=True)
                if text is not None:
                    fields.append((name, text))
        return None if url is None else WebhookSpec(url, tuple(fields))

    def responsibles(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        values = raw if isinstance(raw, list) else [raw]
        out = [
            self.text(v, f"{path}[{k}]" if isinstance(raw, list) else path, template=True)
            for k, v in enumerate(values)
        ]
        return tuple(v for v in out if v is not None)

    def create_lead(self, raw: Any, path: str) -> CreateLeadSpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["create_lead"], ("title",))
        if a is None:
            return None
        title = self.text(a.get("title"), join_path(path, "title"), template=True)
        responsible = self.responsibles(a.get("responsible"), join_path(path, "responsible"))
        lead_pipeline = None
        if a.get("pipeline") is not None:
            lead_pipeline = self.known_pipeline(a["pipeline"], join_path(path, "pipeline"))
            if lead_pipeline is not None and lead_pipeline.entity_type is not EntityType.LEAD:
                self.add(
                    join_path(path, "pipeline"),
                    f"pipeline {lead_pipeline.id!r} is not a LEAD pipeline",
                )
        else:
            lead_pipeline = next(
                (p for p in self.pipelines.values() if p.entity_type is EntityType.LEAD), None
            )
        stage = None
        if lead_pipeline is not None:
            stage = a.get("stage", lead_pipeline.first_stage)
            if stage not in lead_pipeline.stages:
                self.add(
                    join_path(path, "stage"),
                    f"stage {stage!r} is not in pipeline {lead_pipeline.id!r}",
                )
        elif a.get("stage") is not None:
            self.add(join_path(path, "stage"), "a stage needs a LEAD pipeline")
        if title is None:
            return None
        return CreateLeadSpec(
            title,
            responsible,
            lead_pipeline.id if lead_pipeline else None,
            None if stage is None else str(stage),
        )

    def copy_deal(self, raw: Any, path: str, entity: EntityType | None) -> CopyDealSpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["copy_deal"], ("target_pipeline",))
        if a is None:
            return None
        if entity is not None and entity is not EntityType.DEAL:
            self.add(path, "copy_deal needs a DEAL trigger")
        title = None
        if a.get("title") is not None:
            title = self.text(a["title"], join_path(path, "title"), template=True)
        suffix = " (copy)"
        if a.get("suffix") is not None:
            suffix = self.text(a["suffix"], join_path(path, "suffix"), allow_empty=True) or suffix
        responsible = None
        if a.get("responsible") is not None:
            responsible = self.text(a["responsible"], join_path(path, "responsible"), template=True)
        target = None
        if a.get("target_pipeline") is not None:
            target = self.known_pipeline(a["target_pipeline"], join_path(path, "target_pipeline"))
        if target is None:
            return None
        if target.entity_type is not EntityType.DEAL:
            self.add(
                join_path(path, "target_pipeline"),
                f"pipeline {target.id!r} holds "
                f"{target.entity_type.value} items; copy_deal needs a DEAL pipeline",
            )
            return None
        stage = a.get("target_stage", target.first_stage)
        if stage not in target.stages:
            self.add(
                join_path(path, "target_stage"),
                f"stage {stage!r} is not in target pipeline "
                f"{target.id!r} (stages: {', '.join(target.stages)})",
            )
            return None
        return CopyDealSpec(target.id, str(stage), title, suffix, responsible)

    def plan_activity(self, raw: Any, path: str) -> PlanActivitySpec | None:
        a = self.mapping(raw, path, _ACTION_KEYS["plan_activity"], ("subject",))
        if a is None:
            return None

        def p(key: str) -> str:
            return join_path(path, key)

        subject = self.text(a.get("subject"), p("subject"), template=True)
        description = ""
        if a.get("description") is not None:
            description = (
                self.text(a["description"], p("description"), template=True, allow_empty=True) or ""
            )
        deadline = None
        if a.get("deadline") is not None:
            deadline = self.time_spec(a["deadline"], p("deadline"))
        responsible = None
        if a.get("responsible") is not None:
            responsible = self.text(a["responsible"], p("responsible"), template=True)
        color = a.get("color")
        if color is not None and (
            not isinstance(color, str) or not (color in COLORS or HEX_COLOR.fullmatch(color))
        ):
            self.add(p("color"), f"unknown colour {color!r} (a name like yellow, or #RRGGBB)")
        add_to_calendar, minutes = self.calendar_option(a.get("calendar"), p("calendar"))
        clients = a.get("clients", "none")
        if isinstance(clients, dict) and set(clients) == {"contact"}:
            clients = f"contact:{clients['contact']}"
        if not is_clients_mode(clients):
            self.add(
                p("clients"),
                f"expected none, first, all or {{contact: N}} (N from 1 to 100), got {clients!r}",
            )
            clients = "none"
        invite = self.id_list(a.get("invite"), p("invite"), MAX_INVITEES)
        address = None
        if a.get("address") is not None:
            address = self.text(a["address"], p("address"), template=True)
        location = None
        if a.get("location") is not None:
            location = self.identifier(a["location"], p("location"))
            if location is not None and not add_to_calendar:
                # The room is booked in the calendars, for the event's time: without one
                # the rule would name a room and book nothing.
                self.add(
                    p("location"),
                    f"room {location!r} is booked only with the activity in the calendar:"
                    " add `calendar: true` (or `calendar: {duration: 30m}`), or use"
                    " `address` for a place that needs no booking",
                )
        link = None
        if a.get("link") is not None:
            link = self.text(a["link"], p("link"), template=True)
            if link is not None:
                self.link_template(link, p("link"))
        files = self.files(a.get("files"), p("files"))
        complete = self.boolean(a.get("complete_on_stage_exit"), p("complete_on_stage_exit"), False)
        activity_type = a.get("activity_type", "task")
        if activity_type not in ACTIVITY_TYPES:
            self.add(
                p("activity_type"),
                f"expected {', '.join(ACTIVITY_TYPES)}, got {activity_type!r}",
            )
        if subject is None:
            return None
        return PlanActivitySpec(
            subject=subject,
            description=description,
            deadline=deadline,
            responsible=responsible,
            color=color,
            add_to_calendar=add_to_calendar,
            duration_minutes=minutes,
            clients=clients_mode(clients),
            invite=invite,
            address=address,
            location=location,
            link=link,
            files=files,
            complete_on_stage_exit=complete,
            activity_type=str(activity_type),
        )

    def calendar_option(self, raw: Any, path: str) -> tuple[bool, int]:
        if raw is None or raw is False:
            return False, 30
        if raw is True:
            return True, 30
        c = self.mapping(raw, path, {"duration"})
        if c is None:
            return False, 30
        seconds = self.duration(c.get("duration", "30m"), join_path(path, "duration"))
        if seconds is None:
            return True, 30
        if seconds < 60 or seconds % 60 or seconds > MAX_ACTIVITY_MINUTES * 60:
            self.add(join_path(path, "duration"), "expected whole minutes between 1m and 7d")
            return True, 30
        return True, seconds // 60

    def id_list(self, raw: Any, path: str, limit: int) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > limit:
            self.add(path, f"expected a list of at most {limit} ids")
            return ()
        out = [self.identifier(v, f"{path}[{k}]") for k, v in enumerate(raw)]
        return tuple(v for v in out if v is not None)

    def files(self, raw: Any, path: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or len(raw) > MAX_FILES:
            self.add(path, f"expected a list of at most {MAX_FILES} URLs")
            return ()
        out: list[str] = []
        for k, url in enumerate(raw):
            problem = url_problem(url) if isinstance(url, str) else "expected a URL string"
            if problem is not None:
                self.add(f"{path}[{k}]", problem)
            else:
                out.append(url)
        return tuple(out)

    def link_template(self, link: str, path: str) -> None:
        # Placeholders may fill in a path or query, never the scheme or the host.
        sample = fill_placeholders(link, "x")
        problem = url_problem(sample)
        if problem is not None:
            self.add(path, problem)
            return
        head = link.split("://", 1)[-1].split("/", 1)[0]
        if fill_placeholders(head, "") != head or "://" not in link:
            self.add(path, "placeholders may not be part of the link's scheme or host")
