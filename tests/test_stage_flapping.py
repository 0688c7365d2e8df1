"""Flap stage: state changes counted on the group by Datadog's dates, flapping recognised,
recoveries held, follow-ups quieted, and the calm timer's event ending it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from responder.domain import Transition
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.flapping import FlapStage
from responder.pipeline.stages import Batch, EventItem
from responder.records import GroupRecord
from tests.stagekit import NOW, alert, batch, incident, item, load, registry, run

GROUP = "148275622|host:web-1"


def group(state: str = "Triggered", *, changes: int = 0, flapping: bool = False) -> GroupRecord:
    moments = tuple(NOW - timedelta(minutes=10 - n) for n in range(changes))
    return GroupRecord(
        key=GROUP,
        state=state,
        changed_at=moments[-1] if moments else NOW - timedelta(minutes=30),
        changes=moments,
        flapping_since=NOW - timedelta(minutes=5) if flapping else None,
        quiet_at=NOW + timedelta(minutes=10) if flapping else None,
        incident_id=7,
        updated_at=NOW,
    )


def flap(current: EventItem, shared: Batch) -> EventItem:
    assert CorrelateStage()(current, shared) is True
    assert FlapStage()(current, shared) is True
    return current


def with_group(shared: Batch, known: GroupRecord) -> Batch:
    shared.incidents.groups[known.key] = known
    return shared


def test_a_first_state_change_starts_the_group() -> None:
    current = flap(item(alert()), batch())
    assert current.group is not None
    assert (current.group.key, current.group.state, current.group.changes) == (
        GROUP,
        "Triggered",
        (NOW,),
    )
    assert current.quiet is None and current.hold is None and current.notes == []


def test_a_repeat_is_no_state_change() -> None:
    shared = with_group(batch(incidents=[incident()]), group())
    current = flap(item(alert("Renotify")), shared)
    assert current.group is None  # nothing to write back


def test_more_changes_than_the_rule_allows_start_flapping_and_hold_the_recovery() -> None:
    known = incident(incident_id=7)
    shared = with_group(batch(incidents=[known]), group("Triggered", changes=3))
    current = flap(item(alert("Recovered")), shared)
    assert current.group is not None
    assert current.group.flapping_since == NOW
    assert current.group.quiet_at == NOW + timedelta(minutes=15)
    assert current.hold is not None and "flapping" in current.hold
    assert current.quiet is not None
    [record] = current.records
    assert (record.kind, record.data["changes"]) == ("incident.flapping", 4)
    assert len(current.notes) == 1 and current.notes[0].startswith("🔁 Flapping: 4 state changes")


def test_changes_older_than_the_window_do_not_count() -> None:
    old = replace(group("Triggered"), changes=tuple(NOW - timedelta(hours=h) for h in (3, 2, 1)))
    shared = with_group(batch(incidents=[incident(incident_id=7)]), old)
    current = flap(item(alert("Recovered")), shared)
    assert current.group is not None
    assert current.group.changes == (NOW,)
    assert current.group.flapping_since is None and current.hold is None


def test_an_older_state_change_than_the_one_applied_changes_nothing() -> None:
    newer = replace(group("Recovered", changes=1), changed_at=NOW + timedelta(minutes=1))
    shared = with_group(batch(incidents=[incident(incident_id=7)]), newer)
    current = item(alert("Triggered"))
    assert CorrelateStage()(current, shared) is False  # recorded as late, changes nothing
    assert current.outcome is not None
    assert current.outcome["late"].startswith("older than the Recovered of")
    assert current.group is None


def test_a_new_cycle_of_a_flapping_group_joins_its_incident() -> None:
    held = incident(incident_id=7)
    shared = with_group(batch(incidents=[held]), group("Recovered", changes=4, flapping=True))
    current = flap(item(alert("Triggered", cycle="another-cycle")), shared)
    assert current.correlation is not None
    assert current.correlation.incident == held
    assert current.correlation.joined == "the monitor is flapping"
    assert current.quiet is not None and current.notes == []  # told once, when it started


def test_the_calm_timer_ends_flapping_and_says_so() -> None:
    held = incident(incident_id=7)
    calm = group("Recovered", changes=4, flapping=True)
    assert calm.quiet_at is not None
    shared = with_group(batch(incidents=[held]), calm)
    timer = replace(alert("Recovered", date=calm.quiet_at), cause="flap-quiet")
    current = flap(item(timer), shared)
    assert current.group is not None
    assert (current.group.flapping_since, current.group.quiet_at, current.group.changes) == (
        None,
        None,
        (),
    )
    assert current.notes and current.notes[0].startswith("✅ No longer flapping: recovered")
    assert current.hold is None  # the recovery now resolves


def test_a_calm_timer_made_stale_by_a_change_is_ignored() -> None:
    moved = replace(group("Triggered", changes=4, flapping=True), quiet_at=NOW + timedelta(hours=1))
    shared = with_group(batch(incidents=[incident(incident_id=7)]), moved)
    timer = replace(alert("Triggered", date=NOW), cause="flap-quiet")
    current = item(timer)
    assert CorrelateStage()(current, shared) is False
    assert current.outcome is not None
    assert current.outcome["ignored"] == "the monitor changed state since: it is not calm yet"


def test_a_playbook_can_turn_flap_control_off(tmp_path: Path) -> None:
    [calm] = load(
        tmp_path / "pb", registry(), "name: calm\nflapping: false\nactions:\n  - test.call: {}\n"
    )
    known = incident(incident_id=7)
    shared = with_group(
        batch(incidents=[known], playbooks=[calm], earlier={7: [run(playbook="calm")]}),
        group("Triggered", changes=3),
    )
    current = flap(item(alert("Recovered")), shared)
    assert current.group is not None and current.group.flapping_since is None
    assert current.hold is None
    assert Transition.RECOVERED.value == current.group.state
