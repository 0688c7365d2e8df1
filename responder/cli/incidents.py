"""`responder incidents`: list, show, acknowledge and resolve incidents."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from responder.cli.startup import fail, opened, playbooks_or_fail, read_settings
from responder.cli.tables import table

if TYPE_CHECKING:
    from responder.store.timeline import IncidentTimeline

app = typer.Typer(no_args_is_help=True, help="Incident history.")


_JSON = Annotated[bool, typer.Option("--json", help="JSON for scripts instead of a table.")]


@app.command("list")
def incidents_list(
    status: Annotated[
        str | None, typer.Option(help="triggered, acknowledged or resolved.", show_default=False)
    ] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    priority: Annotated[str | None, typer.Option(help="Only this priority, e.g. P1.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 20,
    as_json: _JSON = False,
) -> None:
    """Recent incidents, newest first: status, priority, who acknowledged, current title."""
    from sqlmodel import Session

    from responder.store import history
    from responder.store.timeline import current_title

    try:
        history.known_status(status)
    except history.UnknownStatus as exc:
        raise fail(str(exc)) from None
    flt = history.IncidentFilter(
        status=status, service=service, team=team, priority=priority, limit=limit
    )
    settings = read_settings()
    with opened(settings) as engine, Session(engine) as session:
        items, _ = history.list_incidents(session, flt)
        for item in items:
            item["current_title"] = current_title(session, item["id"]) or item["title"]
    if as_json:
        for item in items:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
        return
    if not items:
        typer.echo("no incidents" + (f" {status}" if status else ""))
        return
    typer.echo("\n".join(table(_LIST_HEADERS, [_list_row(item) for item in items])))


_LIST_HEADERS = (
    "ID",
    "STATUS",
    "PRI",
    "OPENED",
    "SERVICE",
    "TEAM",
    "ACKNOWLEDGED BY",
    "TITLE (CURRENT)",
)


def _list_row(item: dict[str, Any]) -> list[str]:
    from responder.store.timeline import utc

    return [
        str(item["id"]),
        item["status"],
        item["priority"] or "-",
        utc(item["opened_at"]),
        item["service"] or "-",
        item["team"] or "-",
        item["acknowledged_by"] or ("(unnamed)" if item["acknowledged_at"] else "-"),
        " ".join(item["current_title"].split()),
    ]


@app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Incident id.")],
    as_json: _JSON = False,
) -> None:
    """One incident as a timeline: what happened, which playbooks ran and why, each action's
    attempts and outcome as it stands now, who acknowledged and resolved."""
    from sqlmodel import Session

    from responder.store import history
    from responder.store.timeline import incident_timeline

    settings = read_settings()
    with opened(settings) as engine, Session(engine) as session:
        timeline = incident_timeline(session, incident_id)
        detail = history.incident_detail(session, incident_id) if as_json else None
    if timeline is None:
        raise fail(f"no incident {incident_id}")
    if detail is not None:
        detail["story"] = timeline.as_json()["timeline"]
        sys.stdout.write(orjson.dumps(detail, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    typer.echo("\n".join(_story(timeline)))


def _story(timeline: IncidentTimeline) -> list[str]:
    from responder.store.timeline import duration, utc

    inc = timeline.incident
    lines = [
        f"Incident {inc['id']}  {inc['status'].upper()}  {inc['priority'] or '-'}  "
        f"{inc['current_title']}",
        f"  monitor   {inc['monitor_name'] or '-'} ({inc['monitor_id']})"
        + (f"  scope {inc['scope']}" if inc["scope"] else ""),
        f"  service   {inc['service'] or '-'}   team {inc['team'] or '-'}"
        f"   env {inc['env'] or '-'}",
        f"  opened    {utc(inc['opened_at'])}",
    ]
    if inc["acknowledged_at"]:
        by = inc["acknowledged_by"] or "unnamed"
        took = duration(inc.get("time_to_ack_seconds"))
        lines.append(f"  acked     {utc(inc['acknowledged_at'])} by {by} (after {took})")
    if inc["resolved_at"]:
        by = f" by {inc['resolved_by']}" if inc["resolved_by"] else ""
        took = duration(inc.get("time_to_resolve_seconds"))
        how = inc["resolution"] or "resolved"
        lines.append(f"  resolved  {utc(inc['resolved_at'])}{by}: {how} (after {took})")
    lines += ["", "Timeline (UTC)"]
    lines += [f"  {utc(m.at)[:-4]}  {m.text}" for m in timeline.moments] or ["  nothing recorded"]
    lines += ["", "Actions (as they stand now)"]
    rows = [
        [f"#{r.id}", r.action, r.playbook, r.transition, r.state, str(r.attempts), r.outcome]
        for r in timeline.runs
    ]
    headers = ("RUN", "ACTION", "PLAYBOOK", "ON", "STATE", "ATTEMPTS", "OUTCOME")
    lines += [f"  {line}" for line in table(headers, rows)] if rows else ["  none"]
    return lines


_ID = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Incident id.")]
_ACTOR = Annotated[
    str | None, typer.Option(help="Who answers (default: your login name).", show_default=False)
]
_NOTE = Annotated[str | None, typer.Option(help="A few words for the record.")]
_WAIT = Annotated[
    float, typer.Option(help="Seconds to wait for a worker to apply it (0: do not wait).")
]


@app.command("ack")
def incidents_ack(
    incident_id: _ID, actor: _ACTOR = None, note: _NOTE = None, wait: _WAIT = 10.0
) -> None:
    """Acknowledge an incident: reminders and escalations stop, PagerDuty and Slack are told."""
    _answer("acknowledge", incident_id, actor, note, wait)


@app.command("resolve")
def incidents_resolve(
    incident_id: _ID, actor: _ACTOR = None, note: _NOTE = None, wait: _WAIT = 10.0
) -> None:
    """Resolve an incident by hand: its page, thread and Datadog incident are resolved too."""
    _answer("resolve", incident_id, actor, note, wait)


def _answer(verb: str, incident_id: int, actor: str | None, note: str | None, wait: float) -> None:
    import getpass
    import time
    import uuid
    from datetime import UTC, datetime

    from responder.domain import Answer, Verb
    from responder.main import dealer
    from responder.pipeline.answers import (
        AlreadyAcknowledged,
        AnswerDesk,
        Refused,
        UnknownIncident,
    )
    from responder.store import events

    settings = read_settings()
    who = actor or getpass.getuser()
    answer = Answer(
        verb=Verb(verb),
        incident_id=incident_id,
        actor=who,
        via="cli",
        reference=uuid.uuid4().hex,
        at=datetime.now(UTC),
        note=note,
    )
    with opened(settings) as engine:
        desk = AnswerDesk(engine, dealer(engine, playbooks_or_fail(settings)))
        try:
            accepted = desk.submit(answer)
        except (UnknownIncident, Refused) as exc:
            raise fail(str(exc).strip("'")) from None
        except AlreadyAcknowledged as exc:
            typer.echo(f"incident {incident_id}: {exc}; nothing to do")
            return
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            with engine.connect() as conn:
                state, outcome = events.result_of(conn, event_id=accepted.event_id)
            if state != "received" or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    done = "acknowledged" if verb == "acknowledge" else "resolved"
    if state == "received":
        typer.echo(
            f"incident {incident_id}: {verb} stored (event {accepted.event_id}); "
            "a running worker applies it"
        )
    elif outcome and outcome.get("ignored"):
        raise fail(f"incident {incident_id}: not {done}: {outcome['ignored']}")
    elif state == "processed":
        typer.echo(f"incident {incident_id} {done} by {who} (cli)")
    else:
        raise fail(f"incident {incident_id}: the {verb} failed: {outcome}")
