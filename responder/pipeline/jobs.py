"""What the runner hands between its parts: a claimed run ready to call (`Job`), a claim
round's result, and a fresh run claimed as it was planned (`Taken`)."""

from __future__ import annotations

from dataclasses import dataclass

from responder.actions import ActionContext
from responder.pipeline.outcomes import Finished, Outcome
from responder.records import RunRecord
from responder.store.audit import AuditRecord


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed run, ready to call: its record as claimed and the context the action sees."""

    run: RunRecord
    ctx: ActionContext


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[Job]  # leased, to be called
    settled: list[Finished]  # claimed and finished at once


@dataclass(frozen=True, slots=True)
class Taken:
    """A fresh run claimed as it was planned: inserted as `run`, then called or counted."""

    run: RunRecord
    record: AuditRecord
    job: Job | None  # to call once its row is committed
    settled: Outcome | None  # or settled at once, to count once committed
