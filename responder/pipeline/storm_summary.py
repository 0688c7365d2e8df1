"""A channel's storm summary as runs: the post when the storm starts, coalesced updates while
it lasts, the last update when it ends (storm mode, `pipeline/storm.py`).

The summary runs share one lane per channel, so they go in order; each update continues
the post (its parent), which is how the action finds the message to rewrite. Updates are
coalesced: at most one waits at a time, no sooner than `storm_every` after the previous
one, and newer figures replace its params while it waits, so Slack sees a rewrite every
few seconds however many alerts arrive, and the last one carries the latest figures.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from responder.actions import format_duration, iso_utc
from responder.domain import Transition
from responder.pipeline.planned import new_run, run_records
from responder.pipeline.stages import Batch, EventItem
from responder.records import RunRecord, StormRecord

PLAYBOOK = "(storm mode)"  # summary runs are storm mode's own, not a playbook's steps
_TOP = 5
_AFFECTED_MAX = 50  # services or monitors counted per storm; the least affected give way


def summary_params(
    storm: StormRecord, batch: Batch, *, update: bool, ended_at: datetime | None = None
) -> dict[str, Any]:
    assert storm.started_at is not None
    top = sorted(storm.affected.items(), key=lambda pair: (-pair[1], pair[0]))[:_TOP]
    policy = batch.policy
    return {
        "channel": storm.name,
        "update": update,
        "started_at": iso_utc(storm.started_at),
        "ended_at": iso_utc(ended_at) if ended_at is not None else None,
        "incidents": storm.incidents,
        "open": len(storm.open_ids),
        "pages": len(storm.paged),
        "top": [[label, count] for label, count in top],
        "rate": policy.storm_rate,
        "quiet": format_duration(policy.storm_quiet.total_seconds()),
    }


def count_affected(affected: dict[str, int], label: str) -> dict[str, int]:
    counted = dict(affected)
    counted[label] = counted.get(label, 0) + 1
    if len(counted) > _AFFECTED_MAX:
        least = min(counted, key=lambda key: (counted[key], key == label, key))
        del counted[least]
    return counted


def post(
    storm: StormRecord,
    item: EventItem,
    batch: Batch,
    *,
    action: str,
    max_age: timedelta,
    root: RunRecord,
) -> tuple[StormRecord, RunRecord]:
    """The summary posted as the storm starts. It continues the root message it stands in
    for (held back), so it is no playbook step of that incident: nothing follows it up."""
    run = _run(storm, item, batch, action=action, max_age=max_age, due=batch.now, parent=root.id)
    run = replace(run, params=summary_params(storm, batch, update=False))
    item.records.extend(run_records([run], "run.planned"))
    storm = replace(storm, summary_run_id=run.id, next_update_at=batch.now, updates=1)
    return storm, run


def update(
    storm: StormRecord,
    item: EventItem,
    batch: Batch,
    *,
    action: str,
    max_age: timedelta,
    ended_at: datetime | None = None,
) -> tuple[StormRecord, RunRecord | None]:
    """New figures for the summary: into the update still waiting, else a new update."""
    params = summary_params(storm, batch, update=True, ended_at=ended_at)
    waiting = storm.pending_run_id
    if ended_at is None and waiting is not None and batch.storms.waiting(waiting):
        item.refreshed[waiting] = params
        return storm, None
    last = storm.next_update_at or batch.now
    due = batch.now if ended_at is not None else max(batch.now, last + batch.policy.storm_every)
    if ended_at is not None and storm.next_update_at is not None:
        due = max(due, storm.next_update_at)  # after the update still waiting, if any
    run = _run(
        storm, item, batch, action=action, max_age=max_age, due=due, parent=storm.summary_run_id
    )
    # Planned now, held until `due`: the lane keeps the order it was planned in.
    run = replace(run, params=params, scheduled_at=batch.now)
    item.records.extend(run_records([run], "run.planned"))
    storm = replace(storm, pending_run_id=run.id, next_update_at=due, updates=storm.updates + 1)
    return storm, run


def _run(
    storm: StormRecord,
    item: EventItem,
    batch: Batch,
    *,
    action: str,
    max_age: timedelta,
    due: datetime,
    parent: int | None,
) -> RunRecord:
    assert storm.started_at is not None and storm.summary_incident_id is not None
    digest = hashlib.sha256(storm.channel.encode()).hexdigest()[:16]
    started = int(storm.started_at.timestamp() * 1000)
    run = new_run(
        run_id=batch.ids.take("action_run"),
        incident_id=storm.summary_incident_id,
        event_id=item.event.id,
        # Not the event's own: a summary run is no reminder, whatever event planned it.
        transition=Transition.TRIGGERED.value,
        action=action,
        due=due,
        now=batch.now,
        max_age=max_age,
        playbook=PLAYBOOK,
        playbook_hash="",
        step=0,
        idempotency_key=f"storm:{digest}:{started}:{storm.updates}",
        params={},
        parent_id=parent,
    )
    return replace(run, lane=f"storm:{storm.channel}"[:128])
