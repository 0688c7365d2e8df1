"""Aggregates over incident history, computed in SQL: counts and times to acknowledge and
resolve per service and team (and per day), the noisiest monitors, failed actions.

Everything is grouped by the database; at 100,000 incidents no row is loaded into Python
except the few the answer is made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from responder.store.tables import ActionRun, Incident

_INCIDENTS = Incident.__table__  # type: ignore[attr-defined]
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
NONE = "(none)"  # the team or service of incidents that have none


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class Slice:
    """The incidents opened on one day for one team and service, with their mean times to
    acknowledge and resolve in seconds (None: none was) and how many each mean is over."""

    day: date
    team: str
    service: str
    incidents: int
    acknowledged: int
    resolved: int
    mtta: float | None
    mttr: float | None


@dataclass(frozen=True, slots=True)
class Timing:
    """Mean times of a team, a service or a day: several slices taken together."""

    name: str
    incidents: int
    mtta: float | None
    mttr: float | None


def combined(rows: Sequence[Slice], name: str) -> Timing:
    """Slices' figures as one: the means weighted by what each is over."""
    acked = sum(r.acknowledged for r in rows)
    resolved = sum(r.resolved for r in rows)
    mtta = sum((r.mtta or 0.0) * r.acknowledged for r in rows) / acked if acked else None
    mttr = sum((r.mttr or 0.0) * r.resolved for r in rows) / resolved if resolved else None
    return Timing(name, sum(r.incidents for r in rows), rounded(mtta), rounded(mttr))


@dataclass(frozen=True, slots=True)
class Monitor:
    monitor_id: str | None
    name: str
    incidents: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class FailedRun:
    run_id: int
    incident_id: int
    action: str
    error: str | None
    at: datetime | None


def _day(conn: sa.Connection, column: sa.ColumnElement[datetime]) -> sa.ColumnElement[str]:
    if conn.dialect.name == "postgresql":
        utc = sa.func.timezone("UTC", column)
        return sa.func.to_char(utc, "YYYY-MM-DD")
    return sa.func.substr(sa.cast(column, sa.Text), 1, 10)  # stored as UTC text on SQLite


def seconds_between(
    conn: sa.Connection, start: sa.ColumnElement[datetime], end: sa.ColumnElement[datetime]
) -> sa.ColumnElement[float]:
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", end - start), sa.Float)
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _in(window: Window) -> sa.ColumnElement[bool]:
    opened = _INCIDENTS.c.opened_at
    return sa.and_(opened >= window.since, opened < window.until)


def slices(conn: sa.Connection, *, window: Window) -> list[Slice]:
    """The window's incidents by day, team and service: one pass over them gives the page
    every figure it shows per day, per team and per service (at a year of 100,000
    incidents, each pass is most of the page's time)."""
    c = _INCIDENTS.c
    day = _day(conn, c.opened_at).label("day")
    team = sa.func.coalesce(c.team, NONE).label("team")
    service = sa.func.coalesce(c.service, NONE).label("service")
    query = (
        sa.select(
            day,
            team,
            service,
            sa.func.count(),
            sa.func.count(c.acknowledged_at),
            sa.func.count(c.resolved_at),
            sa.func.avg(seconds_between(conn, c.opened_at, c.acknowledged_at)),
            sa.func.avg(seconds_between(conn, c.opened_at, c.resolved_at)),
        )
        .where(_in(window))
        .group_by(day, team, service)  # the day first: the rows come in that order
    )
    return [
        Slice(date.fromisoformat(d), t, s, int(n), int(a), int(r), rounded(ma), rounded(mr))
        for d, t, s, n, a, r, ma, mr in conn.execute(query)
    ]


def rounded(value: object) -> float | None:
    """Seconds to the millisecond: SQLite's day fractions are not exact to the second."""
    return None if value is None else round(float(value), 3)  # type: ignore[arg-type]


def noisiest_monitors(conn: sa.Connection, *, window: Window, limit: int = 10) -> list[Monitor]:
    c = _INCIDENTS.c
    count = sa.func.count().label("n")
    query = (
        sa.select(c.monitor_id, sa.func.max(c.monitor_name), count, sa.func.sum(c.event_count))
        .where(_in(window))
        .group_by(c.monitor_id)
        .order_by(count.desc(), c.monitor_id)
        .limit(limit)
    )
    return [Monitor(m, name or "", n, int(d or 0)) for m, name, n, d in conn.execute(query)]


def failed_runs(
    conn: sa.Connection, *, window: Window, limit: int = 20
) -> tuple[dict[str, int], list[FailedRun]]:
    """Failed runs per action, and the newest of them, in the window."""
    c = _RUNS.c
    where = sa.and_(c.state == "failed", c.created_at >= window.since, c.created_at < window.until)
    per_action = sa.select(c.action, sa.func.count()).where(where).group_by(c.action)
    counts = {action: n for action, n in conn.execute(per_action)}
    newest = (
        sa.select(c.id, c.incident_id, c.action, c.last_error, c.finished_at)
        .where(where)
        .order_by(c.id.desc())
        .limit(limit)
    )
    return counts, [FailedRun(*row) for row in conn.execute(newest)]


def facets(conn: sa.Connection) -> dict[str, Sequence[str]]:
    """The services, teams and priorities there are: the list page's filter choices."""
    c = _INCIDENTS.c
    out: dict[str, Sequence[str]] = {}
    for name in ("service", "team", "priority"):
        column = c[name]
        query = sa.select(column).where(column.is_not(None)).distinct().order_by(column)
        out[name] = [value for (value,) in conn.execute(query.limit(500))]
    return out
