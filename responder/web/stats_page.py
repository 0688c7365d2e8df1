"""`/stats`: incidents per day, MTTA and MTTR per team and service (and per team over time),
the noisiest monitors and the failed actions, over chosen days (the last 30 by default)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from responder.redact import Redactor
from responder.store import stats
from responder.store.db import reader
from responder.web import charts
from responder.web.forms import stats_days
from responder.web.pages import Pages
from responder.web.session import User

DEFAULT_DAYS = 30
CHART_TEAMS = 6  # lines per chart: more are unreadable
TABLE_SERVICES = 20


class StatsPage:
    def __init__(self, engine: sa.Engine, pages: Pages, redactor: Redactor) -> None:
        self._engine = reader(engine)
        self._pages = pages
        self._redactor = redactor

    async def show(self, request: Request, user: User) -> Response:
        first, last = stats_days(request, datetime.now(UTC).date(), DEFAULT_DAYS)
        context = await asyncio.to_thread(self._figures, first, last)
        return self._pages.render(request, user, "stats.html", context)

    def _figures(self, first: date, last: date) -> dict[str, Any]:
        start = datetime.combine(first, datetime.min.time(), UTC)
        window = stats.Window(start, start + timedelta(days=(last - first).days + 1))
        with self._engine.connect() as conn:
            # One pass by team and day gives the per-day counts, the per-team figures and
            # the per-team lines: at a year of 100,000 incidents each pass is most of the cost.
            team_days = stats.timings(conn, window=window, by="team", daily=True)
            services = stats.timings(conn, window=window, by="service")
            monitors = stats.noisiest_monitors(conn, window=window)
            failed_counts, failed = stats.failed_runs(conn, window=window)
        by_team: dict[str, list[stats.Timing]] = defaultdict(list)
        for row in team_days:
            by_team[row.name].append(row)
        teams = [stats.combined(rows, name) for name, rows in sorted(by_team.items())]
        top = [t.name for t in sorted(teams, key=lambda t: -t.incidents)[:CHART_TEAMS]]
        span, bucket = charts.buckets(first, last)
        counts: dict[date, int] = defaultdict(int)
        for row in team_days:
            assert row.day is not None
            counts[bucket(row.day)] += row.incidents
        return {
            "since": first,
            "until": last,
            "per": "week" if span and (last - first).days >= charts.DAILY_UP_TO else "day",
            "total": sum(t.incidents for t in teams),
            "per_day": charts.bars(dict(counts), span),
            "teams": teams,
            "services": sorted(services, key=lambda s: -s.incidents)[:TABLE_SERVICES],
            "mtta_chart": charts.lines(_series(by_team, top, bucket, "mtta"), span),
            "mttr_chart": charts.lines(_series(by_team, top, bucket, "mttr"), span),
            "monitors": monitors,
            "failed_counts": sorted(failed_counts.items(), key=lambda kv: -kv[1]),
            "failed": [
                {
                    "run_id": run.run_id,
                    "incident_id": run.incident_id,
                    "action": run.action,
                    "at": run.at,
                    "error": self._redactor.redact_text(run.error or ""),
                }
                for run in failed
            ],
        }


def _series(
    by_team: dict[str, list[stats.Timing]],
    names: Sequence[str],
    bucket: charts.Bucket,
    which: str,
) -> dict[str, dict[date, float]]:
    out: dict[str, dict[date, float]] = {}
    for name in names:
        grouped: dict[date, list[stats.Timing]] = defaultdict(list)
        for row in by_team[name]:
            assert row.day is not None
            grouped[bucket(row.day)].append(row)
        values = {}
        for when, rows in grouped.items():
            merged = stats.combined(rows, name, when)
            value = merged.mtta if which == "mtta" else merged.mttr
            if value is not None:
                values[when] = value
        if values:
            out[name] = values
    return out
