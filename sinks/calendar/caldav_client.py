"""A small CalDAV client over httpx: collections, atomic create, time-range query, updates.

Layout: one calendar collection per CRM user at `<base>/<user id>/calendar/` and per room
at `<base>/<room id>/room/` (a separate collection name, so a room and a user with the
same id cannot share a calendar). Each request authenticates as the principal owning the
collection (Basic auth with the id as user name), which is how Radicale keys
collections; with `username` set, a service account is used for every request instead.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urljoin
from xml.etree import ElementTree

import httpx

logger = logging.getLogger(__name__)

USER_COLLECTION = "calendar"
ROOM_COLLECTION = "room"

# An id becomes a path segment and a Basic-auth user name: no ":" (the auth separator),
# no "/", no dot-segments.
_PRINCIPAL = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}")
_DAV = "{DAV:}"
_CALDAV = "{urn:ietf:params:xml:ns:caldav}"
_ICS = "text/calendar; charset=utf-8"

_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


class CalDAVUnavailable(Exception):
    """The server is down, timed out or answered 5xx/429: retry later, nothing is lost."""


class CalDAVRejected(Exception):
    """The server refused the request for good (a 4xx other than a handled conflict)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(f"{reason} (HTTP {status}): {detail}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class CalendarRef:
    """A calendar collection: its owning principal and collection name."""

    principal: str
    collection: str

    @classmethod
    def of_user(cls, user_id: str) -> CalendarRef:
        return cls(_checked_principal(user_id), USER_COLLECTION)

    @classmethod
    def of_room(cls, room_id: str) -> CalendarRef:
        return cls(_checked_principal(room_id), ROOM_COLLECTION)

    @property
    def path(self) -> str:
        return f"/{quote(self.principal, safe='')}/{self.collection}/"


@dataclass(frozen=True)
class StoredEvent:
    href: str
    etag: str | None
    ics: bytes


class CalDAVClient:
    """Thread-safe (one httpx.Client, a lock around the known-collections cache)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        username: str | None = None,
        password: str | None = None,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._service_auth = (username, password or "") if username else None
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
        )
        self._known: set[CalendarRef] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CalDAVClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def href(self, calendar: CalendarRef, name: str) -> str:
        return f"{calendar.path}{quote(name, safe='.')}"

    def create(self, calendar: CalendarRef, name: str, ics: bytes) -> bool:
        """PUT with `If-None-Match: *`; True if created now, False if it existed (412).

        A missing collection (409 from Radicale, 404 elsewhere) is created and the PUT
        repeated once.
        """
        href = self.href(calendar, name)
        headers = {"If-None-Match": "*", "Content-Type": _ICS}
        for attempt in (1, 2):
            response = self._send("PUT", href, calendar, content=ics, headers=headers)
            if response.status_code in (200, 201, 204):
                self._remember(calendar)
                return True
            if response.status_code == 412:
                return False
            if response.status_code in (404, 409) and attempt == 1:
                self.ensure_calendar(calendar, force=True)
                continue
            raise _rejected(response, "put_rejected")
        raise AssertionError("unreachable")

    def ensure_calendar(self, calendar: CalendarRef, *, force: bool = False) -> None:
        """MKCALENDAR unless known to exist; an existing collection (405/409) is fine."""
        with self._lock:
            if calendar in self._known and not force:
                return
        response = self._send("MKCALENDAR", calendar.path, calendar)
        if response.status_code not in (200, 201, 405, 409):
            raise _rejected(response, "mkcalendar_rejected")
        if response.status_code == 201:
            logger.info("created calendar collection=%s", calendar.collection)
        self._remember(calendar)

    def events_between(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[StoredEvent]:
        """Events overlapping [start, end) (REPORT calendar-query); none if no calendar."""
        body = _QUERY.format(start=_utc(start), end=_utc(end)).encode()
        response = self._send(
            "REPORT",
            calendar.path,
            calendar,
            content=body,
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if response.status_code == 404:
            return []
        if response.status_code != 207:
            raise _rejected(response, "report_rejected")
        return _parse_multistatus(response.content)

    def get(self, calendar: CalendarRef, href: str) -> StoredEvent | None:
        response = self._send("GET", href, calendar)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _rejected(response, "get_rejected")
        return StoredEvent(href, response.headers.get("ETag"), response.content)

    def replace(self, calendar: CalendarRef, href: str, ics: bytes, etag: str | None) -> bool:
        """PUT guarded by `If-Match: etag`; False if the event changed meanwhile (412)."""
        headers = {"Content-Type": _ICS}
        if etag:
            headers["If-Match"] = etag
        response = self._send("PUT", href, calendar, content=ics, headers=headers)
        if response.status_code in (200, 201, 204):
            return True
        if response.status_code == 412:
            return False
        raise _rejected(response, "put_rejected")

    def _send(
        self,
        method: str,
        href: str,
        calendar: CalendarRef,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        auth = self._service_auth or (calendar.principal, "")
        try:
            response = self._http.request(
                method,
                urljoin(self._base + "/", href.lstrip("/")),
                content=content,
                headers=headers,
                auth=auth,
            )
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            raise CalDAVUnavailable(f"{method} failed: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise CalDAVUnavailable(f"{method} answered HTTP {response.status_code}")
        return response

    def _remember(self, calendar: CalendarRef) -> None:
        with self._lock:
            self._known.add(calendar)


def _checked_principal(identifier: str) -> str:
    if not _PRINCIPAL.fullmatch(identifier):
        raise CalDAVRejected(0, "invalid_calendar_owner", "id not usable as a calendar owner")
    return identifier


def _rejected(response: httpx.Response, reason: str) -> CalDAVRejected:
    return CalDAVRejected(response.status_code, reason, response.text[:200])


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_multistatus(body: bytes) -> list[StoredEvent]:
    # The body comes from the configured CalDAV server; the stdlib parser does not fetch
    # external entities.
    root = ElementTree.fromstring(body)  # noqa: S314
    events = []
    for response in root.iter(f"{_DAV}response"):
        href = response.findtext(f"{_DAV}href") or ""
        etag = response.findtext(f".//{_DAV}getetag")
        data = response.findtext(f".//{_CALDAV}calendar-data")
        if data:
            events.append(StoredEvent(href, etag, data.encode()))
    return events
