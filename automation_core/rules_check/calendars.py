"""Pipelines and working-time calendars of a rules file."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from automation_core.durations import parse_time_of_day
from automation_core.model import EntityType, Pipeline
from automation_core.rules_check.limits import ID_PATTERN
from automation_core.rules_check.shapes import Shapes, join_path
from automation_core.time_spec import WEEKDAYS, WorkingCalendar
from automation_core.timing import known_holiday_code


class CalendarChecks(Shapes):
    def pipeline(self, raw: Any, path: str) -> None:
        p = self.mapping(
            raw, path, {"id", "entity_type", "stages"}, ("id", "entity_type", "stages")
        )
        if p is None:
            return
        pid = self.identifier(p.get("id"), join_path(path, "id"))
        entity = self.entity_type(p.get("entity_type"), join_path(path, "entity_type"))
        stages = p.get("stages")
        ok = True
        if not isinstance(stages, list) or not stages:
            self.add(join_path(path, "stages"), "expected a non-empty list of stage ids")
            return
        for j, stage in enumerate(stages):
            ok = self.identifier(stage, f"{path}.stages[{j}]") is not None and ok
        if len(set(map(str, stages))) != len(stages):
            self.add(join_path(path, "stages"), "duplicate stage id")
            ok = False
        if pid is not None and pid in self.pipelines:
            self.add(join_path(path, "id"), f"duplicate pipeline id {pid!r}")
        elif pid is not None and entity is not None and ok:
            self.pipelines[pid] = Pipeline(pid, entity, tuple(stages))

    def entity_type(self, value: Any, path: str) -> EntityType | None:
        try:
            return EntityType(value)
        except ValueError:
            self.add(
                path, f"expected one of {', '.join(e.value for e in EntityType)}, got {value!r}"
            )
            return None

    def calendar(self, name: str, raw: Any, path: str) -> None:
        keys = {"timezone", "days", "hours", "holidays", "days_off", "extra_working_days"}
        c = self.mapping(raw, path, keys, ("timezone",))
        if c is None:
            return
        if not ID_PATTERN.fullmatch(name):
            self.add(path, f"bad calendar name {name!r}")
        zone = self.zone(c.get("timezone"), join_path(path, "timezone"))
        days_raw = c.get("days", ["mon", "tue", "wed", "thu", "fri"])
        days: list[int] = []
        if not isinstance(days_raw, list) or not days_raw:
            self.add(join_path(path, "days"), "expected a non-empty list like [mon, tue]")
        else:
            for j, day in enumerate(days_raw):
                if day not in WEEKDAYS:
                    self.add(f"{path}.days[{j}]", f"unknown day {day!r} (mon … sun)")
                elif WEEKDAYS.index(day) not in days:
                    days.append(WEEKDAYS.index(day))
        hours = self.hours(c.get("hours", "09:00-18:00"), join_path(path, "hours"))
        holidays_code = c.get("holidays")
        if holidays_code is not None:
            if not isinstance(holidays_code, str) or not known_holiday_code(holidays_code):
                self.add(
                    join_path(path, "holidays"),
                    f"unknown holiday country {holidays_code!r} (e.g. DE, DE-BY, AT)",
                )
                holidays_code = None
        days_off = self.dates(c.get("days_off", []), join_path(path, "days_off"))
        extra = self.dates(c.get("extra_working_days", []), join_path(path, "extra_working_days"))
        for both in sorted(days_off & extra):
            self.add(path, f"{both.isoformat()} is both a day off and an extra working day")
        if zone is not None and hours is not None and days:
            self.calendars[name] = WorkingCalendar(
                name, zone, tuple(sorted(days)), hours, holidays_code, days_off, extra
            )

    def dates(self, raw: Any, path: str) -> frozenset[date]:
        """A list of ISO dates (`2026-12-24`)."""
        if not isinstance(raw, list):
            self.add(path, "expected a list of dates like [2026-12-24, 2026-12-31]")
            return frozenset()
        found: set[date] = set()
        for j, value in enumerate(raw):
            try:
                found.add(date.fromisoformat(str(value)))
            except ValueError:
                self.add(f"{path}[{j}]", f"expected a date like 2026-12-24, got {value!r}")
        return frozenset(found)

    def hours(self, raw: Any, path: str) -> tuple[tuple[time, time], ...] | None:
        spans = [raw] if isinstance(raw, str) else raw
        if not isinstance(spans, list) or not spans:
            self.add(path, "expected 'HH:MM-HH:MM' or a list of them")
            return None
        out: list[tuple[time, time]] = []
        for span in spans:
            try:
                start_text, end_text = str(span).split("-")
                start, end = parse_time_of_day(start_text), parse_time_of_day(end_text)
            except ValueError:
                self.add(path, f"bad hours {span!r} (expected 'HH:MM-HH:MM')")
                return None
            if start >= end:
                self.add(path, f"hours {span!r} end before they start")
                return None
            if out and start < out[-1][1]:
                self.add(path, f"hours {span!r} overlap or are not in order")
                return None
            out.append((start, end))
        return tuple(out)
