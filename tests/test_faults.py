"""Vendor faults through the whole service: every action ends succeeded or visibly failed.

Each vendor fake is made to answer 429 with Retry-After, 500, 503, to refuse connections,
to stay down for an hour, to lose the answer after doing the work, and to refuse for good.
Afterwards the vendors hold exactly one of everything that has an idempotency key, every
run is in a final state with its story in the audit log, the Slack thread has heard about
every permanent failure, and no secret appears in the records or in the logs.

Time is compressed: `settle` makes pending retries due at once, and `advance` lets hours
pass by moving each pending run's next attempt and its expiry closer together. Pacing
(real seconds, which neither can compress) is turned off with `quick_pace` and
`settings_of`, except in the two tests about pacing: the storm and the channel's pace key.

Two tests here fail on purpose, each showing a bug in the service (nothing is xfail):
`test_a_failure_before_the_slack_root_is_out_still_reaches_the_thread` and
`test_posts_to_a_channel_named_by_name_share_its_pace_once_its_id_is_known`.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from starlette.testclient import TestClient

import integrations.pagerduty.actions as pagerduty_actions_module
import responder.main
from integrations.datadog import datadog_actions
from integrations.pagerduty import pagerduty_actions
from integrations.slack import slack_actions
from responder.main import Service
from responder.settings import Settings
from responder.store import audit
from responder.store.tables import ActionRun, AlertEvent, AuditEntry, Incident
from tests.fakes.pagerduty import ROUTING_KEY
from tests.fakes.slack import FakeMessage, FakeSlack
from tests.harness import API_TOKEN, drain, post, running, sample
from tests.vendors import PAYMENTS_KEY, SECRETS, WORKFLOW_ID, Vendors, settle, vendors

_RUNS = ActionRun.__table__  # type: ignore[attr-defined]
PAYMENTS = "payment-failure-rate.triggered"  # pagerduty, datadog incident + notebook, slack
CHECKOUT = "checkout-error-rate.triggered"  # slack, pagerduty, datadog workflow
PAYMENTS_CHANNEL = "C0PAYMENTS"
INCIDENTS_CHANNEL = "C0INCIDENTS"
FINAL = ("succeeded", "failed", "skipped", "cancelled")
HOUR = 3600.0


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    monkeypatch.setenv("PAGERDUTY_PAYMENTS_KEY", PAYMENTS_KEY)
    with vendors() as all_three:
        all_three.datadog.finish_instances(after_polls=1)  # workflows succeed unless told
        yield all_three


@pytest.fixture
def quick_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pacing between PagerDuty events of one routing key (Slack's: see `settings_of`).

    The pacer books real seconds, which `settle` cannot compress: an hour of retries would
    take half a minute of wall clock. Pacing has its own test (the storm), with the real
    intervals; the fakes do not rate-limit unless asked to.
    """
    monkeypatch.setattr(pagerduty_actions_module, "EVENTS_INTERVAL", 0.0)


def settings_of(fakes: Vendors, db_url: str, **extra: Any) -> Settings:
    """The service's settings, Slack's per-channel pacing off unless `extra` sets it."""
    extra.setdefault("RESPONDER_SLACK_CHANNEL_INTERVAL", "0")
    return fakes.settings(db_url, **extra)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # everything any library logs, to search for secrets
    return caplog


# -- helpers ----------------------------------------------------------------------------------


def deliver(client: TestClient, body: dict[str, Any]) -> None:
    response = post(client, body)
    assert response.status_code == 202, response.text


def all_runs(service: Service) -> list[ActionRun]:
    with Session(service.engine) as session:
        query = select(ActionRun).order_by(ActionRun.id)  # type: ignore[arg-type]
        return list(session.exec(query).all())


def runs_of(service: Service, action: str) -> list[ActionRun]:
    return [run for run in all_runs(service) if run.action == action]


def only_run(service: Service, action: str) -> ActionRun:
    found = runs_of(service, action)
    assert len(found) == 1, [(r.id, r.state, r.last_error) for r in found]
    return found[0]


def audit_of(service: Service, run_id: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(kind, data) of the audit entries, oldest first; only one run's with `run_id`."""
    with Session(service.engine) as session:
        query = select(AuditEntry).order_by(AuditEntry.seq)  # type: ignore[arg-type]
        if run_id is not None:
            query = query.where(AuditEntry.run_id == run_id)
        return [(e.kind, json.loads(e.data)) for e in session.exec(query).all()]


def retries_of(service: Service, run: ActionRun) -> list[dict[str, Any]]:
    return [data for kind, data in audit_of(service, run.id) if kind == "run.retry"]


def assert_all_final(service: Service) -> list[ActionRun]:
    """No run left pending or running, and each one's audit trail ends as the run did."""
    runs = all_runs(service)
    assert runs, "nothing was planned"
    for run in runs:
        assert run.state in FINAL, (run.id, run.action, run.state, run.last_error)
        kinds = [kind for kind, _ in audit_of(service, run.id)]
        assert kinds[0] == "run.planned", (run.action, kinds)
        assert kinds[-1] == f"run.{run.state}", (run.action, kinds)
        assert kinds.count("run.attempt") == run.attempts, (run.action, kinds, run.attempts)
    with service.engine.connect() as conn:
        assert audit.verify(conn).ok  # faults and retries leave the hash chain whole
    return runs


def notices(slack: FakeSlack, channel: str) -> list[str]:
    """The failure notices in the threads of `channel` (our own "⚠️ ... failed" replies)."""
    return [
        m.text or ""
        for m in slack.messages(channel)
        if m.thread_ts is not None and (m.text or "").startswith("⚠️")
    ]


def root_of(slack: FakeSlack, channel: str) -> FakeMessage:
    roots = slack.root_messages(channel)
    assert len(roots) == 1, [r.text for r in roots]
    return roots[0]


def advance(service: Service, seconds: float) -> tuple[float, int]:
    """Let up to `seconds` pass for the pending runs; returns (seconds passed, rounds).

    Jumps from one due attempt to the next: every pending run's `not_before` and
    `expires_at` move back by the jump, as if the clock had moved forward, so backoff,
    Retry-After and the runs' maximum age all see the time pass. Stops early when no run
    is waiting for its time any more.
    """
    passed, rounds = 0.0, 0
    while True:
        drain(service)
        with service.engine.begin() as conn:
            pending = conn.execute(
                sa.select(_RUNS.c.id, _RUNS.c.not_before, _RUNS.c.expires_at).where(
                    _RUNS.c.state == "pending"
                )
            ).all()
            now = datetime.now(UTC)
            # Runs already due wait behind an earlier run of their lane: no time for them.
            ahead = [nb for _, nb, _ in pending if nb > now]
            if not ahead or passed >= seconds:
                return passed, rounds
            jump = min(ahead) - now
            conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.id == sa.bindparam("b_id"), _RUNS.c.state == "pending")
                .values(not_before=sa.bindparam("nb"), expires_at=sa.bindparam("ea")),
                [{"b_id": i, "nb": nb - jump, "ea": ea - jump} for i, nb, ea in pending],
            )
        passed += jump.total_seconds()
        rounds += 1


def assert_no_secrets(
    service: Service, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """None of the vendor secrets in the audit log, the runs, the incidents or the logs."""
    with Session(service.engine) as session:
        stored = {
            "audit": "\n".join(e.data for e in session.exec(select(AuditEntry)).all()),
            "runs": json.dumps(
                [[r.result, r.last_error, r.params] for r in session.exec(select(ActionRun))],
                default=str,
            ),
            "incidents": json.dumps([i.refs for i in session.exec(select(Incident))]),
            "events": json.dumps([e.outcome for e in session.exec(select(AlertEvent))]),
        }
    captured = capsys.readouterr()
    stored["stdout"], stored["stderr"] = captured.out, captured.err
    stored["logging"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    # The runner logs every outcome (structlog, to stdout): the logs searched are the real ones.
    assert "run." in captured.out + captured.err, "the runs' outcomes were not logged"
    assert caplog.records, "nothing reached the standard logging at all"
    leaks = [(where, s) for where, text in stored.items() for s in SECRETS if s in text]
    assert leaks == []


# -- transient faults: retried, landed once ---------------------------------------------------

# What the first creating call of each vendor meets (see `inject`).
TRANSIENT = ("429", "500", "503", "refused")


def inject(fakes: Vendors, fault: str) -> None:
    """The first call of each creating route fails with `fault`."""
    if fault == "refused":
        for fake in (fakes.slack, fakes.pagerduty, fakes.datadog):
            fake.down()
        return
    status = int(fault)
    if status == 429:
        fakes.pagerduty.fail_next("events", 429, retry_after="7")
        fakes.datadog.fail_next("CreateIncident", 429, retry_after="5")
        fakes.datadog.fail_next("CreateNotebook", 429, rate_limit_reset="4")
        fakes.slack.fail_next("chat.postMessage", 429, "ratelimited", retry_after="3")
        return
    fakes.pagerduty.fail_next("events", status)
    fakes.datadog.fail_next("CreateIncident", status)
    fakes.datadog.fail_next("CreateNotebook", status)
    error = "internal_error" if status == 500 else "service_unavailable"
    fakes.slack.fail_next("chat.postMessage", status, error, retry_after=None)


@pytest.mark.parametrize("fault", TRANSIENT)
@pytest.mark.usefixtures("quick_pace")
def test_a_transient_fault_is_retried_and_everything_lands_once(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    fault: str,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inject(fakes, fault)
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        if fault == "refused":
            drain(service)  # every first attempt meets a closed port
            for fake in (fakes.slack, fakes.pagerduty, fakes.datadog):
                fake.up()
        settle(service)
        runs = assert_all_final(service)
        assert [(r.action, r.state) for r in runs if r.state != "succeeded"] == []

        # Each vendor's first call failed once and was tried again, audited as a retry
        # whose delay is the vendor's Retry-After (429) or the first backoff step.
        says = {"429": "HTTP 429", "500": "HTTP 500", "503": "HTTP 503"}
        expected = {  # action -> (seconds the vendor asked for, or None for backoff)
            "pagerduty.trigger": 7.0 if fault == "429" else None,
            "datadog.incident": 5.0 if fault == "429" else None,
            "slack.post": 3.0 if fault == "429" else None,
        }
        if fault != "refused":  # the notebook waits behind the incident in its lane
            expected["datadog.notebook"] = 4.0 if fault == "429" else None
        for action, asked in expected.items():
            run = only_run(service, action)
            assert run.attempts == 2, (action, run.attempts)
            (retry,) = retries_of(service, run)
            assert says.get(fault, "connection_error") in retry["error"], (action, retry)
            delay = retry["result"]["retry_in_seconds"]
            low, high = (asked, asked * 1.1) if asked is not None else (1.0, 2.0)
            assert low <= delay <= high + 0.001, (action, delay)
        if fault == "refused":
            assert only_run(service, "datadog.notebook").attempts == 1

        # Exactly one of everything, and the vendors saw only the calls we expect.
        tried = 1 if fault == "refused" else 2  # a refused call never reaches the fake
        pd, dd, slack = fakes.pagerduty, fakes.datadog, fakes.slack
        assert len(pd.calls_to("events")) == tried
        assert [a.routing_key for a in pd.alerts()] == [PAYMENTS_KEY]
        assert (pd.triggers("opened"), pd.triggers("deduplicated")) == (1, 0)
        assert len(dd.calls_to("CreateIncident")) == tried
        assert len(dd.calls_to("SearchIncidents")) == 1  # the retry looked first
        assert len(dd.incidents()) == 1
        assert len(dd.calls_to("CreateNotebook")) == tried
        assert len(dd.notebooks()) == 1
        assert len(slack.calls_to("chat.postMessage")) == tried
        assert len(slack.calls_to("conversations.history")) == 1  # the retry looked first
        root = root_of(slack, PAYMENTS_CHANNEL)
        assert slack.replies(PAYMENTS_CHANNEL, root.ts) == []  # nothing failed for good
        # The root ends up linking what Datadog made, whichever finished first.
        shown = json.dumps(root.blocks)
        assert "|Datadog incident>" in shown and "|RCA notebook>" in shown
        assert_no_secrets(service, logs, capsys)


# -- a vendor down for an hour ----------------------------------------------------------------

DOWN_ACTIONS = {
    "pagerduty": ("pagerduty.trigger",),
    "datadog": ("datadog.incident",),  # the notebook waits behind it in the Datadog lane
    "slack": ("slack.post",),
}


@pytest.mark.parametrize("vendor", sorted(DOWN_ACTIONS))
@pytest.mark.usefixtures("quick_pace")
def test_a_vendor_down_for_an_hour_gets_everything_once_when_it_returns(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    vendor: str,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = getattr(fakes, vendor)
    fake.down()
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        passed, rounds = advance(service, HOUR)
        assert passed >= HOUR, "the runs stopped waiting for the vendor"
        # Still pending after an hour of retries: not lost, not given up (6 h maximum age).
        for action in DOWN_ACTIONS[vendor]:
            run = only_run(service, action)
            assert run.state == "pending", (action, run.state, run.last_error)
            # Backoff doubles up to 5 minutes: an hour is at least 19 attempts.
            assert run.attempts >= 15, (action, run.attempts, rounds)
            assert len(retries_of(service, run)) == run.attempts
        # Meanwhile the other vendors got their calls.
        for run in all_runs(service):
            if not run.action.startswith(vendor):
                assert run.state == "succeeded", (run.action, run.state, run.last_error)

        fake.up()
        settle(service)
        runs = assert_all_final(service)
        assert [(r.action, r.state) for r in runs if r.state != "succeeded"] == []
        assert_no_secrets(service, logs, capsys)

    pd, dd, slack = fakes.pagerduty, fakes.datadog, fakes.slack
    assert [a.routing_key for a in pd.alerts()] == [PAYMENTS_KEY]
    assert pd.triggers("opened") == 1
    assert len(dd.incidents()) == 1
    assert len(dd.notebooks()) == 1
    root = root_of(slack, PAYMENTS_CHANNEL)
    assert slack.replies(PAYMENTS_CHANNEL, root.ts) == []
    shown = json.dumps(root.blocks)  # as it ends: posted late, or refreshed with links
    assert "|Datadog incident>" in shown and "|RCA notebook>" in shown
    # While it was down, nothing reached the vendor; afterwards one call (plus a look).
    if vendor == "pagerduty":
        assert len(pd.calls_to("events")) == 1
    if vendor == "datadog":
        assert len(dd.calls_to("CreateIncident")) == len(dd.calls_to("CreateNotebook")) == 1
        assert len(dd.calls_to("SearchIncidents")) == 1
    if vendor == "slack":
        assert len(slack.calls_to("chat.postMessage")) == 1
        assert len(slack.calls_to("conversations.history")) == 1


@pytest.mark.usefixtures("quick_pace")
def test_past_its_maximum_age_a_run_fails_visibly_and_the_thread_hears(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fakes.pagerduty.down()
    settings = settings_of(fakes, migrated_url, RESPONDER_RUN_MAX_AGE="1800")
    with running(settings) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        passed, _ = advance(service, HOUR)
        assert passed < HOUR, "still retrying after an hour with a 30-minute maximum age"
        trigger = only_run(service, "pagerduty.trigger")
        assert trigger.state == "failed"
        assert trigger.last_error is not None and "maximum age" in trigger.last_error
        assert "connection_error" in trigger.last_error  # and why it kept failing
        assert trigger.attempts >= 12  # it tried for half an hour first
        kinds = [kind for kind, _ in audit_of(service, trigger.id)]
        assert kinds[-1] == "run.failed"
        assert kinds.count("run.retry") == trigger.attempts - 1
        (notice,) = notices(fakes.slack, PAYMENTS_CHANNEL)
        assert notice.startswith("⚠️ pagerduty.trigger failed:")
        assert "maximum age" in notice

        # PagerDuty coming back later changes nothing: the run gave up, visibly.
        fakes.pagerduty.up()
        settle(service)
        assert_all_final(service)
        assert only_run(service, "pagerduty.trigger").state == "failed"
        assert fakes.pagerduty.calls == []
        incident = client.get(
            f"/api/incidents/{trigger.incident_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ).json()
        states = {run["action"]: run["state"] for run in incident["actions"]}
        assert states["pagerduty.trigger"] == "failed"
        assert states["slack.reply"] == "succeeded"
        assert_no_secrets(service, logs, capsys)


# -- lost answers: the vendor did the work, the answer never came -----------------------------


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> float:
    """Clients that give up after a second (the integrations' own default is 10 s).

    The service is built as usual; only the factories `build_registry` calls get a timeout.
    """
    seconds = 1.0
    for name, factory in (
        ("slack_actions", slack_actions),
        ("pagerduty_actions", pagerduty_actions),
        ("datadog_actions", datadog_actions),
    ):
        patched: Callable[..., Any] = functools.partial(factory, timeout=seconds)
        monkeypatch.setattr(responder.main, name, patched)
    return seconds


@pytest.mark.usefixtures("quick_pace")
def test_an_answer_lost_after_the_work_is_adopted_not_repeated(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    short_timeouts: float,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    late = short_timeouts * 2  # each fake does the work, then answers after the client left
    pd, dd, slack = fakes.pagerduty, fakes.datadog, fakes.slack
    pd.delay_next("events", late, count=2)  # both pages: payments and checkout
    for route in ("CreateIncident", "CreateNotebook", "CreateWorkflowInstance"):
        dd.delay_next(route, late)
    slack.delay_next("chat.postMessage", late, count=2)  # both roots
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        deliver(client, sample(samples_dir, CHECKOUT))
        settle(service)
        runs = assert_all_final(service)
        assert [(r.action, r.state) for r in runs if r.state != "succeeded"] == []

        for action in ("pagerduty.trigger", "slack.post"):
            for run in runs_of(service, action):
                assert run.attempts == 2, (action, run.attempts)
                (retry,) = retries_of(service, run)
                assert "timeout" in retry["error"], (action, retry)
        for action in ("datadog.incident", "datadog.notebook", "datadog.workflow"):
            run = only_run(service, action)
            (retry,) = retries_of(service, run)
            assert "timeout" in retry["error"], (action, retry)
            # The workflow's polls carry on what its start found.
            assert run.result is not None and run.result["adopted"] is True, action
        for run in runs_of(service, "slack.post"):
            assert run.result is not None and run.result["adopted"] is True
        assert_no_secrets(service, logs, capsys)

    # PagerDuty deduplicated the second trigger of each incident into its open alert.
    assert sorted(a.routing_key for a in pd.alerts()) == sorted([PAYMENTS_KEY, ROUTING_KEY])
    assert (pd.triggers("opened"), pd.triggers("deduplicated")) == (2, 2)
    # Datadog: created once each, found again by the run's marker.
    assert len(dd.incidents()) == len(dd.calls_to("CreateIncident")) == 1
    assert len(dd.notebooks()) == len(dd.calls_to("CreateNotebook")) == 1
    (instance,) = dd.instances()
    assert instance.workflow_id == WORKFLOW_ID
    assert len(dd.calls_to("CreateWorkflowInstance")) == 1
    # Slack: one root each, found again in the channel's history by its metadata.
    root_of(slack, PAYMENTS_CHANNEL)
    root_of(slack, INCIDENTS_CHANNEL)
    assert len(slack.calls_to("chat.postMessage")) == 2


# -- permanent errors: failed at once, the vendor's answer kept, the thread told ----------------


def failed_at_once(service: Service, action: str) -> tuple[ActionRun, dict[str, Any]]:
    """The action's run, failed on its first attempt; and its run.failed audit data."""
    run = only_run(service, action)
    assert (run.state, run.attempts) == ("failed", 1), (run.state, run.attempts, run.last_error)
    trail = audit_of(service, run.id)
    assert [kind for kind, _ in trail] == ["run.planned", "run.attempt", "run.failed"]
    failed = trail[-1][1]
    assert failed["error"] == run.last_error
    assert run.result is not None
    assert failed["result"]["response"] == run.result["response"]
    return run, failed


@pytest.mark.usefixtures("quick_pace")
def test_an_invalid_pagerduty_event_fails_at_once_and_the_thread_hears(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    errors = ["'payload.summary' is missing or blank"]
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    fakes.pagerduty.fail_next("events", 400, body=body)
    # Answered after the Slack root is out: see the test of a failure before the root.
    fakes.pagerduty.delay_next("events", 0.5)
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        settle(service)
        assert_all_final(service)
        run, failed = failed_at_once(service, "pagerduty.trigger")
        assert run.result is not None
        answer = run.result["response"]
        assert answer["status"] == 400
        assert (answer["error"], answer["message"], answer["errors"]) == (
            "invalid event",
            "Event object is invalid",
            errors,
        )
        assert "HTTP 400" in failed["error"] and errors[0] in failed["error"]
        (notice,) = notices(fakes.slack, PAYMENTS_CHANNEL)
        assert notice.startswith("⚠️ pagerduty.trigger failed: ")
        assert "HTTP 400" in notice and errors[0] in notice
        assert_no_secrets(service, logs, capsys)
    assert len(fakes.pagerduty.calls_to("events")) == 1  # never tried again
    assert fakes.pagerduty.alerts() == []


@pytest.mark.usefixtures("quick_pace")
def test_a_datadog_403_fails_at_once_and_the_thread_hears(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    errors = ["Forbidden: this application key lacks incident_write"]
    fakes.datadog.fail_next("CreateIncident", 403, errors=errors)
    fakes.datadog.delay_next("CreateIncident", 0.5)  # after the Slack root is out
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        settle(service)
        assert_all_final(service)
        run, failed = failed_at_once(service, "datadog.incident")
        assert run.result is not None
        assert run.result["response"] == {"status": 403, "errors": errors}
        assert "HTTP 403" in failed["error"] and errors[0] in failed["error"]
        (notice,) = notices(fakes.slack, PAYMENTS_CHANNEL)
        assert notice.startswith("⚠️ datadog.incident failed: ")
        assert "HTTP 403" in notice and errors[0] in notice
        # The rest of the Datadog lane went on: the notebook does not need the incident.
        assert only_run(service, "datadog.notebook").state == "succeeded"
        assert_no_secrets(service, logs, capsys)
    assert len(fakes.datadog.calls_to("CreateIncident")) == 1
    assert fakes.datadog.incidents() == []
    assert len(fakes.datadog.notebooks()) == 1


UNKNOWN_WORKFLOW = "00000000-0000-4000-8000-00000000dead"


@pytest.mark.usefixtures("quick_pace")
def test_a_datadog_404_for_the_workflow_fails_at_once_and_the_thread_hears(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "checkout.yaml").write_text(
        "name: checkout-unknown-workflow\n"
        "match:\n  tags: {service: checkout-service}\n"
        "actions:\n"
        '  - slack.post: {channel: "#incidents"}\n'
        f"  - datadog.workflow: {{workflow_id: {UNKNOWN_WORKFLOW}, inputs: {{replicas: 6}}}}\n"
    )
    fakes.datadog.delay_next("CreateWorkflowInstance", 0.5)  # after the Slack root is out
    with running(settings_of(fakes, migrated_url, playbooks=tmp_path)) as (service, client):
        deliver(client, sample(samples_dir, CHECKOUT))
        settle(service)
        assert_all_final(service)
        run, failed = failed_at_once(service, "datadog.workflow")
        assert run.result is not None
        answer = run.result["response"]
        assert answer["status"] == 404
        assert answer["errors"][0]["code"] == "WORKFLOW_NOT_FOUND"
        assert "HTTP 404" in failed["error"] and "WORKFLOW_NOT_FOUND" in failed["error"]
        (notice,) = notices(fakes.slack, INCIDENTS_CHANNEL)
        assert notice.startswith("⚠️ datadog.workflow failed: ")
        assert "HTTP 404" in notice and "WORKFLOW_NOT_FOUND" in notice
        assert_no_secrets(service, logs, capsys)
    assert len(fakes.datadog.calls_to("CreateWorkflowInstance")) == 1
    assert fakes.datadog.instances() == []


@pytest.mark.usefixtures("quick_pace")
def test_a_failed_workflow_fails_its_run_and_the_thread_hears(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fakes.datadog.finish_instances("FAILED", after_polls=1)
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, CHECKOUT))
        settle(service)
        assert_all_final(service)
        (instance,) = fakes.datadog.instances()
        assert instance.status == "FAILED"
        run = only_run(service, "datadog.workflow")
        assert run.state == "failed"
        assert run.last_error is not None and instance.id in run.last_error
        assert run.result is not None
        answer = run.result["response"]
        assert (answer["status"], answer["datadog_status"]) == ("failed", "FAILED")
        assert answer["instance_id"] == instance.id
        kinds = [kind for kind, _ in audit_of(service, run.id)]
        assert kinds[-1] == "run.failed" and "run.retry" not in kinds  # polled, not retried
        (notice,) = notices(fakes.slack, INCIDENTS_CHANNEL)
        assert notice.startswith("⚠️ datadog.workflow failed: ")
        assert instance.id in notice and "FAILED" in notice
        assert only_run(service, "pagerduty.trigger").state == "succeeded"
        assert_no_secrets(service, logs, capsys)
    assert len(fakes.datadog.calls_to("CreateWorkflowInstance")) == 1


@pytest.mark.usefixtures("quick_pace")
def test_a_failure_before_the_slack_root_is_out_still_reaches_the_thread(
    migrated_url: str, fakes: Vendors, samples_dir: Path
) -> None:
    """PagerDuty refuses at once while Slack is slow to answer the root post.

    The notice and the root's links are planned only for a root post that has already
    succeeded; what finishes before it is never told in the thread.
    """
    fakes.pagerduty.fail_next("events", 400)
    fakes.slack.delay_next("chat.postMessage", 0.5)  # posted at once, answered late
    with running(settings_of(fakes, migrated_url)) as (service, client):
        deliver(client, sample(samples_dir, PAYMENTS))
        settle(service)
        assert_all_final(service)
        failed_at_once(service, "pagerduty.trigger")
        assert only_run(service, "slack.post").state == "succeeded"
        assert only_run(service, "datadog.incident").state == "succeeded"
    root = root_of(fakes.slack, PAYMENTS_CHANNEL)
    told = [m.text or "" for m in fakes.slack.replies(PAYMENTS_CHANNEL, root.ts)]
    assert any(t.startswith("⚠️ pagerduty.trigger failed:") for t in told), told
    shown = json.dumps(root.blocks)
    assert "|Datadog incident>" in shown and "|RCA notebook>" in shown


# -- a storm into one rate-limited channel ------------------------------------------------------

STORM = 30


def storm_alert(samples_dir: Path, i: int) -> dict[str, Any]:
    """The checkout alert on host number `i`: its own notification, scope and alert cycle."""
    body = sample(samples_dir, CHECKOUT)
    host = f"ip-10-0-9-{i}"
    body["id"] = f"77165482340990{i:05d}"
    body["alert"]["scope"] = f"host:{host}"
    body["alert"]["cycle_key"] = f"77165482300990{i:05d}"
    body["alert"]["title"] = f"[Triggered on {{host:{host}}}] Error rate spike in checkout-service"
    body["hostname"] = host
    body["tags"] = body["tags"].replace("host:ip-10-0-3-17", f"host:{host}")
    return body


def test_a_storm_into_one_rate_limited_channel_posts_every_root_once(
    migrated_url: str,
    fakes: Vendors,
    samples_dir: Path,
    tmp_path: Path,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "checkout.yaml").write_text(
        "name: checkout-storm\n"
        "match:\n  tags: {service: checkout-service}\n"
        "actions:\n"
        '  - slack.post: {channel: "#incidents", text: "Host {{ alert.tags.host }}"}\n'
        "  - pagerduty.trigger: {severity: error}\n"
    )
    fakes.slack.rate_limit_channels()  # over one post a second per channel: 429
    # Pacing itself is the point here: storm mode (one summary instead of the roots) is off.
    settings = fakes.settings(migrated_url, playbooks=tmp_path, RESPONDER_STORM_RATE="0")
    with running(settings, worker_thread=True) as (service, client):
        for i in range(STORM):
            deliver(client, storm_alert(samples_dir, i))
        # The real pace is about a post every 1.1 s: half a minute for the channel.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with service.engine.connect() as conn:
                open_runs = conn.execute(
                    sa.select(sa.func.count()).where(_RUNS.c.state.in_(["pending", "running"]))
                ).scalar_one()
            if len(all_runs(service)) == 2 * STORM and not open_runs:
                break
            time.sleep(0.25)
        runs = assert_all_final(service)
        posts = [r for r in runs if r.action == "slack.post"]
        assert len(posts) == STORM
        assert [(r.action, r.state) for r in runs if r.state != "succeeded"] == []
        retried = sum(len(retries_of(service, r)) for r in posts)
        for run in posts:
            for retry in retries_of(service, run):
                assert "HTTP 429" in retry["error"], retry
        assert_no_secrets(service, logs, capsys)

    roots = fakes.slack.root_messages(INCIDENTS_CHANNEL)
    posted_for = sorted(int(m.metadata["event_payload"]["run_id"]) for m in roots if m.metadata)
    stored_ids = [r.id for r in posts if r.id is not None]
    assert len(stored_ids) == len(posts)
    assert posted_for == sorted(stored_ids)  # every root, each exactly once
    # Every 429 the channel answered was retried, and nothing else failed.
    assert len(fakes.slack.calls_to("chat.postMessage")) == STORM + retried
    assert len(fakes.pagerduty.alerts()) == STORM


def test_posts_to_a_channel_named_by_name_share_its_pace_once_its_id_is_known(
    migrated_url: str, fakes: Vendors, samples_dir: Path, tmp_path: Path
) -> None:
    """The pace of "#incidents" and of C0INCIDENTS is one pace: it is the same channel.

    The first post books the channel's next slot under its name; it teaches the client the
    channel's ID, and a post right after it is paced under the ID, where no slot is booked.
    """
    (tmp_path / "checkout.yaml").write_text(
        "name: checkout-paced\n"
        "match:\n  tags: {service: checkout-service}\n"
        'actions:\n  - slack.post: {channel: "#incidents"}\n'
    )
    fakes.slack.rate_limit_channels()
    with running(fakes.settings(migrated_url, playbooks=tmp_path)) as (service, client):
        deliver(client, storm_alert(samples_dir, 1))
        drain(service)  # posted: the next post to the channel is due 1.1 s later
        deliver(client, storm_alert(samples_dir, 2))
        settle(service)
        runs = assert_all_final(service)
        assert [r.state for r in runs] == ["succeeded", "succeeded"]
        second = runs[1]
        assert retries_of(service, second) == []  # paced, not refused by Slack and retried
    assert len(fakes.slack.root_messages(INCIDENTS_CHANNEL)) == 2
    assert len(fakes.slack.calls_to("chat.postMessage")) == 2
