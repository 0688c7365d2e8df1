"""`responder incidents`: list, show, acknowledge and resolve incidents."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from responder.cli.startup import fail, opened, playbooks_or_fail, read_settings

app = typer.Typer(no_args_is_help=True, help="Incident history.")


@app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="triggered, acknowledged, resolved")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """List recent incidents."""
    from sqlmodel import Session

    from responder.store import history

    settings = read_settings()
    with opened(settings) as engine, Session(engine) as session:
        items, _ = history.list_incidents(
            session, history.IncidentFilter(status=status, limit=limit)
        )
    for item in items:
        typer.echo(
            f"{item['id']:>6}  {item['status']:<12} {item['priority'] or '-':<3} "
            f"{item['opened_at'][:19]}  {item['title']}"
        )


@app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Incident id.")],
) -> None:
    """One incident with its events, action runs and audit timeline (JSON)."""
    from sqlmodel import Session

    from responder.store import history

    settings = read_settings()
    with opened(settings) as engine, Session(engine) as session:
        detail = history.incident_detail(session, incident_id)
    if detail is None:
        raise fail(f"no incident {incident_id}")
    sys.stdout.write(orjson.dumps(detail, option=orjson.OPT_INDENT_2).decode() + "\n")


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
