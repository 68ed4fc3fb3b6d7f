"""VEVENTs built from planned activities: every field, stable ids, safe links, completion."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from icalendar import Calendar

from automation_core.model import Action, ActionMode, Client, PlanActivity
from sinks.calendar import events as ev

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BERLIN_WINTER = timezone(timedelta(hours=1))
ACTION_ID = "0123456789abcdef0123456789abcdef"


def plan(**changes: object) -> PlanActivity:
    base = PlanActivity(
        activity_id=f"activity-{ACTION_ID}",
        subject="Call the client",
        description="Discuss the contract with Anna Müller; bring the offer, v2",
        deadline=datetime(2026, 11, 27, 14, 0, tzinfo=BERLIN_WINTER),
        duration_minutes=30,
        responsible_id="u-7",
        stage_id="APPROVAL",
        color="yellow",
        add_to_calendar=True,
        clients=(
            Client("p-1", "contact", "Anna Müller", "anna@example.com"),
            Client("p-2", "contact", "Bernd Ohnemail", None),
            Client("c-1", "company", "Müller GmbH", "office@mueller.example"),
        ),
        invitee_ids=("u-12", "u-13"),
        address="Hauptstr. 1, Berlin",
        location_id="room-1",
        link="https://meet.example.com/4711",
        files=("https://files.example.com/offer.pdf", "disk:17"),
        complete_on_stage_exit=True,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def action(p: PlanActivity, action_id: str = ACTION_ID) -> Action:
    return Action(
        action_id=action_id,
        rule_id="call-client",
        rule_version="v1",
        item_key="DEAL:4711",
        event_id="evt-1",
        stage_entry_id="evt-1",
        occurred_at=T0,
        mode=ActionMode.IMMEDIATE,
        payload=p,
    )


def vevent(p: PlanActivity, completed_at: datetime | None = None) -> Calendar:
    ics = ev.to_ical(ev.build_calendar(action(p), p, ev.Addressing(), completed_at))
    events = Calendar.from_ical(ics).walk("VEVENT")
    assert len(events) == 1
    return events[0]


def attendees(event: Calendar) -> dict[str, dict[str, str]]:
    found = event.get("ATTENDEE", [])
    found = found if isinstance(found, list) else [found]
    return {str(a): {k: str(v) for k, v in a.params.items()} for a in found}


def test_the_event_carries_subject_description_times_location_url_and_colour() -> None:
    event = vevent(plan())
    assert str(event["SUMMARY"]) == "Call the client"
    assert str(event["DESCRIPTION"]) == "Discuss the contract with Anna Müller; bring the offer, v2"
    assert event["DTSTART"].dt == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert event["DTEND"].dt == datetime(2026, 11, 27, 13, 30, tzinfo=UTC)
    assert str(event["LOCATION"]) == "Hauptstr. 1, Berlin"
    assert str(event["URL"]) == "https://meet.example.com/4711"
    assert str(event["COLOR"]) == "yellow"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:u-7@users.invalid"
    assert event["DTSTAMP"].dt == T0


def test_uid_and_resource_name_derive_from_the_action_id_and_are_stable() -> None:
    first, second = vevent(plan()), vevent(plan(subject="Changed later"))
    assert str(first["UID"]) == str(second["UID"]) == f"{ACTION_ID}@crm-automation"
    assert ev.resource_name(ACTION_ID) == f"{ACTION_ID}.ics"
    p = plan()
    assert ev.to_ical(ev.build_calendar(action(p), p, ev.Addressing())) == ev.to_ical(
        ev.build_calendar(action(p), p, ev.Addressing())
    )


def test_invitees_clients_with_email_and_the_room_are_attendees() -> None:
    found = attendees(vevent(plan()))
    assert set(found) == {
        "mailto:u-12@users.invalid",
        "mailto:u-13@users.invalid",
        "mailto:anna@example.com",
        "mailto:office@mueller.example",
        "mailto:room-1@rooms.invalid",
    }
    assert found["mailto:anna@example.com"]["CN"] == "Anna Müller"
    assert found["mailto:anna@example.com"]["CUTYPE"] == "INDIVIDUAL"
    assert found["mailto:room-1@rooms.invalid"]["CUTYPE"] == "ROOM"
    assert found["mailto:u-12@users.invalid"]["ROLE"] == "REQ-PARTICIPANT"


def test_a_client_without_an_email_is_listed_as_a_contact_line() -> None:
    event = vevent(plan())
    contacts = event.get("CONTACT")
    lines = [str(c) for c in (contacts if isinstance(contacts, list) else [contacts])]
    assert lines == ["Bernd Ohnemail"]


def test_the_user_domain_is_configurable() -> None:
    p = plan(clients=(), location_id=None)
    ics = ev.build_calendar(action(p), p, ev.Addressing(user_domain="crm.example.com"))
    assert set(attendees(ics.walk("VEVENT")[0])) == {
        "mailto:u-12@crm.example.com",
        "mailto:u-13@crm.example.com",
    }


def test_without_an_address_the_room_is_the_location() -> None:
    assert str(vevent(plan(address=None))["LOCATION"]) == "room-1"
    assert "LOCATION" not in vevent(plan(address=None, location_id=None))


@pytest.mark.parametrize(
    "link",
    [
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("https://user:pw@evil.example/", id="userinfo"),
        pytest.param("https://meet.example.com/a\r\nATTENDEE:x", id="crlf-injection"),
        pytest.param("https://" + "a" * 3000 + ".example", id="over-long"),
    ],
)
def test_links_other_than_plain_http_or_https_are_left_out(link: str) -> None:
    event = vevent(plan(link=link))
    assert "URL" not in event
    assert "mailto:x" not in attendees(event)


def test_http_links_are_kept() -> None:
    assert str(vevent(plan(link="http://intranet.example/x"))["URL"]) == "http://intranet.example/x"


def test_url_files_are_attachments_and_other_references_are_kept_as_text() -> None:
    event = vevent(plan())
    assert str(event["ATTACH"]) == "https://files.example.com/offer.pdf"
    assert str(event[ev.X_FILE]) == "disk:17"


def test_a_hex_colour_maps_to_the_nearest_css_name_and_keeps_its_value() -> None:
    event = vevent(plan(color="#FF0010"))
    assert str(event["COLOR"]) == "red"
    assert str(event[ev.X_COLOR]) == "#FF0010"


def test_the_event_names_its_item_rule_stage_and_stage_entry() -> None:
    event = vevent(plan())
    assert str(event[ev.X_ACTION_ID]) == ACTION_ID
    assert str(event[ev.X_ITEM_KEY]) == "DEAL:4711"
    assert str(event[ev.X_RULE_ID]) == "call-client"
    assert str(event[ev.X_STAGE_ID]) == "APPROVAL"
    assert str(event[ev.X_STAGE_ENTRY]) == "evt-1"


def test_a_zero_duration_activity_ends_when_it_starts() -> None:
    event = vevent(plan(duration_minutes=0))
    assert event["DTEND"].dt == event["DTSTART"].dt


def test_completing_marks_the_event_once_and_bumps_its_sequence() -> None:
    p = plan()
    ics = ev.to_ical(ev.build_calendar(action(p), p, ev.Addressing()))
    assert not ev.is_completed(ics)
    done_at = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    completed = ev.complete(ics, done_at)
    assert completed is not None
    event = Calendar.from_ical(completed).walk("VEVENT")[0]
    assert str(event[ev.X_STATUS]) == "COMPLETED"
    assert str(event[ev.X_COMPLETED_AT]) == "20261128T090000Z"
    assert int(event["SEQUENCE"]) == 1
    # What a person sees in any calendar client: the title and a category.
    assert str(event["SUMMARY"]) == "✓ Call the client"
    categories = event["CATEGORIES"]
    assert [str(c) for cs in categories for c in cs.cats] == ["Task", "Completed"]
    assert str(event["STATUS"]) == "CONFIRMED"  # still taking its time in the calendar
    assert ev.is_completed(completed)
    assert ev.complete(completed, done_at + timedelta(hours=1)) is None


def test_an_activity_of_a_stage_entry_already_left_is_built_completed() -> None:
    event = vevent(plan(), completed_at=datetime(2026, 11, 26, 11, 0, tzinfo=UTC))
    assert str(event[ev.X_STATUS]) == "COMPLETED"
    assert str(event["SUMMARY"]) == "✓ Call the client"


def test_busy_uids_ignore_cancelled_and_transparent_events() -> None:
    p = plan()
    busy = ev.to_ical(ev.build_calendar(action(p, "a" * 32), p, ev.Addressing()))
    cancelled = ev.build_calendar(action(p, "b" * 32), p, ev.Addressing())
    for event in cancelled.walk("VEVENT"):
        event["STATUS"] = "CANCELLED"
    assert ev.busy_uids(busy) == {f"{'a' * 32}@crm-automation"}
    assert ev.busy_uids(cancelled.to_ical()) == set()
