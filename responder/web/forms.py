"""What the pages read from a request: the list's filters from the query string, and the
fields of a posted form (urlencoded, small)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request

from responder.store.history import IncidentFilter
from responder.web.ids import row_id

MAX_FORM = 16_384
STATUSES = ("triggered", "acknowledged", "resolved")
WITHIN = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_TEXT_MAX = 200


class BadForm(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The list page's filters as the form shows them back."""

    status: str = ""
    service: str = ""
    team: str = ""
    priority: str = ""
    q: str = ""
    within: str = ""
    since: str = ""  # a day, YYYY-MM-DD, from 00:00 UTC
    until: str = ""  # a day, YYYY-MM-DD, to its end
    cursor: int | None = None

    def params(self, **change: str | int | None) -> str:
        """The query string of these filters, with `change` applied (for paging links)."""
        values = {
            "status": self.status,
            "service": self.service,
            "team": self.team,
            "priority": self.priority,
            "q": self.q,
            "within": self.within,
            "since": self.since,
            "until": self.until,
            "cursor": self.cursor,
        }
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def filter(self, now: datetime, limit: int) -> IncidentFilter:
        since = _day(self.since, "since")
        until = _day(self.until, "until")
        if self.within:
            window_start = now - WITHIN[self.within]
            since = max(since, window_start) if since else window_start
        return IncidentFilter(
            status=self.status or None,
            service=self.service or None,
            team=self.team or None,
            priority=self.priority or None,
            q=self.q or None,
            since=since,
            until=until + timedelta(days=1) if until else None,
            before_id=self.cursor,
            limit=limit,
        )


def list_query(request: Request) -> ListQuery:
    p = request.query_params
    status = _text(p.get("status"), "status")
    if status and status not in STATUSES:
        raise BadForm(f"status must be one of {', '.join(STATUSES)}")
    within = _text(p.get("within"), "within")
    if within and within not in WITHIN:
        raise BadForm(f"within must be one of {', '.join(WITHIN)}")
    query = ListQuery(
        status=status,
        service=_text(p.get("service"), "service"),
        team=_text(p.get("team"), "team"),
        priority=_text(p.get("priority"), "priority"),
        q=_text(p.get("q"), "q"),
        within=within,
        since=_text(p.get("since"), "since"),
        until=_text(p.get("until"), "until"),
        cursor=_id(p.get("cursor"), "cursor"),
    )
    query.filter(datetime.now(UTC), 1)  # refuses a malformed day now, not mid-page
    return query


def _text(raw: str | None, name: str) -> str:
    value = (raw or "").strip()
    if "\x00" in value or len(value) > _TEXT_MAX:
        raise BadForm(f"{name} must be at most {_TEXT_MAX} characters, without NUL")
    return value


def _id(raw: str | None, name: str) -> int | None:
    if not raw:
        return None
    found = row_id(raw)
    if found is None:
        raise BadForm(f"{name} must be a positive integer")
    return found


def _day(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadForm(f"{name} must be a day, e.g. 2026-11-23") from None
    if day.year < 2 or day.year > 9998:
        raise BadForm(f"{name} is out of range")
    return datetime.combine(day, time(), UTC)


def incident_id(raw: str) -> int:
    value = _id(raw, "incident id")
    if value is None:
        raise BadForm("incident id must be a positive integer")
    return value


async def posted(request: Request) -> dict[str, str]:
    """The fields of a posted urlencoded form; the first value of each."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("a form must be sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadForm(f"form larger than {MAX_FORM} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise BadForm("the form is not readable") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


STATS_MAX_DAYS = 400


def stats_days(request: Request, today: date, default: int) -> tuple[date, date]:
    """The stats page's first and last day (UTC): `since` and `until`, or the last days."""
    p = request.query_params
    since = _day(_text(p.get("since"), "since"), "since")
    until = _day(_text(p.get("until"), "until"), "until")
    last = until.date() if until else today
    first = since.date() if since else last - timedelta(days=default - 1)
    if first > last:
        raise BadForm("since must not be after until")
    if (last - first).days >= STATS_MAX_DAYS:
        raise BadForm(f"the stats cover at most {STATS_MAX_DAYS} days at once")
    return first, last
