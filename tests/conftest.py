"""Shared fixtures: databases on SQLite and on PostgreSQL (empty, or at the newest schema),
and the Datadog samples."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from responder.store import db
from tests.databases import BACKENDS, PostgresStates, SqliteStates, restore
from tests.logstate import logging_kept
from tests.samples import SAMPLES

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    server_url = make_url(os.environ.get("RESPONDER_TEST_PG_URL", DEFAULT_PG_URL))
    name = f"responder_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL is not reachable at {server_url!r}: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, no tables at all: a new SQLite file, or the session's PostgreSQL
    database with every table dropped. For tests of migrating; the others want
    `migrated_url`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/responder.db"
    url: str = request.getfixturevalue("pg_url")
    _drop_all_tables(url)
    return url


def _drop_all_tables(url: str) -> None:
    # Reflect instead of using the models: also drops alembic_version and anything a test
    # created on its own.
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            existing = sa.MetaData()
            existing.reflect(conn)
            existing.drop_all(conn)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_states(tmp_path_factory: pytest.TempPathFactory) -> SqliteStates:
    return SqliteStates(tmp_path_factory.mktemp("database-states"))


@pytest.fixture(scope="session")
def postgres_states(pg_url: str) -> PostgresStates:
    return PostgresStates(pg_url)


@pytest.fixture(params=BACKENDS)
def migrated_url(request: pytest.FixtureRequest) -> str:
    """An empty database at the newest schema, migrated once per session (tests.databases)."""
    return restore(request, request.param)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    """The engine the service would build, on an empty database at the newest schema."""
    created = db.create_engine(migrated_url)
    try:
        yield created
    finally:
        created.dispose()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The Datadog webhook samples in the repository (tests/samples/datadog)."""
    return SAMPLES


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Whatever a test configures (the CLI sets up logging for the whole process, onto a
    stream that closes with the command), the next test logs as the session began."""
    with logging_kept():
        yield
