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
silences_app = typer.Typer(no_args_is_help=True, help="Silence alerts for a while.")
app.add_typer(db_app, name="db")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(incidents_app, name="incidents")
app.add_typer(audit_app, name="audit")
app.add_typer(silences_app, name="silences")


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
    from responder.playbooks.loader import PlaybookError
    from responder.playbooks.maintenance import load_maintenance

    settings = _settings()
    loaded = _load(settings)
    try:
        windows = load_maintenance(settings.playbooks)
    except PlaybookError as exc:
        raise _fail("\n".join(exc.errors)) from None
    for playbook in loaded:
        typer.echo(f"ok  {playbook.source}:{playbook.line}  {playbook.name}")
    for window in windows:
        typer.echo(f"ok  {window.source}:{window.line}  maintenance window {window.name}")
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


def _silenced(record: dict[str, Any], outcome: Outcome, verbose: bool) -> list[str]:
    data = record["data"]
    by = f"window {data['window']}" if data.get("window") else f"silence {data.get('silence_id')}"
    return [f"silenced by {by} until {data['until']}: {data['reason']}"]


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
    "event.silenced": _silenced,
    "incident.unsilenced": _with_reason("unsilenced"),
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


_ID = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Incident id.")]
_ACTOR = Annotated[
    str | None, typer.Option(help="Who answers (default: your login name).", show_default=False)
]
_NOTE = Annotated[str | None, typer.Option(help="A few words for the record.")]
_WAIT = Annotated[
    float, typer.Option(help="Seconds to wait for a worker to apply it (0: do not wait).")
]


@incidents_app.command("ack")
def incidents_ack(
    incident_id: _ID, actor: _ACTOR = None, note: _NOTE = None, wait: _WAIT = 10.0
) -> None:
    """Acknowledge an incident: reminders and escalations stop, PagerDuty and Slack are told."""
    _answer("acknowledge", incident_id, actor, note, wait)


@incidents_app.command("resolve")
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

    settings = _settings()
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
    with _opened(settings) as engine:
        desk = AnswerDesk(engine, dealer(engine, _load(settings)))
        try:
            accepted = desk.submit(answer)
        except (UnknownIncident, Refused) as exc:
            raise _fail(str(exc).strip("'")) from None
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
        raise _fail(f"incident {incident_id}: not {done}: {outcome['ignored']}")
    elif state == "processed":
        typer.echo(f"incident {incident_id} {done} by {who} (cli)")
    else:
        raise _fail(f"incident {incident_id}: the {verb} failed: {outcome}")


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


def _silence_desk(engine: Any, settings: Settings) -> Any:
    from responder.main import build_redactor
    from responder.pipeline.silencer import SilenceDesk

    return SilenceDesk(engine, build_redactor(settings))


def _silence_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'ID':>5}  {'STATE':<8} {'ENDS (UTC)':<16}  {'MATCHERS':<40} REASON (AUTHOR)"]
    for item in items:
        parts = [f"{k}={'|'.join(v)}" for k, v in item["matchers"].get("tags", {}).items()]
        parts += [
            f"{key}={'|'.join(item['matchers'][key])}"
            for key in ("monitor_id", "monitor", "scope")
            if key in item["matchers"]
        ]
        ends = item["expired_at"] if item["state"] == "expired" else item["ends_at"]
        lines.append(
            f"{item['id']:>5}  {item['state']:<8} {ends:%Y-%m-%d %H:%M}  "
            f"{' '.join(parts):<40} {item['reason']} ({item['author']})"
        )
    return lines


@silences_app.command("add")
def silences_add(
    reason: Annotated[str, typer.Option(help="Why: shown in the audit log and the list.")],
    author: Annotated[str, typer.Option(help="Who silences.")],
    tag: Annotated[
        list[str] | None, typer.Option(help="NAME=GLOB, e.g. service=pay* (repeatable).")
    ] = None,
    monitor_id: Annotated[list[str] | None, typer.Option(help="A monitor id (repeatable).")] = None,
    monitor: Annotated[
        list[str] | None, typer.Option(help="A monitor name glob (repeatable).")
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(help="An exact scope (repeatable).")] = None,
    duration: Annotated[str | None, typer.Option(help="How long: 30m, 2h, 1d.")] = None,
    until: Annotated[str | None, typer.Option(help="Or the end, ISO 8601 with a zone.")] = None,
    starts: Annotated[str | None, typer.Option(help="The start, ISO 8601 (default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The new silence as JSON.")] = False,
) -> None:
    """Silence matching alerts: stored and audited, no playbook runs until it ends."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from responder.pipeline.silencer import SilenceRequest, read

    tags: dict[str, list[str]] = {}
    for item in tag or []:
        name, sep, glob = item.partition("=")
        if not sep or not name or not glob:
            raise _fail(f"--tag {item!r}: write NAME=GLOB, e.g. service=payments")
        tags.setdefault(name, []).append(glob)
    matchers: dict[str, Any] = {"tags": tags, "monitor_id": monitor_id, "monitor": monitor}
    matchers["scope"] = scope
    wanted: dict[str, Any] = {
        "matchers": {key: value for key, value in matchers.items() if value},
        "reason": reason,
        "author": author,
        "duration": duration,
        "ends_at": until,
        "starts_at": starts,
    }
    settings = _settings()
    try:
        request = SilenceRequest.model_validate_json(orjson.dumps(wanted))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "silence"
        raise _fail(f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
    now = datetime.now(UTC)
    with _opened(settings) as engine:
        try:
            silence = _silence_desk(engine, settings).add(request, now=now)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    shown = read(silence, now)
    if as_json:
        sys.stdout.write(orjson.dumps(shown).decode() + "\n")
    else:
        typer.echo(f"silence {silence.id} {shown['state']} until {silence.ends_at.isoformat()}")


@silences_app.command("list")
def silences_list(
    show_all: Annotated[bool, typer.Option("--all", help="Ended and expired ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Silences not over yet (running or to come), newest first."""
    from datetime import UTC, datetime

    from responder.pipeline.silencer import reads

    settings = _settings()
    now = datetime.now(UTC)
    with _opened(settings) as engine:
        items = reads(_silence_desk(engine, settings).listing(everything=show_all, now=now), now)
    if as_json:
        for item in items:
            sys.stdout.write(orjson.dumps(item).decode() + "\n")
        return
    if not items:
        typer.echo("no silences" if show_all else "no active silences")
        return
    typer.echo("\n".join(_silence_lines(items)))


@silences_app.command("expire")
def silences_expire(
    silence_id: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="Silence id.")],
    author: Annotated[str, typer.Option(help="Who expires it.")] = "cli",
) -> None:
    """End a silence now: incidents it held that still fire run their playbooks."""
    from responder.pipeline.silencer import UnknownSilence

    settings = _settings()
    with _opened(settings) as engine:
        try:
            silence = _silence_desk(engine, settings).expire(silence_id, by=author)
        except UnknownSilence:
            raise _fail(f"no silence {silence_id}") from None
    typer.echo(f"silence {silence.id} ended at {silence.ended_at.isoformat()}")


if __name__ == "__main__":
    app()
