"""What every command does first: settings and logs, a ready database, a clear failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from responder.settings import Settings, load_settings


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


# `responder --log-format`, when given: it wins over RESPONDER_LOG_FORMAT.
_log_format: list[str] = []


def choose_log_format(fmt: str | None) -> None:
    _log_format[:] = [fmt] if fmt else []


def read_settings() -> Settings:
    """The settings, with logging configured as they say."""
    from responder.logs import configure
    from responder.main import build_redactor

    settings = load_settings()
    if _log_format:
        settings = settings.model_copy(update={"log_format": _log_format[0]})
    configure(settings.log_level, build_redactor(settings), settings.log_format)
    return settings


def ready_engine(settings: Settings) -> Any:
    """An engine on a current schema: SQLite upgrades itself, PostgreSQL must be upgraded."""
    from responder.store.db import create_engine
    from responder.store.migrate import SchemaOutOfDate, ensure_schema

    with database_errors(settings):
        engine = create_engine(settings.database_url)
        try:
            ensure_schema(engine, auto_upgrade=engine.dialect.name == "sqlite")
        except SchemaOutOfDate as exc:
            raise fail(str(exc)) from None
    return engine


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """A missing database, an unreachable server, refused credentials, a SQLite folder that
    does not exist: one line that says which and what to do, not the driver's traceback."""
    from responder.store.diagnosis import explain

    try:
        yield
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        line = explain(exc, settings.database_url)
        if line is None:
            raise
        raise fail(line) from None


def worker_slot(engine: Any) -> int | None:
    from responder.store.db import WorkerSlotTaken, take_worker_slot

    try:
        return take_worker_slot(engine)
    except WorkerSlotTaken as exc:
        raise fail(str(exc)) from None


@contextmanager
def opened(settings: Settings) -> Iterator[Any]:
    engine = ready_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()


def playbooks_or_fail(settings: Settings, registry: Any = None) -> list[Any]:
    """The playbooks, loaded strictly; exits listing every problem with file and line."""
    from responder.main import build_registry
    from responder.playbooks.loader import PlaybookError, load_playbooks

    registry = registry or build_registry(settings)
    try:
        return load_playbooks(settings.playbooks, registry.params_models())
    except PlaybookError as exc:
        raise fail("\n".join(exc.errors)) from None
