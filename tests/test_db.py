"""Engine-level guarantees: one worker per SQLite file, reads that never take the write lock."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from responder.store import db


def test_sqlite_takes_one_worker(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/w.db")
    first = db.take_worker_slot(engine)
    assert first is not None
    with pytest.raises(db.WorkerSlotTaken, match="SQLite takes one worker"):
        db.take_worker_slot(engine)
    os.close(first)  # the first worker stops: the slot is free again
    again = db.take_worker_slot(engine)
    assert again is not None
    os.close(again)
    engine.dispose()


def test_postgres_needs_no_worker_slot(db_url: str) -> None:
    engine = db.create_engine(db_url)
    slot = db.take_worker_slot(engine)
    try:
        assert (slot is None) == (engine.dialect.name == "postgresql")
    finally:
        if slot is not None:
            os.close(slot)
        engine.dispose()


def test_readers_do_not_block_on_a_writer(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/r.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
    with db.transaction(engine) as writer:
        writer.execute(sa.text("INSERT INTO t VALUES (1)"))
        # a write transaction is open and holds the lock; a reader still answers at once
        with db.reader(engine).connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 0
    with db.reader(engine).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_a_full_disk_is_told_apart_from_other_database_errors() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # SQLITE_FULL
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5
    wrapped = sa.exc.OperationalError("INSERT ...", {}, full)
    assert db.disk_full(full) and db.disk_full(wrapped)
    assert db.classify(wrapped)  # still "retry later" for whoever retries
    assert not db.disk_full(busy)
    assert db.disk_full(psycopg.errors.DiskFull("could not extend file"))
    assert not db.disk_full(psycopg.OperationalError("connection refused"))
