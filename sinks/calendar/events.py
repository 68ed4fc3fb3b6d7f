"""Planned activities as iCalendar VEVENTs (built with `icalendar`), and their completion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from icalendar import Calendar, Component, Event, vCalAddress, vText

from automation_core.colors import COLORS, HEX_COLOR
from automation_core.links import url_problem
from automation_core.model import Action, PlanActivity

PRODID = "-//crm-automation//calendar sink//EN"
UID_DOMAIN = "crm-automation"
COMPLETED = "COMPLETED"
DONE_MARK = "✓ "
"""Put before a completed activity's title: the one change every calendar client shows."""
DONE_CATEGORY = "Completed"
ACTIVITY_CATEGORIES = {"call": "Call", "meeting": "Meeting", "task": "Task", "email": "E-mail"}
"""The category naming what the activity is, as calendar clients show categories."""

# Properties that tie an event back to the CRM (read by nothing but humans and tests:
# the sink keeps its own mapping in Postgres).
X_ACTION_ID = "X-CRM-ACTION-ID"
X_RULE_ID = "X-CRM-RULE-ID"
X_ITEM_KEY = "X-CRM-ITEM-KEY"
X_STAGE_ID = "X-CRM-STAGE-ID"
X_STAGE_ENTRY = "X-CRM-STAGE-ENTRY"
X_STATUS = "X-CRM-STATUS"
X_COMPLETED_AT = "X-CRM-COMPLETED-AT"
X_COLOR = "X-CRM-COLOR"
X_FILE = "X-CRM-FILE"

# RFC 7986 COLOR takes a CSS3 colour name; the rules file allows these names or #RRGGBB,
# which is mapped to the nearest of them (the exact value is kept in X-CRM-COLOR).
_EMAIL = re.compile(r"[^@\s<>\"(),;:\\\x00-\x1f\x7f]{1,64}@[A-Za-z0-9.-]{1,253}")


@dataclass(frozen=True)
class Addressing:
    """How CRM users and rooms become calendar addresses (`mailto:<id>@<domain>`)."""

    user_domain: str = "users.invalid"
    room_domain: str = "rooms.invalid"


def resource_name(action_id: str) -> str:
    """The event's resource name in every calendar it is written to."""
    return f"{action_id}.ics"


def event_uid(action_id: str) -> str:
    return f"{action_id}@{UID_DOMAIN}"


def event_window(plan: PlanActivity) -> tuple[datetime, datetime]:
    """Start and end in UTC: start = deadline, end = deadline + duration."""
    start = plan.deadline.astimezone(UTC)
    return start, start + timedelta(minutes=max(0, plan.duration_minutes))


def location_text(plan: PlanActivity) -> str | None:
    """The address if there is one, else the room."""
    return plan.address or plan.location_id


def build_calendar(
    action: Action,
    plan: PlanActivity,
    addressing: Addressing,
    completed_at: datetime | None = None,
) -> Calendar:
    """The VCALENDAR holding the activity's VEVENT; a pure function of its inputs.

    DTSTAMP is the triggering event's time, so the same action always gives the same text.
    """
    start, end = event_window(plan)
    event = Event()
    event.add("uid", event_uid(action.action_id))
    event.add("dtstamp", action.occurred_at.astimezone(UTC))
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", plan.subject)
    if plan.description:
        event.add("description", plan.description)
    location = location_text(plan)
    if location:
        event.add("location", location)
    if plan.link and url_problem(plan.link) is None:
        event.add("url", plan.link)
    if plan.color:
        _add_color(event, plan.color)
    event.add("categories", [ACTIVITY_CATEGORIES.get(plan.activity_type, "Task")])
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("sequence", 0)
    event.add("organizer", _user_address(plan.responsible_id, addressing))
    for invitee in plan.invitee_ids:
        event.add("attendee", _attendee(_user_address(invitee, addressing), "INDIVIDUAL"))
    for client in plan.clients:
        if client.email and _EMAIL.fullmatch(client.email):
            cutype = "INDIVIDUAL" if client.kind == "contact" else "UNKNOWN"
            event.add("attendee", _attendee(f"mailto:{client.email}", cutype, client.name))
        else:
            # No address to invite: still listed, as RFC 5545's contact line.
            event.add("contact", client.name or client.id)
    if plan.location_id:
        room = f"mailto:{_local_part(plan.location_id)}@{addressing.room_domain}"
        event.add("attendee", _attendee(room, "ROOM", plan.location_id))
    for file in plan.files:
        if url_problem(file) is None:
            event.add("attach", file)
        else:
            event.add(X_FILE, vText(file))
    event.add(X_ACTION_ID, vText(action.action_id))
    event.add(X_RULE_ID, vText(action.rule_id))
    event.add(X_ITEM_KEY, vText(action.item_key))
    event.add(X_STAGE_ID, vText(plan.stage_id))
    event.add(X_STAGE_ENTRY, vText(action.stage_entry_id))
    if completed_at is not None:
        _mark(event, completed_at)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(event)
    return calendar


def to_ical(calendar: Calendar) -> bytes:
    return bytes(calendar.to_ical())


def complete(ics: bytes, completed_at: datetime) -> bytes | None:
    """The event text marked completed, or None when it is completed already (idempotent).

    A VEVENT's STATUS has no "completed" value (that is VTODO's, and CANCELLED would
    free the time as if the meeting never happened), so STATUS stays as it is. What a
    person sees in any calendar client: the title starts with DONE_MARK and the event
    gains the category DONE_CATEGORY. What tools read: X-CRM-STATUS:COMPLETED with
    X-CRM-COMPLETED-AT. SEQUENCE is bumped so clients pick the change up.
    """
    calendar = Calendar.from_ical(ics)
    changed = False
    for event in calendar.walk("VEVENT"):
        if str(event.get(X_STATUS, "")) == COMPLETED:
            continue
        _mark(event, completed_at)
        changed = True
    return bytes(calendar.to_ical()) if changed else None


def is_completed(ics: bytes) -> bool:
    return all(
        str(event.get(X_STATUS, "")) == COMPLETED
        for event in Calendar.from_ical(ics).walk("VEVENT")
    )


def busy_uids(ics: bytes) -> set[str]:
    """UIDs of the events in `ics` that occupy their time (not cancelled, not transparent)."""
    uids = set()
    for event in Calendar.from_ical(ics).walk("VEVENT"):
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue
        if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
            continue
        uids.add(str(event.get("UID", "")))
    return uids


def _mark(event: Component, completed_at: datetime) -> None:
    for name in (X_STATUS, X_COMPLETED_AT):
        event.pop(name, None)
    summary = str(event.pop("SUMMARY", ""))
    event.add("summary", summary if summary.startswith(DONE_MARK) else DONE_MARK + summary)
    event.add("categories", [DONE_CATEGORY])
    event.add(X_STATUS, vText(COMPLETED))
    event.add(X_COMPLETED_AT, vText(completed_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")))
    sequence = int(event.pop("SEQUENCE", 0))
    event.add("sequence", sequence + 1)


def _add_color(event: Component, color: str) -> None:
    name = color.lower()
    if name in COLORS:
        event.add("color", name)
        return
    match = HEX_COLOR.fullmatch(color)
    if match is None:
        return
    rgb = tuple(int(part, 16) for part in match.groups())
    nearest = min(
        COLORS,
        key=lambda n: sum((a - b) ** 2 for a, b in zip(COLORS[n], rgb, strict=True)),
    )
    event.add("color", nearest)
    event.add(X_COLOR, vText(color.upper()))


def _user_address(user_id: str, addressing: Addressing) -> str:
    return f"mailto:{_local_part(user_id)}@{addressing.user_domain}"


def _local_part(identifier: str) -> str:
    return quote(identifier, safe="._-")


def _attendee(address: str, cutype: str, name: str | None = None) -> vCalAddress:
    attendee = vCalAddress(address)
    attendee.params["CUTYPE"] = cutype
    attendee.params["ROLE"] = "NON-PARTICIPANT" if cutype == "ROOM" else "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    if name:
        attendee.params["CN"] = vText(name)
    return attendee
