"""The typed records that travel through the pipeline: an incident, an action run, a monitor
+ scope's group and a channel's storm.

The store turns rows into these and back (`from_row` / `row`); everything between reads them
by name. Frozen: a stage that changes an incident or a run makes a new record
(`dataclasses.replace`), so what an earlier stage saw never changes under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Self

from responder.domain import IncidentStatus


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One problem: a monitor + scope + alert cycle, from first trigger to recovery."""

    id: int
    key: str
    group_key: str  # monitor + scope, without the cycle
    cycle_key: str | None
    monitor_id: str | None
    monitor_name: str
    title: str
    scope: str
    priority: str | None
    service: str | None
    team: str | None
    env: str | None
    status: str  # an IncidentStatus value
    last_transition: str
    tags: tuple[str, ...]
    refs: Mapping[str, Any]  # vendor references, written by the runner only
    event_count: int
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime
    seen_at: datetime | None = None  # Datadog's date of the newest delivery applied
    repeats: int = 0  # reminders Datadog sent (Renotify, Re-Triggered, ...)
    last_repeat_at: datetime | None = None
    reminded_at: datetime | None = None  # Datadog's date of the last repeat told to people
    stale_at: datetime | None = None  # resolved as stale if nothing arrives before
    resolution: str | None = None  # why it was resolved: recovered, stale, ...
    grouping_key: str | None = None  # playbook + group_by values: how members find it
    members: int = 1  # monitor + scope groups it holds
    firing: int = 1  # of them, still firing: it resolves when none does
    summary_at: datetime | None = None  # the next thread summary of new members
    summarized: int = 1  # members told in the thread so far
    acknowledged_by: str | None = None  # who acknowledged it: "alice (slack)"
    resolved_by: str | None = None  # who resolved it, when a person did
    # Its playbooks are held back by a silence (`silence_id`) or a maintenance window (no
    # id) until then: the durable timer that runs them if it still fires at that time.
    silenced_until: datetime | None = None
    silence_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status != IncidentStatus.RESOLVED

    def row(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _INCIDENT_FIELDS}
        data["tags"] = list(self.tags)
        data["refs"] = dict(self.refs)
        return data

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        data = {name: row[name] for name in _INCIDENT_FIELDS}
        data["tags"] = tuple(row["tags"] or ())
        data["refs"] = dict(row["refs"] or {})
        return cls(**data)


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A monitor + scope over time (an `alert_group` row): which state Datadog last put it
    in and when, its recent state changes, and whether it is flapping."""

    key: str
    state: str  # the last state-changing Transition value applied
    changed_at: datetime  # Datadog's date of that change
    changes: tuple[datetime, ...]  # the changes inside the flap window, oldest first
    flapping_since: datetime | None
    quiet_at: datetime | None  # flapping ends if no change comes before
    incident_id: int | None  # the incident that holds the group now (open or last)
    updated_at: datetime
    joined_at: datetime | None = None  # when it joined that incident

    @property
    def flapping(self) -> bool:
        return self.flapping_since is not None

    def row(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _GROUP_FIELDS}
        data["changes"] = [moment.isoformat() for moment in self.changes]
        return data

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        data = {name: row[name] for name in _GROUP_FIELDS}
        data["changes"] = tuple(datetime.fromisoformat(text) for text in row["changes"] or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class StormRecord:
    """One Slack channel (a `storm` row): its new incidents of the last minute, and the
    storm it is in, if any, with what the storm's one summary message tells."""

    channel: str  # the key: lower case, without "#"
    name: str  # as the playbook writes it; where the summary goes
    opens: tuple[datetime, ...]  # new incidents' times within the last minute, oldest first
    started_at: datetime | None  # None: no storm now
    quiet_at: datetime | None  # the storm ends if the channel stays calm until then
    incidents: int  # new incidents of the storm (told in the summary, not in roots)
    open_ids: tuple[int, ...]  # of them, those still open
    affected: Mapping[str, int]  # service (else monitor) -> new incidents in the storm
    paged: tuple[str, ...]  # routing keys paged during the storm
    summary_incident_id: int | None  # the incident whose runs carry the summary
    summary_run_id: int | None  # the summary's post; its updates continue it
    pending_run_id: int | None  # the update still waiting for `next_update_at`
    next_update_at: datetime | None  # the earliest the next update may go
    updates: int  # summary runs planned in this storm (their keys count them)
    updated_at: datetime

    @property
    def storming(self) -> bool:
        return self.started_at is not None

    def row(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _STORM_FIELDS}
        data["opens"] = [moment.isoformat() for moment in self.opens]
        data["open_ids"] = list(self.open_ids)
        data["affected"] = dict(self.affected)
        data["paged"] = list(self.paged)
        return data

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        data = {name: row[name] for name in _STORM_FIELDS}
        data["opens"] = tuple(datetime.fromisoformat(text) for text in row["opens"] or ())
        data["open_ids"] = tuple(int(i) for i in row["open_ids"] or ())
        data["affected"] = {str(k): int(v) for k, v in (row["affected"] or {}).items()}
        data["paged"] = tuple(str(key) for key in row["paged"] or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One planned outside call (an `action_run` row) and what has happened to it so far."""

    id: int
    incident_id: int
    event_id: int
    parent_id: int | None  # the primary run a follow-up continues
    playbook: str
    playbook_hash: str
    step: int
    action: str
    params: Mapping[str, Any]
    condition: str | None  # `if:` of a delayed step
    transition: str
    lane: str  # runs of one lane execute in order of id
    state: str  # a RunState value
    idempotency_key: str
    attempts: int
    uncertain: bool  # an attempt started and never recorded its outcome
    scheduled_at: datetime
    not_before: datetime
    expires_at: datetime
    lease_until: datetime | None
    lease_owner: str | None
    last_error: str | None
    result: Mapping[str, Any] | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def is_primary(self) -> bool:
        return self.parent_id is None

    def row(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _RUN_FIELDS}
        data["params"] = dict(self.params)
        data["result"] = dict(self.result) if self.result is not None else None
        return data

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        data = {name: row[name] for name in _RUN_FIELDS}
        data["params"] = dict(row["params"] or {})
        return cls(**data)


@dataclass(frozen=True, slots=True)
class SilenceMatchers:
    """What a silence or maintenance window covers. Every criterion given must hold; within
    one, any listed value will do. Tags and monitor names are globs (`service: pay*`)."""

    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    monitor_ids: tuple[str, ...] = ()
    monitors: tuple[str, ...] = ()  # monitor name globs, any case
    scopes: tuple[str, ...] = ()  # exact monitor scopes ("host:web-1,env:prod")

    @property
    def empty(self) -> bool:
        return not (self.tags or self.monitor_ids or self.monitors or self.scopes)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.tags:
            data["tags"] = {key: list(values) for key, values in sorted(self.tags.items())}
        if self.monitor_ids:
            data["monitor_id"] = list(self.monitor_ids)
        if self.monitors:
            data["monitor"] = list(self.monitors)
        if self.scopes:
            data["scope"] = list(self.scopes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            tags={str(k): tuple(str(v) for v in vs) for k, vs in (data.get("tags") or {}).items()},
            monitor_ids=tuple(str(v) for v in data.get("monitor_id") or ()),
            monitors=tuple(str(v) for v in data.get("monitor") or ()),
            scopes=tuple(str(v) for v in data.get("scope") or ()),
        )


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    """One silence (a `silence` row): alerts it matches between its start and end run no
    playbook; expiring it early ends it then."""

    id: int
    matchers: SilenceMatchers
    starts_at: datetime
    ends_at: datetime  # as planned
    reason: str
    author: str
    created_at: datetime
    expired_at: datetime | None = None  # ended early, by hand
    expired_by: str | None = None

    @property
    def ended_at(self) -> datetime:
        """When it stops covering alerts: its end, or when it was expired if earlier."""
        if self.expired_at is None:
            return self.ends_at
        return min(self.ends_at, self.expired_at)

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ended_at


_INCIDENT_FIELDS = tuple(f.name for f in fields(IncidentRecord))
_RUN_FIELDS = tuple(f.name for f in fields(RunRecord))
_GROUP_FIELDS = tuple(f.name for f in fields(GroupRecord))
_STORM_FIELDS = tuple(f.name for f in fields(StormRecord))


@dataclass(frozen=True, slots=True)
class Membership:
    """What the incident holds after this event, for the lifecycle stage to write."""

    grouping_key: str
    members: int
    firing: int
    summary_at: datetime | None
    summarized: int

    def applied(self, incident: IncidentRecord) -> IncidentRecord:
        summary_at = self.summary_at if incident.is_open else None
        return replace(
            incident,
            grouping_key=self.grouping_key,
            members=self.members,
            firing=self.firing,
            summary_at=summary_at,
            summarized=self.summarized,
        )
