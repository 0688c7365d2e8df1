"""The `responder` command line (typer): serve, worker, db, playbooks, incidents, audit."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from responder.settings import Settings, load_settings

if TYPE_CHECKING:  # imported where used, so that `responder --help` stays quick
    from responder.pipeline.simulate import Delivery, Outcome

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
    if not no_worker:
        # The in-process worker's threads share the GIL with the event loop; a short switch
        # interval keeps an acknowledgement from waiting up to 5 ms behind a busy worker.
        # Without them it only costs: the intake writer gives the GIL up in every call into
        # the driver, and forced switches every 0.5 ms cost the event loop about 15% of its
        # acknowledgements a second at saturation.
        sys.setswitchinterval(0.0005)
    # SIGHUP reloads the playbooks (so does editing them); uvicorn handles only INT and TERM.
    signal.signal(signal.SIGHUP, lambda *_: service.reloader.request())
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
    from responder.main import build_redactor, build_registry, build_reloader, build_worker
    from responder.memory import freeze_startup_heap
    from responder.metrics import Metrics
    from responder.playbooks.library import PlaybookLibrary
    from responder.playbooks.loader import PlaybookError

    settings = _settings()
    engine = _ready_engine(settings)
    slot = _worker_slot(engine)  # held until the process ends
    registry = build_registry(settings)
    try:
        playbooks = PlaybookLibrary.load(settings.playbooks, registry.params_models())
    except PlaybookError as exc:
        raise _fail("invalid playbooks:\n" + "\n".join(exc.errors)) from None
    redactor = build_redactor(settings, playbooks.current())
    configure(settings.log_level, redactor)  # now also masks the playbooks' env: keys
    metrics = Metrics()
    loop = build_worker(settings, engine, registry, redactor, metrics, playbooks)
    reloader = build_reloader(engine, playbooks, redactor, metrics)
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    signal.signal(signal.SIGINT, lambda *_: loop.stop())
    signal.signal(signal.SIGHUP, lambda *_: reloader.request())  # so does editing them
    count = len(playbooks.current())
    typer.echo(f"worker started: {count} playbooks, {settings.worker_threads} threads")
    freeze_startup_heap()
    reloader.start()
    try:
        loop.run()
    finally:
        reloader.stop()
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


def _load(settings: Settings, registry: Any = None) -> list[Any]:
    from responder.main import build_registry
    from responder.playbooks.loader import PlaybookError, load_playbooks

    registry = registry or build_registry(settings)
    try:
        return load_playbooks(settings.playbooks, registry.params_models())
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
def playbooks_test(
    payloads: Annotated[
        list[Path],
        typer.Argument(
            help="Deliveries, in order: JSON files; a .jsonl file (or - for stdin) holds "
            "one delivery a line."
        ),
    ],
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Also say why the other playbooks did not match."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per delivery (JSON Lines).")
    ] = False,
) -> None:
    """Show, delivery by delivery, what the service would do with these webhooks.

    The real pipeline runs on a throwaway database: no database of yours is opened and no
    vendor is called, whatever credentials are set.
    """
    from datetime import timedelta

    from responder.main import build_redactor, build_registry, build_stages, stream_policy
    from responder.pipeline.simulate import DeliveryError, simulate

    settings = _settings()
    registry = build_registry(settings)
    loaded = _load(settings, registry)
    deliveries = _deliveries(payloads)
    # No claimer: a run taken over would be a run started.
    stages = build_stages(registry, timedelta(seconds=settings.run_max_age_seconds))
    try:
        redactor = build_redactor(settings, loaded)
        outcomes = simulate(deliveries, stages, loaded, redactor, stream_policy(settings))
    except DeliveryError as exc:
        raise _fail(str(exc)) from None
    for outcome in outcomes:
        if as_json:
            sys.stdout.write(orjson.dumps(outcome.as_json(), default=str).decode() + "\n")
        else:
            typer.echo("\n".join(_outcome_lines(outcome, verbose=verbose)))


def _deliveries(paths: list[Path]) -> list[Delivery]:
    """Every delivery of every input, in order; exits naming each input that cannot be read."""
    from responder.pipeline.simulate import Delivery

    found: list[Delivery] = []
    errors: list[str] = []
    for path in paths:
        try:
            if str(path) == "-":
                read = _lines("<stdin>", sys.stdin.buffer.read())
            elif path.suffix == ".jsonl":
                read = _lines(str(path), path.read_bytes())
            else:
                read = [Delivery(str(path), path.read_bytes())]
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        if not read:  # surely not what was meant: say so rather than show nothing for it
            errors.append(f"{path}: no deliveries in it (JSON Lines: one delivery a line)")
        found += read
    if errors:
        raise _fail("\n".join(errors))
    return found


def _lines(source: str, data: bytes) -> list[Delivery]:
    from responder.pipeline.simulate import Delivery

    return [
        Delivery(f"{source}:{number}", line)
        for number, line in enumerate(data.splitlines(), start=1)
        if line.strip()  # blank lines separate nothing in JSON Lines; skip them
    ]


def _outcome_lines(outcome: Outcome, *, verbose: bool) -> list[str]:
    alert = outcome.alert
    lines = [
        f"#{outcome.number} {Path(outcome.source).name}  {alert.transition} {alert.title!r} "
        f"priority={alert.priority or '-'} date={alert.date.isoformat()}"
    ]
    if outcome.redelivery_of is not None:
        lines.append(f"   redelivery of #{outcome.redelivery_of}: recognised, nothing done again")
    for record in outcome.records:
        try:
            shown = _RECORDS.get(record["kind"], _generic)(record, outcome, verbose)
        except (KeyError, TypeError, AttributeError):
            shown = _generic(record, outcome, verbose)  # a known kind whose shape changed
        lines += [f"   {line}" for line in shown]
    return lines


# How one audit record reads: (record, the delivery's outcome, verbose) -> lines.
_Renderer = Callable[[dict[str, Any], "Outcome", bool], list[str]]


def _generic(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    """Any kind without a renderer of its own, as it is: a kind added later still shows."""
    return [f"{record['kind']}: {json.dumps(record['data'], ensure_ascii=False)}"]


def _received(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    return [f"note: {note}" for note in record["data"].get("notes", [])]


def _incident_change(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data, verb = record["data"], record["kind"].removeprefix("incident.")
    if verb == "opened":
        line = f"incident {record['incident_id']} opened (key {data['key']})"
        if data["to"] == "resolved":
            line += f", resolved: {data.get('note', 'recovered')}"
    else:
        line = f"incident {record['incident_id']} {verb}: {data['from']} -> {data['to']}"
    # Why the change is not the plain one: held open, joined, resolved by a timer.
    for key, label in (("held", "held open"), ("joined", "joined"), ("timer", "timer")):
        if data.get(key):
            line += f" ({label}: {data[key]})"
    if verb == "resolved" and data.get("resolution") not in (None, "recovered"):
        line += f" as {data['resolution']}"
    return [line]


def _matched(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    new = set(data["new"])
    shown = [
        f"{name} (new)" if name in new else f"{name} (already ran: no new steps)"
        for name in (m["name"] for m in data["matched"])
    ]
    if data.get("not_routed"):
        return [f"playbooks: not routed: {data['not_routed']}"]
    lines = [f"playbooks: {', '.join(shown) if shown else 'none matched'}"]
    if data.get("fallback"):
        lines.append(f"fallback {data['fallback']}")
    if verbose:
        lines += [f"   no {name}: {reason}" for name, reason in outcome.not_matched]
    return lines


def _planned(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    planned = outcome.run(record["run_id"])
    if planned is None:
        return _generic(record, outcome, verbose)
    run = planned.run
    params = json.dumps(dict(planned.params), ensure_ascii=False)
    failed = f"  FAILED: {run.last_error}" if record["kind"] == "run.failed" else ""
    if planned.parent is not None:
        parent = planned.parent
        of = f" of #{planned.parent_delivery}" if planned.parent_delivery else ""
        to = f"(to {parent.action}, run {parent.id}{of})"
        return [f"follow-up -> {run.action} {params} {to}{failed}"]
    after = _duration((run.scheduled_at - run.created_at).total_seconds())
    extra = (f" after {after}" if after else "") + (f" if {run.condition}" if run.condition else "")
    return [f"-> {run.action}{extra} {params}{failed}"]


def _duration(seconds: float) -> str:
    whole = round(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s" if whole else ""


def _cancelled(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    why = f": {data['reason']}" if data.get("reason") else ""
    return [f"cancelled: {data['action']} (run {record['run_id']}, {data['playbook']}){why}"]


def _with_reason(label: str, field: str | None = None) -> _Renderer:
    def render(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
        data = record["data"]
        subject = f"{data[field]}: " if field else ""
        return [f"{label}: {subject}{data['reason']}"]

    return render


def _flapping(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [
        f"flapping: {data['changes']} state changes within {data['window']};"
        f" one incident holds it until calm for {data['quiet']}"
    ]


def _stable(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [f"no longer flapping: calm for {data['calm_for']}, {data['state']}"]


def _grouped(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [
        f"grouped: {data['member']} joins ({data['grouping']}; {data['members']} alerts),"
        " told in the thread together"
    ]


def _summarized(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    return [f"summary: {data['new']} new, {data['firing']} of {data['members']} firing"]


def _failed(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    return [f"failed: {record['data']['error']}"]


_RECORDS: dict[str, _Renderer] = {
    "event.received": _received,
    "incident.opened": _incident_change,
    "incident.updated": _incident_change,
    "incident.resolved": _incident_change,
    "playbooks.matched": _matched,
    "run.planned": _planned,
    "run.failed": _planned,
    "run.cancelled": _cancelled,
    "event.ignored": _with_reason("ignored"),
    "event.late": _with_reason("late"),
    "run.suppressed": _with_reason("suppressed", "action"),
    "incident.flapping": _flapping,
    "incident.stable": _stable,
    "incident.grouped": _grouped,
    "incident.summarized": _summarized,
    "event.failed": _failed,
}


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
