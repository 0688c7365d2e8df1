"""The intake acknowledges only what is on disk: commit, then fsync of the WAL, then answer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from responder.store import db
from responder.store.intake import IntakeWriter
from responder.store.migrate import upgrade
from tests.harness import intake_row


def row(i: int) -> dict[str, Any]:
    return intake_row(f"dd:durable-{i}", str(i))


def test_sqlite_ack_waits_for_the_wal_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/d.db")
    upgrade(engine)
    order: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        order.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    writer = IntakeWriter(engine)
    writer.start()

    async def one() -> None:
        stored = await writer.submit(row(1))
        order.append(f"acked {stored.event_id}")

    asyncio.run(one())
    writer.stop()
    engine.dispose()
    assert order == [f"{tmp_path}/d.db-wal", "acked 1"]


def test_make_durable_without_a_wal_file_is_a_no_op(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path}/none.db")
    db.make_durable(engine)  # no file at all yet: nothing to sync, and no error
    assert not (tmp_path / "none.db-wal").exists()
    engine.dispose()
