"""pagerduty.trigger / .acknowledge / .resolve / .note with the real SDK against the local fake."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.pagerduty import (
    NO_ROUTING_KEY,
    EventParams,
    NoteParams,
    TriggerParams,
    pagerduty_actions,
)
from integrations.pagerduty.events import dedup_key
from responder.actions import (
    Action,
    ActionError,
    ActionResult,
    FollowUp,
)
from responder.domain import Transition
from tests.contexts import (
    NO_DATA,
    RECOVERED,
    TRIGGERED,
    sample_alert,
    stale_event,
    stale_incident,
)
from tests.contexts import action_context as ctx
from tests.contexts import incident_view as incident
from tests.fakes.pagerduty import (
    API_TOKEN,
    EVENTS_SPEC,
    ROUTING_KEY,
    USER_EMAIL,
    FakePagerDuty,
    SpecShapes,
)

PAYMENTS_KEY = "PAYMENTS0KEY00000000000000000032"
UNKNOWN_KEY = "UNKNOWN00KEY00000000000000000032"
ENV = {"env:PD_PAYMENTS_KEY": PAYMENTS_KEY, "env:PD_UNKNOWN_KEY": UNKNOWN_KEY}
PAYMENTS = {"routing_key": "env:PD_PAYMENTS_KEY"}
SECRETS = (ROUTING_KEY, PAYMENTS_KEY, UNKNOWN_KEY, API_TOKEN)
EVENT_BODY = "#/paths/~1enqueue/post/requestBody/content/application~1json/schema"


@pytest.fixture
def fake() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(routing_keys=(ROUTING_KEY, PAYMENTS_KEY)) as server:
        yield server


def actions(
    fake: FakePagerDuty,
    *,
    routing_key: str | None = ROUTING_KEY,
    api_token: str | None = API_TOKEN,
    from_email: str | None = USER_EMAIL,
    env: Mapping[str, str] = ENV,
    timeout: float = 5.0,
) -> dict[str, Action]:
    built = pagerduty_actions(
        routing_key=routing_key,
        api_token=api_token,
        events_url=fake.events_url,
        api_url=fake.api_url,
        secret=env.get,
        from_email=from_email,
        timeout=timeout,
    )
    return {a.name: a for a in built}


@pytest.fixture
def pd(fake: FakePagerDuty) -> dict[str, Action]:
    return actions(fake)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's hidden retries sleep between attempts: any sleep fails the test."""

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s inside an action")

    monkeypatch.setattr(time, "sleep", refuse)


def trigger(pd: dict[str, Action], params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    return pd["pagerduty.trigger"].execute(ctx("pagerduty.trigger", params or {}, **kw))


def run(pd: dict[str, Action], name: str, params: Mapping[str, Any], **kw: Any) -> ActionResult:
    return pd[name].execute(ctx(name, params, **kw))


def failure(call: Any) -> ActionError:
    with pytest.raises(ActionError) as info:
        call()
    return info.value


# -- pagerduty.trigger ---------------------------------------------------------------------


def test_trigger_sends_the_incident_event(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    result = trigger(pd)
    (event,) = fake.events(ROUTING_KEY)
    key = dedup_key(incident())
    assert event.outcome == "opened"
    assert result.response == {
        "dedup_key": key,
        "status": "success",
        "message": "Event processed",
        "routing_key": "PAGERDUTY_ROUTING_KEY",
    }
    assert result.refs == {"pagerduty": {"dedup_key": key, "routing": "PAGERDUTY_ROUTING_KEY"}}
    assert result.skipped_reason is None

    body = event.body
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == key
    assert body["client"] == "responder"
    assert body["client_url"] == "https://app.datadoghq.com/monitors/148275309"
    payload = body["payload"]
    assert payload["summary"] == "[Triggered] High Payment Failure Rate"
    assert payload["source"] == "High Payment Failure Rate"  # no host, no scope: the monitor
    assert payload["severity"] == "critical"  # P1
    assert payload["timestamp"] == "2026-11-22T22:00:00+00:00"
    assert (payload["component"], payload["group"]) == ("payment", "payments")
    assert payload["class"] == "payment.completions"
    details = payload["custom_details"]
    assert details["monitor"] == "High Payment Failure Rate"
    assert details["monitor_id"] == "148275309"
    assert details["query"].startswith("avg(last_10m):")
    assert details["tags"]["service"] == "payment"
    assert (details["priority"], details["transition"]) == ("P1", "Triggered")
    assert details["message"].startswith("Payment failure rate is above 5%")
    assert "scope" not in details  # empty scope says nothing
    assert body["links"] == [
        {"href": "https://app.datadoghq.com/monitors/148275309", "text": "Datadog monitor"},
        {"href": TRIGGERED.link, "text": "Datadog event"},
    ]
    assert body["images"] == [
        {
            "src": TRIGGERED.snapshot,
            "href": TRIGGERED.snapshot,
            "alt": "Datadog graph snapshot",
        }
    ]


def test_describe_is_the_event_sent_with_the_key_by_name(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    context = ctx("pagerduty.trigger", PAYMENTS)
    described = pd["pagerduty.trigger"].describe(context)
    pd["pagerduty.trigger"].execute(context)
    (event,) = fake.events(PAYMENTS_KEY)
    assert described == {"routing_key": "env:PD_PAYMENTS_KEY", **event.body}


def test_the_event_matches_the_published_schema(pd: dict[str, Action]) -> None:
    described = dict(pd["pagerduty.trigger"].describe(ctx("pagerduty.trigger", {})))
    assert SpecShapes(EVENTS_SPEC).errors(described, EVENT_BODY) == []


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("P1", "critical"),
        ("P2", "error"),
        ("P3", "warning"),
        ("P4", "info"),
        ("P5", "info"),
        (None, "error"),
    ],
)
def test_severity_follows_the_alert_priority(
    pd: dict[str, Action], priority: str | None, severity: str
) -> None:
    alert = replace(TRIGGERED, priority=priority)
    view = incident(priority=priority)
    described = pd["pagerduty.trigger"].describe(
        ctx("pagerduty.trigger", {}, alert=alert, view=view)
    )
    assert described["payload"]["severity"] == severity


def test_step_params_override_the_defaults(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    params = {
        "severity": "warning",
        "summary": "Payments degraded",
        "component": "gateway",
        "group": "checkout",
        "class": "latency",
        "custom_details": {"runbook": "https://wiki/pay", "monitor": "renamed"},
    }
    trigger(pd, params)
    payload = fake.events()[0].body["payload"]
    assert payload["severity"] == "warning"
    assert payload["summary"] == "Payments degraded"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "gateway",
        "checkout",
        "latency",
    )
    details = payload["custom_details"]
    assert details["runbook"] == "https://wiki/pay"
    assert details["monitor"] == "renamed"  # theirs over ours
    assert details["monitor_id"] == "148275309"


def test_source_prefers_the_host_then_the_scope(pd: dict[str, Action]) -> None:
    def source(**alert: Any) -> Any:
        context = ctx("pagerduty.trigger", {}, alert=sample_alert("api-latency.triggered", **alert))
        return pd["pagerduty.trigger"].describe(context)["payload"]["source"]

    assert source(hostname="web-1", scope="host:web-1,env:prod") == "web-1"
    assert source(hostname=None, scope="env:prod,service:api") == "env:prod,service:api"


def test_long_alert_text_is_clipped_to_fit(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    huge = replace(
        TRIGGERED,
        title="T" * 5000,
        message="m" * 50_000,
        hostname="h" * 3000,
    )
    trigger(pd, alert=huge)  # the fake rejects a summary over 1024: this would fail
    payload = fake.events()[0].body["payload"]
    assert len(payload["summary"]) == 1024 and payload["summary"].endswith("…")
    assert len(payload["source"]) <= 1024
    assert len(payload["custom_details"]["message"]) <= 8000


def test_huge_custom_details_are_dropped_not_refused(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    trigger(pd, {"custom_details": {"blob": "x" * 600_000}})
    details = fake.events()[0].body["payload"]["custom_details"]
    assert "blob" not in details
    assert details["monitor_id"] == "148275309"


def test_links_include_what_other_vendors_made(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    refs = {
        "slack": {"channel": "C1", "ts": "1.2", "url": "https://slack.example/archives/C1/p12"},
        "datadog_notebook": {"id": 7, "url": "https://app.datadoghq.com/notebook/7"},
        "pagerduty": {"dedup_key": "x", "url": "https://pd.example/incidents/Q1"},
        "datadog_incident": {"id": "abc"},  # nothing to open
    }
    trigger(pd, view=incident(refs=refs))
    links = fake.events()[0].body["links"]
    assert links[2:] == [
        {"href": "https://slack.example/archives/C1/p12", "text": "Slack thread"},
        {"href": "https://app.datadoghq.com/notebook/7", "text": "RCA notebook"},
    ]


def test_no_link_or_image_without_a_datadog_link(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    trigger(pd, alert=replace(TRIGGERED, link=None, snapshot=None))
    body = fake.events()[0].body
    assert "links" not in body and "images" not in body and "client_url" not in body


# -- dedup keys ----------------------------------------------------------------------------


def test_dedup_key_is_stable_and_distinct_per_incident() -> None:
    key = dedup_key(incident())
    assert key == dedup_key(incident(status="resolved", refs={"slack": {}}))
    assert key.startswith("responder:148275309:")
    # The same instant, read in another zone.
    one_hour_east = timezone(timedelta(hours=1))
    assert key == dedup_key(incident(opened_at=datetime(2026, 11, 22, 23, tzinfo=one_hour_east)))
    assert key != dedup_key(incident(key="148275309||7716548234000002222"))  # next cycle
    # No cycle key: the incident key holds our event id, and the opening time differs too.
    assert dedup_key(incident(key="148275309||event:1")) != dedup_key(
        incident(key="148275309||event:2")
    )
    assert dedup_key(incident(key="k")) != dedup_key(
        incident(key="k", opened_at=datetime(2026, 11, 23, 10, tzinfo=UTC))
    )
    long = dedup_key(incident(key="x" * 400, monitor_id=None))
    assert len(long) <= 255 and long.startswith("responder:")


def test_a_retried_trigger_never_opens_a_second_alert(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    first = trigger(pd)
    again = trigger(pd, attempt=2, uncertain=True)
    redelivered = trigger(pd, run_id="run-9")  # another run for the same incident
    assert first.response == again.response == redelivered.response
    assert fake.triggers("opened") == 1
    assert fake.triggers("deduplicated") == 2
    assert len(fake.open_alerts()) == 1


def test_a_new_incident_opens_a_new_alert(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    trigger(pd)
    trigger(pd, view=incident(id="inc-2", key="148275309||7716548234000002222"))
    assert fake.triggers("opened") == 2


def test_timeout_then_retry_is_deduplicated(fake: FakePagerDuty) -> None:
    pd = actions(fake, timeout=0.3)
    fake.delay_next("events", 1.0)
    error = failure(lambda: trigger(pd))
    assert (error.retryable, error.response["error"]) == (True, "timeout")
    assert len(fake.calls_to("events")) == 1
    trigger(pd, attempt=2)
    assert fake.triggers("opened") == 1
    assert fake.triggers("deduplicated") == 1


# -- follow-ups, acknowledge and resolve ---------------------------------------------------


@pytest.mark.parametrize(
    "transition",
    [
        Transition.RE_TRIGGERED,
        Transition.RE_WARN,
        Transition.RE_NO_DATA,
        Transition.RENOTIFY,
        Transition.TRIGGERED,
        Transition.WARN,
        Transition.NO_DATA,
    ],
)
def test_no_second_page_for_repeats_or_escalations(
    pd: dict[str, Action], transition: Transition
) -> None:
    assert pd["pagerduty.trigger"].follow_up(transition, PAYMENTS) is None


def test_recovery_follows_up_with_a_resolve(pd: dict[str, Action]) -> None:
    follow = pd["pagerduty.trigger"].follow_up(Transition.RECOVERED, PAYMENTS)
    assert follow == FollowUp("pagerduty.resolve", {"routing_key": "env:PD_PAYMENTS_KEY"})
    assert pd["pagerduty.trigger"].follow_up(Transition.RECOVERED, {}) == FollowUp(
        "pagerduty.resolve", {"routing_key": None}
    )
    for name in ("pagerduty.acknowledge", "pagerduty.resolve", "pagerduty.note"):
        assert pd[name].follow_up(Transition.RECOVERED, {}) is None


def test_recovery_resolves_with_the_same_routing_key(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd, PAYMENTS)
    follow = pd["pagerduty.trigger"].follow_up(Transition.RECOVERED, PAYMENTS)
    assert follow is not None
    result = run(
        pd, follow.action, follow.params, alert=RECOVERED, run_id="run-2", parent=root.response
    )
    (alert,) = fake.alerts(PAYMENTS_KEY)
    assert alert.status == "resolved"
    assert fake.alerts(ROUTING_KEY) == []
    assert [e.action for e in fake.events(PAYMENTS_KEY)] == ["trigger", "resolve"]
    assert fake.events()[1].body == {"event_action": "resolve", "dedup_key": alert.dedup_key}
    assert result.response == {
        "dedup_key": alert.dedup_key,
        "status": "success",
        "message": "Event processed",
        "routing_key": "env:PD_PAYMENTS_KEY",
    }
    assert result.refs == {}


def test_resolve_prefers_the_triggers_routing_over_its_params(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd, PAYMENTS)
    # A resolve planned with other params (say the playbook changed) still reaches the alert.
    run(pd, "pagerduty.resolve", {}, alert=RECOVERED, parent=root.response)
    assert [a.status for a in fake.alerts(PAYMENTS_KEY)] == ["resolved"]
    assert fake.events(ROUTING_KEY) == []


def test_resolve_accepts_the_parent_refs_shape(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    root = trigger(pd, PAYMENTS)
    run(pd, "pagerduty.resolve", {}, alert=RECOVERED, parent=dict(root.refs))
    assert [a.status for a in fake.alerts(PAYMENTS_KEY)] == ["resolved"]


def test_acknowledge_finds_routing_and_key_on_the_incident(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd, PAYMENTS)
    view = incident(refs=dict(root.refs))
    result = run(pd, "pagerduty.acknowledge", {}, view=view)
    (alert,) = fake.open_alerts(PAYMENTS_KEY)
    assert alert.status == "acknowledged"
    assert result.response["routing_key"] == "env:PD_PAYMENTS_KEY"
    described = pd["pagerduty.acknowledge"].describe(ctx("pagerduty.acknowledge", {}, view=view))
    assert described == {
        "routing_key": "env:PD_PAYMENTS_KEY",
        "event_action": "acknowledge",
        "dedup_key": alert.dedup_key,
    }


def test_resolve_of_a_skipped_trigger_derives_the_key(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    skipped = {"reason": NO_ROUTING_KEY, "response": {"request": {}}}
    trigger(pd)  # (opened some other way, e.g. a later run with the key set)
    run(pd, "pagerduty.resolve", {}, alert=RECOVERED, parent=skipped)
    assert fake.open_alerts() == []


def test_resolve_twice_is_harmless(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    root = trigger(pd)
    for attempt in (1, 2):
        result = run(
            pd, "pagerduty.resolve", {}, alert=RECOVERED, parent=root.response, attempt=attempt
        )
        assert result.response["status"] == "success"
    assert [e.outcome for e in fake.events()] == ["opened", "resolved", "dropped"]


# -- routing keys --------------------------------------------------------------------------


def test_an_unset_step_key_falls_back_to_the_default(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    result = trigger(pd, {"routing_key": "env:PD_NOT_SET"})
    assert result.response["routing_key"] == "PAGERDUTY_ROUTING_KEY"
    assert result.response["note"] == (
        "env:PD_NOT_SET is not set; sent with the default PAGERDUTY_ROUTING_KEY"
    )
    assert result.refs["pagerduty"]["routing"] == "PAGERDUTY_ROUTING_KEY"
    assert len(fake.alerts(ROUTING_KEY)) == 1


@pytest.mark.parametrize("params", [{}, {"routing_key": "env:PD_NOT_SET"}])
@pytest.mark.parametrize("name", ["pagerduty.trigger", "pagerduty.resolve"])
def test_no_key_at_all_skips_with_the_request(
    fake: FakePagerDuty, params: dict[str, Any], name: str
) -> None:
    pd = actions(fake, routing_key=None)
    assert pd[name].configured is True
    context = ctx(name, params)
    result = pd[name].execute(context)
    assert result.skipped_reason == NO_ROUTING_KEY
    assert result.response == {"request": pd[name].describe(context)}
    assert result.response["request"]["routing_key"] == (
        params.get("routing_key") or "PAGERDUTY_ROUTING_KEY"
    )
    assert result.refs == {}
    assert fake.calls == []


def test_blank_default_key_counts_as_none(fake: FakePagerDuty) -> None:
    result = trigger(actions(fake, routing_key="   "))
    assert result.skipped_reason == NO_ROUTING_KEY


def test_a_literal_routing_key_in_a_playbook_is_refused_at_load() -> None:
    for model in (TriggerParams, EventParams):
        with pytest.raises(ValidationError) as info:
            model.model_validate({"routing_key": PAYMENTS_KEY})
        (error,) = info.value.errors()
        assert "env:PAGERDUTY_PAYMENTS_KEY" in error["msg"]
        assert PAYMENTS_KEY not in error["msg"]
    for bad in ("env:", "env:1BAD", "ENV:X", "$PD_KEY", "env:PD KEY"):
        with pytest.raises(ValidationError):
            TriggerParams.model_validate({"routing_key": bad})
    assert TriggerParams.model_validate({"routing_key": " env:PD_X "}).routing_key == "env:PD_X"


def test_trigger_params_are_strict() -> None:
    parsed = TriggerParams.model_validate({"class": "disk", "summary": "  "})
    assert (parsed.class_, parsed.summary) == ("disk", None)
    for bad in (
        {"class_": "disk"},  # the YAML key is `class`
        {"severity": "high"},
        {"severity": "Critical"},
        {"dedup_key": "mine"},
        {"custom_details": "text"},
    ):
        with pytest.raises(ValidationError):
            TriggerParams.model_validate(bad)
    with pytest.raises(ValidationError):
        NoteParams.model_validate({"content": "  "})
    with pytest.raises(ValidationError):
        NoteParams.model_validate({})


def test_a_literal_key_at_run_time_fails_without_echoing_it(pd: dict[str, Action]) -> None:
    error = failure(lambda: trigger(pd, {"routing_key": PAYMENTS_KEY}))
    assert error.retryable is False
    assert "invalid params" in error.message
    assert PAYMENTS_KEY not in error.message


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("Wed, 21 Oct 2015 07:28:00 GMT", None), (None, None)],
)
def test_rate_limit_is_one_attempt_and_retryable(
    fake: FakePagerDuty,
    pd: dict[str, Action],
    no_sleep: None,
    retry_after: str | None,
    expected: float | None,
) -> None:
    fake.fail_next("events", status=429, retry_after=retry_after)
    error = failure(lambda: trigger(pd))
    assert (error.retryable, error.retry_after) == (True, expected)
    assert error.response == {
        "status": 429,
        "error": "throttle event",
        "message": "Requests for this service are arriving too quickly. Please retry later.",
    }
    assert len(fake.calls_to("events")) == 1  # the SDK would retry a 429 forever
    assert fake.alerts() == []


def test_the_fakes_own_rate_limit_is_retryable(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    fake.rate_limit(1)
    trigger(pd)
    error = failure(lambda: trigger(pd, view=incident(key="other")))
    assert (error.retryable, error.response["status"]) == (True, 429)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 501])
def test_server_errors_are_one_attempt_and_retryable(
    fake: FakePagerDuty, pd: dict[str, Action], no_sleep: None, status: int
) -> None:
    fake.fail_next("events", status=status, retry_after="2")
    error = failure(lambda: trigger(pd))
    assert (error.retryable, error.retry_after) == (True, 2.0)
    assert error.response["status"] == status
    assert len(fake.calls_to("events")) == 1


def test_connection_refused_is_one_attempt_and_retryable(
    fake: FakePagerDuty, pd: dict[str, Action], no_sleep: None
) -> None:
    fake.down()
    error = failure(lambda: trigger(pd))
    assert error.retryable is True
    assert error.response["error"] == "connection_error"
    fake.up()
    assert fake.calls == []
    trigger(pd)
    assert len(fake.calls_to("events")) == 1


def test_timeout_is_one_attempt_and_retryable(fake: FakePagerDuty, no_sleep: None) -> None:
    pd = actions(fake, timeout=0.2)
    fake.delay_next("events", 1.0)
    error = failure(lambda: trigger(pd))
    assert (error.retryable, error.response["error"]) == (True, "timeout")
    assert len(fake.calls_to("events")) == 1


def test_invalid_event_is_permanent_with_pagerdutys_answer(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    error = failure(lambda: trigger(pd, {"routing_key": "env:PD_UNKNOWN_KEY"}))
    assert error.retryable is False
    assert error.retry_after is None
    assert error.response == {
        "status": 400,
        "error": "invalid event",
        "message": "Event object is invalid",
        "errors": ["Invalid routing key"],
    }
    assert "HTTP 400" in error.message and "Invalid routing key" in error.message


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_missing_are_permanent(
    fake: FakePagerDuty, pd: dict[str, Action], no_sleep: None, status: int
) -> None:
    fake.fail_next("events", status=status, body={"status": "nope", "message": "refused"})
    error = failure(lambda: trigger(pd))
    assert error.retryable is False
    assert error.response == {"status": status, "error": "nope", "message": "refused"}
    assert len(fake.calls_to("events")) == 1


def test_an_answer_that_is_not_json_still_maps(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    fake.fail_next("events", status=502, body="<html>bad gateway</html>")
    error = failure(lambda: trigger(pd))
    assert (error.retryable, error.response) == (True, {"status": 502})


def test_base_urls_must_be_https_or_local(fake: FakePagerDuty) -> None:
    def build(events_url: str, api_url: str = "https://api.pagerduty.com") -> list[Action]:
        return pagerduty_actions(
            routing_key=ROUTING_KEY,
            api_token=API_TOKEN,
            events_url=events_url,
            api_url=api_url,
            secret=ENV.get,
            from_email=USER_EMAIL,
        )

    assert len(build("https://events.pagerduty.com")) == 4
    assert len(build("https://events.eu.pagerduty.com/")) == 4
    for bad in ("http://events.pagerduty.com", "ftp://x", "events.pagerduty.com", ""):
        with pytest.raises(ValueError, match="https://"):
            build(bad)
    with pytest.raises(ValueError, match="https://"):
        build("https://events.pagerduty.com", api_url="http://10.0.0.1:8080")
    # The spec's server URL ends in /v2; the SDK adds /v2/enqueue itself.
    pd = {a.name: a for a in build(fake.events_url + "/v2/")}
    trigger(pd)
    assert fake.triggers("opened") == 1


# -- pagerduty.note ------------------------------------------------------------------------


def noted(
    pd: dict[str, Action], root: ActionResult, content: str = "Rolled back", **kw: Any
) -> Any:
    view = incident(refs=dict(root.refs))
    return run(pd, "pagerduty.note", {"content": content}, view=view, **kw)


def test_note_finds_the_incident_by_dedup_key_and_posts_with_from(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd)
    result = noted(pd, root)
    (pd_incident,) = fake.incidents()
    assert [n["content"] for n in pd_incident.notes] == ["Rolled back"]
    (lookup,) = fake.calls_to("incidents")
    assert lookup["query"]["incident_key"] == [root.response["dedup_key"]]
    assert lookup["query"]["date_range"] == ["all"]
    post = [c for c in fake.calls_to("notes") if c["method"] == "POST"]
    assert post[0]["headers"]["from"] == USER_EMAIL
    assert post[0]["headers"]["authorization"] == f"Token token={API_TOKEN}"
    assert post[0]["body"] == {"note": {"content": "Rolled back"}}
    assert result.response == {
        "dedup_key": root.response["dedup_key"],
        "incident_id": pd_incident.id,
        "incident_number": pd_incident.number,
        "incident_url": f"https://fake.pagerduty.com/incidents/{pd_incident.id}",
        "note_id": "PNOTE001",
        "adopted": False,
    }
    assert result.refs == {
        "pagerduty": {
            **root.refs["pagerduty"],
            "incident_id": pd_incident.id,
            "url": f"https://fake.pagerduty.com/incidents/{pd_incident.id}",
        }
    }


def test_note_before_pagerduty_made_the_incident_is_retryable(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    fake.hold_incidents()
    root = trigger(pd)
    error = failure(lambda: noted(pd, root))
    assert (error.retryable, error.retry_after) == (True, 15.0)
    assert error.response == {
        "error": "incident_not_found",
        "dedup_key": root.response["dedup_key"],
    }
    fake.hold_incidents(False)
    assert noted(pd, root, attempt=2).response["adopted"] is False
    assert len(fake.incidents()[0].notes) == 1


def test_note_retry_adopts_the_note_already_made(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd)
    first = noted(pd, root)
    again = noted(pd, root, uncertain=True)
    assert again.response == {**first.response, "adopted": True}
    assert len(fake.incidents()[0].notes) == 1


def test_note_without_a_pagerduty_alert_is_skipped(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    context = ctx("pagerduty.note", {"content": "x"})
    result = pd["pagerduty.note"].execute(context)
    assert result.skipped_reason == "no PagerDuty alert was triggered for this incident"
    assert pd["pagerduty.note"].describe(context)["skip"] == result.skipped_reason
    assert fake.calls == []


def test_note_rate_limit_uses_ratelimit_reset(
    fake: FakePagerDuty, pd: dict[str, Action], no_sleep: None
) -> None:
    root = trigger(pd)
    fake.fail_next("incidents", status=429, ratelimit_reset="12")
    error = failure(lambda: noted(pd, root))
    assert (error.retryable, error.retry_after) == (True, 12.0)
    assert error.response == {"status": 429, "error": "Rate Limit Exceeded", "code": 2020}
    assert len(fake.calls_to("incidents")) == 1


def test_note_with_a_bad_token_is_permanent(fake: FakePagerDuty, no_sleep: None) -> None:
    root = trigger(actions(fake))
    error = failure(lambda: noted(actions(fake, api_token="u+WRONGTOKEN"), root))
    assert error.retryable is False
    assert error.response == {"status": 401, "error": "Authentication failed", "code": 2006}


def test_note_from_an_unknown_user_is_permanent(fake: FakePagerDuty) -> None:
    root = trigger(actions(fake))
    error = failure(lambda: noted(actions(fake, from_email="nobody@example.com"), root))
    assert error.retryable is False
    assert error.response["status"] == 400
    assert error.response["errors"] == ["Requester User Not Found"]


@pytest.mark.parametrize(
    ("api_token", "from_email"), [(None, USER_EMAIL), (API_TOKEN, None), (" ", USER_EMAIL)]
)
def test_note_needs_a_token_and_a_from_address(
    fake: FakePagerDuty, api_token: str | None, from_email: str | None
) -> None:
    pd = actions(fake, api_token=api_token, from_email=from_email)
    assert pd["pagerduty.note"].configured is False
    assert pd["pagerduty.trigger"].configured is True
    root = ActionResult(response={}, refs={"pagerduty": {"dedup_key": "k"}})
    described = pd["pagerduty.note"].describe(
        ctx("pagerduty.note", {"content": "x"}, view=incident(refs=dict(root.refs)))
    )
    assert described["params"]["incident_key"] == "k"
    assert described["then"]["note"] == {"content": "x"}
    error = failure(lambda: noted(pd, root))
    assert error.retryable is False
    assert fake.calls == []


# -- the contract --------------------------------------------------------------------------


def test_action_names_and_traits(pd: dict[str, Action]) -> None:
    assert sorted(pd) == [
        "pagerduty.acknowledge",
        "pagerduty.note",
        "pagerduty.resolve",
        "pagerduty.trigger",
    ]
    assert all(a.markup == "plain" and a.wants_runs is False for a in pd.values())


def test_pace_is_per_routing_reference(pd: dict[str, Action]) -> None:
    paced = pd["pagerduty.trigger"].pace(ctx("pagerduty.trigger", PAYMENTS))
    assert paced is not None and paced.key == "pagerduty:env:PD_PAYMENTS_KEY"
    assert 0.5 <= paced.interval < 1
    default = pd["pagerduty.resolve"].pace(ctx("pagerduty.resolve", {}))
    assert default is not None and default.key == "pagerduty:PAGERDUTY_ROUTING_KEY"
    # Invalid params never break the runner's claim loop.
    assert pd["pagerduty.trigger"].pace(ctx("pagerduty.trigger", {"routing_key": "x"})) is None


def test_no_secret_ever_leaks(
    fake: FakePagerDuty, caplog: pytest.LogCaptureFixture, no_sleep: None
) -> None:
    caplog.set_level(logging.DEBUG)
    pd = actions(fake, timeout=0.3)
    seen: list[str] = []

    def keep(result: ActionResult) -> ActionResult:
        seen.extend([repr(result.response), repr(result.refs), repr(result)])
        return result

    def keep_error(call: Any) -> None:
        error = failure(call)
        seen.extend([str(error), repr(error), error.message, repr(error.response)])
        # Nothing chained: the SDK's exceptions hold the request, secrets included.
        assert error.__cause__ is None and error.__context__ is None

    for params in ({}, PAYMENTS, {"routing_key": "env:PD_NOT_SET"}):
        context = ctx("pagerduty.trigger", params)
        seen.append(repr(pd["pagerduty.trigger"].describe(context)))
        seen.append(repr(pd["pagerduty.trigger"].pace(context)))
        root = keep(trigger(pd, params))
    root = keep(trigger(pd, PAYMENTS))
    for name in ("pagerduty.acknowledge", "pagerduty.resolve"):
        context = ctx(name, {}, parent=root.response)
        seen.append(repr(pd[name].describe(context)))
        keep(pd[name].execute(context))
    seen.append(repr(pd["pagerduty.note"].describe(ctx("pagerduty.note", {"content": "x"}))))
    keep(noted(pd, root))
    keep(trigger(actions(fake, routing_key=None), {"routing_key": "env:PD_NOT_SET"}))

    for status in (400, 401, 403, 404, 429, 500, 503):
        fake.fail_next("events", status=status, retry_after="1")
        keep_error(lambda: trigger(pd, PAYMENTS))
        fake.fail_next("incidents", status=status, ratelimit_reset="1")
        keep_error(lambda: noted(pd, root))
        fake.fail_next("notes", status=status)
        keep_error(lambda: noted(pd, root, content="another"))
    # PagerDuty echoing a key back must not carry it into our records either.
    fake.fail_next(
        "events", status=400, body={"status": f"bad {PAYMENTS_KEY}", "errors": [API_TOKEN]}
    )
    keep_error(lambda: trigger(pd, PAYMENTS))
    keep_error(lambda: trigger(pd, {"routing_key": "env:PD_UNKNOWN_KEY"}))
    keep_error(lambda: noted(actions(fake, api_token="u+WRONGTOKEN"), root))
    keep_error(lambda: trigger(pd, {"routing_key": PAYMENTS_KEY}))
    fake.delay_next("events", 1.0)
    keep_error(lambda: trigger(pd))
    fake.down()
    keep_error(lambda: trigger(pd, PAYMENTS))
    keep_error(lambda: noted(pd, root))

    assert len(seen) > 100
    for text in [*seen, caplog.text]:
        for secret in SECRETS:
            assert secret not in text
        assert "FAKEPDTOKEN" not in text and "WRONGTOKEN" not in text


# -- alert streams: No Data, stale -------------------------------------------------------------


def test_a_no_data_page_says_no_data(fake: FakePagerDuty, pd: dict[str, Action]) -> None:
    trigger(pd, alert=NO_DATA)
    payload = fake.events()[0].body["payload"]
    # Datadog's own title carries the transition; nothing of ours calls it worse or recovered.
    assert payload["summary"] == (
        "[No Data on {host:ip-10-0-3-18}] Error rate spike in checkout-service"
    )
    assert payload["custom_details"]["transition"] == "No Data"


def test_a_stale_resolve_is_the_bare_resolve_event(
    fake: FakePagerDuty, pd: dict[str, Action]
) -> None:
    root = trigger(pd)
    run(
        pd,
        "pagerduty.resolve",
        {},
        alert=stale_event(),
        view=stale_incident(),
        run_id="run-9",
        parent=root.response,
    )
    (alert,) = fake.alerts(ROUTING_KEY)
    assert alert.status == "resolved"
    # The Events API's resolve carries no words, so it cannot claim a recovery.
    assert fake.events()[1].body == {"event_action": "resolve", "dedup_key": alert.dedup_key}
