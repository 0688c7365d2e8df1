"""Silences through the whole service: a silenced alert is stored, correlated and audited
and calls no vendor; when the silence ends while the incident still fires, its playbook runs
then, once, across restarts and workers. The API's and the CLI's round trips."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from responder.cli import app
from responder.main import Service, build_worker
from responder.metrics import Metrics
from responder.pipeline.answers import UnknownIncident
from responder.pipeline.silencer import SilenceDesk
from responder.pipeline.timers import TimerSweep
from responder.pipeline.worker import Worker
from responder.store import audit, db
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.harness import API_TOKEN, post, running, settings_for, sweep
from tests.stagekit import NOW, payload
from tests.vendors import Vendors, settle, vendors

PLAYBOOK = """
name: web-errors
match:
  tags: {service: "web*"}
actions:
  - slack.post:
      channel: "#incidents"
      text: "{{ alert.status }}"
  - pagerduty.trigger:
      severity: error
"""
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
POSTGRES = pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True)


@pytest.fixture
def fakes() -> Iterator[Vendors]:
    with vendors() as all_three:
        yield all_three


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "web.yaml").write_text(PLAYBOOK)
    return folder


def web_alert(
    transition: str = "Triggered", *, host: str = "web-1", minutes: int = 0, number: int = 1
) -> dict[str, Any]:
    return payload(
        transition,
        source_id=f"77000{number:04d}{minutes:03d}",
        monitor_id="555",
        name="Web errors",
        scope=f"host:{host}",
        cycle=f"cycle-{host}",
        tags=f"env:prod,service:web-api,host:{host}",
        date=NOW + timedelta(minutes=minutes),
    )


def silence(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {
        "matchers": {"tags": {"service": "web*"}},
        "duration": "1h",
        "reason": "deploying web",
        "author": "alice",
        **fields,
    }
    response = client.post("/api/silences", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def deliver(service: Service, client: TestClient, body: dict[str, Any]) -> None:
    assert post(client, body).status_code == 202
    settle(service)


def audit_of(service: Service, kind: str) -> list[dict[str, Any]]:
    """The data of `kind` records, oldest first."""
    with Session(service.engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.kind == kind)).all()
        return [json.loads(row.data) for row in sorted(rows, key=lambda row: row.seq)]


def incidents_of(service: Service) -> list[Incident]:
    with Session(service.engine) as session:
        return list(session.exec(select(Incident).order_by(Incident.id)).all())  # type: ignore[arg-type]


def vendors_told(fakes: Vendors) -> tuple[int, int]:
    """Slack root posts and PagerDuty triggers so far."""
    return len(fakes.slack.root_messages("C0INCIDENTS")), fakes.pagerduty.triggers()


def test_a_silenced_alert_is_stored_correlated_and_audited_and_calls_nobody(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    with running(fakes.settings(migrated_url, playbooks)) as (service, client):
        made = silence(client)
        deliver(service, client, web_alert())
        deliver(service, client, web_alert("Renotify", minutes=30))
        [incident] = incidents_of(service)
        assert (incident.status, incident.event_count) == ("triggered", 2)
        assert incident.silence_id == made["id"]
        assert incident.silenced_until == datetime.fromisoformat(made["ends_at"])
        silenced = audit_of(service, "event.silenced")
        assert len(silenced) == 2
        assert silenced[0]["silence_id"] == made["id"]
        assert silenced[0]["reason"] == "deploying web"
        assert silenced[0]["author"] == "alice"
        matched = audit_of(service, "playbooks.matched")
        assert matched[0]["matched"][0]["name"] == "web-errors"
        assert matched[0]["new"] == []
        assert matched[0]["silenced"] == f"silence {made['id']}"
        with service.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM action_run")).scalar_one() == 0
            assert audit.verify(conn).ok
        created = audit_of(service, "silence.created")
        assert created[0]["matchers"] == {"tags": {"service": ["web*"]}}
    assert vendors_told(fakes) == (0, 0)
    assert fakes.slack.calls_to("chat.postMessage") == []
    assert fakes.pagerduty.calls == []


def test_an_alert_the_silence_does_not_match_runs_as_usual(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    with running(fakes.settings(migrated_url, playbooks)) as (service, client):
        silence(client, matchers={"tags": {"service": "web*"}, "scope": "host:web-9"})
        deliver(service, client, web_alert(host="web-1"))
        assert audit_of(service, "event.silenced") == []
    assert vendors_told(fakes) == (1, 1)


def test_expired_early_while_firing_the_playbook_runs_once_then_across_restarts(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    settings = fakes.settings(migrated_url, playbooks)
    with running(settings) as (service, client):
        made = silence(client, duration="3h")
        deliver(service, client, web_alert())
    assert vendors_told(fakes) == (0, 0)

    with running(settings) as (service, client):  # a restart
        expired = client.post(
            f"/api/silences/{made['id']}/expire", json={"author": "bob"}, headers=AUTH
        )
        assert expired.status_code == 200, expired.text
        assert (expired.json()["state"], expired.json()["expired_by"]) == ("expired", "bob")
    assert vendors_told(fakes) == (0, 0)  # the playbook waits for the timer

    with running(settings) as (service, client):  # another restart: the timer is durable
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert sweep(service, later) == 1
        assert sweep(service, later) == 0  # another worker sweeping: stored once
        settle(service)
        [incident] = incidents_of(service)
        assert (incident.silenced_until, incident.silence_id) == (None, None)
        [released] = audit_of(service, "incident.unsilenced")
        assert released["silence_id"] == made["id"]
        matched = audit_of(service, "playbooks.matched")[-1]
        assert matched["new"] == ["web-errors"]
    assert vendors_told(fakes) == (1, 1)
    [root] = fakes.slack.root_messages("C0INCIDENTS")
    assert "web-1" in json.dumps(root.blocks or []) + (root.text or "")

    with running(settings) as (service, client):
        assert sweep(service, datetime.now(UTC) + timedelta(hours=4)) == 0  # nothing left
        deliver(service, client, web_alert("Renotify", minutes=30))
        deliver(service, client, web_alert("Recovered", minutes=40))
        [incident] = incidents_of(service)
        assert incident.status == "resolved"
    assert fakes.pagerduty.triggers() == 1  # once, not again for the repeat
    assert fakes.pagerduty.open_alerts() == []  # and the recovery resolved it


def test_a_silence_running_out_while_firing_runs_the_playbook_then(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    settings = fakes.settings(migrated_url, playbooks)
    with running(settings) as (service, client):
        made = silence(client, duration="1h")
        deliver(service, client, web_alert())
    with running(settings) as (service, client):
        ends = datetime.fromisoformat(made["ends_at"])
        assert sweep(service, ends - timedelta(seconds=1)) == 0  # not over yet
        assert sweep(service, ends) == 1
        settle(service)
        [incident] = incidents_of(service)
        assert incident.silenced_until is None
    assert vendors_told(fakes) == (1, 1)


def test_a_second_silence_still_covering_at_the_end_holds_the_playbook_back(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    settings = fakes.settings(migrated_url, playbooks)
    with running(settings) as (service, client):
        first = silence(client, duration="1h")
        second = silence(client, matchers={"monitor_id": 555}, duration="2h")
        deliver(service, client, web_alert())
        [incident] = incidents_of(service)
        assert incident.silence_id == second["id"]  # the one ending last holds it
        client.post(f"/api/silences/{second['id']}/expire", headers=AUTH)
        # The second is over, the first still covers: held again until the first ends.
        assert sweep(service, datetime.now(UTC) + timedelta(seconds=1)) == 1
        settle(service)
        [incident] = incidents_of(service)
        assert incident.silence_id == first["id"]
        assert audit_of(service, "event.silenced")[-1]["note"].startswith("still silenced")
        assert vendors_told(fakes) == (0, 0)
        assert sweep(service, datetime.fromisoformat(first["ends_at"])) == 1
        settle(service)
    assert vendors_told(fakes) == (1, 1)


def test_a_recovery_during_the_silence_resolves_the_incident_quietly(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    settings = fakes.settings(migrated_url, playbooks)
    with running(settings) as (service, client):
        made = silence(client, duration="1h")
        deliver(service, client, web_alert())
        deliver(service, client, web_alert("Recovered", minutes=5))
        [incident] = incidents_of(service)
        assert (incident.status, incident.silenced_until) == ("resolved", None)
    with running(settings) as (service, client):
        assert sweep(service, datetime.fromisoformat(made["ends_at"])) == 0
        settle(service)
    assert vendors_told(fakes) == (0, 0)
    assert fakes.pagerduty.calls == []


def test_the_slack_button_silences_the_incidents_monitor_and_scope(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    with running(fakes.settings(migrated_url, playbooks)) as (service, client):
        desk = SilenceDesk(service.engine, service.redactor)
        with pytest.raises(UnknownIncident):
            desk.silence_incident(999, author="carol", duration=timedelta(hours=1), reason="x")
        silence(client, matchers={"scope": "host:web-1"})  # so web-1 opens without a page
        deliver(service, client, web_alert(host="web-1"))
        [incident] = incidents_of(service)
        assert incident.id is not None
        made = desk.silence_incident(
            incident.id, author="carol (slack)", duration=timedelta(hours=1), reason="noisy"
        )
        listed = client.get("/api/silences", headers=AUTH).json()["items"]
        mine = next(item for item in listed if item["id"] == made)
        assert mine["matchers"] == {"monitor_id": ["555"], "scope": ["host:web-1"]}
        assert (mine["author"], mine["reason"]) == ("carol (slack)", "noisy")
        deliver(service, client, web_alert(host="web-2", number=2))  # another scope: runs
        [created] = [r for r in audit_of(service, "silence.created") if r["id"] == made]
        assert created["author"] == "carol (slack)"
    assert vendors_told(fakes) == (1, 1)


def test_the_api_lists_creates_and_expires_with_clear_errors(migrated_url: str) -> None:
    with running(settings_for(migrated_url)) as (_, client):
        assert client.get("/api/silences").status_code == 401
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        made = silence(client, starts_at=tomorrow, duration="2h")
        assert made["state"] == "pending"
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        now = silence(client, ends_at=later, duration=None)
        assert now["state"] == "active"
        listed = client.get("/api/silences", headers=AUTH).json()["items"]
        assert [item["id"] for item in listed] == [now["id"], made["id"]]
        done = client.post(f"/api/silences/{now['id']}/expire", headers=AUTH)
        assert done.json()["expired_by"] == "api"
        assert [i["id"] for i in client.get("/api/silences", headers=AUTH).json()["items"]] == [
            made["id"]
        ]
        every = client.get("/api/silences?all=1", headers=AUTH).json()["items"]
        assert {i["id"]: i["state"] for i in every} == {now["id"]: "expired", made["id"]: "pending"}

        def refused(body: Any, status: int) -> str:
            response = client.post("/api/silences", content=body, headers=AUTH)
            assert response.status_code == status, response.text
            message: str = response.json()["error"]
            return message

        good = {"matchers": {"monitor_id": "1"}, "reason": "r", "author": "a", "duration": "1h"}
        assert "JSON object" in refused(b"nope", 400)
        assert "JSON object" in refused(b"[1]", 400)
        assert "at least one" in refused(json.dumps({**good, "matchers": {}}), 422)
        assert "either ends_at or duration" in refused(
            json.dumps({**good, "ends_at": "2099-01-01T00:00:00Z"}), 422
        )
        assert "duration" in refused(json.dumps({**good, "duration": "soon"}), 422)
        assert "time zone" in refused(
            json.dumps({**good, "duration": None, "ends_at": "2099-01-01T00:00:00"}), 422
        )
        assert "in the past" in refused(
            json.dumps({**good, "duration": None, "ends_at": "2001-01-01T00:00:00Z"}), 422
        )
        assert "unclosed" in refused(
            json.dumps({**good, "matchers": {"tags": {"service": "pay[x"}}}), 422
        )
        assert "color" in refused(json.dumps({**good, "color": "red"}), 422)
        assert "?all" not in refused(json.dumps({**good, "reason": "  "}), 422)
        assert client.post("/api/silences/4242/expire", headers=AUTH).status_code == 404
        assert client.get("/api/silences?all=maybe", headers=AUTH).status_code == 400


def invoke(args: list[str], database_url: str) -> Result:
    environment = {"DATABASE_URL": database_url, "RESPONDER_LOG_LEVEL": "warning"}
    return CliRunner().invoke(app, args, env=environment)


def test_the_cli_adds_lists_and_expires(migrated_url: str) -> None:
    added = invoke(
        [
            "silences",
            "add",
            "--tag",
            "service=payments",
            "--monitor-id",
            "123",
            "--duration",
            "2h",
            "--reason",
            "db failover",
            "--author",
            "dave",
            "--json",
        ],
        migrated_url,
    )
    assert added.exit_code == 0, added.output
    made = json.loads(added.stdout)
    assert made["matchers"] == {"tags": {"service": ["payments"]}, "monitor_id": ["123"]}
    table = invoke(["silences", "list"], migrated_url)
    assert table.exit_code == 0, table.output
    assert "service=payments monitor_id=123" in table.stdout
    assert "db failover (dave)" in table.stdout
    as_json = invoke(["silences", "list", "--json"], migrated_url)
    assert [json.loads(line)["id"] for line in as_json.stdout.splitlines()] == [made["id"]]
    expired = invoke(["silences", "expire", str(made["id"])], migrated_url)
    assert expired.exit_code == 0, expired.output
    assert invoke(["silences", "list"], migrated_url).stdout.strip() == "no active silences"
    assert f"{made['id']:>5}  expired" in invoke(["silences", "list", "--all"], migrated_url).stdout

    for args, message in (
        (["silences", "expire", "999"], "no silence 999"),
        (["silences", "add", "--tag", "service", "--duration", "1h"], "NAME=GLOB"),
        (["silences", "add", "--duration", "1h"], "at least one"),
        (["silences", "add", "--tag", "a=b", "--duration", "soon"], "bad duration"),
    ):
        full = [*args, "--reason", "r", "--author", "a"] if args[1] == "add" else args
        result = invoke(full, migrated_url)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output


@POSTGRES
def test_two_workers_honour_the_same_silence(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    hosts = [f"web-{n}" for n in range(12)]
    settings = fakes.settings(
        migrated_url,
        playbooks,
        RESPONDER_POLL_SECONDS="0.02",
        RESPONDER_SLACK_CHANNEL_INTERVAL="0",
        RESPONDER_STORM_RATE="0",
    )
    with running(settings) as (service, client):
        made = silence(client, duration="1h")
        for n, host in enumerate(hosts):
            assert post(client, web_alert(host=host, number=n)).status_code == 202
        engines = [db.create_engine(migrated_url) for _ in range(2)]
        workers = [_worker(service, engine) for engine in engines]
        for worker in workers:
            worker.start()
        try:
            _settled(service)
            assert len(audit_of(service, "event.silenced")) == len(hosts)
            assert vendors_told(fakes) == (0, 0)
            ends = datetime.fromisoformat(made["ends_at"])
            # Both workers sweep the same timers: each incident's event is stored once.
            sweeps = [TimerSweep(engine, service.deal) for engine in engines]
            assert sum(s.sweep(ends) for s in sweeps) == len(hosts)
            _settled(service, runs_too=True)
        finally:
            for worker in workers:
                worker.stop()
            for engine in engines:
                engine.dispose()
        assert len(audit_of(service, "incident.unsilenced")) == len(hosts)
    assert vendors_told(fakes) == (len(hosts), len(hosts))


def _worker(service: Service, engine: sa.Engine) -> Worker:
    return build_worker(
        service.settings,
        engine,
        service.registry,
        service.redactor,
        Metrics(),
        service.playbooks,
    )


def _settled(service: Service, *, runs_too: bool = False) -> None:
    """Until the other workers (threads) processed every stored event, and ran every run."""
    table: sa.Table = AlertEvent.__table__  # type: ignore[attr-defined]
    runs: sa.Table = ActionRun.__table__  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with service.engine.connect() as conn:
            waiting = conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.state == "received")
            ).scalar_one()
            running_runs = conn.execute(
                sa.select(sa.func.count())
                .select_from(runs)
                .where(runs.c.state.in_(["pending", "running"]))
            ).scalar_one()
        if not waiting and not (runs_too and running_runs):
            return
        time.sleep(0.1)
    raise AssertionError(f"not settled: {waiting} events waiting, {running_runs} runs open")


def test_a_repeat_after_an_early_expiry_runs_a_playbook_that_lists_triggered(
    migrated_url: str, fakes: Vendors, tmp_path: Path
) -> None:
    """The first delivery after the silence is usually a Renotify: it releases the held
    playbooks as the state it reminds of, or a playbook listing Triggered never runs."""
    folder = tmp_path / "listing"
    folder.mkdir()
    (folder / "web.yaml").write_text(
        PLAYBOOK.replace(
            '  tags: {service: "web*"}', '  tags: {service: "web*"}\n  transition: [Triggered]'
        )
    )
    with running(fakes.settings(migrated_url, folder)) as (service, client):
        made = silence(client, duration="3h")
        deliver(service, client, web_alert())
        assert vendors_told(fakes) == (0, 0)
        expired = client.post(f"/api/silences/{made['id']}/expire", json={}, headers=AUTH)
        assert expired.status_code == 200, expired.text
        deliver(service, client, web_alert("Renotify", minutes=30))
        assert vendors_told(fakes) == (1, 1)
        [incident] = incidents_of(service)
        assert incident.silenced_until is None


def test_an_incident_acknowledged_during_its_silence_pages_nobody_when_it_ends(
    migrated_url: str, fakes: Vendors, playbooks: Path
) -> None:
    with running(fakes.settings(migrated_url, playbooks)) as (service, client):
        made = silence(client, duration="3h")
        deliver(service, client, web_alert())
        [incident] = incidents_of(service)
        acked = client.post(
            f"/api/incidents/{incident.id}/acknowledge", json={"actor": "carol"}, headers=AUTH
        )
        assert acked.status_code == 202, acked.text
        settle(service)
        assert client.post(f"/api/silences/{made['id']}/expire", json={}, headers=AUTH)
        assert sweep(service, datetime.now(UTC) + timedelta(seconds=1)) == 0  # no timer left
        deliver(service, client, web_alert("Renotify", minutes=30))
        assert vendors_told(fakes) == (0, 0)
        [incident] = incidents_of(service)
        assert (incident.status, incident.silenced_until) == ("acknowledged", None)
