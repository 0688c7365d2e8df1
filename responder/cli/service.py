"""Running the service: `serve`, `worker` and `db upgrade`."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from responder.cli.startup import database_errors, fail, read_settings, ready_engine, worker_slot

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


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

    from responder.cli.firstrun import api_token, report
    from responder.logs import configure
    from responder.main import build_service, integration_states
    from responder.memory import freeze_startup_heap
    from responder.playbooks.loader import PlaybookError

    settings = read_settings()
    if not settings.webhook_tokens and not insecure:
        raise fail(
            "RESPONDER_WEBHOOK_TOKEN is not set: set it (comma-separated for rotation) "
            "or pass --insecure for a local trial"
        )
    engine = ready_engine(settings)
    slot = None if no_worker else worker_slot(engine)  # held until the process ends
    engine.dispose()
    settings, token = api_token(settings)
    try:
        service = build_service(settings, with_worker=not no_worker, insecure=insecure)
    except PlaybookError as exc:
        raise fail("invalid playbooks:\n" + "\n".join(exc.errors)) from None
    told = report(
        settings,
        token,
        list(service.playbooks.current()),
        integration_states(settings),
        host=host,
        port=port,
        insecure=insecure,
        worker=not no_worker,
    )
    typer.echo("\n".join(told))  # stdout, never the logs: it may show the API token
    # Again, now that the redactor also masks the playbooks' env: keys.
    configure(settings.log_level, service.redactor, settings.log_format)
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
        log_config=None,  # uvicorn's lines go through ours, in the one format
    )
    del slot


def worker() -> None:
    """Run only the pipeline and action runner (scale out beside `serve --no-worker`)."""
    from responder.logs import configure
    from responder.main import build_redactor, build_registry, build_reloader, build_worker
    from responder.memory import freeze_startup_heap
    from responder.metrics import Metrics
    from responder.playbooks.library import PlaybookLibrary
    from responder.playbooks.loader import PlaybookError

    settings = read_settings()
    engine = ready_engine(settings)
    slot = worker_slot(engine)  # held until the process ends
    registry = build_registry(settings)
    try:
        playbooks = PlaybookLibrary.load(settings.playbooks, registry.params_models())
    except PlaybookError as exc:
        raise fail("invalid playbooks:\n" + "\n".join(exc.errors)) from None
    redactor = build_redactor(settings, playbooks.current())
    # Again, now that the redactor also masks the playbooks' env: keys.
    configure(settings.log_level, redactor, settings.log_format)
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

    settings = read_settings()
    with database_errors(settings):
        engine = create_engine(settings.database_url)
        upgrade(engine)
        current, head = schema_state(engine)
    typer.echo(f"database schema at {current} (head {head})")
