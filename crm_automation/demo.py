"""`run --demo`: the seed's three examples as events, and what they created, read back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg

from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from scheduler.timer_report import list_timers
from sinks.calendar.caldav_client import CalDAVClient, CalendarRef


def _item(title: str, amount: str) -> Item:
    return Item(
        title=title,
        responsible_id="u-7",
        amount=Decimal(amount),
        currency="EUR",
        company=Company("c-1", "Müller GmbH"),
        contacts=(Contact("p-1", "Anna", "Müller", "anna@example.com", "+49 30 1234"),),
        fields={"UF_CONTRACT_NO": "MV-17"},
    )


def demo_events(now: datetime, run_id: str) -> list[StageChanged]:
    """A deal reaches Approval, another is won, then the first moves on to Payment."""
    approval = f"D-{run_id}-1"
    won = f"D-{run_id}-2"

    def event(n: int, item_id: str, stage: str, previous: str, at: datetime) -> StageChanged:
        return StageChanged(
            event_id=f"demo-{run_id}-{n}",
            occurred_at=at,
            entity_type=EntityType.DEAL,
            item_id=item_id,
            pipeline_id="sales",
            stage_id=stage,
            previous_stage_id=previous,
            item=_item(f"Maintenance contract {item_id}", "12000.00"),
        )

    return [
        event(1, approval, "APPROVAL", "NEW", now),
        event(2, won, "WON", "PAYMENT", now + timedelta(milliseconds=1)),
        event(3, approval, "PAYMENT", "APPROVAL", now + timedelta(seconds=2)),
    ]


@dataclass(frozen=True)
class DemoResult:
    deals: Sequence[tuple[object, ...]]
    activities: Sequence[tuple[object, ...]]
    timers: Sequence[tuple[str, ...]]
    calendar: Sequence[str]

    @property
    def complete(self) -> bool:
        """The copy, the completed activity, its calendar event and the 180-day timer."""
        return (
            bool(self.deals)
            and any(row[-1] == "completed" for row in self.activities)
            and bool(self.calendar)
            and bool(self.timers)
        )


def read_back(database_url: str, caldav_url: str, run_id: str, now: datetime) -> DemoResult:
    pattern = f"DEAL:D-{run_id}-%"
    with psycopg.connect(database_url) as conn:
        deals = conn.execute(
            "SELECT source_item_key, title, pipeline_id, stage_id, responsible_id,"
            " amount::text FROM deals WHERE source_item_key LIKE %s ORDER BY id",
            (pattern,),
        ).fetchall()
        activities = conn.execute(
            "SELECT item_key, subject, to_char(deadline AT TIME ZONE 'Europe/Berlin',"
            " 'YYYY-MM-DD HH24:MI') || ' Europe/Berlin', responsible_id, status"
            " FROM activities WHERE item_key LIKE %s ORDER BY id",
            (pattern,),
        ).fetchall()
        timers = [
            (t.item_key, t.rule_id, t.due_at.isoformat(timespec="minutes"))
            for t in list_timers(conn, status="pending", limit=1000)
            if t.item_key.startswith(f"DEAL:D-{run_id}-")
        ]
    with CalDAVClient(caldav_url) as client:
        events = client.events_between(
            CalendarRef.of_user("u-7"), now - timedelta(days=1), now + timedelta(days=7)
        )
    calendar = [e.href for e in events if run_id in e.ics.decode("utf-8", "replace")]
    return DemoResult(deals, activities, timers, calendar)
