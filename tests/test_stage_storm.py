"""Storm stages: new incidents counted per channel, roots and repeated pages held back in a
storm, one summary post then coalesced updates, recoveries counted, the end timer's event."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import orjson

from responder.actions import Conversation
from responder.domain import RunState
from responder.pipeline.incidents import Correlation
from responder.pipeline.planned import new_run
from responder.pipeline.policy import StreamPolicy
from responder.pipeline.stages import Batch, EventItem
from responder.pipeline.storm import HELD_ROOT, STORM_QUIET, StormEndStage, StormStage
from responder.pipeline.stormbook import StormBook
from responder.records import RunRecord
from responder.store.events import StoredEvent
from tests.stagekit import MAX_AGE, NOW, Counter, alert, batch, incident, item

TALK = Conversation(root="slack.post", reply="slack.reply", refresh="slack.refresh", summary="s.x")
RATE = 3
POLICY = StreamPolicy(storm_rate=RATE, storm_quiet=timedelta(minutes=5))


def stage() -> StormStage:
    return StormStage(MAX_AGE, TALK, page="pagerduty.trigger")


def storm_batch(ids: Counter | None = None, waiting: set[int] | None = None) -> Batch:
    shared = batch(ids=ids or Counter(incident=100, action_run=900))
    shared.policy = POLICY
    still = waiting or set()
    shared.storms = StormBook(dict, lambda run_id: run_id in still)
    return shared


def planned(run_id: int, incident_id: int, action: str, **params: str) -> RunRecord:
    return new_run(
        run_id=run_id,
        incident_id=incident_id,
        event_id=incident_id,
        transition="Triggered",
        action=action,
        due=NOW,
        now=NOW,
        max_age=MAX_AGE,
        playbook="security",
        playbook_hash="0" * 64,
        step=0,
        idempotency_key=f"p:{incident_id}:{action}",
        params=params,
    )


def opened(number: int, channel: str = "#Security-Alerts", **page: str) -> EventItem:
    """A new incident of its own monitor, with a root post and a page, as planned."""
    source = alert(monitor_id=str(1000 + number), scope=f"host:h{number}")
    current = item(source, number)
    current.incident = incident(source, incident_id=number)
    current.opened = True
    current.runs = [
        planned(number * 10, number, "slack.post", channel=channel),
        planned(number * 10 + 1, number, "pagerduty.trigger", **page),
    ]
    return current


def keep(current: EventItem, shared: Batch) -> None:
    """What BatchWrite.keep does with the storms of an event that went through."""
    shared.storms.took(current.storms.values(), (run.id for run in current.runs), current.refreshed)


def run_all(items: list[EventItem], shared: Batch) -> None:
    for current in items:
        assert stage()(current, shared) is True
        keep(current, shared)


def states(current: EventItem) -> list[tuple[str, str]]:
    return [(run.action, run.state) for run in current.runs]


def test_below_the_rate_nothing_is_held() -> None:
    shared = storm_batch()
    items = [opened(n) for n in range(1, RATE + 1)]
    run_all(items, shared)
    for current in items:
        assert states(current) == [("slack.post", "pending"), ("pagerduty.trigger", "pending")]
        assert not any(r.kind.startswith("storm.") for r in current.records)
    storm = shared.storms.get("security-alerts")
    assert storm is not None and storm.name == "#Security-Alerts"
    assert (len(storm.opens), storm.started_at) == (RATE, None)


def test_above_the_rate_the_storm_starts_and_holds_roots_and_repeated_pages() -> None:
    shared = storm_batch()
    items = [opened(n) for n in range(1, RATE + 4)]
    run_all(items, shared)
    first, second, third = items[RATE : RATE + 3]
    # The storm starts with the first incident above the rate: its root is held back and
    # the summary posted instead, continuing that root; its page goes, the first for the key.
    assert [r.kind for r in first.records if r.kind.startswith("storm.")] == ["storm.started"]
    assert states(first) == [
        ("slack.post", "cancelled"),
        ("pagerduty.trigger", "pending"),
        ("s.x", "pending"),
    ]
    post = first.runs[2]
    assert post.parent_id == first.runs[0].id and post.params["update"] is False
    assert post.lane == "storm:security-alerts" and post.playbook == "(storm mode)"
    assert (post.params["incidents"], post.params["pages"]) == (1, 1)
    [held] = [r for r in first.records if r.kind == "run.suppressed"]
    assert held.data["reason"] == HELD_ROOT and held.run_id == first.runs[0].id
    assert first.runs[0].last_error == HELD_ROOT
    # Then: root and page held back, one update planned, held for `storm_every`, continuing
    # the post; the next incident's figures join that update while it waits.
    assert states(second) == [
        ("slack.post", "cancelled"),
        ("pagerduty.trigger", "cancelled"),
        ("s.x", "pending"),
    ]
    reasons = [r.data["reason"] for r in second.records if r.kind == "run.suppressed"]
    assert reasons == [HELD_ROOT, "storm: default already paged for this storm"]
    update = second.runs[2]
    assert (update.parent_id, update.incident_id) == (post.id, RATE + 1)
    assert update.not_before == NOW + POLICY.storm_every and update.scheduled_at == NOW
    assert states(third)[-1] == ("pagerduty.trigger", "cancelled")  # no new update
    assert third.refreshed[update.id]["incidents"] == 3
    storm = shared.storms.get("security-alerts")
    assert storm is not None and storm.incidents == 3 and storm.paged == ("default",)
    assert storm.quiet_at == NOW + POLICY.storm_quiet
    assert storm.summary_incident_id == RATE + 1


def test_a_page_to_another_routing_key_still_goes_once() -> None:
    shared = storm_batch()
    items = [opened(n) for n in range(1, RATE + 2)]
    items += [opened(n, routing_key="env:PAYMENTS") for n in range(RATE + 2, RATE + 4)]
    run_all(items, shared)
    assert states(items[-2])[1] == ("pagerduty.trigger", "pending")
    assert states(items[-1])[1] == ("pagerduty.trigger", "cancelled")


def test_channels_are_counted_apart_and_rate_zero_is_off() -> None:
    shared = storm_batch()
    items = [opened(n, channel=f"#team-{n}") for n in range(1, 2 * RATE)]
    run_all(items, shared)
    assert all(s.started_at is None for s in shared.storms.all().values())
    off = storm_batch()
    off.policy = StreamPolicy(storm_rate=0)
    items = [opened(n) for n in range(1, 2 * RATE)]
    for current in items:
        assert stage()(current, off) is True
    assert off.storms.all() == {} and all(c.runs[0].state == "pending" for c in items)


def test_a_recovery_of_a_storm_incident_updates_the_summary() -> None:
    shared = storm_batch()
    items = [opened(n) for n in range(1, RATE + 2)]
    run_all(items, shared)
    storm = shared.storms.get("security-alerts")
    assert storm is not None and storm.open_ids == (RATE + 1,)
    shared.storms.planned.clear()  # written, and the update went: a new one is planned
    shared.storms.keep(replace(storm, pending_run_id=None))
    known = items[-1].incident
    assert known is not None
    recovery = item(alert("Recovered", monitor_id=str(1000 + RATE + 1)), 50)
    recovery.correlation = Correlation(known, known.group_key, known.key)
    recovery.incident = replace(known, status="resolved")
    assert stage()(recovery, shared) is True
    [update] = recovery.runs
    assert (update.params["open"], update.params["incidents"]) == (0, 1)
    assert recovery.storms["security-alerts"].open_ids == ()


def storm_quiet(channel: str, date_shift: timedelta = timedelta(0)) -> EventItem:
    source = replace(alert(), cause=STORM_QUIET, date=NOW + POLICY.storm_quiet + date_shift)
    event = StoredEvent(
        id=77,
        alert=None,
        payload=orjson.dumps({"timer": STORM_QUIET, "channel": channel}).decode(),
        received_at=NOW,
        deliveries=1,
        attempts=0,
    )
    return EventItem(event, source)


def stormy() -> Batch:
    shared = storm_batch()
    run_all([opened(n) for n in range(1, RATE + 3)], shared)
    return shared


def test_the_quiet_timer_ends_the_storm_with_a_last_update() -> None:
    shared = stormy()
    storm = shared.storms.get("security-alerts")
    assert storm is not None and storm.summary_run_id is not None
    ending = storm_quiet("security-alerts")
    assert StormEndStage(MAX_AGE, TALK)(ending, shared) is False  # no other stage sees it
    [last] = ending.runs
    assert last.params["ended_at"] is not None and last.parent_id == storm.summary_run_id
    assert storm.next_update_at is not None and last.not_before >= storm.next_update_at
    [ended] = [r for r in ending.records if r.kind == "storm.ended"]
    assert (ended.data["incidents"], ended.data["pages"]) == (2, 1)
    assert ending.outcome is not None and ending.outcome["storm"] == "ended"
    calm = ending.storms["security-alerts"]
    assert (calm.started_at, calm.quiet_at, calm.incidents, calm.paged) == (None, None, 0, ())
    assert calm.opens == storm.opens  # the rate window still counts


def test_a_quiet_timer_whose_storm_went_on_or_ended_is_ignored() -> None:
    shared = stormy()
    early = storm_quiet("security-alerts", date_shift=-timedelta(seconds=1))
    assert StormEndStage(MAX_AGE, TALK)(early, shared) is False
    assert early.runs == [] and early.outcome is not None
    assert early.outcome["ignored"] == "the channel was busy again since: the storm goes on"
    unknown = storm_quiet("elsewhere")
    assert StormEndStage(MAX_AGE, TALK)(unknown, shared) is False
    assert [r.kind for r in unknown.records] == ["event.ignored"]


def test_other_events_pass_the_end_stage_untouched() -> None:
    current = opened(1)
    before = list(current.runs)
    assert StormEndStage(MAX_AGE, TALK)(current, storm_batch()) is True
    assert current.runs == before and current.records == []


def test_a_held_back_root_takes_what_was_hung_on_it() -> None:
    shared = storm_batch()
    items = [opened(n) for n in range(1, RATE + 2)]
    last = items[-1]
    note = replace(planned(999, RATE + 1, "slack.reply"), parent_id=last.runs[0].id)
    last.runs.append(note)
    run_all(items, shared)
    assert next(r for r in last.runs if r.id == 999).state == RunState.CANCELLED
