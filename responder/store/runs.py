"""The action_run table: the durable outbox. Planning inserts runs; the runner claims, leases
and finishes them. Every statement about runs lives here."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from responder.domain import RunState
from responder.records import RunRecord
from responder.store.db import Bulk, bulk_insert, bulk_update
from responder.store.tables import ActionRun

_RUNS: sa.Table = ActionRun.__table__  # type: ignore[attr-defined]
_PENDING, _RUNNING = RunState.PENDING.value, RunState.RUNNING.value

# What recording an outcome sets, and its guard: only the lease holder records an outcome
# (a run whose lease expired belongs to another worker by now).
FINISH_VALUES = (
    "state",
    "result",
    "last_error",
    "not_before",
    "finished_at",
    "lease_until",
    "lease_owner",
    "uncertain",
)
_FINISH_WHERE = {"id": "id", "state": "was_state", "lease_owner": "was_owner"}

# Built once: the claim runs every round, and a statement built afresh each time costs more
# to construct and key for SQLAlchemy's cache than the query costs SQLite to answer.
_NOW = sa.bindparam("now", type_=_RUNS.c.not_before.type)
_EXPIRED = (
    sa.select(_RUNS.c.id).where(_RUNS.c.state == _RUNNING, _RUNS.c.lease_until < _NOW).limit(1)
)
_DEFER = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("b_id"), _RUNS.c.state == _PENDING)
    .values(not_before=sa.bindparam("not_before"))
)


def insert(engine: sa.Engine, runs: Sequence[RunRecord]) -> Bulk:
    """New runs (ids already taken), as one prepared statement for the write to come."""
    return bulk_insert(engine, _RUNS, [run.row() for run in runs])


def finish(engine: sa.Engine, rows: Sequence[dict[str, object]]) -> Bulk:
    """Outcome updates: FINISH_VALUES plus `id`, `was_state` and `was_owner` for the guard."""
    return bulk_update(engine, _RUNS, FINISH_VALUES, _FINISH_WHERE, rows)


def refresh_params(engine: sa.Engine, rows: Sequence[dict[str, object]]) -> Bulk:
    """New params for runs still waiting ({"id", "params"}): a run already claimed keeps
    what it was claimed with (the storm summary's coalesced update)."""
    guarded = [{**row, "was_state": _PENDING} for row in rows]
    return bulk_update(engine, _RUNS, ("params",), {"id": "id", "state": "was_state"}, guarded)


def by_ids(conn: sa.Connection, *, ids: Iterable[int]) -> dict[int, RunRecord]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(_RUNS).where(_RUNS.c.id.in_(wanted))).mappings()
    return {row["id"]: RunRecord.from_row(row) for row in rows}


def of_event(conn: sa.Connection, *, event_id: int) -> list[RunRecord]:
    """The runs one event planned (playbook steps and follow-ups), in planning order."""
    query = sa.select(_RUNS).where(_RUNS.c.event_id == event_id).order_by(_RUNS.c.id)
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def primary_runs(conn: sa.Connection, *, incident_ids: Sequence[int]) -> dict[int, list[RunRecord]]:
    """Each incident's playbook steps so far (not their follow-ups), oldest first."""
    out: dict[int, list[RunRecord]] = {incident_id: [] for incident_id in incident_ids}
    if not incident_ids:
        return out
    query = (
        sa.select(_RUNS)
        .where(_RUNS.c.incident_id.in_(sorted(incident_ids)), _RUNS.c.parent_id.is_(None))
        .order_by(_RUNS.c.id)
    )
    for row in conn.execute(query).mappings():
        out[row["incident_id"]].append(RunRecord.from_row(row))
    return out


def queued_reminders(
    conn: sa.Connection, *, incident_ids: Sequence[int], transitions: Sequence[str]
) -> dict[int, list[RunRecord]]:
    """Follow-ups of these transitions (the repeats) still waiting to go, oldest first."""
    out: dict[int, list[RunRecord]] = {}
    if not incident_ids:
        return out
    query = (
        sa.select(_RUNS)
        .where(
            _RUNS.c.incident_id.in_(sorted(incident_ids)),
            _RUNS.c.parent_id.is_not(None),
            _RUNS.c.state == _PENDING,
            _RUNS.c.transition.in_(list(transitions)),
        )
        .order_by(_RUNS.c.id)
    )
    for row in conn.execute(query).mappings():
        out.setdefault(row["incident_id"], []).append(RunRecord.from_row(row))
    return out


def timelines(conn: sa.Connection, *, incident_ids: Iterable[int]) -> dict[int, list[RunRecord]]:
    """Every run of these incidents, oldest first (for actions that write a timeline)."""
    wanted = sorted(set(incident_ids))
    if not wanted:
        return {}
    query = sa.select(_RUNS).where(_RUNS.c.incident_id.in_(wanted)).order_by(_RUNS.c.id)
    out: dict[int, list[RunRecord]] = {}
    for row in conn.execute(query).mappings():
        out.setdefault(row["incident_id"], []).append(RunRecord.from_row(row))
    return out


def any_lease_expired(conn: sa.Connection, *, now: datetime) -> bool:
    return conn.execute(_EXPIRED, {"now": now}).first() is not None


def expire_leases(conn: sa.Connection, *, now: datetime) -> list[RunRecord]:
    """Runs whose worker stopped mid-call go back to pending, marked uncertain."""
    ids = list(
        conn.execute(
            sa.update(_RUNS)
            .where(_RUNS.c.state == _RUNNING, _RUNS.c.lease_until < now)
            .values(state=_PENDING, uncertain=True, not_before=now, lease_owner=None)
            .returning(_RUNS.c.id)
        ).scalars()
    )
    return list(by_ids(conn, ids=ids).values())


@functools.cache
def _due(dialect: str) -> sa.Select[int]:
    """Pending runs that are due and not queued behind an earlier run of their lane."""
    earlier = _RUNS.alias("earlier")
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.lane == _RUNS.c.lane,
            earlier.c.id < _RUNS.c.id,
            earlier.c.state.in_([_PENDING, _RUNNING]),
            earlier.c.scheduled_at <= _RUNS.c.scheduled_at,
        )
        .exists()
    )
    query = (
        sa.select(_RUNS.c.id)
        .where(_RUNS.c.state == _PENDING, _RUNS.c.not_before <= _NOW, ~blocked)
        .order_by(_RUNS.c.not_before, _RUNS.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_RUNS)
    return query


def due_ids(conn: sa.Connection, *, now: datetime, limit: int) -> list[int]:
    """Due runs first in their lanes; on PostgreSQL locked (SKIP LOCKED) for this claim."""
    return list(conn.execute(_due(conn.dialect.name), {"now": now, "limit": limit}).scalars())


def lease(conn: sa.Connection, *, ids: Sequence[int], until: datetime, owner: str) -> set[int]:
    """Mark the runs still pending as running under `owner`; returns those it got."""
    if not ids:
        return set()
    return set(
        conn.execute(
            sa.update(_RUNS)
            .where(_RUNS.c.id.in_(ids), _RUNS.c.state == _PENDING)
            .values(
                state=_RUNNING,
                lease_until=until,
                lease_owner=owner,
                attempts=_RUNS.c.attempts + 1,
            )
            .returning(_RUNS.c.id)
        ).scalars()
    )


def defer(conn: sa.Connection, *, until: Sequence[tuple[int, datetime]]) -> None:
    """Move pending runs' next attempt (over a vendor's pace: their booked slot)."""
    if until:
        conn.execute(_DEFER, [{"b_id": run_id, "not_before": when} for run_id, when in until])


def cancel_pending(
    conn: sa.Connection, *, ids: Sequence[int], now: datetime, reason: str
) -> set[int]:
    """Cancel the runs still pending; returns those cancelled (one a worker leased since
    it was decided has started, and is left to finish)."""
    if not ids:
        return set()
    done = conn.execute(
        sa.update(_RUNS)
        .where(_RUNS.c.id.in_(ids), _RUNS.c.state == _PENDING)
        .values(state=RunState.CANCELLED.value, finished_at=now, last_error=reason)
        .returning(_RUNS.c.id)
    )
    return set(done.scalars())


def first_succeeded(
    conn: sa.Connection, *, incident_ids: Sequence[int], action: str
) -> dict[int, RunRecord]:
    """Each incident's first run of `action` that succeeded (where its conversation is)."""
    query = (
        sa.select(_RUNS)
        .where(
            _RUNS.c.incident_id.in_(incident_ids),
            _RUNS.c.action == action,
            _RUNS.c.state == RunState.SUCCEEDED.value,
        )
        .order_by(_RUNS.c.id)
    )
    found: dict[int, RunRecord] = {}
    for row in conn.execute(query).mappings():
        found.setdefault(row["incident_id"], RunRecord.from_row(row))
    return found


def failed_outside(
    conn: sa.Connection, *, incident_ids: Sequence[int], vendor: str
) -> list[RunRecord]:
    """The incidents' runs that failed for good, except the given vendor's own."""
    query = sa.select(_RUNS).where(
        _RUNS.c.incident_id.in_(incident_ids),
        _RUNS.c.state == RunState.FAILED.value,
        ~_RUNS.c.action.startswith(f"{vendor}."),
    )
    return [RunRecord.from_row(r) for r in conn.execute(query.order_by(_RUNS.c.id)).mappings()]


def existing_keys(conn: sa.Connection, *, keys: Sequence[str]) -> set[str]:
    query = sa.select(_RUNS.c.idempotency_key).where(_RUNS.c.idempotency_key.in_(keys))
    return set(conn.execute(query).scalars())


def count_by_state(conn: sa.Connection, *, states: Sequence[str]) -> dict[str, int]:
    query = (
        sa.select(_RUNS.c.state, sa.func.count())
        .where(_RUNS.c.state.in_(states))
        .group_by(_RUNS.c.state)
    )
    return {state: count for state, count in conn.execute(query)}
