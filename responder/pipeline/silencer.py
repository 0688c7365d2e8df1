"""Silences as people ask for them (API, CLI, the Slack button): checked, stored, listed and
expired, each change audited. What a silence does to alerts is the silence stage's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, StrictStr, field_validator, model_validator

from responder.domain import parse_duration
from responder.pipeline.answers import UnknownIncident
from responder.playbooks.maintenance import MatchersSpec
from responder.records import SilenceMatchers, SilenceRecord
from responder.redact import Redactor
from responder.store import audit, incidents, silences
from responder.store.audit import AuditRecord
from responder.store.db import reader, transaction

TEXT_MAX = 2000
_LONGEST = timedelta(days=3650)  # as parse_duration: later than that is surely a mistake


class UnknownSilence(LookupError):
    """No silence has this id."""


class SilenceRequest(BaseModel):
    """A new silence as the API takes it (JSON); the CLI builds the same."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matchers: MatchersSpec
    starts_at: datetime | None = None  # None: now
    ends_at: datetime | None = None
    duration: StrictStr | None = None  # "2h": from starts_at; instead of ends_at
    reason: StrictStr
    author: StrictStr

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-23T08:00:00Z")
        return value.astimezone(UTC) if value is not None else None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value, "duration")
        return value

    @field_validator("reason", "author")
    @classmethod
    def _text(cls, value: str) -> str:
        if "\x00" in value or len(value) > TEXT_MAX:
            raise ValueError(f"at most {TEXT_MAX} characters, no NUL")
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _one_end(self) -> Self:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give either ends_at or duration")
        self.matchers.matchers()  # at least one matcher
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        starts = self.starts_at or now
        if self.duration is not None:
            ends = starts + parse_duration(self.duration, "duration")
        else:
            assert self.ends_at is not None
            ends = self.ends_at
        if ends <= now:
            raise ValueError("the silence would be over already: ends_at is in the past")
        if ends <= starts:
            raise ValueError("ends_at must be after starts_at")
        if ends - now > _LONGEST:
            raise ValueError("a silence lasts at most 3650d (ten years)")
        return starts, ends


class SilenceDesk:
    """Creates, lists and expires silences; also the Slack button's `Silencer`."""

    def __init__(self, engine: sa.Engine, redactor: Redactor) -> None:
        self._engine = engine
        self._redactor = redactor

    def add(self, request: SilenceRequest, *, now: datetime | None = None) -> SilenceRecord:
        """Store a new silence; raises ValueError for an end before its start or now."""
        now = now or datetime.now(UTC)
        starts, ends = request.window(now)
        return self._create(
            request.matchers.matchers(), starts, ends, request.reason, request.author, now
        )

    def listing(
        self, *, everything: bool = False, now: datetime | None = None, limit: int = 500
    ) -> list[SilenceRecord]:
        """Silences not over yet (running or to come), or `everything`, newest first."""
        now = now or datetime.now(UTC)
        with reader(self._engine).connect() as conn:
            if everything:
                return silences.listed(conn, limit=limit)
            found = silences.not_over(conn, since=now)
        return sorted(found, key=lambda s: s.id, reverse=True)[:limit]

    def expire(self, silence_id: int, *, by: str, now: datetime | None = None) -> SilenceRecord:
        """End a silence now (incidents it held run their playbooks if they still fire);
        one already over is left as it is. Raises UnknownSilence."""
        now = now or datetime.now(UTC)
        with transaction(self._engine) as conn:
            before = silences.by_id(conn, silence_id=silence_id)
            if before is None:
                raise UnknownSilence(f"no silence {silence_id}")
            after = silences.expire(conn, silence_id=silence_id, by=by, now=now)
            assert after is not None
            if after.expired_at is not None and before.expired_at is None:
                data = {"silence_id": silence_id, "by": by, "planned_end": after.ends_at}
                audit.append(conn, [AuditRecord("silence.expired", data)], self._redactor)
        return after

    def silence_incident(
        self, incident_id: int, *, author: str, duration: timedelta, reason: str
    ) -> int:
        """Silence the incident's monitor + scope for `duration` (the Slack "Silence 1h"
        button); the new silence's id. Raises UnknownIncident."""
        with reader(self._engine).connect() as conn:
            found = incidents.by_ids(conn, ids=[incident_id]).get(incident_id)
        if found is None:
            raise UnknownIncident(f"no incident {incident_id}")
        if found.monitor_id:
            matchers = SilenceMatchers(monitor_ids=(found.monitor_id,), scopes=(found.scope,))
        else:  # Datadog's default template names no monitor id: its name, as a literal glob
            literal = "".join(f"[{c}]" if c in "*?[" else c for c in found.monitor_name)
            matchers = SilenceMatchers(monitors=(literal,), scopes=(found.scope,))
        now = datetime.now(UTC)
        silence = self._create(
            matchers, now, now + duration, reason, author, now, incident_id=incident_id
        )
        return silence.id

    def _create(
        self,
        matchers: SilenceMatchers,
        starts: datetime,
        ends: datetime,
        reason: str,
        author: str,
        now: datetime,
        incident_id: int | None = None,
    ) -> SilenceRecord:
        with transaction(self._engine) as conn:
            silence = silences.create(
                conn,
                matchers=matchers,
                starts_at=starts,
                ends_at=ends,
                reason=reason,
                author=author,
                now=now,
            )
            record = AuditRecord("silence.created", read(silence, now), incident_id=incident_id)
            audit.append(conn, [record], self._redactor)
        return silence


def read(silence: SilenceRecord, now: datetime) -> dict[str, Any]:
    """A silence as the API and the CLI show it (`SilenceRead`)."""
    if silence.expired_at is not None and silence.expired_at <= silence.ends_at:
        state = "expired"
    elif silence.ended_at <= now:
        state = "ended"
    elif silence.starts_at > now:
        state = "pending"
    else:
        state = "active"
    return {
        "id": silence.id,
        "state": state,
        "matchers": silence.matchers.as_json(),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "reason": silence.reason,
        "author": silence.author,
        "created_at": silence.created_at,
        "expired_at": silence.expired_at,
        "expired_by": silence.expired_by,
    }


def reads(found: Sequence[SilenceRecord], now: datetime) -> list[dict[str, Any]]:
    return [read(silence, now) for silence in found]
