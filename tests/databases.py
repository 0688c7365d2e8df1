"""Databases at the newest schema for tests, migrated once per session instead of per test.

Migrating is the same work every time, and a test that only needs the tables should not pay
for it (nor for what a named state holds, say a history delivered through the service). So
each state is made once per session, on the first test that asks for it, then handed out:

- SQLite: a template file, copied to the test's own path.
- PostgreSQL: the session's database itself, its tables emptied (TRUNCATE ... RESTART
  IDENTITY) and refilled from the state's rows, kept in memory as COPY data. A test may have
  dropped or altered tables, or touched alembic_version: the schema's fingerprint tells, and
  the tables are then dropped and migrated again before the state goes back in.

Tests of the migrations themselves, and tests that need a database with nothing in it, keep
using `db_url` and migrate (or not) on their own.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from responder.store import migrate

EMPTY = "empty"  # the newest schema with no rows: every other state starts from it
Build = Callable[[str], None]  # puts a state's rows into the database at this URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class SqliteStates:
    """Template files in a folder of the session, one per state."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._saved: dict[str, Path] = {}

    def restore(self, target: Path, name: str = EMPTY, build: Build | None = None) -> str:
        if name not in self._saved:
            self._saved[name] = self._make(name, build)
        shutil.copyfile(self._saved[name], target)
        return f"sqlite:///{target}"

    def _make(self, name: str, build: Build | None) -> Path:
        path = self._folder / f"{name}.db"
        if name == EMPTY:
            migrate.upgrade(f"sqlite:///{path}")
        else:
            if build is None:
                raise LookupError(f"no database state {name!r} yet, and nothing to build it")
            build(self.restore(path, EMPTY))
        _self_contained(path)
        return path


def _self_contained(path: Path) -> None:
    # Everything in the main file: a copy made without the -wal file beside it would miss
    # the last commits. The service switches each copy back to WAL when it connects.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


@dataclass
class _Saved:
    rows: dict[str, bytes]  # table -> COPY data
    sequences: dict[str, int | None]  # sequence -> last value handed out, None if none yet


@dataclass
class PostgresStates:
    """States of the session's PostgreSQL database, put back into it on demand."""

    url: str
    _head: str | None = None  # the fingerprint of the schema as the migrations leave it
    _saved: dict[str, _Saved] = field(default_factory=dict)

    def restore(self, name: str = EMPTY, build: Build | None = None) -> str:
        # NullPool: no connection outlives the call to hold a lock the test's TRUNCATE,
        # or the next test's DROP, would wait for.
        engine = sa.create_engine(self.url, poolclass=NullPool)
        try:
            self._at_head(engine)  # which also saves EMPTY, the first time
            if name not in self._saved:
                if build is None:
                    raise LookupError(f"no database state {name!r} yet, and nothing to build it")
                self._fill(engine, self._saved[EMPTY])
                build(self.url)
                self._saved[name] = self._save(engine)
            self._fill(engine, self._saved[name])
        finally:
            engine.dispose()
        return self.url

    def _at_head(self, engine: sa.Engine) -> None:
        with engine.connect() as conn:
            if self._head is not None and _fingerprint(conn) == self._head:
                return
        _drop_tables(engine)
        migrate.upgrade(self.url)
        with engine.connect() as conn:
            found = _fingerprint(conn)
        if self._head is None:
            self._head = found
            self._saved[EMPTY] = self._save(engine)
        assert found == self._head, "migrating again gave another schema"

    def _save(self, engine: sa.Engine) -> _Saved:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            rows: dict[str, bytes] = {}
            with raw.cursor() as cursor:
                for table in _tables(conn):
                    data = bytearray()
                    with cursor.copy(f'COPY "{table}" TO STDOUT') as copy:
                        for chunk in copy:
                            data += chunk
                    rows[table] = bytes(data)
            sequences: dict[str, int | None] = dict(
                conn.exec_driver_sql(
                    "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
                ).all()
            )
        return _Saved(rows, sequences)

    def _fill(self, engine: sa.Engine, saved: _Saved) -> None:
        with engine.begin() as conn:
            # Fail loudly rather than hang behind a connection a test left open.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            # Rows go back table by table in name order, which is fine while no table has a
            # foreign key; one would make a COPY fail, not pass unnoticed.
            tables = _tables(conn)
            if tables:
                names = ", ".join(f'"{t}"' for t in tables)
                conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cursor:
                for table, data in saved.rows.items():
                    if data:
                        with cursor.copy(f'COPY "{table}" FROM STDIN') as copy:
                            copy.write(data)
            for sequence, value in saved.sequences.items():
                if value is None:
                    conn.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')
                else:
                    conn.exec_driver_sql(
                        "SELECT setval(%s::regclass, %s)", (f'"{sequence}"', value)
                    )


def _tables(conn: sa.Connection) -> list[str]:
    # alembic_version is part of the schema, not of a state: its row stays.
    query = (
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename <> 'alembic_version' ORDER BY tablename"
    )
    return list(conn.exec_driver_sql(query).scalars())


# Tables, columns, indexes, constraints, triggers, views and the schema version of `public`:
# whatever a test can change and the next test would notice.
_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, ';' ORDER BY item), '')) FROM (
    SELECT 'table ' || tablename AS item FROM pg_tables WHERE schemaname = 'public'
    UNION ALL
    SELECT concat_ws(' ', 'column', table_name, column_name, ordinal_position, data_type,
                     is_nullable, column_default)
    FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL
    SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT concat_ws(' ', 'constraint', conrelid::regclass, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT concat_ws(' ', 'trigger', t.tgrelid::regclass, t.tgname)
    FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'view ' || viewname FROM pg_views WHERE schemaname = 'public'
) AS schema_items
"""


def _fingerprint(conn: sa.Connection) -> str:
    schema = str(conn.exec_driver_sql(_FINGERPRINT).scalar_one())
    versions: list[str] = []
    if conn.exec_driver_sql("SELECT to_regclass('public.alembic_version')").scalar() is not None:
        versions = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    return f"{schema} {sorted(versions)}"


def _drop_tables(engine: sa.Engine) -> None:
    # Reflected, not the models: also what a test created on its own, and alembic_version.
    with engine.begin() as conn:
        existing = sa.MetaData()
        existing.reflect(conn)
        existing.drop_all(conn)


def restore(
    request: pytest.FixtureRequest, backend: str, name: str = EMPTY, build: Build | None = None
) -> str:
    """The URL of a database in state `name` (made with `build` the first time) for this test."""
    if backend == "sqlite":
        states: SqliteStates = request.getfixturevalue("sqlite_states")
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return states.restore(tmp_path / "responder.db", name, build)
    pg_states: PostgresStates = request.getfixturevalue("postgres_states")
    return pg_states.restore(name, build)
