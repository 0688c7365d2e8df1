"""Silence stage: what a silence or maintenance window does to one event, and how the match
and correlate stages treat what it decided. No database here."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from responder.domain import IncidentStatus, Transition
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.lifecycle import LifecycleStage
from responder.pipeline.match import MatchStage
from responder.pipeline.silence import UNSILENCED, SilenceStage
from responder.pipeline.silencebook import SilenceBook
from responder.pipeline.stages import Batch, EventItem
from responder.playbooks.maintenance import load_maintenance
from responder.records import IncidentRecord, SilenceMatchers, SilenceRecord
from tests.stagekit import NOW, alert, batch, incident, item, load, registry

PLAYBOOK = """
name: notify
actions:
  - slack.post: {channel: "#alerts"}
"""
HOUR = timedelta(hours=1)


def silenced(
    silence_id: int = 3,
    *,
    tags: dict[str, tuple[str, ...]] | None = None,
    starts: datetime = NOW - HOUR,
    ends: datetime = NOW + HOUR,
    expired: datetime | None = None,
) -> SilenceRecord:
    return SilenceRecord(
        id=silence_id,
        matchers=SilenceMatchers(tags=tags if tags is not None else {"service": ("check*",)}),
        starts_at=starts,
        ends_at=ends,
        reason="deploy",
        author="alice",
        created_at=starts,
        expired_at=expired,
    )


def with_silences(shared: Batch, *found: SilenceRecord) -> Batch:
    shared.silences = SilenceBook(lambda: found)
    return shared


def through(current: EventItem, shared: Batch, stage: SilenceStage | None = None) -> EventItem:
    """Correlate, lifecycle, silence, match: as the chain runs them."""
    for step in (CorrelateStage(), LifecycleStage(), stage or SilenceStage(), MatchStage()):
        if not step(current, shared):
            break
    return current


def kinds(current: EventItem) -> list[str]:
    return [record.kind for record in current.records]


def test_a_covered_trigger_opens_its_incident_held_and_selects_nothing_new(
    tmp_path: Path,
) -> None:
    shared = with_silences(batch(playbooks=load(tmp_path, registry(), PLAYBOOK)), silenced())
    current = through(item(alert()), shared)
    assert current.opened and current.incident is not None
    assert current.incident.silenced_until == NOW + HOUR
    assert current.incident.silence_id == 3
    assert [p.name for p in current.matched] == ["notify"]
    assert current.fresh == []
    assert current.quiet is not None and "silence 3" in current.quiet
    [record] = [r for r in current.records if r.kind == "event.silenced"]
    assert record.data["reason"] == "deploy"
    assert record.data["until"] == NOW + HOUR
    assert record.incident_id == current.incident.id


def test_a_silence_not_matching_or_not_running_lets_the_playbooks_run(tmp_path: Path) -> None:
    playbooks = load(tmp_path, registry(), PLAYBOOK)
    for other in (
        silenced(tags={"service": ("pay*",)}),
        silenced(starts=NOW + timedelta(minutes=1)),
        silenced(expired=NOW - timedelta(seconds=1)),
        silenced(ends=NOW),  # the end is not covered
    ):
        current = through(item(alert()), with_silences(batch(playbooks=playbooks), other))
        assert [p.name for p in current.fresh] == ["notify"], other
        assert "event.silenced" not in kinds(current)


def test_a_recovery_under_a_silence_resolves_and_lets_go(tmp_path: Path) -> None:
    held = incident(silenced_until=NOW + HOUR, silence_id=3)
    shared = with_silences(batch(incidents=[held]), silenced())
    current = through(item(alert("Recovered")), shared)
    assert current.incident is not None
    assert current.incident.status == IncidentStatus.RESOLVED
    assert (current.incident.silenced_until, current.incident.silence_id) == (None, None)
    assert current.quiet is None  # what ran before the silence is closed
    assert "event.silenced" in kinds(current)


def test_the_end_of_a_silence_releases_the_held_playbooks(tmp_path: Path) -> None:
    playbooks = load(tmp_path, registry(), PLAYBOOK)
    held = incident(silenced_until=NOW, silence_id=3)
    own = replace(alert(), cause=UNSILENCED, date=NOW)
    shared = with_silences(batch(incidents=[held], playbooks=playbooks), silenced(ends=NOW))
    current = through(item(own, 2), shared)
    assert current.released is not None
    assert [p.name for p in current.fresh] == ["notify"]
    assert current.incident is not None and current.incident.silenced_until is None
    assert "incident.unsilenced" in kinds(current)


def test_a_repeat_after_the_silence_ended_early_releases_them_too(tmp_path: Path) -> None:
    playbooks = load(tmp_path, registry(), PLAYBOOK)
    held = incident(silenced_until=NOW + HOUR, silence_id=3)
    gone = silenced(expired=NOW - timedelta(minutes=1))
    shared = with_silences(batch(incidents=[held], playbooks=playbooks), gone)
    current = through(item(alert("Renotify"), 2), shared)
    assert current.released is not None
    assert [p.name for p in current.fresh] == ["notify"]


def test_the_end_still_covered_by_another_silence_holds_on(tmp_path: Path) -> None:
    held = incident(silenced_until=NOW, silence_id=3)
    own = replace(alert(), cause=UNSILENCED, date=NOW)
    later = silenced(4, ends=NOW + 2 * HOUR)
    shared = with_silences(batch(incidents=[held]), silenced(ends=NOW), later)
    current = through(item(own, 2), shared)
    assert current.incident is not None
    assert (current.incident.silenced_until, current.incident.silence_id) == (NOW + 2 * HOUR, 4)
    assert current.released is None and current.fresh == []


def test_the_end_of_a_silence_that_was_extended_is_ignored() -> None:
    held = incident(silenced_until=NOW + HOUR, silence_id=4)
    own = replace(alert(), cause=UNSILENCED, date=NOW)
    shared = with_silences(batch(incidents=[held]), silenced(4, ends=NOW + HOUR))
    current = item(own, 2)
    assert CorrelateStage()(current, shared) is False
    assert kinds(current) == ["event.ignored"]
    # ...but not when the silence was expired before its end: the event is its end.
    expired = with_silences(
        batch(incidents=[held]), silenced(4, ends=NOW + HOUR, expired=NOW - timedelta(seconds=1))
    )
    assert CorrelateStage()(item(own, 3), expired) is True


def test_other_timers_events_are_not_judged_by_silences() -> None:
    held: IncidentRecord = incident(silenced_until=NOW + HOUR, silence_id=3)
    stale = replace(alert(), cause="stale", transition=Transition.RECOVERED, date=NOW)
    shared = with_silences(batch(incidents=[held]), silenced())
    current = item(stale, 2)
    current.incident = held
    assert SilenceStage()(current, shared) is True
    assert current.silenced is None


def test_a_maintenance_window_silences_like_a_silence_and_names_itself(tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    # NOW is a Wednesday, 12:00 UTC.
    (folder / "maintenance.yaml").write_text(
        "maintenance:\n"
        "  - name: midweek\n"
        "    matchers: {tags: {service: 'checkout*'}}\n"
        "    every: wednesday\n"
        '    from: "11:30"\n'
        '    to: "13:00"\n'
    )
    windows = load_maintenance(folder)
    stage = SilenceStage(lambda: windows)
    current = through(item(alert()), batch(), stage)
    [record] = [r for r in current.records if r.kind == "event.silenced"]
    assert record.data["window"] == "midweek"
    assert current.incident is not None
    assert current.incident.silenced_until == NOW + timedelta(hours=1)
    assert current.incident.silence_id is None
    thursday = through(item(alert()), batch(now=NOW + timedelta(days=1)), stage)
    assert thursday.silenced is None
