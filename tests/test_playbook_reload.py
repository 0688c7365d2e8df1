"""Reloading playbooks in a running service, on SQLite and PostgreSQL, with the vendor fakes.

A changed file runs for the next alert and its runs carry the new content hash; a broken
file keeps the running set and says why (log, `/readyz`, metrics, audit) until it is fixed;
a reload between two events of one incident pages once; SIGHUP reloads a real `serve` and a
real `worker`.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from responder.domain import group_key
from responder.intake.datadog import normalise
from responder.main import Service, build_registry, playbook_secrets
from responder.pipeline.partitions import Dealer
from responder.pipeline.reloader import PlaybookReloader
from responder.playbooks.loader import load_playbooks
from responder.store import audit
from responder.store.db import create_engine
from responder.store.tables import ActionRun, AuditEntry
from tests.fakes.pagerduty import ROUTING_KEY
from tests.harness import post, running, settings_for
from tests.processes import processes, service_env, wait_until
from tests.samples import SAMPLES
from tests.vendors import CHANNELS, Vendors, settle, vendors

PAYMENTS = CHANNELS["#payments-alerts"]
_RUNS: sa.Table = ActionRun.__table__  # type: ignore[attr-defined]
_AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
_TRIGGERED = json.loads((SAMPLES / "payment-failure-rate.triggered.json").read_text())


def playbook(version: str, *, extra: str = "") -> str:
    """One playbook: pages once per incident, tells #payments-alerts which version ran."""
    return f"""\
name: payments-page
description: version {version}
match:
  tags: {{service: payment}}
group_by: [service, env]
actions:
  - pagerduty.trigger:
      severity: critical
  - slack.post:
      channel: "#payments-alerts"
      text: "VERSION {version}"
{extra}"""


BROKEN = """\
name: payments-page
match:
  tags: {service: payment}
actions:
  - slack.post:
      channel: "#payments-alerts"
      colour: red
"""


def alert(number: int, *, env: str = "prod") -> dict[str, Any]:
    """Monitor `number` fires for the payment service in `env` (one grouped incident per env)."""
    data: dict[str, Any] = json.loads(json.dumps(_TRIGGERED))
    data["id"] = f"reload-{number}"
    data["date"] = data["last_updated"] = str(int(time.time() * 1000))
    data["event_title"] = f"[Triggered] Payment monitor {number}"
    data["alert"].update(id=str(900000 + number), cycle_key=f"cycle-{number}")
    data["alert"]["title"] = data["event_title"]
    data["tags"] = data["tags"].replace("env:prod", f"env:{env}")
    return data


@pytest.fixture
def fakes() -> Iterator[Vendors]:
    with vendors() as all_three:
        yield all_three


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "playbooks"
    made.mkdir()
    (made / "payments.yaml").write_text(playbook("one"))
    return made


@pytest.fixture
def service(
    migrated_url: str, fakes: Vendors, folder: Path
) -> Iterator[tuple[Service, TestClient]]:
    """A service whose worker and playbook reloads the test steps itself."""
    with running(fakes.settings(migrated_url, folder)) as started:
        yield started


def texts(fakes: Vendors) -> list[str]:
    """Which version posted each root message in #payments-alerts ("VERSION one", ...)."""
    return [" ".join((m.text or "").split()[:2]) for m in fakes.slack.root_messages(PAYMENTS)]


def step_runs(service: Service, action: str) -> list[sa.Row[Any]]:
    with service.engine.connect() as conn:
        query = sa.select(_RUNS).where(_RUNS.c.action == action, _RUNS.c.parent_id.is_(None))
        return list(conn.execute(query.order_by(_RUNS.c.id)).all())


def audit_data(service: Service, kind: str) -> list[dict[str, Any]]:
    with service.engine.connect() as conn:
        rows = conn.execute(
            sa.select(_AUDIT.c.data).where(_AUDIT.c.kind == kind).order_by(_AUDIT.c.seq)
        ).all()
    return [json.loads(row.data) if isinstance(row.data, str) else row.data for row in rows]


def reloads(service: Service, result: str) -> float:
    value = service.metrics.registry.get_sample_value(
        "responder_playbooks_reloads_total", {"result": result}
    )
    return value or 0.0


def reload_failed(service: Service) -> float | None:
    return service.metrics.registry.get_sample_value("responder_playbooks_reload_failed")


def content_hash(service: Service) -> str:
    (only,) = service.playbooks.current()
    return only.content_hash


def test_an_edited_file_runs_for_the_next_alert_and_its_runs_carry_the_new_hash(
    service: tuple[Service, TestClient], fakes: Vendors, folder: Path
) -> None:
    svc, client = service
    first_hash, first_digest = content_hash(svc), svc.playbooks.active.digest
    assert post(client, alert(1, env="one")).status_code == 202
    settle(svc)

    (folder / "payments.yaml").write_text(playbook("two"))
    # The watch acts on a change it has seen twice in a row, not on a half-written file.
    assert svc.reloader.poll() is None
    outcome = svc.reloader.poll()
    assert outcome is not None and outcome.result == "changed"
    assert svc.reloader.poll() is None  # nothing new since
    second_hash = content_hash(svc)
    assert second_hash != first_hash

    assert post(client, alert(2, env="two")).status_code == 202
    settle(svc)
    assert texts(fakes) == ["VERSION one", "VERSION two"]
    hashes = [run.playbook_hash for run in step_runs(svc, "slack.post")]
    assert hashes == [first_hash, second_hash]
    # The audit log names the version that matched and planned each run...
    matched = [d["matched"] for d in audit_data(svc, "playbooks.matched")]
    assert matched == [
        [{"name": "payments-page", "hash": first_hash}],
        [{"name": "payments-page", "hash": second_hash}],
    ]
    planned = [d["playbook_hash"] for d in audit_data(svc, "run.planned")]
    assert planned == [first_hash] * 2 + [second_hash] * 2
    # ...and the reload itself, with both sets.
    (reloaded,) = audit_data(svc, "playbooks.reloaded")
    assert reloaded["trigger"] == "file change"
    assert reloaded["old"] == {"digest": first_digest, "playbooks": {"payments-page": first_hash}}
    assert reloaded["new"]["playbooks"] == {"payments-page": second_hash}
    assert reloaded["changed"] == ["payments-page"]
    assert (reloads(svc, "changed"), reload_failed(svc)) == (1.0, 0.0)
    with svc.engine.connect() as conn:
        assert audit.verify(conn).ok


def test_the_watch_thread_takes_an_edit_by_itself(
    service: tuple[Service, TestClient], folder: Path
) -> None:
    svc, _ = service
    watch = PlaybookReloader(
        svc.playbooks, svc.engine, svc.redactor, svc.metrics, playbook_secrets, every=0.05
    )
    before = svc.playbooks.active.digest
    watch.start()
    try:
        (folder / "payments.yaml").write_text(playbook("two"))
        wait_until(lambda: svc.playbooks.active.digest != before, 30, "the watch to reload")
    finally:
        watch.stop()
    (reloaded,) = audit_data(svc, "playbooks.reloaded")
    assert (reloaded["trigger"], reloaded["old"]["digest"]) == ("file change", before)


def test_a_broken_file_keeps_the_running_set_and_says_why_until_it_is_fixed(
    service: tuple[Service, TestClient],
    fakes: Vendors,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc, client = service
    running_hash = content_hash(svc)
    path = folder / "payments.yaml"
    path.write_text(BROKEN)

    outcome = svc.reloader.reload("test")
    assert outcome.result == "failed"
    problem = f"{path}:7: unknown key 'colour' in slack.post params"
    logged = capsys.readouterr().out
    assert "playbooks.reload_failed" in logged and problem in logged
    assert content_hash(svc) == running_hash
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the old set runs: still ready, and says what is wrong
    detail = ready.json()["playbooks"]
    assert detail["running"] == svc.playbooks.active.digest
    assert any(line.startswith(problem) for line in detail["errors"])
    assert (reloads(svc, "failed"), reload_failed(svc)) == (1.0, 1.0)
    (failed,) = audit_data(svc, "playbooks.reload_failed")
    assert failed["old"]["playbooks"] == {"payments-page": running_hash}
    assert any(line.startswith(problem) for line in failed["errors"])

    # Alerts meanwhile run the old set.
    assert post(client, alert(1)).status_code == 202
    settle(svc)
    assert texts(fakes) == ["VERSION one"]
    assert [run.playbook_hash for run in step_runs(svc, "slack.post")] == [running_hash]

    path.write_text(playbook("three"))
    outcome = svc.reloader.reload("test")
    assert (outcome.result, outcome.recovered) == ("changed", True)
    assert client.get("/readyz").json() == {"status": "ready"}
    assert reload_failed(svc) == 0.0
    assert post(client, alert(2, env="other")).status_code == 202
    settle(svc)
    assert texts(fakes) == ["VERSION one", "VERSION three"]


def test_a_file_put_back_as_it_was_recovers_without_a_new_set(
    service: tuple[Service, TestClient], folder: Path
) -> None:
    svc, client = service
    path = folder / "payments.yaml"
    good, running_set = path.read_text(), svc.playbooks.current()
    path.write_text("name: [unclosed\n")
    assert svc.reloader.reload("test").result == "failed"
    path.write_text(good)
    outcome = svc.reloader.reload("test")
    assert (outcome.result, outcome.recovered) == ("unchanged", True)
    assert svc.playbooks.current() is running_set
    assert "playbooks" not in client.get("/readyz").json()
    (recovered,) = audit_data(svc, "playbooks.reloaded")
    assert recovered["recovered"] is True
    assert recovered["old"]["digest"] == recovered["new"]["digest"]


def test_a_reload_between_two_events_of_one_incident_pages_once(
    service: tuple[Service, TestClient], fakes: Vendors, folder: Path
) -> None:
    svc, client = service
    assert post(client, alert(1)).status_code == 202
    settle(svc)
    (folder / "payments.yaml").write_text(playbook("two"))
    assert svc.reloader.reload("test").result == "changed"
    # Another monitor of the same service and env: it joins the open grouped incident.
    assert post(client, alert(2)).status_code == 202
    settle(svc)
    pages = step_runs(svc, "pagerduty.trigger")
    assert len(pages) == 1
    assert [a.routing_key for a in fakes.pagerduty.alerts()] == [ROUTING_KEY]
    assert texts(fakes) == ["VERSION one"]  # the incident's playbook already ran
    (matched_first, matched_second) = audit_data(svc, "playbooks.matched")
    assert matched_second["already_ran"] == ["payments-page"]
    assert matched_second["matched"][0]["hash"] != matched_first["matched"][0]["hash"]


def test_a_new_env_reference_joins_the_redactor_before_the_new_set_runs(
    service: tuple[Service, TestClient], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _ = service
    secret = "reloaded-routing-key-0123456789"
    monkeypatch.setenv("RELOAD_TEST_KEY", secret)
    assert secret in svc.redactor.redact_text(f"key {secret}")
    extra = "  - pagerduty.trigger:\n      routing_key: env:RELOAD_TEST_KEY\n"
    (folder / "payments.yaml").write_text(playbook("two", extra=extra))
    assert svc.reloader.reload("test").result == "changed"
    assert secret not in svc.redactor.redact_text(f"key {secret}")


def test_the_dealer_deals_new_deliveries_by_the_new_set(
    migrated_url: str, fakes: Vendors, folder: Path
) -> None:
    if not migrated_url.startswith("postgresql"):
        pytest.skip("SQLite has one sequencer: every event goes to partition 0")
    (folder / "payments.yaml").write_text(playbook("one").replace("group_by: [service, env]", ""))
    with running(fakes.settings(migrated_url, folder)) as (svc, _):
        assert isinstance(svc.deal, Dealer)
        delivery = normalise(alert(1), datetime.now(UTC))
        assert svc.deal.key(delivery) == group_key(delivery)  # nothing groups: by monitor
        (folder / "payments.yaml").write_text(playbook("two"))
        assert svc.reloader.reload("test").result == "changed"
        assert svc.deal.key(delivery) == "tags|env=prod,service=payment"


@pytest.mark.slow
def test_sighup_reloads_a_real_serve_and_worker(
    migrated_url: str, fakes: Vendors, folder: Path, tmp_path: Path
) -> None:
    env = service_env(migrated_url, fakes, RESPONDER_PLAYBOOKS=str(folder))
    with processes(env, tmp_path / "logs") as procs:
        web = procs.web()
        worker = procs.worker()
        # Nothing changed: only the signal can cause a reload (the watch acts on changes).
        for proc in (web, worker):
            proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(procs.url, "unchanged") == 1, 30, "the web's reload")
        wait_until(
            lambda: '"playbooks.reload_unchanged"' in _log(tmp_path, "worker"),
            30,
            "the worker's reload",
        )
        assert web.poll() is None and worker.poll() is None  # SIGHUP did not end them

        (folder / "payments.yaml").write_text(playbook("two"))
        for proc in (web, worker):
            proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(procs.url, "changed") == 1, 30, "the web's new set")
        wait_until(
            lambda: '"playbooks.reloaded"' in _log(tmp_path, "worker"), 30, "the worker's new set"
        )
        request = urllib.request.Request(
            f"{procs.url}/webhooks/datadog",
            data=orjson.dumps(alert(1)),
            headers={
                "X-Responder-Token": env["RESPONDER_WEBHOOK_TOKEN"],
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
        wait_until(lambda: texts(fakes) == ["VERSION two"], 60, "the new version's post")

    registry = build_registry(settings_for(migrated_url, folder))
    (new,) = load_playbooks(folder, registry.params_models())
    engine = create_engine(migrated_url)
    try:
        with engine.connect() as conn:
            hashes = conn.execute(sa.select(_RUNS.c.playbook_hash).distinct()).scalars().all()
            kinds = conn.execute(
                sa.select(_AUDIT.c.data).where(_AUDIT.c.kind == "playbooks.reloaded")
            ).all()
    finally:
        engine.dispose()
    assert hashes == [new.content_hash]
    assert len(kinds) == 2  # the web process and the worker each audit their own reload


def _reloads(url: str, result: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith(f'responder_playbooks_reloads_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def _log(tmp_path: Path, name: str) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob(f"{name}-*.log"))
