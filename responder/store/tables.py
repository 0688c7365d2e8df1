"""The SQL tables (SQLModel). Migrations in `migrations/` must match these exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=nullable))


class AlertEvent(SQLModel, table=True):
    """One webhook delivery, stored before it is acknowledged."""

    __tablename__ = "alert_event"
    __table_args__ = (
        sa.Index("ix_alert_event_state_id", "state", "id"),
        sa.Index("ix_alert_event_state_part_id", "state", "part", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=80, unique=True)
    source_id: str | None = Field(default=None, max_length=64)
    monitor_id: str | None = Field(default=None, max_length=64, index=True)
    title: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    transition: str = Field(max_length=32)
    priority: str | None = Field(default=None, max_length=8)
    scope: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    cycle_key: str | None = Field(default=None, max_length=128)
    template: str = Field(max_length=16)
    payload: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    # The alert of an event responder made itself (a timer's, an answer's: `alert_to_json`),
    # which its payload cannot tell. NULL for a Datadog delivery, normalised again from the
    # payload (`pipeline.alerts.stored_alert`), and for rows from before 0002.
    alert: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    received_at: datetime = _ts()
    state: str = Field(default="received", max_length=16)
    deliveries: int = Field(default=1)
    attempts: int = Field(default=0)
    incident_id: int | None = Field(default=None, index=True)
    # Which sequencer partition takes it: one per monitor + scope (`events.partition_of`).
    part: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    outcome: dict[str, Any] | None = _json()  # playbooks matched, runs planned, or the error
    processed_at: datetime | None = _ts(nullable=True)


class Incident(SQLModel, table=True):
    """One problem: a monitor + scope + alert cycle, from first trigger to recovery."""

    __tablename__ = "incident"
    __table_args__ = (sa.Index("ix_incident_group_status", "group_key", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, unique=True)
    group_key: str = Field(max_length=300)  # monitor + scope, without the cycle
    cycle_key: str | None = Field(default=None, max_length=128)
    monitor_id: str | None = Field(default=None, max_length=64, index=True)
    monitor_name: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    title: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    scope: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    priority: str | None = Field(default=None, max_length=8, index=True)
    service: str | None = Field(default=None, max_length=128, index=True)
    team: str | None = Field(default=None, max_length=128, index=True)
    env: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16, index=True)
    last_transition: str = Field(max_length=32)
    tags: list[str] | None = _json()
    refs: dict[str, Any] | None = _json()  # vendor references: Slack channel/ts, ...
    event_count: int = Field(default=1)
    opened_at: datetime = _ts(index=True)
    acknowledged_at: datetime | None = _ts(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=200)  # "alice (slack)"
    resolved_at: datetime | None = _ts(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=200)  # a person, not a recovery
    updated_at: datetime = _ts()
    seen_at: datetime | None = _ts(nullable=True)  # Datadog's date of the newest delivery
    repeats: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_repeat_at: datetime | None = _ts(nullable=True)  # Datadog's date of the last repeat
    reminded_at: datetime | None = _ts(nullable=True)  # the last repeat told to people
    # The durable stale timer: resolved with reason `stale` when nothing arrives before it.
    stale_at: datetime | None = _ts(nullable=True, index=True)
    resolution: str | None = Field(default=None, max_length=32)  # recovered, stale, ...
    # Grouping: the key new members find it by, how many monitor + scope groups it holds
    # and how many still fire, and the durable timer of the next thread summary.
    grouping_key: str | None = Field(default=None, max_length=300, index=True)
    members: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    firing: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    summary_at: datetime | None = _ts(nullable=True, index=True)
    summarized: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # Held back by a silence (its id) or a maintenance window (no id) until then: the
    # durable timer that runs its playbooks if it still fires when that ends.
    silenced_until: datetime | None = _ts(nullable=True, index=True)
    silence_id: int | None = Field(default=None)


class AlertGroup(SQLModel, table=True):
    """One monitor + scope over time: its state by Datadog's dates, recent changes, flapping."""

    __tablename__ = "alert_group"

    key: str = Field(max_length=300, primary_key=True)
    state: str = Field(max_length=32)  # the last state-changing transition applied
    changed_at: datetime = _ts()  # Datadog's date of that change
    changes: list[str] | None = _json()  # dates of the changes inside the flap window
    flapping_since: datetime | None = _ts(nullable=True)
    quiet_at: datetime | None = _ts(nullable=True, index=True)  # flapping ends if calm until
    incident_id: int | None = Field(default=None, index=True)  # the incident holding it now
    updated_at: datetime = _ts()
    joined_at: datetime | None = _ts(nullable=True)  # when it joined that incident


class Storm(SQLModel, table=True):
    """One Slack channel's recent new incidents, and its storm while one lasts."""

    __tablename__ = "storm"

    channel: str = Field(max_length=200, primary_key=True)  # lower case, without "#"
    name: str = Field(max_length=200)  # as the playbook writes it: where the summary goes
    opens: list[str] | None = _json()  # new incidents' times within the last minute
    started_at: datetime | None = _ts(nullable=True)  # None: no storm now
    quiet_at: datetime | None = _ts(nullable=True, index=True)  # the storm ends if calm until
    incidents: int = Field(default=0)  # new incidents told in the summary, not in roots
    open_ids: list[int] | None = _json()  # of them, the incidents still open
    affected: dict[str, Any] | None = _json()  # service or monitor -> new incidents
    paged: list[str] | None = _json()  # routing keys paged during the storm
    summary_incident_id: int | None = Field(default=None)  # whose runs carry the summary
    summary_run_id: int | None = Field(default=None)  # the summary's post: updates follow it
    pending_run_id: int | None = Field(default=None)  # the update waiting for its turn
    next_update_at: datetime | None = _ts(nullable=True)  # when that update may go
    updates: int = Field(default=0)  # summary runs planned in this storm
    updated_at: datetime = _ts(index=True)


class Silence(SQLModel, table=True):
    """Alerts matching these between start and end run no playbook (they are still stored,
    correlated and audited); expiring one early ends it then."""

    __tablename__ = "silence"

    id: int | None = Field(default=None, primary_key=True)
    matchers: dict[str, Any] | None = _json(nullable=False)  # `SilenceMatchers.as_json`
    starts_at: datetime = _ts()
    ends_at: datetime = _ts(index=True)
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    author: str = Field(max_length=200)
    created_at: datetime = _ts()
    expired_at: datetime | None = _ts(nullable=True)
    expired_by: str | None = Field(default=None, max_length=200)


class IncidentRef(SQLModel, table=True):
    """How a vendor names one of our incidents (PagerDuty's dedup key, ...): what an inbound
    webhook from that vendor finds the incident by."""

    __tablename__ = "incident_ref"

    kind: str = Field(max_length=32, primary_key=True)  # "pagerduty"
    value: str = Field(max_length=255, primary_key=True)
    incident_id: int = Field(index=True)
    created_at: datetime = _ts()


class ActionRun(SQLModel, table=True):
    """The durable outbox: one planned outside call and everything that happened to it."""

    __tablename__ = "action_run"
    __table_args__ = (
        sa.Index("ix_action_run_due", "state", "not_before"),
        sa.Index("ix_action_run_lane", "lane", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(index=True)
    event_id: int
    parent_id: int | None = Field(default=None)  # the primary run a follow-up continues
    playbook: str = Field(max_length=200)
    playbook_hash: str = Field(max_length=64)
    step: int
    action: str = Field(max_length=64)
    params: dict[str, Any] | None = _json()
    condition: str | None = Field(default=None, max_length=64)  # `if:` of a delayed step
    transition: str = Field(max_length=32)
    lane: str = Field(max_length=128)  # runs of one lane execute in order of id
    state: str = Field(default="pending", max_length=16)
    idempotency_key: str = Field(max_length=128, unique=True)
    attempts: int = Field(default=0)
    # An attempt started and its outcome was never recorded (the worker died mid-call): the
    # next attempt must look for what the vendor may already have created.
    uncertain: bool = Field(default=False)
    scheduled_at: datetime = _ts()  # when it was first due; orders the lane
    not_before: datetime = _ts()  # next attempt, moved by retries
    expires_at: datetime = _ts()  # past this, a retry becomes a visible failure
    lease_until: datetime | None = _ts(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    result: dict[str, Any] | None = _json()
    created_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)


class AuditEntry(SQLModel, table=True):
    """Append-only and hash-chained: the code inserts rows and never updates or deletes them."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True)
    at: datetime = _ts(index=True)
    kind: str = Field(max_length=48, index=True)
    event_id: int | None = Field(default=None, index=True)
    incident_id: int | None = Field(default=None, index=True)
    run_id: int | None = Field(default=None, index=True)
    data: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))  # canonical JSON, hashed
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
