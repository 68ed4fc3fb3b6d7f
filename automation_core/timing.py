"""Time settings: delays, time of day in a zone (DST-correct), date fields, working time.

Every function takes its base moment as a parameter; nothing reads the clock.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from automation_core.fields import field_value
from automation_core.model import StageChanged
from automation_core.time_spec import TimeSpec, WorkingCalendar

_MAX_DAYS_TO_NEXT_WORKING_MOMENT = 400


class TimingError(ValueError):
    """A due time cannot be computed for this item (e.g. the date field is empty)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def compute_due(spec: TimeSpec, base: datetime, event: StageChanged) -> datetime:
    """The moment `spec` names, relative to `base`, in UTC, truncated to milliseconds.

    The result may lie before `base` (a date field in the past); callers treat a due time
    at or before the event as "now".
    """
    if spec.absolute is not None:
        moment = spec.absolute
    elif spec.field is not None:
        moment = _from_date_field(spec, event)
    else:
        moment = base
        if spec.delay_months:
            moment = add_months(moment, spec.delay_months, _zone_of(spec))
        if spec.at is None:
            moment += timedelta(seconds=spec.delay_seconds)
        else:
            # "In 1 day at 14:00" is the next calendar date in the zone, also on the nights
            # the clocks change (24 hours later may be another date there).
            days, rest = divmod(spec.delay_seconds, 86400)
            zone = _zone_of(spec)
            local_day = (moment + timedelta(seconds=rest)).astimezone(zone).date()
            local_day += timedelta(days=days)
            moment = _local_instant(local_day, spec.at, zone)
    if spec.working_time is not None:
        moment = next_working_moment(moment, spec.working_time)
    return to_millis(moment.astimezone(UTC))


def add_months(moment: datetime, months: int, zone: ZoneInfo) -> datetime:
    """`moment` moved by calendar months in `zone`: the same day of the month (the last
    one where the month is shorter) at the same wall-clock time."""
    local = moment.astimezone(zone)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    wall = local.replace(tzinfo=None, year=year, month=month, day=day)
    return resolve_local(wall, zone)


def to_millis(moment: datetime) -> datetime:
    micros = moment.microsecond
    if micros % 1000 == 0:  # already whole milliseconds (events are): no new datetime
        return moment
    return moment.replace(microsecond=micros - micros % 1000)


def _zone_of(spec: TimeSpec) -> ZoneInfo:
    if spec.timezone is not None:
        return ZoneInfo(spec.timezone)
    if spec.working_time is not None:
        return ZoneInfo(spec.working_time.timezone)
    return ZoneInfo("UTC")


def _from_date_field(spec: TimeSpec, event: StageChanged) -> datetime:
    assert spec.field is not None  # noqa: S101 - guarded by the caller
    value = field_value(event, spec.field)
    if value is None or value == "":
        raise TimingError(f"date_field_empty: {spec.field}")
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            raise TimingError(f"date_field_invalid: {spec.field}") from None
    else:
        raise TimingError(f"date_field_invalid: {spec.field}")
    # Offsets move the wall clock, so "-3d at 09:00" stays at 09:00 across a DST change.
    wall = datetime.combine(day, spec.at or time(0)) + timedelta(seconds=spec.offset_seconds)
    return resolve_local(wall, _zone_of(spec))


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of wall-clock time `wall` in `zone`.

    Ambiguous (the hour repeated when clocks go back): the first occurrence. Nonexistent
    (the hour skipped when clocks go forward): the next valid instant, i.e. the moment
    the clocks jumped (02:30 on a spring-forward night in Berlin → 03:00 CEST).
    """
    aware = wall.replace(tzinfo=zone, fold=0)
    if _exists(aware, wall):
        return aware
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(48 * 60):
        probe += timedelta(minutes=1)
        candidate = probe.replace(tzinfo=zone, fold=0)
        if _exists(candidate, probe):
            return candidate
    raise TimingError("nonexistent local time")  # pragma: no cover - no zone skips 2 days


@lru_cache(maxsize=4096)
def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`resolve_local` of `day` at `at`, remembered: rules name a few times of day, and an
    engine's events fall on a few days."""
    return resolve_local(datetime.combine(day, at), zone)


def _exists(aware: datetime, wall: datetime) -> bool:
    return aware.astimezone(UTC).astimezone(aware.tzinfo).replace(tzinfo=None) == wall


def next_working_moment(moment: datetime, calendar: WorkingCalendar) -> datetime:
    """`moment` if it is inside working time, else the start of the next working period."""
    day = moment.astimezone(ZoneInfo(calendar.timezone)).date()
    for _ in range(_MAX_DAYS_TO_NEXT_WORKING_MOMENT):
        for opens, closes in _working_periods(day, calendar):
            if moment < closes:
                return max(moment, opens)
        day += timedelta(days=1)
    raise TimingError("no_working_time: the calendar has no working moment within 400 days")


@lru_cache(maxsize=4096)
def _working_periods(day: date, calendar: WorkingCalendar) -> tuple[tuple[datetime, datetime], ...]:
    """The working periods of `day` as (opens, closes) instants; none on a day off."""
    if not is_working_day(day, calendar):
        return ()
    zone = ZoneInfo(calendar.timezone)
    return tuple(
        (_local_instant(day, start, zone), _local_instant(day, end, zone))
        for start, end in calendar.hours
    )


def is_working_day(day: date, calendar: WorkingCalendar) -> bool:
    """The company's own dates first (extra working days, then days off), then the week
    and the public holidays."""
    if day in calendar.extra_working_days:
        return True
    if day in calendar.days_off or day.weekday() not in calendar.days:
        return False
    if calendar.holidays is None:
        return True
    return day not in public_holidays(calendar.holidays, day.year)


@lru_cache(maxsize=256)
def public_holidays(code: str, year: int) -> frozenset[date]:
    """Public holidays of `code` (`DE`, or `DE-BY` for a subdivision) in `year`."""
    country, _, subdivision = code.partition("-")
    table = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    return frozenset(table.keys())


def known_holiday_code(code: str) -> bool:
    country, _, subdivision = code.partition("-")
    supported: dict[str, list[str]] = holidays.list_supported_countries()
    if country not in supported:
        return False
    return not subdivision or subdivision in supported[country]
