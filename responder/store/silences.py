"""The silence table: creating, listing and expiring silences, and the ones a batch of
events must respect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from responder.records import SilenceMatchers, SilenceRecord
from responder.store.tables import Silence

_SILENCES: sa.Table = Silence.__table__  # type: ignore[attr-defined]


def create(
    conn: sa.Connection,
    *,
    matchers: SilenceMatchers,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    author: str,
    now: datetime,
) -> SilenceRecord:
    values = {
        "matchers": matchers.as_json(),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "reason": reason,
        "author": author[:200],
        "created_at": now,
    }
    new_id = conn.execute(sa.insert(_SILENCES).values(values).returning(_SILENCES.c.id))
    silence_id = int(new_id.scalar_one())
    return SilenceRecord(
        id=silence_id,
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        author=author[:200],
        created_at=now,
    )


def by_id(conn: sa.Connection, *, silence_id: int) -> SilenceRecord | None:
    row = conn.execute(sa.select(_SILENCES).where(_SILENCES.c.id == silence_id)).mappings()
    found = row.one_or_none()
    return _record(found) if found is not None else None


def not_over(conn: sa.Connection, *, since: datetime) -> list[SilenceRecord]:
    """Silences still covering alerts at `since` or later (active or to come), oldest first."""
    query = (
        sa.select(_SILENCES)
        .where(
            _SILENCES.c.ends_at > since,
            sa.or_(_SILENCES.c.expired_at.is_(None), _SILENCES.c.expired_at > since),
        )
        .order_by(_SILENCES.c.id)
    )
    return [_record(row) for row in conn.execute(query).mappings()]


def listed(conn: sa.Connection, *, limit: int) -> list[SilenceRecord]:
    """Every silence, newest first."""
    query = sa.select(_SILENCES).order_by(_SILENCES.c.id.desc()).limit(limit)
    return [_record(row) for row in conn.execute(query).mappings()]


def expire(conn: sa.Connection, *, silence_id: int, by: str, now: datetime) -> SilenceRecord | None:
    """End a silence now; one already over keeps its end. None: no such silence."""
    found = by_id(conn, silence_id=silence_id)
    if found is None or found.ended_at <= now:
        return found
    conn.execute(
        sa.update(_SILENCES)
        .where(_SILENCES.c.id == silence_id, _SILENCES.c.expired_at.is_(None))
        .values(expired_at=now, expired_by=by[:200])
    )
    return by_id(conn, silence_id=silence_id)


def _record(row: Any) -> SilenceRecord:
    return SilenceRecord(
        id=row["id"],
        matchers=SilenceMatchers.from_json(row["matchers"] or {}),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        reason=row["reason"],
        author=row["author"],
        created_at=row["created_at"],
        expired_at=row["expired_at"],
        expired_by=row["expired_by"],
    )
