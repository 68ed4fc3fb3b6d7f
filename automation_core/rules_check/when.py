"""Time settings: a rule's `when` and an activity's `deadline`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from automation_core.durations import parse_time_of_day
from automation_core.fields import DATE_FIELDS, canonical_field, is_custom
from automation_core.rules_check.limits import _TIME_KEYS
from automation_core.rules_check.shapes import Shapes, join_path
from automation_core.time_spec import TimeSpec


class TimeChecks(Shapes):
    def time_spec(self, raw: Any, path: str) -> TimeSpec | None:
        t = self.mapping(raw, path, _TIME_KEYS)
        if t is None:
            return None
        bases = [k for k in ("delay", "field", "datetime") if k in t]
        if len(bases) > 1:
            self.add(path, f"use only one of delay, field, datetime (got {', '.join(bases)})")
            return None
        parsed = (0, 0) if "delay" not in t else self.delay(t["delay"], join_path(path, "delay"))
        months, delay = parsed if parsed is not None else (0, None)
        offset = 0
        field = None
        absolute = None
        if "field" in t:
            field = canonical_field(str(t["field"]))
            if field is None or not (field in DATE_FIELDS or is_custom(field)):
                self.add(
                    join_path(path, "field"),
                    f"{t['field']!r} is not a date field "
                    "(begin_date, close_date or a UF_ custom field)",
                )
                field = None
            if "offset" in t:
                offset = (
                    self.duration(t["offset"], join_path(path, "offset"), allow_negative=True) or 0
                )
        elif "offset" in t:
            self.add(join_path(path, "offset"), "offset needs a date field ('field')")
        if "datetime" in t:
            try:
                absolute = datetime.fromisoformat(str(t["datetime"]))
            except ValueError:
                absolute = None
            if absolute is None or absolute.tzinfo is None:
                self.add(
                    join_path(path, "datetime"),
                    "expected an ISO date-time with UTC offset, e.g. 2026-12-01T10:00:00+01:00",
                )
        at = None
        if "at" in t:
            try:
                at = parse_time_of_day(str(t["at"]))
            except ValueError as exc:
                self.add(join_path(path, "at"), str(exc))
        zone = (
            None if "timezone" not in t else self.zone(t["timezone"], join_path(path, "timezone"))
        )
        calendar = None
        if "working_time" in t:
            calendar = self.calendars.get(str(t["working_time"]))
            if calendar is None:
                known = ", ".join(self.calendars) or "none defined"
                self.add(
                    join_path(path, "working_time"),
                    f"unknown working-time calendar {t['working_time']!r} (calendars: {known})",
                )
        needs_zone = at is not None or field is not None
        if needs_zone and "timezone" not in t and "working_time" not in t:
            self.add(
                path,
                "'at' and 'field' need a 'timezone' (or a 'working_time' calendar "
                "whose zone is used)",
            )
        if delay is None:
            return None
        return TimeSpec(
            delay_seconds=delay,
            delay_months=months,
            field=field,
            offset_seconds=offset,
            at=at,
            timezone=zone,
            absolute=absolute,
            working_time=calendar,
        )
