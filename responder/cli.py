"""The `responder` command line (typer): serve, worker, db, playbooks, incidents, audit."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from responder.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
playbooks_app = typer.Typer(no_args_is_help=True, help="Check and try playbooks.")
incidents_app = typer.Typer(no_args_is_help=True, help="Incident history.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log.")
app.add_typer(db_app, name="db")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(incidents_app, name="incidents")
app.add_typer(audit_app, name="audit")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings() -> Settings:
    from responder.logs import configure
    from responder.main import build_redactor

    settings = load_settings()
    configure(settings.log_level, build_redactor(settings))
    return settings


def _ready_engine(settings: Settings) -> Any:
    """An engine on a current schema: SQLite upgrades itself, PostgreSQL must be upgraded."""
    from responder.store.db import create_engine
    from responder.store.migrate import SchemaOutOfDate, ensure_schema

    try:
        engine = create_engine(settings.database_url)
        ensure_schema(engine, auto_upgrade=engine.dialect.name == "sqlite")
    except SchemaOutOfDate as exc:
        raise _fail(str(exc)) from None
    except FileNotFoundError as exc:  # a SQLite path in a folder that does not exist
        raise _fail(str(exc)) from None
    return engine


def _worker_slot(engine: Any) -> int | None:
    from responder.store.db import WorkerSlotTaken, take_worker_slot

    try:
        return take_worker_slot(engine)
    except WorkerSlotTaken as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _opened(settings: Settings) -> Iterator[Any]:
    engine = _ready_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Web only; run `responder worker` apart.")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Accept webhooks without a token (local trials).")
    ] = False,
) -> None:
    """Run the webhook, API and (unless --no-worker) the action worker in one process."""
    import uvicorn

    from responder.logs import configure
    from responder.main import build_service
    from responder.memory import freeze_startup_heap
    from responder.playbooks.loader import PlaybookError

    settings = _settings()
    if not settings.webhook_tokens and not insecure:
        raise _fail(
            "RESPONDER_WEBHOOK_TOKEN is not set: set it (comma-separated for rotation) "
            "or pass --insecure for a local trial"
        )
    engine = _ready_engine(settings)
    slot = None if no_worker else _worker_slot(engine)  # held until the process ends
    engine.dispose()
    try:
        service = build_service(settings, with_worker=not no_worker, insecure=insecure)
    except PlaybookError as exc:
        raise _fail("invalid playbooks:\n" + "\n".join(exc.errors)) from None
    configure(settings.log_level, service.redactor)  # now also masks the playbooks' env: keys
    # The in-process worker's threads share the GIL with the event loop; a short switch
    # interval keeps an acknowledgement from waiting up to 5 ms behind a busy worker.
    sys.setswitchinterval(0.0005)
    freeze_startup_heap()
    uvicorn.run(
        service.app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    del slot


@app.command()
def worker() -> None:
    """Run only the pipeline and action runner (scale out beside `serve --no-worker`)."""
    from responder.logs import configure
    from responder.main import build_redactor, build_registry, build_worker
    from responder.memory import freeze_startup_heap
    from responder.metrics import Metrics
    from responder.playbooks.loader import PlaybookError, load_playbooks

    settings = _settings()
    engine = _ready_engine(settings)
    slot = _worker_slot(engine)  # held until the process ends
    registry = build_registry(settings)
    try:
        playbooks = load_playbooks(settings.playbooks, registry.params_models())
    except PlaybookError as exc:
        raise _fail("invalid playbooks:\n" + "\n".join(exc.errors)) from None
    redactor = build_redactor(settings, playbooks)
    configure(settings.log_level, redactor)  # now also masks the playbooks' env: keys
    loop = build_worker(settings, engine, registry, redactor, Metrics(), playbooks)
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    typer.echo(f"worker started: {len(playbooks)} playbooks, {settings.worker_threads} threads")
    freeze_startup_heap()
    loop.run()
    del slot


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic)."""
    from responder.store.db import create_engine
    from responder.store.migrate import schema_state, upgrade

    settings = _settings()
    engine = create_engine(settings.database_url)
    upgrade(engine)
    current, head = schema_state(engine)
    typer.echo(f"database schema at {current} (head {head})")


def _load(settings: Settings) -> list[Any]:
    from responder.main import build_registry
    from responder.playbooks.loader import PlaybookError, load_playbooks

    try:
        return load_playbooks(settings.playbooks, build_registry(settings).params_models())
    except PlaybookError as exc:
        raise _fail("\n".join(exc.errors)) from None


@playbooks_app.command("validate")
def playbooks_validate() -> None:
    """Load every playbook strictly; list problems with file and line."""
    settings = _settings()
    loaded = _load(settings)
    for playbook in loaded:
        typer.echo(f"ok  {playbook.source}:{playbook.line}  {playbook.name}")
    typer.echo(f"{len(loaded)} playbooks valid in {settings.playbooks}")


@playbooks_app.command("test")
def playbooks_test(payload: Path) -> None:
    """Show which playbooks a webhook payload matches and the actions they would run."""
    from responder.intake.datadog import PayloadError, normalise
    from responder.main import build_registry
    from responder.playbooks.matcher import explain
    from responder.playbooks.render import RenderError, render_params

    settings = _settings()
    loaded = _load(settings)
    try:
        alert = normalise(json.loads(payload.read_text()), datetime.now(UTC))
    except (OSError, ValueError, PayloadError) as exc:
        raise _fail(f"{payload}: {exc}") from None
    registry = build_registry(settings)
    typer.echo(f"alert: {alert.transition} {alert.title!r} priority={alert.priority}")
    for note in alert.notes:
        typer.echo(f"  note: {note}")
    context = {"alert": alert.as_context(), "incident": {}}
    for playbook, matched, reason in explain(loaded, alert, {}):
        typer.echo(f"{'MATCH' if matched else 'no   '} {playbook.name}: {reason}")
        if not matched:
            continue
        for step in playbook.actions:
            action = registry.get(step.action)
            try:
                params: Any = render_params(step.params, context, action.markup)
            except RenderError as exc:
                params = f"template error: {exc}"
            extra = f" after {step.after}" if step.after else ""
            typer.echo(f"    -> {step.action}{extra} {json.dumps(params, ensure_ascii=False)}")


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="triggered, acknowledged, resolved")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """List recent incidents."""
    from sqlmodel import Session

    from responder.store import history

    settings = _settings()
    with _opened(settings) as engine, Session(engine) as session:
        items, _ = history.list_incidents(
            session, history.IncidentFilter(status=status, limit=limit)
        )
    for item in items:
        typer.echo(
            f"{item['id']:>6}  {item['status']:<12} {item['priority'] or '-':<3} "
            f"{item['opened_at'][:19]}  {item['title']}"
        )


@incidents_app.command("show")
def incidents_show(
    incident_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Incident id.")],
) -> None:
    """One incident with its events, action runs and audit timeline (JSON)."""
    from sqlmodel import Session

    from responder.store import history

    settings = _settings()
    with _opened(settings) as engine, Session(engine) as session:
        detail = history.incident_detail(session, incident_id)
    if detail is None:
        raise _fail(f"no incident {incident_id}")
    sys.stdout.write(orjson.dumps(detail, option=orjson.OPT_INDENT_2).decode() + "\n")


@audit_app.command("verify")
def audit_verify() -> None:
    """Prove the audit log's hash chain intact, or name the first broken row."""
    from responder.store import audit

    settings = _settings()
    with _opened(settings) as engine, engine.connect() as conn:
        report = audit.verify(conn)
    if report.ok:
        typer.echo(f"audit log intact: {report.checked} entries verified")
        return
    raise _fail(
        f"audit log BROKEN at seq {report.first_broken_seq}: {report.reason} "
        f"({report.checked} entries checked)"
    )


if __name__ == "__main__":
    app()
