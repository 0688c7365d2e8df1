"""Event processing that scales out: the partitions of the sequencer.

Everything that can touch one incident is dealt into one partition (a monitor + scope's
cycles; every member of a grouped incident), and on PostgreSQL each batch holds the
partitions it took. Several workers then process events at once, each its share, while
each incident's events keep their order and no action is planned or made twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient

from responder.domain import Alert, group_key
from responder.intake.datadog import normalise
from responder.main import Service, build_registry, build_worker
from responder.metrics import Metrics
from responder.pipeline.partitions import Dealer
from responder.pipeline.worker import Worker
from responder.playbooks.loader import load_playbooks
from responder.settings import Settings
from responder.store import audit, db, events
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.harness import REPO, intake_row, post, running, sample
from tests.stagekit import load
from tests.vendors import PAYMENTS_KEY, Vendors, vendors

SOLO = 45  # fraud monitors of services of their own: an incident each
MEMBERS = 8  # monitors of one service, grouped by the security playbook into one incident
WORKERS = 3
CHANNEL = "C0SECURITY"
REGISTRY = build_registry(Settings())  # the service's own actions, no credentials needed
POSTGRES = pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        yield all_three


def delivery(
    samples_dir: Path, number: int, transition: str, service: str, offset_ms: int
) -> dict[str, Any]:
    """The fraud sample as monitor `number` of `service`, one delivery of its cycle."""
    body = sample(samples_dir, f"fraud-detection-down.{transition}")
    step = {"triggered": 0, "renotify": 1, "recovered": 2}[transition]
    body["id"] = f"66{number:05d}{step}"
    body["alert"].update(
        id=str(300000000 + number),
        scope=f"host:fraud-{number:03d}",
        cycle_key=f"5516548234{number:09d}",
    )
    body["tags"] = body["tags"].replace("service:fraud", f"service:{service}")
    base = int(sample(samples_dir, "fraud-detection-down.triggered")["date"])
    body["date"] = body["last_updated"] = str(base + offset_ms + number * 100)
    return body


def stream(samples_dir: Path) -> list[dict[str, Any]]:
    """Every monitor's trigger, then a renotify from the solo ones, then every recovery:
    in arrival order, as Datadog would send them over ten minutes."""
    solo = [(n, f"fraud-{n:03d}") for n in range(SOLO)]
    grouped = [(SOLO + n, "fraud-shared") for n in range(MEMBERS)]
    out = [delivery(samples_dir, n, "triggered", s, 0) for n, s in solo + grouped]
    out += [delivery(samples_dir, n, "renotify", s, 300_000) for n, s in solo]
    out += [delivery(samples_dir, n, "recovered", s, 600_000) for n, s in solo + grouped]
    return out


def test_a_grouped_incident_and_each_monitor_keep_one_partition(samples_dir: Path) -> None:
    playbooks = load_playbooks(REPO / "playbooks", REGISTRY.params_models())
    deal = Dealer(lambda: playbooks)
    bodies = stream(samples_dir)
    by_monitor: dict[str, set[int]] = {}
    for body in bodies:
        by_monitor.setdefault(body["alert"]["id"], set()).add(deal(_alert(body)))
    # Each monitor's trigger, renotify and recovery share a partition...
    assert all(len(parts) == 1 for parts in by_monitor.values())
    # ...and every member of the grouped incident shares the same one, whatever its host.
    members = {str(300000000 + SOLO + n) for n in range(MEMBERS)}
    assert len({p for m in members for p in by_monitor[m]}) == 1
    # The solo incidents spread over the partitions, so workers have shares to take.
    solo = {p for m, parts in by_monitor.items() if m not in members for p in parts}
    assert len(solo) >= events.PARTITIONS // 2


def playbook(name: str, team: str) -> str:
    """A playbook of `team`'s alerts that does not group."""
    post_step = f"  - slack.post: {{channel: '#{team}-alerts', text: x}}\n"
    return f"name: {name}\nmatch:\n  tags: {{team: {team}}}\nactions:\n{post_step}"


def test_without_common_grouping_tags_the_matcher_deals(tmp_path: Path, samples_dir: Path) -> None:
    by_service = (
        "name: by-service\nmatch:\n  tags: {team: security}\ngroup_by: [service]\n"
        "actions:\n  - slack.post: {channel: '#security-alerts', text: x}\n"
    )
    by_env = (
        "name: by-env\nmatch:\n  tags: {team: payments}\ngroup_by: [env]\n"
        "actions:\n  - slack.post: {channel: '#payments-alerts', text: x}\n"
    )
    ungrouped = playbook("plain", "platform")
    playbooks = load(tmp_path, REGISTRY, by_service, by_env, ungrouped)
    deal = Dealer(lambda: playbooks)
    members = [delivery(samples_dir, n, "triggered", "fraud-shared", 0) for n in range(12)]
    recoveries = [delivery(samples_dir, n, "recovered", "fraud-shared", 600_000) for n in range(12)]
    keys = {deal.key(_alert(body)) for body in members + recoveries}
    assert keys == {"by-service|service=fraud-shared"}  # the grouping key, recoveries too
    # Not grouped by any playbook: by monitor + scope, so its hosts spread out.
    platform = [_alert(body) for body in members]
    platform = [replace(a, tags=("team:platform",), tag_map={"team": "platform"}) for a in platform]
    assert {deal.key(a) for a in platform} == {group_key(a) for a in platform}
    assert len({deal(a) for a in platform}) > 1


def test_without_grouping_each_monitor_and_scope_is_dealt_apart(
    tmp_path: Path, samples_dir: Path
) -> None:
    plain = playbook("plain", "security")
    playbooks = load(tmp_path, REGISTRY, plain)
    deal = Dealer(lambda: playbooks)
    alerts = [_alert(delivery(samples_dir, n, "triggered", "fraud-shared", 0)) for n in range(20)]
    assert [deal.key(a) for a in alerts] == [group_key(a) for a in alerts]


@POSTGRES
def test_a_partition_held_by_one_batch_is_not_read_by_another(migrated_url: str) -> None:
    engine = db.create_engine(migrated_url)
    try:
        with engine.begin() as conn:
            for i in range(6):
                conn.execute(
                    sa.insert(AlertEvent.__table__),  # type: ignore[attr-defined]
                    {**intake_row(f"held-{i}", str(i)), "part": i % 2},
                )
        first, second = engine.connect(), engine.connect()
        with first.begin(), second.begin():
            taken = events.claim(first, limit=2, start=0)
            assert len(taken) == 2  # the oldest partition's two oldest events
            parts_first = _parts(first, [e.id for e in taken])
            assert len(parts_first) == 1
            other = events.claim(second, limit=10, start=0)
            assert other, "the other partition was free"
            assert _parts(second, [e.id for e in other]).isdisjoint(parts_first)
            # The event read first is not the other batch's to set aside either.
            assert events.claim_one(second, taken[0].id) is None
        first.close()
        second.close()
    finally:
        engine.dispose()


@POSTGRES
def test_several_workers_share_the_stream_in_order_and_act_once(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    settings = fakes.settings(
        migrated_url,
        RESPONDER_STORM_RATE="0",
        RESPONDER_SLACK_CHANNEL_INTERVAL="0",
        RESPONDER_POLL_SECONDS="0.02",
    )
    bodies = stream(samples_dir)
    with running(settings) as (service, client):  # its own worker is never stepped
        shares = _with_workers(service, client, bodies)
        assert sum(shares) == len(bodies)
        assert all(share > 0 for share in shares), shares

        with Session(service.engine) as session:
            incidents = session.exec(select(Incident)).all()
            runs = session.exec(select(ActionRun)).all()
            received = session.exec(
                select(AuditEntry).where(AuditEntry.kind == "event.received")
            ).all()
            event_incident = {e.id: e.incident_id for e in session.exec(select(AlertEvent)).all()}
        assert len(incidents) == SOLO + 1
        assert {i.status for i in incidents} == {"resolved"}
        [grouped] = [i for i in incidents if "fraud-shared" in (i.grouping_key or "")]
        assert grouped.members == MEMBERS
        # Order per incident: its events went through the chain in the order they came.
        seen: dict[int, list[int]] = {}
        for entry in sorted(received, key=lambda e: e.seq):
            assert entry.event_id is not None
            incident_id = event_incident[entry.event_id]
            assert incident_id is not None
            seen.setdefault(incident_id, []).append(entry.event_id)
        assert all(ids == sorted(ids) for ids in seen.values())
        assert grouped.id is not None
        assert len(seen[grouped.id]) == 2 * MEMBERS
        # Nothing planned twice, nothing made twice.
        assert "failed" not in {r.state for r in runs}
        assert fakes.pagerduty.triggers() == SOLO + 1
        assert fakes.pagerduty.open_alerts() == []
        assert len(fakes.datadog.incidents()) == SOLO + 1
        assert {i.state for i in fakes.datadog.incidents()} == {"resolved"}
        assert len(fakes.slack.root_messages(CHANNEL)) == SOLO + 1
        with service.engine.connect() as conn:
            report = audit.verify(conn)
        assert report.ok, report


@POSTGRES
def test_several_workers_share_one_storm_book(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    rate = 3
    settings = fakes.settings(
        migrated_url,
        RESPONDER_STORM_RATE=str(rate),
        RESPONDER_SLACK_CHANNEL_INTERVAL="0",
        RESPONDER_POLL_SECONDS="0.02",
    )
    triggers = [delivery(samples_dir, n, "triggered", f"fraud-{n:03d}", 0) for n in range(SOLO)]
    with running(settings) as (service, client):
        shares = _with_workers(service, client, triggers)
        assert sum(shares) == SOLO
        with Session(service.engine) as session:
            runs = session.exec(select(ActionRun)).all()
            started = session.exec(select(AuditEntry).where(AuditEntry.kind == "storm.started"))
            assert len(started.all()) == 1
    # Counted across the workers as by one: the roots before the storm, then one summary;
    # the first page of the storm, then none; every other root and page held back.
    assert len(fakes.slack.root_messages(CHANNEL)) == rate + 1
    assert fakes.pagerduty.triggers() == rate + 1
    held = [r for r in runs if r.state == "cancelled" and r.action == "slack.post"]
    assert len(held) == SOLO - rate
    assert len(fakes.datadog.incidents()) == SOLO


def _with_workers(service: Service, client: TestClient, bodies: list[dict[str, Any]]) -> list[int]:
    """Deliver `bodies`, then let WORKERS workers process them at once; each one's share."""
    for body in bodies:
        response = post(client, body)
        assert response.status_code == 202, response.text
    meters = [Metrics() for _ in range(WORKERS)]
    workers = [_worker(service, metrics) for metrics in meters]
    for worker in workers:
        worker.start()
    try:
        _wait_until_settled(service.engine, timeout=120)
    finally:
        for worker in workers:
            worker.stop()
    return [_processed(metrics) for metrics in meters]


def _worker(service: Service, metrics: Metrics) -> Worker:
    """Another worker process's pipeline, on its own connections."""
    engine = db.create_engine(service.settings.database_url)
    return build_worker(
        service.settings, engine, service.registry, service.redactor, metrics, service.playbooks
    )


def _processed(metrics: Metrics) -> int:
    value = metrics.registry.get_sample_value(
        "responder_events_processed_total", {"result": "processed"}
    )
    return int(value or 0)


def _wait_until_settled(engine: sa.Engine, timeout: float) -> None:
    runs: sa.Table = ActionRun.__table__  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            waiting = events.count_waiting(conn)
            open_runs = conn.execute(
                sa.select(sa.func.count())
                .select_from(runs)
                .where(runs.c.state.in_(["pending", "running"]))
            ).scalar_one()
        if not waiting and not open_runs:
            return
        threading.Event().wait(0.2)
    raise AssertionError(f"not settled: {waiting} events waiting, {open_runs} runs open")


def _alert(body: dict[str, Any]) -> Alert:
    return normalise(body, datetime.now(UTC))


def _parts(conn: sa.Connection, ids: list[int]) -> set[int]:
    table: sa.Table = AlertEvent.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(table.c.part).where(table.c.id.in_(ids))).scalars()
    return set(rows)
