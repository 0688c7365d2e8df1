"""Takes stored events through the stage chain and writes each batch in one transaction.

Each monitor + scope's events are processed in arrival order by one sequencer at a time,
so a recovery is never handled before the trigger it ends. On SQLite there is one sequencer.
On PostgreSQL events are dealt into partitions by monitor + scope (`events.claim`): each
batch holds the partitions it took, and several workers process events at once. What
partitions share is held for the batch too: a grouped incident (its grouping key) and the
storm book. A batch is computed first (stages, audit records, even the ids of new rows)
and then written in one short transaction of bulk statements: on SQLite the computing
happens before the write lock is taken, so the intake never waits for it. An event whose
stages raise fails alone and visibly; a batch whose write breaks is retried one event at a
time, so that only the culprit is set aside.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
import structlog

from responder.domain import EventState, Transition
from responder.pipeline.alerts import stored_alert
from responder.pipeline.batch import BatchWrite
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.grouping import grouping_key
from responder.pipeline.incidents import IncidentIndex
from responder.pipeline.jobs import Taken
from responder.pipeline.narrate import narrate
from responder.pipeline.policy import StreamPolicy
from responder.pipeline.silencebook import SilenceBook
from responder.pipeline.stages import Batch, EventItem, Stage, run_chain
from responder.pipeline.stormbook import StormBook
from responder.playbooks.schema import Playbook
from responder.records import RunRecord
from responder.redact import Redactor
from responder.store import audit, events, runs
from responder.store.db import classify, hold_locks, reader, transaction
from responder.store.events import EventResult, StoredEvent
from responder.store.ids import RowIds

log = structlog.get_logger(__name__)
MAX_EVENT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class BatchResult:
    processed: int
    failed: int
    runs_planned: int
    # Runs claimed as they were planned, now committed: the caller starts them.
    taken: list[Taken] = field(default_factory=list)


class EventProcessor:
    def __init__(
        self,
        engine: sa.Engine,
        stages: Sequence[Stage],
        playbooks: Callable[[], Sequence[Playbook]],
        redactor: Redactor,
        *,
        batch_size: int = 25,
        recent: AlertContexts | None = None,
        policy: StreamPolicy | None = None,
    ) -> None:
        self._policy = policy or StreamPolicy()
        self._engine = engine
        self._stages = list(stages)
        self._playbooks = playbooks
        self._redactor = redactor
        self._batch_size = batch_size
        self._recent = recent or AlertContexts()
        # Where this sequencer starts looking for a free partition: apart from the others'.
        self._start = random.randrange(events.PARTITIONS)
        self._reading: list[int] = []  # the events of the batch being computed

    def process_batch(self, limit: int | None = None) -> BatchResult:
        """Process the oldest waiting events (up to `limit`); returns what was handled."""
        try:
            return self._process(min(limit or self._batch_size, self._batch_size))
        except Exception as exc:
            if classify(exc):
                raise  # the database is unavailable: the worker backs off and retries
            # Something in the batch breaks the transaction itself: go one event at a time
            # so that only the culprit is set aside.
            log.warning("events.batch_failed", error=type(exc).__name__)
            return self._one_by_one()

    def _one_by_one(self) -> BatchResult:
        processed = failed = planned = 0
        taken: list[Taken] = []
        for _ in range(self._batch_size):
            try:
                result = self._process(1)
            except Exception as exc:
                if classify(exc):
                    if processed or failed:
                        break  # what committed so far is returned, so its runs still start
                    raise
                if not self._set_aside(exc):
                    break  # nothing set aside (no event read, or it is no longer ours)
                failed += 1
                continue
            if not (result.processed or result.failed):
                break
            processed += result.processed
            failed += result.failed
            planned += result.runs_planned
            taken += result.taken
        return BatchResult(processed, failed, planned, taken)

    def _process(self, limit: int) -> BatchResult:
        self._reading = []
        if self._engine.dialect.name == "sqlite":
            # One sequencer per SQLite file (this thread), so what it reads stays true while
            # it computes; only the short write below holds the write lock.
            with reader(self._engine).connect() as conn:
                write = self._compute(conn, events.waiting(conn, limit=limit))
            if write is None:
                return BatchResult(0, 0, 0)
            with transaction(self._engine) as conn:
                write.apply(conn)
        else:
            with transaction(self._engine) as conn:
                self._start = (self._start + 1) % events.PARTITIONS
                waiting = events.claim(conn, limit=limit, start=self._start)
                write = self._compute(conn, waiting)
                if write is None:
                    return BatchResult(0, 0, 0)
                write.apply(conn)
        # Committed already: a log line that cannot be written (stderr closed, a broken
        # pipe) must not make the batch look failed, which would process it again.
        with contextlib.suppress(Exception):
            narrate(write.records)
        return BatchResult(
            len(write.results) - write.failed, write.failed, len(write.runs), write.taken
        )

    def _compute(self, conn: sa.Connection, waiting: list[StoredEvent]) -> BatchWrite | None:
        if not waiting:
            return None
        self._reading = [event.id for event in waiting]
        parsed: list[tuple[StoredEvent, EventItem | Exception]] = []
        for event in waiting:
            try:
                parsed.append((event, EventItem(event, stored_alert(event))))
            except Exception as exc:  # stored by an older version, or edited by hand
                parsed.append((event, exc))
        # Datadog's order, not arrival order: within the batch, by Datadog's own dates (a
        # recovery delivered before its trigger meets it here in the right order).
        parsed.sort(key=_datadog_order)
        items = [item for _, item in parsed if isinstance(item, EventItem)]
        playbooks = self._playbooks()
        if any(playbook.group_by for playbook in playbooks):
            for one in items:  # which grouped incident each would join, loaded with the rest
                one.grouping = grouping_key(playbooks, one.alert)
        groupings = {one.grouping for one in items if one.grouping is not None}
        # A grouped incident's members are dealt into one partition, but events stored
        # before a playbook change regrouped them may sit in others: their batches take
        # turns from here to the commit.
        hold_locks(conn, "grouping", groupings)
        index = IncidentIndex.load(conn, [item.alert for item in items], groupings)
        if any(one.alert.cause == "group-summary" for one in items):
            index.load_members(conn)
        known = sorted(index.by_id)
        now = datetime.now(UTC)
        earlier = runs.primary_runs(conn, incident_ids=known)
        queued: dict[int, list[RunRecord]] = {}
        if any(item.alert.transition is Transition.RECOVERED for item in items):
            queued = runs.queued_reminders(conn, incident_ids=known, transitions=_REPEATS)
        batch = Batch(
            now,
            RowIds(conn),
            index,
            earlier,
            playbooks,
            self._policy,
            queued,
            StormBook.reading(conn, now),
            SilenceBook.reading(conn, now),
        )
        write = BatchWrite(self._engine, self._redactor, now)
        for event, item in parsed:
            try:
                if isinstance(item, Exception):
                    raise item
                self._run(item, batch)
            except Exception as exc:  # nothing of this event was kept
                self._failed(write, event, exc)
                continue
            write.keep(item, batch)
            if item.incident is not None:
                self._recent.put(event.id, item.alert)  # the runner will want it
        write.prepare()
        return write

    def _run(self, item: EventItem, batch: Batch) -> None:
        item.records.append(_received_record(item))
        run_chain(self._stages, item, batch)

    def _failed(self, write: BatchWrite, event: StoredEvent, exc: Exception) -> None:
        attempts = event.attempts + 1
        message = self._redactor.redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        log.error("event.failed", event_id=event.id, attempt=attempts, error=message)
        final = attempts >= MAX_EVENT_ATTEMPTS
        write.fail(
            EventResult(
                id=event.id,
                state=EventState.FAILED.value if final else EventState.RECEIVED.value,
                incident_id=None,
                outcome={"error": message, "attempts": attempts},
                processed_at=write.now if final else None,
                attempts=attempts,
            ),
            {"error": message, "attempt": attempts, "final": final},
        )

    def _set_aside(self, exc: Exception) -> bool:
        """The event read last breaks even a batch of one: count the attempt, audited."""
        if not self._reading:
            return False
        with transaction(self._engine) as conn:
            culprit = events.claim_one(conn, self._reading[0])
            if culprit is None:  # done, or another sequencer holds it now
                return False
            write = BatchWrite(self._engine, self._redactor, datetime.now(UTC))
            self._failed(write, culprit, exc)
            write.prepare()
            write.apply(conn)
        return True


_REPEATS = [t.value for t in Transition if t.is_repeat]


def _datadog_order(entry: tuple[StoredEvent, EventItem | Exception]) -> tuple[float, int]:
    event, item = entry
    moment = item.alert.date.timestamp() if isinstance(item, EventItem) else 0.0
    return moment, event.id


def _received_record(item: EventItem) -> audit.AuditRecord:
    alert, event = item.alert, item.event
    data: dict[str, object] = {
        "source_id": alert.source_id,
        "monitor_id": alert.monitor_id,
        "title": alert.title,
        "transition": alert.transition,
        "priority": alert.priority,
        "scope": alert.scope,
        "cycle_key": alert.cycle_key,
        "template": alert.template,
        "received_at": event.received_at,
        "deliveries": event.deliveries,
    }
    data["date"] = alert.date
    if alert.cause is not None:
        data["answer" if alert.actor else "timer"] = alert.cause
    if alert.actor is not None:
        data["actor"] = alert.actor
    if alert.notes:
        data["notes"] = list(alert.notes)
    return audit.AuditRecord("event.received", data, event.id, at=event.received_at)
