"""The alert_event table after intake: the events waiting for the pipeline, what processing
them led to, and the normalised alerts the runner reads back."""

from __future__ import annotations

import zlib
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
# Events are dealt into a fixed number of partitions by monitor + scope; on PostgreSQL a
# sequencer takes a partition with a transaction-level advisory lock (`claim`), so several
# workers process events at once while each incident's events keep their order. Changing
# the number re-deals the partitions: every waiting event would have to be re-dealt first.
PARTITIONS = 16
OWN_TEMPLATE = "responder"  # `Alert.template` of the events the service makes itself
_PARTITION_LOCK = 0x7265737050000000  # arbitrary, fixed: "respP" and the partition number
# How many of the oldest waiting events show which partitions have work, oldest first.
_HINT = 64
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
_WAITING_IN = (
    _STORED.where(
        _EVENTS.c.state == EventState.RECEIVED.value,
        _EVENTS.c.part == sa.bindparam("part", type_=sa.Integer()),
    )
    .order_by(_EVENTS.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer()))
)
_BUSY_PARTS = (
    sa.select(_EVENTS.c.part)
    .where(_EVENTS.c.state == EventState.RECEIVED.value)
    .order_by(_EVENTS.c.id)
    .limit(_HINT)
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the pipeline reads it: the alert normalised at intake, and its counters.

    `alert` is None for a Datadog delivery (its alert is its payload normalised) and for
    rows stored before the alert was kept beside the payload."""

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


def partition_for(key: str) -> int:
    """The partition of the events keyed `key` (see `pipeline.partitions`)."""
    return zlib.crc32(key.encode()) % PARTITIONS


def waiting(conn: sa.Connection, *, limit: int) -> list[StoredEvent]:
    """The oldest events not processed yet, in arrival order (the one sequencer of SQLite)."""
    return [StoredEvent(*row) for row in conn.execute(_WAITING, {"limit": limit})]


def claim(conn: sa.Connection, *, limit: int, start: int) -> list[StoredEvent]:
    """Up to `limit` waiting events from partitions no other sequencer holds (PostgreSQL),
    each partition's in arrival order; the partitions stay this transaction's until it ends.

    The partitions of the oldest waiting events are tried first, then the others from
    `start` on (workers start at different places, so they rarely reach for the same one).
    A partition is read only once locked: what another sequencer processed and committed
    in the meantime is not read again."""
    busy = list(dict.fromkeys(conn.execute(_BUSY_PARTS).scalars()))
    if not busy:
        return []
    rest = [(start + i) % PARTITIONS for i in range(PARTITIONS)]
    taken: list[StoredEvent] = []
    for part in busy + [p for p in rest if p not in busy]:
        if len(taken) >= limit:
            break
        if not _try_lock(conn, part):
            continue
        rows = conn.execute(_WAITING_IN, {"part": part, "limit": limit - len(taken)})
        taken += [StoredEvent(*row) for row in rows]
    return taken


def claim_one(conn: sa.Connection, event_id: int) -> StoredEvent | None:
    """Event `event_id` if it still waits and no other sequencer holds its partition."""
    row = conn.execute(
        sa.select(_EVENTS.c.part).where(
            _EVENTS.c.id == event_id, _EVENTS.c.state == EventState.RECEIVED.value
        )
    ).first()
    if row is None or (conn.dialect.name == "postgresql" and not _try_lock(conn, row[0])):
        return None
    found = conn.execute(
        _STORED.where(_EVENTS.c.id == event_id, _EVENTS.c.state == EventState.RECEIVED.value)
    ).first()
    return StoredEvent(*found) if found is not None else None


def _try_lock(conn: sa.Connection, part: int) -> bool:
    got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_PARTITION_LOCK + part)))
    return bool(got.scalar_one())


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


def last_deliveries(conn: sa.Connection, *, incident_ids: Iterable[int]) -> dict[int, StoredEvent]:
    """The newest delivery from Datadog (not an event of our own) of each incident, by id."""
    wanted = sorted(set(incident_ids))
    if not wanted:
        return {}
    newest = (
        sa.select(sa.func.max(_EVENTS.c.id))
        .where(_EVENTS.c.incident_id.in_(wanted), _EVENTS.c.template != OWN_TEMPLATE)
        .group_by(_EVENTS.c.incident_id)
    )
    rows = conn.execute(_STORED.add_columns(_EVENTS.c.incident_id).where(_EVENTS.c.id.in_(newest)))
    return {row[-1]: StoredEvent(*row[:-1]) for row in rows}


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


def id_of(conn: sa.Connection, *, fingerprint: str) -> int:
    """The id of the event stored under `fingerprint` (which must exist)."""
    query = sa.select(_EVENTS.c.id).where(_EVENTS.c.fingerprint == fingerprint)
    return int(conn.execute(query).scalar_one())


def result_of(conn: sa.Connection, *, event_id: int) -> tuple[str, dict[str, Any] | None]:
    """An event's state and outcome, as the pipeline left them."""
    query = sa.select(_EVENTS.c.state, _EVENTS.c.outcome).where(_EVENTS.c.id == event_id)
    state, outcome = conn.execute(query).one()
    return str(state), outcome
