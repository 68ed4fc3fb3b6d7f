"""When something happens: `TimeSpec`, working-time calendars, and their canonical dicts.

A rule's `when` and a planned activity's `deadline` are `TimeSpec`s; `timing` computes
the moment from one.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days (0 = Monday), hour ranges and public holidays, in one time zone."""

    name: str
    timezone: str
    days: tuple[int, ...]
    hours: tuple[tuple[time, time], ...]
    holidays: str | None = None
    """Country code for the `holidays` library, optionally with subdivision: `DE`, `DE-BY`."""
    days_off: frozenset[date] = frozenset()
    """The company's own days off (a closing day, the days between the holidays)."""
    extra_working_days: frozenset[date] = frozenset()
    """Dates worked although the week or the holidays say otherwise (a Saturday event)."""

    def __hash__(self) -> int:
        # Kept by @dataclass (an explicit __hash__): the working-periods cache hashes the
        # calendar for every rule run with working time; the generated one rebuilt and
        # hashed the tuple of every field (days, hours, days off) each time.
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class TimeSpec:
    """When something happens, relative to a base moment (the event, or the rule's run).

    Either a delay after the base (`delay_months` calendar months, wall clock kept, then
    `delay_seconds`; with `at`, the whole days of `delay_seconds` count calendar days in
    the zone), or `field` (a date of the item) plus `offset_seconds`, or `absolute`; then
    optionally `at` a time of day in `timezone`, then optionally moved into `working_time`.
    """

    delay_seconds: int = 0
    delay_months: int = 0
    field: str | None = None
    offset_seconds: int = 0
    at: time | None = None
    timezone: str | None = None
    absolute: datetime | None = None
    working_time: WorkingCalendar | None = None


def time_to_dict(t: TimeSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.absolute is not None:
        out["datetime"] = t.absolute.isoformat()
    elif t.field is not None:
        out["field"] = t.field
        out["offset_seconds"] = t.offset_seconds
    else:
        out["delay_seconds"] = t.delay_seconds
        if t.delay_months:
            out["delay_months"] = t.delay_months
    if t.at is not None:
        out["at"] = t.at.strftime("%H:%M")
    if t.timezone is not None:
        out["timezone"] = t.timezone
    if t.working_time is not None:
        out["working_time"] = calendar_to_dict(t.working_time)
    return out


def calendar_to_dict(c: WorkingCalendar) -> dict[str, Any]:
    return {
        "name": c.name,
        "timezone": c.timezone,
        "days": [WEEKDAYS[d] for d in c.days],
        "hours": [f"{a.strftime('%H:%M')}-{b.strftime('%H:%M')}" for a, b in c.hours],
        "holidays": c.holidays,
        **({"days_off": sorted(d.isoformat() for d in c.days_off)} if c.days_off else {}),
        **(
            {"extra_working_days": sorted(d.isoformat() for d in c.extra_working_days)}
            if c.extra_working_days
            else {}
        ),
    }


def time_from_dict(d: dict[str, Any]) -> TimeSpec:
    at = None if d.get("at") is None else time.fromisoformat(d["at"])
    calendar = None if d.get("working_time") is None else calendar_from_dict(d["working_time"])
    absolute = None if d.get("datetime") is None else datetime.fromisoformat(d["datetime"])
    if absolute is not None and absolute.tzinfo is None:
        raise ValueError("absolute datetime without UTC offset")
    return TimeSpec(
        delay_seconds=int(d.get("delay_seconds", 0)),
        delay_months=int(d.get("delay_months", 0)),
        field=d.get("field"),
        offset_seconds=int(d.get("offset_seconds", 0)),
        at=at,
        timezone=d.get("timezone"),
        absolute=absolute,
        working_time=calendar,
    )


def calendar_from_dict(d: dict[str, Any]) -> WorkingCalendar:
    hours = []
    for span in d["hours"]:
        start, end = span.split("-")
        hours.append((time.fromisoformat(start), time.fromisoformat(end)))
    return _interned(
        WorkingCalendar(
            str(d["name"]),
            str(d["timezone"]),
            tuple(WEEKDAYS.index(day) for day in d["days"]),
            tuple(hours),
            d.get("holidays"),
            frozenset(date.fromisoformat(day) for day in d.get("days_off", ())),
            frozenset(date.fromisoformat(day) for day in d.get("extra_working_days", ())),
        )
    )


@functools.lru_cache(maxsize=256)
def _interned(calendar: WorkingCalendar) -> WorkingCalendar:
    """The first of the equal calendars read (every rule of a file reads its own copy):
    the working-periods cache then finds its entries by identity, where it compared the
    calendars field by field for every rule run with working time."""
    return calendar
