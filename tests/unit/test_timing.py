"""Time settings: delays, time of day across DST and midnight, date fields, working time."""

from __future__ import annotations

import dataclasses
from datetime import date, time

import pytest

from automation_core.time_spec import TimeSpec, WorkingCalendar, calendar_from_dict
from automation_core.timing import TimingError, compute_due, next_working_moment, to_millis
from tests.unit.rule_builders import event, item, utc

BERLIN = "Europe/Berlin"
OFFICE = WorkingCalendar("office", BERLIN, (0, 1, 2, 3, 4), ((time(9), time(18)),), "DE")
COMPANY = WorkingCalendar(
    "company",
    BERLIN,
    (0, 1, 2, 3, 4),
    ((time(9), time(18)),),
    "DE",
    days_off=frozenset({date(2026, 12, 24), date(2026, 12, 31)}),
    extra_working_days=frozenset({date(2026, 12, 5), date(2027, 1, 6), date(2026, 10, 3)}),
)
SPLIT = WorkingCalendar(
    "split", BERLIN, (0, 1, 2, 3, 4), ((time(9), time(12)), (time(13), time(17))), None
)


@pytest.mark.parametrize(
    ("spec", "occurred_at", "expected"),
    [
        pytest.param(
            TimeSpec(delay_seconds=90),
            "2026-11-26T10:00:00Z",
            "2026-11-26T10:01:30Z",
            id="delay-90s",
        ),
        pytest.param(
            TimeSpec(delay_seconds=180 * 86400),
            "2026-11-26T10:00:00Z",
            "2027-05-25T10:00:00Z",
            id="delay-180d-is-exact-seconds",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-11-26T10:00:00Z",
            "2026-11-27T13:00:00Z",
            id="tomorrow-14h-winter",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-11-26T23:30:00Z",
            "2026-11-28T13:00:00Z",
            id="tomorrow-14h-after-midnight-in-berlin-but-not-in-utc",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-03-28T10:00:00Z",
            "2026-03-29T12:00:00Z",
            id="tomorrow-14h-across-spring-dst-change",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-10-24T10:00:00Z",
            "2026-10-25T13:00:00Z",
            id="tomorrow-14h-across-autumn-dst-change",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-03-28T22:30:00Z",  # 23:30 CET, the night the clocks go forward
            "2026-03-29T12:00:00Z",  # 14:00 CEST on the 29th, not the 30th
            id="tomorrow-14h-from-the-evening-before-the-spring-change",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-10-24T22:15:00Z",  # 00:15 CEST on the 25th, the night they go back
            "2026-10-26T13:00:00Z",  # 14:00 CET on the 26th, not the 25th
            id="tomorrow-14h-from-just-after-midnight-the-autumn-night",
        ),
        pytest.param(
            TimeSpec(delay_seconds=7 * 86400, at=time(9), timezone=BERLIN),
            "2026-03-22T22:30:00Z",  # Sunday 23:30 CET
            "2026-03-29T07:00:00Z",  # the Sunday a week later (clocks forward), 09:00 CEST
            id="in-a-week-at-9-counts-calendar-days",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400 + 12 * 3600, at=time(14), timezone=BERLIN),
            "2026-11-26T20:00:00Z",  # 21:00: +12 h is the 27th, +1 calendar day the 28th
            "2026-11-28T13:00:00Z",
            id="days-count-calendar-days-hours-exact",
        ),
        pytest.param(
            TimeSpec(delay_seconds=25 * 3600, timezone=BERLIN),
            "2026-03-28T22:30:00Z",
            "2026-03-29T23:30:00Z",
            id="a-plain-delay-stays-exact-seconds-across-dst",
        ),
        pytest.param(
            TimeSpec(delay_months=6, timezone=BERLIN),
            "2026-01-15T09:00:00Z",  # 10:00 CET
            "2026-07-15T08:00:00Z",  # 10:00 CEST: the wall clock is kept
            id="six-months-same-day-same-wall-clock",
        ),
        pytest.param(
            TimeSpec(delay_months=6, timezone=BERLIN),
            "2026-08-31T08:00:00Z",
            "2027-02-28T09:00:00Z",
            id="six-months-clamped-at-the-end-of-february",
        ),
        pytest.param(
            TimeSpec(delay_months=1, timezone=BERLIN),
            "2028-01-31T11:00:00Z",
            "2028-02-29T11:00:00Z",
            id="a-month-after-31-january-in-a-leap-year",
        ),
        pytest.param(
            TimeSpec(delay_months=13, delay_seconds=86400, at=time(14), timezone=BERLIN),
            "2026-11-26T10:00:00Z",
            "2027-12-27T13:00:00Z",
            id="months-then-days-then-the-time-of-day",
        ),
        pytest.param(
            TimeSpec(delay_months=6),
            "2026-11-30T10:00:00Z",
            "2027-05-30T10:00:00Z",
            id="months-without-a-zone-count-in-utc",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(2, 30), timezone=BERLIN),
            "2026-03-28T12:00:00Z",
            "2026-03-29T01:00:00Z",
            id="nonexistent-wall-time-moves-to-the-jump",
        ),
        pytest.param(
            TimeSpec(delay_seconds=86400, at=time(2, 30), timezone=BERLIN),
            "2026-10-24T12:00:00Z",
            "2026-10-25T00:30:00Z",
            id="ambiguous-wall-time-takes-the-first",
        ),
        pytest.param(
            TimeSpec(
                field="item.close_date", offset_seconds=-3 * 86400, at=time(9), timezone=BERLIN
            ),
            "2026-11-01T10:00:00Z",
            "2026-11-27T08:00:00Z",
            id="three-days-before-close-date-at-9",
        ),
        pytest.param(
            TimeSpec(
                field="item.begin_date", offset_seconds=-8 * 86400, at=time(9), timezone=BERLIN
            ),
            "2026-10-01T10:00:00Z",
            "2026-10-24T07:00:00Z",
            id="date-offset-keeps-wall-clock-across-dst",
        ),
        pytest.param(
            TimeSpec(field="item.UF_START", timezone="UTC"),
            "2026-10-01T10:00:00Z",
            "2026-12-01T00:00:00Z",
            id="custom-date-field",
        ),
        pytest.param(
            TimeSpec(delay_seconds=600, working_time=OFFICE),
            "2026-11-26T10:00:00Z",
            "2026-11-26T10:10:00Z",
            id="inside-working-time",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=OFFICE),
            "2026-11-24T05:00:00Z",
            "2026-11-24T08:00:00Z",
            id="before-opening-waits-for-9",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=OFFICE),
            "2026-11-27T18:00:00Z",
            "2026-11-30T08:00:00Z",
            id="friday-evening-moves-to-monday",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=OFFICE),
            "2026-12-24T17:30:00Z",
            "2026-12-28T08:00:00Z",
            id="christmas-holidays-and-weekend-skipped",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=COMPANY),
            "2026-12-23T17:30:00Z",  # Wed 18:30: Thu 24 and Thu 31 Dec are days off here
            "2026-12-28T08:00:00Z",  # Fri 25, Sat 26 holidays, Sun 27: Mon 28 09:00
            id="a-company-day-off-is-skipped",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=COMPANY),
            "2026-12-04T17:30:00Z",  # Fri 18:30; Sat 5 Dec is an extra working day
            "2026-12-05T08:00:00Z",
            id="an-extra-working-saturday-is-worked",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=COMPANY),
            "2027-01-05T17:30:00Z",  # Tue 18:30; Epiphany is no holiday in DE, but Wed 6
            "2027-01-06T08:00:00Z",  # is an extra working day anyway (a normal Wednesday)
            id="an-extra-working-day-on-a-weekday-changes-nothing",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=COMPANY),
            "2026-10-02T17:30:00Z",  # Fri 19:30 CEST; Sat 3 Oct is German Unity Day and
            "2026-10-03T07:00:00Z",  # an extra working day: the company's date wins
            id="an-extra-working-day-on-a-public-holiday-is-worked",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=SPLIT),
            "2026-11-26T11:30:00Z",
            "2026-11-26T12:00:00Z",
            id="lunch-break-moves-to-the-afternoon",
        ),
        pytest.param(
            TimeSpec(delay_seconds=0, working_time=OFFICE),
            "2026-03-27T17:30:00Z",
            "2026-03-30T07:00:00Z",
            id="next-working-morning-after-dst-is-in-summer-time",
        ),
    ],
)
def test_due_time_of_each_time_setting(spec: TimeSpec, occurred_at: str, expected: str) -> None:
    ev = event(
        at=occurred_at,
        the_item=item(begin_date=date(2026, 11, 1), fields={"UF_START": "2026-12-01"}),
    )
    assert compute_due(spec, ev.occurred_at, ev) == utc(expected)


def test_an_empty_date_field_is_an_error_with_a_reason() -> None:
    ev = event(the_item=item(close_date=None))
    with pytest.raises(TimingError) as caught:
        compute_due(TimeSpec(field="item.close_date", timezone="UTC"), ev.occurred_at, ev)
    assert caught.value.reason == "date_field_empty: item.close_date"


def test_due_times_are_truncated_to_milliseconds_like_the_wire_format() -> None:
    ev = event(at="2026-11-26T10:00:00.123456Z")
    assert compute_due(TimeSpec(delay_seconds=1), ev.occurred_at, ev) == utc(
        "2026-11-26T10:00:01.123Z"
    )
    # Whole milliseconds come back as they are; only the sub-millisecond part is dropped.
    whole = event(at="2026-11-26T10:00:00.123Z")
    assert compute_due(TimeSpec(), whole.occurred_at, whole) == whole.occurred_at
    assert to_millis(utc("2026-11-26T10:00:00.999999Z")) == utc("2026-11-26T10:00:00.999Z")


def test_calendars_hash_and_compare_by_every_field() -> None:
    # The working-periods cache is keyed by the calendar: equal calendars share entries,
    # a calendar differing in any field (here its own days off) has its own.
    same = dataclasses.replace(COMPANY)  # an equal copy, another object
    assert same is not COMPANY
    assert same == COMPANY and hash(same) == hash(COMPANY)
    other = dataclasses.replace(COMPANY, days_off=frozenset({date(2026, 12, 31)}))
    assert other != COMPANY and hash(other) != hash(COMPANY)
    christmas_eve = utc("2026-12-24T10:00:00Z")  # a Thursday, a day off for COMPANY only
    assert next_working_moment(christmas_eve, other) == christmas_eve
    assert next_working_moment(christmas_eve, COMPANY) == utc("2026-12-28T08:00:00Z")


def test_equal_calendars_read_from_rules_are_one_object() -> None:
    # Every rule reads its own copy of a calendar: the copies are the first one read, so
    # the working-periods cache finds them by identity; another calendar stays its own.
    office = {
        "name": "office",
        "timezone": BERLIN,
        "days": ["mon", "tue"],
        "hours": ["09:00-18:00"],
    }
    first, second = calendar_from_dict(dict(office)), calendar_from_dict(dict(office))
    assert first is second
    other = calendar_from_dict({**office, "days_off": ["2026-12-24"]})
    assert other is not first and other != first
