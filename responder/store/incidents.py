"""The incident table: loading what a batch of events touches, writing the pipeline's
changes, and merging the references vendors leave behind."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from responder.domain import IncidentStatus
from responder.records import IncidentRecord
from responder.store.db import Bulk, bulk_insert, bulk_update
from responder.store.tables import Incident, IncidentRef, Silence

_INCIDENTS: sa.Table = Incident.__table__  # type: ignore[attr-defined]
# Pipeline-owned columns; `refs` belongs to the runner and is never written with these.
_PIPELINE_COLUMNS = (
    "status",
    "last_transition",
    "priority",
    "event_count",
    "updated_at",
    "resolved_at",
    "seen_at",
    "repeats",
    "last_repeat_at",
    "reminded_at",
    "stale_at",
    "resolution",
    "grouping_key",
    "members",
    "firing",
    "summary_at",
    "summarized",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_by",
    "silenced_until",
    "silence_id",
)
_SET_REFS = (
    sa.update(_INCIDENTS)
    .where(_INCIDENTS.c.id == sa.bindparam("b_id"))
    .values(refs=sa.bindparam("refs"))
)


def for_alerts(
    conn: sa.Connection, *, keys: Iterable[str], open_groups: Iterable[str]
) -> list[IncidentRecord]:
    """Incidents with these cycle keys, and the open ones of these groups, oldest first."""
    rows: list[IncidentRecord] = []
    for chunk in _chunks(sorted(set(keys))):
        rows += _select(conn, _INCIDENTS.c.key.in_(chunk))
    for chunk in _chunks(sorted(set(open_groups))):
        rows += _select(
            conn,
            sa.and_(
                _INCIDENTS.c.group_key.in_(chunk),
                _INCIDENTS.c.status != IncidentStatus.RESOLVED.value,
            ),
        )
    return sorted(rows, key=lambda incident: incident.id)


def open_grouped(conn: sa.Connection, *, keys: Iterable[str]) -> list[IncidentRecord]:
    """The open grouped incidents new members with these grouping keys would join."""
    rows: list[IncidentRecord] = []
    for chunk in _chunks(sorted(set(keys))):
        rows += _select(
            conn,
            sa.and_(
                _INCIDENTS.c.grouping_key.in_(chunk),
                _INCIDENTS.c.status != IncidentStatus.RESOLVED.value,
            ),
        )
    return rows


def summary_due(conn: sa.Connection, *, now: datetime, limit: int) -> list[IncidentRecord]:
    """Open grouped incidents whose next thread summary of new members is due."""
    return _timer_due(conn, _INCIDENTS.c.summary_at, now, limit)


def stale_due(conn: sa.Connection, *, now: datetime, limit: int) -> list[IncidentRecord]:
    """Open incidents whose stale timer has run out, oldest timer first."""
    return _timer_due(conn, _INCIDENTS.c.stale_at, now, limit)


def unsilence_due(
    conn: sa.Connection, *, now: datetime, limit: int
) -> list[tuple[IncidentRecord, datetime]]:
    """Open incidents held back by a silence or window that is over by `now` (its end
    passed, or the silence was expired early), each with the moment it ended."""
    silence = Silence.__table__  # type: ignore[attr-defined]
    expired = (
        sa.select(silence.c.expired_at)
        .where(silence.c.id == _INCIDENTS.c.silence_id)
        .scalar_subquery()
    )
    ended = sa.case(
        (sa.and_(expired.is_not(None), expired < _INCIDENTS.c.silenced_until), expired),
        else_=_INCIDENTS.c.silenced_until,
    )
    query = (
        sa.select(_INCIDENTS, ended.label("ended"))
        .where(
            _INCIDENTS.c.silenced_until.is_not(None),
            _INCIDENTS.c.status != IncidentStatus.RESOLVED.value,
            ended <= now,
        )
        .order_by(_INCIDENTS.c.id)
        .limit(limit)
    )
    rows = conn.execute(query).mappings()
    return [(IncidentRecord.from_row(row), row["ended"]) for row in rows]


def _timer_due(
    conn: sa.Connection, timer: sa.Column[Any], now: datetime, limit: int
) -> list[IncidentRecord]:
    """Open incidents whose `timer` column has run out by `now`, oldest first."""
    query = (
        sa.select(_INCIDENTS)
        .where(timer <= now, _INCIDENTS.c.status != IncidentStatus.RESOLVED.value)
        .order_by(timer)
        .limit(limit)
    )
    return [IncidentRecord.from_row(row) for row in conn.execute(query).mappings()]


def by_ids(conn: sa.Connection, *, ids: Iterable[int]) -> dict[int, IncidentRecord]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row.id: row for row in _select(conn, _INCIDENTS.c.id.in_(wanted))}


def refs_of(conn: sa.Connection, *, ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
    query = sa.select(_INCIDENTS.c.id, _INCIDENTS.c.refs).where(_INCIDENTS.c.id.in_(ids))
    return {incident_id: refs or {} for incident_id, refs in conn.execute(query)}


def insert(engine: sa.Engine, incidents: Sequence[IncidentRecord]) -> Bulk:
    return bulk_insert(engine, _INCIDENTS, [incident.row() for incident in incidents])


def update(engine: sa.Engine, incidents: Sequence[IncidentRecord]) -> Bulk:
    """The pipeline's changes to existing incidents (never their refs)."""
    rows = [{"id": i.id, **{c: getattr(i, c) for c in _PIPELINE_COLUMNS}} for i in incidents]
    return bulk_update(engine, _INCIDENTS, _PIPELINE_COLUMNS, {"id": "id"}, rows)


def merge_refs(
    conn: sa.Connection, *, added: Mapping[int, Mapping[str, Any]]
) -> dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Merge new vendor references into incidents; returns (before, after) per incident.

    What is known stays (the first root post remains the thread); new fields of the same
    vendor's reference join it (a PagerDuty incident's URL arriving after its dedup key).
    """
    if not added:
        return {}
    query = sa.select(_INCIDENTS.c.id, _INCIDENTS.c.refs).where(_INCIDENTS.c.id.in_(sorted(added)))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # two workers finishing at once must not lose a ref
    changes: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
    for incident_id, current in conn.execute(query):
        before = dict(current or {})
        known = dict(before)
        for name, value in added[incident_id].items():
            earlier = known.get(name)
            if isinstance(earlier, dict) and isinstance(value, dict):
                known[name] = {**value, **earlier}
            else:
                known.setdefault(name, value)
        changes[incident_id] = (before, known)
    conn.execute(_SET_REFS, [{"b_id": i, "refs": after} for i, (_, after) in changes.items()])
    return changes


def _select(conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[IncidentRecord]:
    rows = conn.execute(sa.select(_INCIDENTS).where(where)).mappings()
    return [IncidentRecord.from_row(row) for row in rows]


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_REFS: sa.Table = IncidentRef.__table__  # type: ignore[attr-defined]


def by_ref(conn: sa.Connection, *, kind: str, value: str) -> int | None:
    """Our incident that a vendor names `value` (PagerDuty's dedup key, ...), if any."""
    query = sa.select(_REFS.c.incident_id).where(_REFS.c.kind == kind, _REFS.c.value == value)
    found = conn.execute(query).scalar_one_or_none()
    return int(found) if found is not None else None


def add_refs(
    conn: sa.Connection, *, incident_id: int, names: Mapping[str, str], now: datetime
) -> None:
    """Remember how vendors name the incident; a name already taken keeps its incident."""
    rows = [
        {"kind": kind[:32], "value": value[:255], "incident_id": incident_id, "created_at": now}
        for kind, value in sorted(names.items())
        if value
    ]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        insert: Any = postgresql.insert(_REFS)
    else:
        insert = sqlite.insert(_REFS)
    conn.execute(insert.on_conflict_do_nothing(index_elements=["kind", "value"]), rows)
