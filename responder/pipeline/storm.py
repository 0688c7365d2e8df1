"""Storm stages: above a rate of new incidents in one Slack channel, one summary message
instead of a root message each, and one page per routing key (storm mode).

`StormStage` (after the plan stage) looks at new incidents and at recoveries. A new
incident counts against each channel its root message (the conversation's root action)
goes to; more than `storm_rate` within a minute start a storm there (`storm.started`).
While it lasts, each new incident's root is held back (cancelled, audited as
`run.suppressed`) and told in the channel's summary instead, and a page to a routing key
already paged in the storm is held back the same way. Held back, not forgotten: the
incident is stored, correlated, audited, and its other runs (the page that did go, the
Datadog incident) are followed up and resolved by its recovery as ever; a cancelled run
has no follow-ups. Recoveries of the storm's incidents update the summary's figures.

`StormEndStage` (first in the chain) ends a storm when its quiet timer's event comes: the
channel stayed at or below the rate for `storm_quiet`. The summary then says the storm is
over (`storm.ended`), and the next new incident gets its own root message again. The
timer's event is about the storm, not about the incident carrying it (which may be long
resolved), so it stops here: the stages after it never see it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from responder.actions import Conversation, format_duration, iso_utc
from responder.domain import RunState
from responder.pipeline import storm_summary as summary
from responder.pipeline.stages import Batch, EventItem
from responder.pipeline.stormbook import WINDOW
from responder.records import IncidentRecord, RunRecord, StormRecord
from responder.store.audit import AuditRecord
from responder.store.events import StoredEvent

STORM_QUIET = "storm-quiet"  # Alert.cause of the timer's event that ends a storm
HELD_ROOT = "storm: told in the channel's storm summary"


def channel_key(name: str) -> str:
    """One key per channel however a playbook writes it ("#Alerts", "alerts"), as pacing."""
    return name.strip().lstrip("#").lower()[:200]


class StormStage:
    def __init__(
        self, max_age: timedelta, conversation: Conversation | None, page: str | None
    ) -> None:
        self._max_age = max_age
        self._talk = conversation
        self._page = page  # the action that pages (its `routing_key` param, else "default")

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        talk, incident = self._talk, item.incident
        if batch.policy.storm_rate <= 0 or talk is None or talk.summary is None:
            return True
        if incident is None or item.alert.cause == STORM_QUIET:
            return True
        if item.opened and incident.is_open:
            self._opened(item, batch, incident, talk.root, talk.summary)
        elif _resolved_now(item, incident):
            self._resolved(item, batch, incident, talk.summary)
        return True

    def _opened(
        self,
        item: EventItem,
        batch: Batch,
        incident: IncidentRecord,
        root_action: str,
        action: str,
    ) -> None:
        roots = [
            run
            for run in item.runs
            if run.action == root_action and run.is_primary and run.state == RunState.PENDING
        ]
        paged = False  # pages are the incident's, not a channel's: decided once
        for root in roots:
            name = str(root.params.get("channel", "")).strip()
            channel = channel_key(name)
            if not channel:
                continue
            if channel in item.storms:  # a second root of this incident in the channel
                if item.storms[channel].storming:
                    _hold(item, root, HELD_ROOT, batch.now)
                continue
            storm = _current(item, batch, channel) or _fresh(channel, name, batch.now)
            opens = (*(t for t in storm.opens if t > batch.now - WINDOW), batch.now)
            above = len(opens) > batch.policy.storm_rate
            storm = replace(storm, opens=opens, updated_at=batch.now)
            started = not storm.storming and above
            if started:
                storm = _start(storm, incident, batch)
                item.records.append(_started_record(storm, item, incident, batch))
            if storm.storming:
                if above:  # the storm goes on while the rate is exceeded
                    storm = replace(storm, quiet_at=batch.now + batch.policy.storm_quiet)
                _hold(item, root, HELD_ROOT, batch.now)
                label = incident.service or incident.monitor_name or incident.title
                storm = replace(
                    storm,
                    incidents=storm.incidents + 1,
                    open_ids=(*storm.open_ids, incident.id),
                    affected=summary.count_affected(dict(storm.affected), label),
                )
                if not paged:
                    storm = self._pages(item, storm, batch.now)
                    paged = True
                run: RunRecord | None
                if started:
                    storm, run = summary.post(
                        storm, item, batch, action=action, max_age=self._max_age, root=root
                    )
                else:
                    storm, run = summary.update(
                        storm, item, batch, action=action, max_age=self._max_age
                    )
                if run is not None:
                    item.runs.append(run)
            item.storms[channel] = storm

    def _pages(self, item: EventItem, storm: StormRecord, now: datetime) -> StormRecord:
        """At most one page per routing key for the storm: the first goes, the rest wait
        in the summary's figures."""
        paged = list(storm.paged)
        for run in list(item.runs):
            if run.action != self._page or not run.is_primary or run.state != RunState.PENDING:
                continue
            key = str(run.params.get("routing_key") or "default")
            if key in paged:
                _hold(item, run, f"storm: {key} already paged for this storm", now)
            else:
                paged.append(key)
        return replace(storm, paged=tuple(paged))

    def _resolved(
        self, item: EventItem, batch: Batch, incident: IncidentRecord, action: str
    ) -> None:
        for channel in sorted(batch.storms.all()):
            storm = _current(item, batch, channel)
            if storm is None or not storm.storming or incident.id not in storm.open_ids:
                continue
            left = tuple(i for i in storm.open_ids if i != incident.id)
            storm = replace(storm, open_ids=left, updated_at=batch.now)
            storm, run = summary.update(storm, item, batch, action=action, max_age=self._max_age)
            if run is not None:
                item.runs.append(run)
            item.storms[channel] = storm


class StormEndStage:
    def __init__(self, max_age: timedelta, conversation: Conversation | None) -> None:
        self._max_age = max_age
        self._talk = conversation

    def __call__(self, item: EventItem, batch: Batch) -> bool:
        alert = item.alert
        if alert.cause != STORM_QUIET:
            return True
        channel = channel_of(item.event)
        storm = batch.storms.get(channel) if channel else None
        incident_id = storm.summary_incident_id if storm is not None else None
        gone = _gone(storm, alert.date)
        if gone is not None or storm is None:
            data = {"reason": gone, "timer": alert.cause, "channel": channel}
            item.records.append(AuditRecord("event.ignored", data, item.event.id, incident_id))
            item.outcome = _outcome({"ignored": gone}, item, incident_id)
            return False
        ended_at = storm.quiet_at or alert.date
        talk = self._talk
        if talk is not None and talk.summary is not None and storm.summary_run_id is not None:
            storm, run = summary.update(
                storm, item, batch, action=talk.summary, max_age=self._max_age, ended_at=ended_at
            )
            if run is not None:
                item.runs.append(run)
        item.records.append(_ended_record(storm, item, ended_at, incident_id))
        item.storms[storm.channel] = _calm(storm, batch.now)
        item.outcome = _outcome({"storm": "ended", "channel": storm.name}, item, incident_id)
        return False


def channel_of(event: StoredEvent) -> str | None:
    """The channel a storm timer's event is about (its payload, written by the sweep)."""
    try:
        payload = orjson.loads(event.payload)
    except orjson.JSONDecodeError:
        return None
    channel = payload.get("channel") if isinstance(payload, dict) else None
    return channel if isinstance(channel, str) and channel else None


def _gone(storm: StormRecord | None, due: datetime) -> str | None:
    """Why a storm timer's event no longer applies, if it does not."""
    if storm is None or not storm.storming or storm.quiet_at is None:
        return "no storm in the channel: it is already over"
    if storm.quiet_at > due:
        return "the channel was busy again since: the storm goes on"
    return None


def _current(item: EventItem, batch: Batch, channel: str) -> StormRecord | None:
    return item.storms.get(channel) or batch.storms.get(channel)


# A channel in no storm: what `_calm` resets and a channel seen for the first time starts as.
_NO_STORM: dict[str, Any] = {
    "started_at": None,
    "quiet_at": None,
    "incidents": 0,
    "open_ids": (),
    "affected": {},
    "paged": (),
    "summary_incident_id": None,
    "summary_run_id": None,
    "pending_run_id": None,
    "next_update_at": None,
    "updates": 0,
}


def _fresh(channel: str, name: str, now: datetime) -> StormRecord:
    return StormRecord(channel=channel, name=name[:200], opens=(), updated_at=now, **_NO_STORM)


def _start(storm: StormRecord, incident: IncidentRecord, batch: Batch) -> StormRecord:
    return replace(
        _calm(storm, batch.now),
        started_at=batch.now,
        quiet_at=batch.now + batch.policy.storm_quiet,
        summary_incident_id=incident.id,
    )


def _calm(storm: StormRecord, now: datetime) -> StormRecord:
    """The channel without a storm; its recent new incidents still count."""
    return replace(storm, updated_at=now, **_NO_STORM)


def _hold(item: EventItem, run: RunRecord, reason: str, now: datetime) -> None:
    """Cancel a run as planned (nothing follows a cancelled run up), audited with why; and
    what the plan stage hung on it for this event (a note to its thread, say)."""
    for index, planned in enumerate(item.runs):
        if run.id not in (planned.id, planned.parent_id):
            continue
        item.runs[index] = replace(
            planned,
            state=RunState.CANCELLED.value,
            last_error=reason,
            finished_at=now,
        )
        data = {"action": planned.action, "playbook": planned.playbook, "step": planned.step}
        data["reason"] = reason
        item.records.append(
            AuditRecord("run.suppressed", data, item.event.id, planned.incident_id, planned.id)
        )


def _resolved_now(item: EventItem, incident: IncidentRecord) -> bool:
    before = item.correlation.incident if item.correlation is not None else None
    return before is not None and before.is_open and not incident.is_open


def _started_record(
    storm: StormRecord, item: EventItem, incident: IncidentRecord, batch: Batch
) -> AuditRecord:
    policy = batch.policy
    data: dict[str, Any] = {
        "channel": storm.name,
        "new_incidents": len(storm.opens),
        "within": format_duration(WINDOW.total_seconds()),
        "rate": policy.storm_rate,
        "quiet": format_duration(policy.storm_quiet.total_seconds()),
    }
    return AuditRecord("storm.started", data, item.event.id, incident.id)


def _ended_record(
    storm: StormRecord, item: EventItem, ended_at: datetime, incident_id: int | None
) -> AuditRecord:
    assert storm.started_at is not None
    data: dict[str, Any] = {
        "channel": storm.name,
        "started_at": iso_utc(storm.started_at),
        "ended_at": iso_utc(ended_at),
        "lasted": format_duration((ended_at - storm.started_at).total_seconds()),
        "incidents": storm.incidents,
        "open": len(storm.open_ids),
        "pages": len(storm.paged),
    }
    return AuditRecord("storm.ended", data, item.event.id, incident_id)


def _outcome(what: dict[str, Any], item: EventItem, incident_id: int | None) -> dict[str, Any]:
    actions = [{"id": r.id, "action": r.action, "state": r.state} for r in item.runs]
    return {**what, "playbooks": [], "actions": actions, "incident_id": incident_id}
