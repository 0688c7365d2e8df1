"""What the service would do with a sequence of deliveries, found out by doing it.

`playbooks test` must never drift from the service, so nothing here decides anything: each
delivery is stored the way the webhook stores it and taken through the real stage chain
(what `main.build_stages` builds, without a claimer, so no run is taken over) in a
throwaway SQLite database. What the delivery led to is then read back from that database:
its audit records, in order, and the runs it planned. No runner exists here, so every run
stays pending and no vendor is ever called; the database is deleted at the end.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from responder.domain import Alert
from responder.intake.datadog import PayloadError, decode, normalise
from responder.pipeline import lifecycle
from responder.pipeline.policy import StreamPolicy
from responder.pipeline.process import EventProcessor
from responder.pipeline.stages import Stage
from responder.playbooks.matcher import explain
from responder.playbooks.schema import Playbook
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from responder.store import history, incidents, runs
from responder.store.db import create_engine
from responder.store.intake import Stored, event_row, store
from responder.store.migrate import upgrade

# A body read from a file is JSON whatever its name; the webhook learns this from the header.
_CONTENT_TYPE = "application/json"
# Far more than one delivery ever leads to; the audit is read in one page per delivery.
_RECORDS_PER_DELIVERY = 10_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook body and where it came from ("a.json", "seq.jsonl:3"), for messages."""

    source: str
    body: bytes


class DeliveryError(Exception):
    """Some deliveries cannot become alerts; one message per delivery, naming its source."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True, slots=True)
class _Accepted:
    delivery: Delivery
    alert: Alert
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PlannedRun:
    """A run one delivery planned, with the earlier run it follows up, if any."""

    run: RunRecord
    params: Mapping[str, Any]  # as the audit log holds them: secrets masked
    parent: RunRecord | None
    parent_delivery: int | None  # the delivery (1-based) that planned the parent

    def as_json(self) -> dict[str, Any]:
        run = self.run
        data: dict[str, Any] = {
            "run_id": run.id,
            "action": run.action,
            "playbook": run.playbook,
            "step": run.step,
            "params": dict(self.params),
            "state": run.state,
            "after_seconds": (run.scheduled_at - run.created_at).total_seconds(),
            "if": run.condition,
            "error": run.last_error,
        }
        if self.parent is not None:
            data["parent"] = {
                "run_id": self.parent.id,
                "action": self.parent.action,
                "delivery": self.parent_delivery,
            }
        return data


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the service did with one delivery: its audit records and the runs it planned."""

    number: int  # 1-based position in the sequence
    source: str
    alert: Alert
    event_id: int
    redelivery_of: int | None  # the delivery first stored with this one's fingerprint
    incident: IncidentRecord | None
    records: list[dict[str, Any]]  # kind, data, incident_id, run_id; in the order written
    planned: list[PlannedRun]
    not_matched: list[tuple[str, str]]  # playbook, why not (only when matching ran)

    @property
    def actions(self) -> list[PlannedRun]:
        return [p for p in self.planned if p.run.is_primary]

    @property
    def follow_ups(self) -> list[PlannedRun]:
        return [p for p in self.planned if not p.run.is_primary]

    def run(self, run_id: int | None) -> PlannedRun | None:
        return next((p for p in self.planned if p.run.id == run_id), None)

    def as_json(self) -> dict[str, Any]:
        alert, incident = self.alert, self.incident
        return {
            "delivery": self.number,
            "source": self.source,
            "event_id": self.event_id,
            "alert": {
                "transition": alert.transition.value,
                "title": alert.title,
                "priority": alert.priority,
                "date": alert.date.isoformat(),
                "monitor_id": alert.monitor_id,
                "scope": alert.scope,
                "cycle_key": alert.cycle_key,
                "notes": list(alert.notes),
            },
            "redelivery_of": self.redelivery_of,
            "incident": (
                None
                if incident is None
                else {"id": incident.id, "key": incident.key, "status": incident.status}
            ),
            "actions": [p.as_json() for p in self.actions],
            "follow_ups": [p.as_json() for p in self.follow_ups],
            "records": self.records,
            "not_matched": [{"playbook": n, "reason": r} for n, r in self.not_matched],
        }


def _accept(deliveries: Sequence[Delivery]) -> list[_Accepted]:
    """Decode and normalise every delivery first, so that a bad one stops the whole run
    before anything is simulated; raises DeliveryError naming each bad one."""
    accepted: list[_Accepted] = []
    errors: list[str] = []
    for delivery in deliveries:
        received_at = datetime.now(UTC)
        try:
            data, payload = decode(delivery.body, _CONTENT_TYPE)
            alert = normalise(data, received_at)
        except PayloadError as exc:
            errors.append(f"{delivery.source}: {exc}")
            continue
        row = event_row(alert, delivery.body, payload, received_at, part=0)  # one sequencer
        accepted.append(_Accepted(delivery, alert, row))
    if errors:
        raise DeliveryError(errors)
    return accepted


def simulate(
    deliveries: Sequence[Delivery],
    stages: Sequence[Stage],
    playbooks: Sequence[Playbook],
    redactor: Redactor,
    policy: StreamPolicy | None = None,
) -> list[Outcome]:
    """Take the deliveries, in order, through `stages` in a scratch database."""
    accepted = _accept(deliveries)
    with _scratch_engine() as engine:
        processor = EventProcessor(engine, stages, lambda: playbooks, redactor, policy=policy)
        return _Simulation(engine, processor, playbooks).run(accepted)


@contextmanager
def _scratch_engine() -> Iterator[sa.Engine]:
    # A file rather than :memory:, so that the processor's reader and writer connections see
    # one database, exactly as they do in the service.
    with tempfile.TemporaryDirectory(prefix="responder-simulate-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'simulate.db'}")
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


class _Simulation:
    """One simulation: stores and processes deliveries one at a time, reading back each."""

    def __init__(
        self, engine: sa.Engine, processor: EventProcessor, playbooks: Sequence[Playbook]
    ) -> None:
        self._engine = engine
        self._processor = processor
        self._playbooks = playbooks
        self._numbers: dict[int, int] = {}  # event id -> delivery number
        self._last_seq = 0

    def run(self, accepted: Sequence[_Accepted]) -> list[Outcome]:
        return [self._one(number, item) for number, item in enumerate(accepted, start=1)]

    def _one(self, number: int, item: _Accepted) -> Outcome:
        stored = _stored(store(self._engine, [item.row]))
        redelivery_of = self._numbers.get(stored.event_id) if stored.duplicate else None
        if not stored.duplicate:
            self._numbers[stored.event_id] = number
            self._drain()
        # Everything written since the last delivery is this one's doing: nothing else runs
        # here, and a record about an earlier run (a cancellation) carries that run's event.
        with Session(self._engine) as session:
            records = history.list_audit(session, self._last_seq, _RECORDS_PER_DELIVERY)
        if records:
            self._last_seq = records[-1]["seq"]
        shown = [
            {key: r[key] for key in ("kind", "data", "incident_id", "run_id")} for r in records
        ]
        with self._engine.connect() as conn:
            planned = [] if stored.duplicate else self._planned(conn, stored.event_id, records)
            incident = _incident(conn, records, stored)
        return Outcome(
            number=number,
            source=item.delivery.source,
            alert=item.alert,
            event_id=stored.event_id,
            redelivery_of=redelivery_of,
            incident=incident,
            records=shown,
            planned=planned,
            not_matched=self._not_matched(item.alert, incident, records),
        )

    def _drain(self) -> None:
        # An event whose stages raise stays waiting for another attempt, as in the service;
        # go on until it is processed or set aside, so it never leaks into the next delivery.
        while True:
            result = self._processor.process_batch()
            if not (result.processed or result.failed):
                return

    def _planned(
        self, conn: sa.Connection, event_id: int, records: list[dict[str, Any]]
    ) -> list[PlannedRun]:
        planned = runs.of_event(conn, event_id=event_id)
        logged = {r["run_id"]: r["data"] for r in records if r["run_id"] is not None}
        parents = runs.by_ids(conn, ids=[r.parent_id for r in planned if r.parent_id])
        out: list[PlannedRun] = []
        for run in planned:
            parent = parents.get(run.parent_id) if run.parent_id else None
            params = logged.get(run.id, {}).get("params", {})
            delivery = self._numbers.get(parent.event_id) if parent else None
            out.append(PlannedRun(run, params, parent, delivery))
        return out

    def _not_matched(
        self, alert: Alert, incident: IncidentRecord | None, records: list[dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """Why the other playbooks did not match, when matching ran at all.

        Which playbooks matched is the audit's word; the matcher is asked only for the
        reasons of the rest, with the incident as the match stage saw it (as stored)."""
        matched = next((r for r in records if r["kind"] == "playbooks.matched"), None)
        if matched is None or incident is None:
            return []
        names = {m["name"] for m in matched["data"].get("matched", [])}
        context = lifecycle.context(incident)
        return [
            (playbook.name, reason)
            for playbook, _, reason in explain(self._playbooks, alert, context)
            if playbook.name not in names
        ]


def _stored(results: list[Stored | BaseException]) -> Stored:
    (result,) = results
    if isinstance(result, BaseException):
        raise result
    return result


def _incident(
    conn: sa.Connection, records: list[dict[str, Any]], stored: Stored
) -> IncidentRecord | None:
    ids = [r["incident_id"] for r in records if r["incident_id"] is not None]
    wanted = ids[0] if ids else stored.incident_id
    if wanted is None:
        return None
    return incidents.by_ids(conn, ids=[wanted]).get(wanted)
