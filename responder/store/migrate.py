"""Schema migrations: run alembic programmatically and tell whether the database is current."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from responder.store import db

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# Held for the duration of an upgrade on PostgreSQL so that two processes starting at
# once do not both try to create the tables. Distinct from the audit chain's key.
_UPGRADE_LOCK_KEY = 0x7265_7370_6D69_6772  # "respmigr"


class SchemaOutOfDate(Exception):
    """The database schema is not the one this code was written for."""

    def __init__(self, current: str | None, head: str, *, known: bool = True) -> None:
        self.current = current
        self.head = head
        shown = current or "(empty)"
        if known:
            message = (
                f"database schema is at {shown}, code needs {head}: run `responder db upgrade`"
            )
        else:
            message = (
                f"database schema is at {shown}, which this code does not know (written by a "
                f"newer release?); code needs {head}"
            )
        super().__init__(message)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Without it alembic warns about legacy path splitting.
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine_or_url: sa.Engine | str) -> None:
    """Upgrade the database to the newest revision (alembic `upgrade head`)."""
    if isinstance(engine_or_url, str):
        engine = db.create_engine(engine_or_url)
        try:
            _upgrade(engine)
        finally:
            engine.dispose()
    else:
        _upgrade(engine_or_url)


def _upgrade(engine: sa.Engine) -> None:
    config = alembic_config()
    # One transaction for the whole upgrade: on SQLite it starts with BEGIN IMMEDIATE, which
    # already excludes a concurrent upgrade; PostgreSQL needs the advisory lock for that.
    with engine.begin() as conn:
        if db.is_postgres(conn):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def schema_state(engine: sa.Engine) -> tuple[str | None, str]:
    """(revision the database is at, or None when it has none; revision the code needs)."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def is_current(engine: sa.Engine) -> bool:
    current, head = schema_state(engine)
    return current == head


def ensure_schema(engine: sa.Engine, *, auto_upgrade: bool) -> None:
    """Make sure the schema is current: upgrade it (SQLite) or refuse to start (PostgreSQL)."""
    current, head = schema_state(engine)
    if current == head:
        return
    if current is not None and not _knows(current):
        raise SchemaOutOfDate(current, head, known=False)
    if not auto_upgrade:
        raise SchemaOutOfDate(current, head)
    upgrade(engine)


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _knows(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except CommandError:  # alembic's answer for an id it has no script for
        return False
