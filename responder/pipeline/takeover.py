"""Take-over stage: a new incident's first due run of each lane is claimed as it is planned.

The run is inserted already leased (or settled, when it needs no call), in the same
transaction as the incident, so it needs no claim round of its own: this is what keeps the
time from webhook to Slack short. The processor returns what was taken; the worker starts
it once the batch is committed.
"""

from __future__ import annotations

import structlog

from responder.domain import RunState
from responder.pipeline.claim import Claimer
from responder.pipeline.stages import Batch, EventItem

log = structlog.get_logger(__name__)


class TakeOverStage:
    def __init__(self, claimer: Claimer) -> None:
        self._claimer = claimer

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        incident = item.incident
        if incident is None or not item.opened:
            return True
        lanes: set[str] = set()
        for index, run in enumerate(item.runs):
            due = run.state == RunState.PENDING and run.scheduled_at <= batch.now
            # Only the new incident's own lanes are fresh: a run it planned for another
            # incident's lane (a storm summary's update) may queue behind earlier ones.
            if not due or run.lane in lanes or run.incident_id != incident.id:
                continue
            lanes.add(run.lane)
            try:
                taken = self._claimer.take_fresh(run, incident, item.alert, batch.now)
            except Exception:  # it stays pending: the runner's own claim will try it
                log.exception("run.take_over_failed", run_id=run.id)
                continue
            if taken is not None:
                item.runs[index] = taken.run
                item.records.append(taken.record)
                item.taken.append(taken)
        return True
