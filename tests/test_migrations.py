"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from responder.store import db, migrate
from responder.store import tables as _tables  # noqa: F401 - registers the models

MODEL_TABLES = {
    "alert_event",
    "incident",
    "action_run",
    "audit_entry",
    "alert_group",
    "storm",
    "silence",
}


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Migrated here, from nothing: the shared `engine` hands out a copy of a database
    migrated once, which would test the copy rather than the migrations."""
    created = db.create_engine(db_url)
    try:
        migrate.upgrade(created)
        yield created
    finally:
        created.dispose()


def test_upgrade_matches_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
        names = set(sa.inspect(conn).get_table_names())
    assert differences == []
    assert MODEL_TABLES | {"alembic_version"} <= names


def test_models_cover_every_table() -> None:
    # compare_metadata only sees tables the metadata knows; make sure that is all of them.
    assert set(SQLModel.metadata.tables) >= MODEL_TABLES


def test_upgrade_twice_is_a_no_op(engine: sa.Engine) -> None:
    before = migrate.schema_state(engine)
    migrate.upgrade(engine)
    assert migrate.schema_state(engine) == before
    assert migrate.is_current(engine)


def test_upgrade_accepts_a_url(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = db.create_engine(db_url)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_is_current_after_upgrade(engine: sa.Engine) -> None:
    current, head = migrate.schema_state(engine)
    assert current == head
    assert migrate.is_current(engine)


def test_empty_database_is_not_current(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        assert migrate.schema_state(engine)[0] is None
        assert not migrate.is_current(engine)
        with pytest.raises(migrate.SchemaOutOfDate) as raised:
            migrate.ensure_schema(engine, auto_upgrade=False)
        assert "responder db upgrade" in str(raised.value)
        assert raised.value.current is None
    finally:
        engine.dispose()


def test_ensure_schema_upgrades_when_allowed(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        migrate.ensure_schema(engine, auto_upgrade=True)
        assert migrate.is_current(engine)
        migrate.ensure_schema(engine, auto_upgrade=False)  # current: no error
    finally:
        engine.dispose()


def test_unknown_revision_is_refused(engine: sa.Engine) -> None:
    # A database migrated by a newer release: upgrading cannot help, and must not be tried.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(migrate.SchemaOutOfDate, match="does not know"):
        migrate.ensure_schema(engine, auto_upgrade=True)


def test_downgrade_removes_everything(engine: sa.Engine) -> None:
    from alembic import command

    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert names & MODEL_TABLES == set()


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/pragmas.db")
    try:
        assert not db.is_postgres(engine)
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            # NORMAL: the intake syncs the WAL itself before acknowledging (make_durable)
            assert pragma("PRAGMA synchronous").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 10000
            assert pragma("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        db.create_engine(f"sqlite:///{tmp_path}/nowhere/responder.db")


def test_classify_tells_outages_from_bugs(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/classify.db")
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.OperationalError) as bug:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        assert not db.classify(bug.value)  # "no such table" is a bug, not an outage
    finally:
        engine.dispose()
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # SQLITE_BUSY
    assert db.classify(sa.exc.OperationalError("BEGIN IMMEDIATE", None, locked))
    assert db.classify(sa.exc.TimeoutError("QueuePool limit reached"))
    assert db.classify(sa.exc.DisconnectionError("gone"))
    assert db.classify(psycopg.OperationalError("connection refused"))
    assert not db.classify(ValueError("bug"))
    assert not db.classify(sa.exc.IntegrityError("INSERT", None, sqlite3.IntegrityError("x")))


@pytest.mark.postgres
def test_classify_unreachable_postgres() -> None:
    # Port 1 has nothing listening: the error a stopped server gives.
    engine = db.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(sa.exc.OperationalError) as raised:
            engine.connect()
        assert db.classify(raised.value)
        assert db.is_postgres(engine)
    finally:
        engine.dispose()
