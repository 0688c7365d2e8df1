"""Executes action runs: claim with a lease, call the vendor once, record, retry or finish.

The three parts live in their own modules (`claim`, `execute`, `record`); this one turns
them into rounds. Runs of one lane (incident + vendor) go in order; everything else runs in
parallel on the executor's threads. Outcomes are written back in groups, one transaction
each, and what the incidents' threads should hear is returned to the caller.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from responder.actions import Registry
from responder.metrics import Metrics
from responder.pipeline.alerts import AlertSource
from responder.pipeline.claim import Claimer
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.execute import Executor
from responder.pipeline.jobs import Claim, Taken
from responder.pipeline.notices import Notice, NoticeRules
from responder.pipeline.record import Recorder, count
from responder.pipeline.wakeup import Wakeup
from responder.redact import Redactor


@dataclass(frozen=True, slots=True)
class Dispatched:
    progress: int  # outcomes recorded, runs started or settled
    notices: list[Notice] = field(default_factory=list)


class ActionRunner:
    def __init__(
        self,
        engine: sa.Engine,
        registry: Registry,
        redactor: Redactor,
        metrics: Metrics,
        wakeup: Wakeup,
        *,
        threads: int = 8,
        lease: timedelta = timedelta(seconds=60),
        recent: AlertContexts | None = None,
        rules: NoticeRules | None = None,
        retry_scale: float = 1.0,
    ) -> None:
        self._metrics = metrics
        owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        alerts = AlertSource(recent or AlertContexts())
        self.claimer = Claimer(
            engine, registry, redactor, metrics, alerts, owner=owner, lease=lease
        )
        self._executor = Executor(registry, redactor, metrics, wakeup, threads, retry_scale)
        self._registry = registry
        self._recorder = Recorder(engine, redactor, metrics, owner, rules)

    @property
    def idle(self) -> bool:
        return not self._executor.busy and not self.claimer.pacer.waiting(datetime.now(UTC))

    def shutdown(self) -> None:
        self._executor.shutdown()
        self._recorder.record(self._executor.finished())

    def claim(self, limit: int) -> Claim:
        """Lease up to `limit` due runs (those settled at once are counted here)."""
        claim = self.claimer.claim(limit, datetime.now(UTC))
        for run, outcome in claim.settled:
            count(self._metrics, run, outcome)
        return claim

    def start(self, taken: Sequence[Taken]) -> None:
        """Start runs claimed as they were planned, once their rows are committed."""
        now = datetime.now(UTC)
        for item in taken:
            if item.settled is not None:
                count(self._metrics, item.run, item.settled)
            elif item.job is not None:
                pace = self._registry.get(item.run.action).pace(item.job.ctx)
                if pace is not None:  # its slot was taken when the batch began
                    self.claimer.pacer.went(pace.key, pace.interval, now)
        self._executor.submit([item.job for item in taken if item.job is not None])

    def dispatch(self, rounds: int = 20) -> Dispatched:
        """Record finished calls, claim what is due and start it."""
        finished = self._executor.finished()
        notices = self._recorder.record(finished)
        progress = len(finished)
        for _ in range(rounds):  # bounded, so that new events get their turn
            free = self._executor.free
            if free <= 0:
                break
            claim = self.claim(free)
            self._executor.submit(claim.jobs)
            progress += len(claim.jobs) + len(claim.settled)
            if not claim.jobs and not claim.settled:
                break
        return Dispatched(progress, notices)
