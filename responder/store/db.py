"""The database engine (SQLite embedded, or PostgreSQL) and which errors mean "retry later"."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

_SQLITE_FULL = 13  # the disk is full

# SQLite primary result codes (the low byte of the extended code) that describe the
# environment (a lock, the disk, the file) rather than the statement.
_SQLITE_TRANSIENT = frozenset(
    {
        5,  # SQLITE_BUSY: another writer held the lock past busy_timeout
        6,  # SQLITE_LOCKED
        10,  # SQLITE_IOERR
        _SQLITE_FULL,
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL: WAL lock protocol race
    }
)


def create_engine(url: str) -> sa.Engine:
    """Build the engine for `url`: embedded SQLite (WAL) or a shared PostgreSQL server.

    SQLite commits here are atomic and survive a crashed process, but are not yet on disk:
    whoever promises durability (the intake, before its 202) calls `make_durable` after
    committing. The fsync then happens outside the write lock, so other writers carry on
    while the disk works, and one fsync covers every commit before it.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return sa.create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_json
    )


def _json(value: Any) -> str:
    # orjson: JSON columns are written on every hot path; datetimes become ISO 8601 text.
    return orjson.dumps(value, default=str).decode()


def make_durable(engine: sa.Engine) -> None:
    """Put every commit made so far on disk (PostgreSQL: already done by its commit)."""
    if engine.dialect.name != "sqlite":
        return
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(f"{database}-wal", os.O_RDONLY)
    except FileNotFoundError:
        # No WAL file: a checkpoint moved every frame into the database file and synced it.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def transaction(engine: sa.Engine, *, urgent: bool = False) -> Iterator[sa.Connection]:
    """A write transaction. On SQLite, writers of this process queue on a lock of ours first.

    SQLite's own wait for a busy database sleeps in steps of up to 100 ms; our lock wakes the
    next writer the moment the last one commits. `urgent` writers (the intake, whose callers
    are waiting for their acknowledgement) go before everyone else in the queue.
    """
    lock = _WRITE_LOCKS.get(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if lock is None:
        with engine.begin() as conn:
            yield conn
        return
    with lock.hold(urgent=urgent), engine.begin() as conn:
        yield conn


class WorkerSlotTaken(Exception):
    """Another process already runs the worker on this SQLite database."""


def take_worker_slot(engine: sa.Engine) -> int | None:
    """On SQLite, make this process the database's only worker (the pipeline's sequencer).

    Returns a file descriptor to keep open for the process's life (its lock goes with it,
    also on kill -9); None on PostgreSQL, where workers coordinate through the database.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    fd = os.open(f"{database}.worker-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkerSlotTaken(
            f"another responder worker already runs on {database}: SQLite takes one worker "
            "(`responder serve` includes it); use PostgreSQL to run several"
        ) from None
    return fd


class Bulk(NamedTuple):
    """A statement and its rows already in the driver's terms, made before taking the lock."""

    sql: str
    rows: list[tuple[Any, ...]]


def bulk_insert(engine: sa.Engine, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> Bulk:
    columns = list(rows[0]) if rows else []
    marks = ",".join([_mark(engine)] * len(columns))
    sql = f"INSERT INTO {table.name} ({','.join(columns)}) VALUES ({marks})"
    return Bulk(sql, _driver_rows(engine, table, [(c, c) for c in columns], rows))


def bulk_update(
    engine: sa.Engine,
    table: sa.Table,
    values: Sequence[str],
    where: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> Bulk:
    """One UPDATE per row: set the `values` columns where each `where` column equals the
    row's value under the key given (a guard such as "still running" uses its own key)."""
    mark = _mark(engine)
    assignments = ",".join(f"{name}={mark}" for name in values)
    conditions = " AND ".join(f"{name}={mark}" for name in where)
    sql = f"UPDATE {table.name} SET {assignments} WHERE {conditions}"
    pairs = [(c, c) for c in values] + list(where.items())
    return Bulk(sql, _driver_rows(engine, table, pairs, rows))


def run_bulk(conn: sa.Connection, bulk: Bulk) -> None:
    if bulk.rows:
        conn.exec_driver_sql(bulk.sql, bulk.rows)


def _mark(engine: sa.Engine) -> str:
    return "?" if engine.dialect.name == "sqlite" else "%s"


def _driver_rows(
    engine: sa.Engine,
    table: sa.Table,
    pairs: Sequence[tuple[str, str]],  # (column, key in the row)
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    # SQLAlchemy's own bind processors (JSON, UTC datetimes, booleans), applied up front.
    dialect = engine.dialect
    steps = [
        (key, table.c[column].type.dialect_impl(dialect).bind_processor(dialect))
        for column, key in pairs
    ]
    return [
        tuple(
            row[key] if process is None or row[key] is None else process(row[key])
            for key, process in steps
        )
        for row in rows
    ]


def driver_value(conn: sa.Connection, value: Any) -> Any:
    """A value as the driver takes it when SQLAlchemy's types are bypassed on a hot path:
    datetimes as SQLAlchemy's SQLite DateTime stores them (naive UTC text)."""
    if isinstance(value, datetime) and conn.dialect.name == "sqlite":
        return sqlite_time(value)
    return value


def sqlite_time(value: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DateTime stores it: naive UTC text."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def placeholder(conn: sa.Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def ping(engine: sa.Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def reader(engine: sa.Engine) -> sa.Engine:
    """The same engine for read-only work: on SQLite it does not take the write lock."""
    return engine.execution_options(read_only=True)


def is_postgres(engine: sa.Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


def hold_locks(conn: sa.Connection, space: str, names: Iterable[str]) -> None:
    """Wait for PostgreSQL advisory locks named `space` + name, held until the transaction
    ends: what several sequencers could otherwise change at once (a grouped incident, the
    storm book). Taken in the order of their keys, and only before the audit lock, so two
    holders never wait on each other. Nothing on SQLite, whose one sequencer is the only
    writer anyway."""
    if not is_postgres(conn):
        return
    keys = sorted({_lock_key(f"{space}\0{name}") for name in names})
    for key in keys:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def _lock_key(name: str) -> int:
    # A signed 64-bit key, as pg_advisory_xact_lock(bigint) takes.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)


def classify(exc_value: BaseException) -> bool:
    """True when `exc_value` means "database unreachable or locked, retry later", not a bug."""
    if isinstance(exc_value, exc.DisconnectionError | exc.TimeoutError):
        return True
    if isinstance(exc_value, exc.DBAPIError):
        if exc_value.connection_invalidated:
            return True
        if not isinstance(exc_value, exc.OperationalError | exc.InterfaceError):
            return False
        return _dbapi_transient(exc_value.orig)
    return _dbapi_transient(exc_value)


DISK_FULL = "the database's disk is full: free space on it"  # for the logs


def disk_full(exc_value: BaseException) -> bool:
    """True when `exc_value` says the database's disk is full: SQLite's SQLITE_FULL, or
    PostgreSQL's disk_full (SQLSTATE 53100). Worth telling apart from "unreachable": only
    an operator freeing space ends it."""
    err = exc_value.orig if isinstance(exc_value, exc.DBAPIError) else exc_value
    if isinstance(err, sqlite3.OperationalError):
        return (getattr(err, "sqlite_errorcode", 0) & 0xFF) == _SQLITE_FULL
    return isinstance(err, psycopg.errors.DiskFull)


def _dbapi_transient(err: BaseException | None) -> bool:
    if isinstance(err, sqlite3.InterfaceError):
        return True
    if isinstance(err, sqlite3.OperationalError):
        # sqlite3 also raises OperationalError for "no such table" and syntax errors, which
        # are bugs; the result code tells the two apart.
        return (getattr(err, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_TRANSIENT
    # psycopg's OperationalError covers lost connections, shutdowns, deadlocks, serialization
    # failures and statement timeouts: all worth another try. Bugs are ProgrammingError etc.
    return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)


class WriteLock:
    """A mutex whose urgent waiters are served before the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    @contextmanager
    def hold(self, *, urgent: bool) -> Iterator[None]:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
                while self._held:
                    self._cond.wait()
                self._urgent_waiting -= 1
            else:
                while self._held or self._urgent_waiting:
                    self._cond.wait()
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


# One lock per SQLite URL, shared by every engine of this process built from it (the
# intake's and the worker's); filled as engines are built.
_WRITE_LOCKS: dict[str, WriteLock] = {}
_REGISTRY_GUARD = threading.Lock()


def _register_lock(engine: sa.Engine) -> None:
    with _REGISTRY_GUARD:
        _WRITE_LOCKS.setdefault(str(engine.url), WriteLock())


def _sqlite_engine(url: str) -> sa.Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).parent
        if not folder.is_dir():
            # sqlite3 would only say "unable to open database file".
            raise FileNotFoundError(f"folder for the SQLite database does not exist: {folder}")
    engine = sa.create_engine(url, connect_args={"check_same_thread": False}, json_serializer=_json)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    _register_lock(engine)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from sqlite3 (the documented SQLAlchemy recipe) so that
    # _sqlite_on_begin decides how every transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit reaches the WAL file but no fsync runs under the lock; the WAL is
        # synced before each checkpoint, and `make_durable` syncs it before an ack.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    if conn.get_execution_options().get("read_only"):
        conn.exec_driver_sql("BEGIN")  # WAL readers never block the writer, nor wait for it
        return
    # IMMEDIATE takes the write lock up front: a concurrent writer waits (busy_timeout)
    # instead of failing with "database is locked" when a read lock cannot be upgraded.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
