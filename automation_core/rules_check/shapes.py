"""Generic shapes of a rules file: mappings, texts, ids, durations, known pipelines."""

from __future__ import annotations

import difflib
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from automation_core.durations import parse_delay, parse_duration
from automation_core.model import Pipeline
from automation_core.rule_errors import Problem
from automation_core.rule_spec import ClientsMode, is_clients_mode
from automation_core.rules_check.limits import ID_PATTERN
from automation_core.templates import MAX_TEMPLATE_CHARS, template_problems
from automation_core.time_spec import WorkingCalendar


class Shapes:
    """Collects problems; the checks every part of the file uses."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.pipelines: dict[str, Pipeline] = {}
        self.calendars: dict[str, WorkingCalendar] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- generic shapes ---------------------------------------------------------------

    def mapping(
        self, value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping, got {kind_of(value)}")
            return None
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(join_path(path, str(key)), f"unknown key{suffix}")
        for key in required:
            if key not in value or value[key] is None:
                self.add(join_path(path, key), "required")
        return value

    def text(
        self, value: Any, path: str, *, template: bool = False, allow_empty: bool = False
    ) -> str | None:
        if value is None:
            return None  # a missing required key is reported once, by `mapping`
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            self.add(path, f"expected a non-empty string, got {kind_of(value)}")
            return None
        if template:
            for problem in template_problems(value):
                self.add(path, problem)
        elif len(value) > MAX_TEMPLATE_CHARS:
            self.add(path, f"longer than {MAX_TEMPLATE_CHARS} characters")
        return value

    def identifier(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            self.add(path, f"expected an id (letters, digits, . _ : -; at most 128), got {value!r}")
            return None
        return value

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {value!r}")
            return default
        return value

    def zone(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"expected a time zone name, got {kind_of(value)}")
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.add(path, f"unknown time zone {value!r}")
            return None
        return value

    def delay(self, value: Any, path: str) -> tuple[int, int] | None:
        """(months, seconds) of a `delay`, which may use calendar months (`6mo`)."""
        if not isinstance(value, str):
            self.add(path, f"expected a duration like '10m' or '6mo', got {value!r}")
            return None
        try:
            months, seconds = parse_delay(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None
        if months < 0 or seconds < 0:
            self.add(path, "must not be negative")
            return None
        return months, seconds

    def duration(self, value: Any, path: str, *, allow_negative: bool = False) -> int | None:
        if not isinstance(value, str):
            self.add(path, f"expected a duration like '10m', got {value!r}")
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None
        if seconds < 0 and not allow_negative:
            self.add(path, "must not be negative")
            return None
        return seconds

    def known_pipeline(self, value: Any, path: str) -> Pipeline | None:
        if value is None:
            self.add(path, "required")
            return None
        pipeline = self.pipelines.get(str(value))
        if pipeline is None:
            known = ", ".join(self.pipelines) or "none defined"
            self.add(path, f"unknown pipeline {value!r} (pipelines: {known})")
        return pipeline


def clients_mode(value: Any) -> ClientsMode:
    return str(value) if is_clients_mode(value) else "none"


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
