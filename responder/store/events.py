"""The alert_event table after intake: the events waiting for the pipeline, what processing
them led to, and the normalised alerts the runner reads back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from responder.domain import EventState
from responder.store.db import Bulk, bulk_update
from responder.store.tables import AlertEvent

_EVENTS: sa.Table = AlertEvent.__table__  # type: ignore[attr-defined]
_RESULT_COLUMNS = ("state", "incident_id", "outcome", "processed_at", "attempts")
_SEQUENCER_LOCK = 0x7265737053455131  # arbitrary, fixed: "respSEQ1"
# The columns of a StoredEvent, in its order.
_STORED = sa.select(
    _EVENTS.c.id,
    _EVENTS.c.alert,
    _EVENTS.c.payload,
    _EVENTS.c.received_at,
    _EVENTS.c.deliveries,
    _EVENTS.c.attempts,
)
_WAITING = (
    _STORED.where(_EVENTS.c.state == EventState.RECEIVED.value)
    .order_by(_EVENTS.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the pipeline reads it: the alert normalised at intake, and its counters.

    `alert` is None only for rows stored before the alert was kept beside the payload."""

    id: int
    alert: str | None
    payload: str
    received_at: datetime
    deliveries: int
    attempts: int


@dataclass(frozen=True, slots=True)
class EventResult:
    """What processing one event led to (or why it failed), written back to its row."""

    id: int
    state: str
    incident_id: int | None
    outcome: dict[str, Any]
    processed_at: datetime | None
    attempts: int


def elect_sequencer(conn: sa.Connection) -> bool:
    """Whether this transaction is the one that processes events now (PostgreSQL: an
    advisory lock held until it ends; SQLite: BEGIN IMMEDIATE made it the only writer)."""
    if conn.dialect.name != "postgresql":
        return True
    got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_SEQUENCER_LOCK)))
    return bool(got.scalar_one())


def waiting(conn: sa.Connection, *, limit: int) -> list[StoredEvent]:
    """The oldest events not processed yet, in arrival order."""
    return [StoredEvent(*row) for row in conn.execute(_WAITING, {"limit": limit})]


def record_results(engine: sa.Engine, results: Sequence[EventResult]) -> Bulk:
    rows = [
        {
            "id": r.id,
            "state": r.state,
            "incident_id": r.incident_id,
            "outcome": r.outcome,
            "processed_at": r.processed_at,
            "attempts": r.attempts,
        }
        for r in results
    ]
    return bulk_update(engine, _EVENTS, _RESULT_COLUMNS, {"id": "id"}, rows)


def alerts_of(conn: sa.Connection, *, ids: Iterable[int]) -> dict[int, StoredEvent]:
    """The stored alerts (and payloads) of these events, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(_STORED.where(_EVENTS.c.id.in_(wanted)))
    return {row[0]: StoredEvent(*row) for row in rows}


def count_waiting(conn: sa.Connection) -> int:
    query = sa.select(sa.func.count()).where(_EVENTS.c.state == EventState.RECEIVED.value)
    return int(conn.execute(query.select_from(_EVENTS)).scalar_one())


def store_own(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Store events the service makes itself (timers); a fingerprint already stored is
    skipped, so two workers sweeping the same timer store it once. Returns how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        insert: Any = postgresql.insert(_EVENTS)
    else:
        insert = sqlite.insert(_EVENTS)
    result = conn.execute(
        insert.on_conflict_do_nothing(index_elements=["fingerprint"]).returning(_EVENTS.c.id),
        list(rows),
    )
    return len(result.fetchall())
