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
            slices = stats.slices(conn, window=window)
            monitors = stats.noisiest_monitors(conn, window=window)
            failed_counts, failed = stats.failed_runs(conn, window=window)
        span, bucket = charts.buckets(first, last)
        by_team: dict[str, list[stats.Slice]] = defaultdict(list)
        by_service: dict[str, list[stats.Slice]] = defaultdict(list)
        counts: dict[date, int] = defaultdict(int)
        for piece in slices:
            by_team[piece.team].append(piece)
            by_service[piece.service].append(piece)
            counts[bucket(piece.day)] += piece.incidents
        teams = [stats.combined(rows, name) for name, rows in sorted(by_team.items())]
        services = [stats.combined(rows, name) for name, rows in sorted(by_service.items())]
        top = [t.name for t in sorted(teams, key=lambda t: -t.incidents)[:CHART_TEAMS]]
        return {
            "since": first,
            "until": last,
            "per": "week" if (last - first).days >= charts.DAILY_UP_TO else "day",
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
    by_team: dict[str, list[stats.Slice]],
    names: Sequence[str],
    bucket: charts.Bucket,
    which: str,
) -> dict[str, dict[date, float]]:
    out: dict[str, dict[date, float]] = {}
    for name in names:
        grouped: dict[date, list[stats.Slice]] = defaultdict(list)
        for piece in by_team[name]:
            grouped[bucket(piece.day)].append(piece)
        values = {}
        for when, rows in grouped.items():
            merged = stats.combined(rows, name)
            value = merged.mtta if which == "mtta" else merged.mttr
            if value is not None:
                values[when] = value
        if values:
            out[name] = values
    return out
