"""`responder stats`: how many incidents, and how fast they were acknowledged and resolved."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer

from responder.cli.startup import fail, opened, read_settings
from responder.cli.tables import table


def stats(
    since: Annotated[
        str | None,
        typer.Option(help="Only incidents opened at or after this time (ISO 8601, with a zone)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The figures as JSON.")] = False,
) -> None:
    """Incident counts, MTTA and MTTR: overall, per service and per team."""
    from sqlmodel import Session

    from responder.store import history

    start = _since(since)
    settings = read_settings()
    with opened(settings) as engine, Session(engine) as session:
        figures = history.stats(session, start)
    if as_json:
        sys.stdout.write(orjson.dumps(figures).decode() + "\n")
        return
    typer.echo("\n".join(_report(figures)))


def _since(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--since {raw!r}: write an ISO 8601 time, e.g. 2026-11-23T08:00:00Z") from None
    if parsed.tzinfo is None:
        raise fail(f"--since {raw!r}: add a time zone, e.g. 2026-11-23T08:00:00Z")
    return parsed.astimezone(UTC)


def _report(figures: dict[str, Any]) -> list[str]:
    from responder.store.timeline import duration

    def row(name: str, f: dict[str, Any]) -> list[str]:
        return [name, str(f["incidents"]), duration(f["mtta_seconds"]), duration(f["mttr_seconds"])]

    by_status = ", ".join(f"{n} {status}" for status, n in sorted(figures["by_status"].items()))
    runs = ", ".join(f"{n} {state}" for state, n in sorted(figures["action_runs"].items()))
    lines = [
        f"incidents: {figures['incidents']}" + (f" ({by_status})" if by_status else ""),
        f"MTTA (mean time to acknowledge): {duration(figures['mtta_seconds'])}",
        f"MTTR (mean time to resolve): {duration(figures['mttr_seconds'])}",
        f"action runs: {runs or 'none'}",
    ]
    for title, key in (("SERVICE", "by_service"), ("TEAM", "by_team")):
        rows = [row(name, f) for name, f in figures[key].items()]
        if rows:
            lines += ["", *table((title, "INCIDENTS", "MTTA", "MTTR"), rows)]
    return lines
