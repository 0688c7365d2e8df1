"""The event pipeline as a chain of stages, each its own module with one signature.

A stage looks at one event (`EventItem`) within its batch (`Batch`), adds what it decided
(an incident change, runs, audit records) and returns whether the event goes on. A stage
that drops an event (a late delivery, say) stops the chain for it; what it recorded is
kept. Adding a stage (ordering, flap control, silences) is a module and a line in the
list `main` builds. Stages compute only: the processor writes a whole batch at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from responder.domain import Alert
from responder.pipeline.policy import StreamPolicy
from responder.pipeline.silencebook import Covered, SilenceBook
from responder.pipeline.stormbook import StormBook
from responder.records import GroupRecord, IncidentRecord, Membership, RunRecord, StormRecord
from responder.store.audit import AuditRecord
from responder.store.events import StoredEvent

if TYPE_CHECKING:
    from responder.pipeline.incidents import Correlation, IncidentIndex
    from responder.pipeline.jobs import Taken
    from responder.playbooks.schema import Playbook


class IdSource(Protocol):
    """Ids for new rows, taken before they are written (`store.ids.RowIds`)."""

    def take(self, table: str) -> int: ...


@dataclass(slots=True)
class Batch:
    """What the events of one batch share: the incidents they touch and their runs so far."""

    now: datetime
    ids: IdSource
    incidents: IncidentIndex
    earlier: dict[int, list[RunRecord]]  # each incident's primary runs, oldest first
    playbooks: Sequence[Playbook]
    policy: StreamPolicy = field(default_factory=StreamPolicy)
    # Reminders still waiting to go, of the incidents this batch recovers (cancelled then).
    queued: dict[int, list[RunRecord]] = field(default_factory=dict)
    # The channels' storms (storm mode), read when a stage first asks.
    storms: StormBook = field(default_factory=StormBook)
    # The silences in force (from the database, so that every worker agrees), read when a
    # stage first asks.
    silences: SilenceBook = field(default_factory=SilenceBook)


@dataclass(slots=True)
class EventItem:
    """One event on its way through the chain; each stage fills in its part."""

    event: StoredEvent
    alert: Alert
    records: list[AuditRecord] = field(default_factory=list)
    correlation: Correlation | None = None
    incident: IncidentRecord | None = None
    opened: bool = False  # the incident is new with this event
    matched: list[Playbook] = field(default_factory=list)
    fresh: list[Playbook] = field(default_factory=list)  # matched, not run for it before
    runs: list[RunRecord] = field(default_factory=list)
    cancelled: list[RunRecord] = field(default_factory=list)  # delayed steps not to run
    withdrawn: list[RunRecord] = field(default_factory=list)  # queued reminders not to send
    called_off: list[RunRecord] = field(default_factory=list)  # escalations, acknowledged
    group: GroupRecord | None = None  # its monitor + scope after this event, to write back
    hold: str | None = None  # why a recovery does not resolve the incident (flapping)
    # Why this event's follow-ups are not planned (flapping): each is audited as suppressed.
    quiet: str | None = None
    notes: list[str] = field(default_factory=list)  # what to tell the incident's thread
    refresh_root: bool = False  # rewrite the thread's root message (its counts changed)
    grouping: str | None = None  # the grouped incident it would join (its playbook's group_by)
    membership: Membership | None = None  # what a grouped incident holds after this event
    # Channels' storms after this event, by channel, to keep in the batch (storm mode); and
    # new params for summary updates still waiting, by run id.
    storms: dict[str, StormRecord] = field(default_factory=dict)
    refreshed: dict[int, dict[str, Any]] = field(default_factory=dict)
    taken: list[Taken] = field(default_factory=list)  # runs claimed as they were planned
    errors: list[str] = field(default_factory=list)  # templates that failed to render
    outcome: dict[str, Any] | None = None  # set by a stage that drops the event
    silenced: Covered | None = None  # a silence or window covers it: no playbook runs
    released: str | None = None  # why playbooks held back by a silence run now


class Stage(Protocol):
    def __call__(self, item: EventItem, batch: Batch) -> bool:
        """Decide for one event; False drops it (the stages after this one skip it)."""
        ...


def run_chain(stages: Sequence[Stage], item: EventItem, batch: Batch) -> bool:
    """Take one event through the stages; False when a stage dropped it."""
    return all(stage(item, batch) for stage in stages)
