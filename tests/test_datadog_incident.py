"""datadog.incident, datadog.incident_timeline and datadog.incident_resolve against the fake."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.datadog import IncidentParams
from responder.actions import Action, ActionResult, FollowUp
from responder.domain import Alert, Transition
from tests.contexts import (
    NO_DATA,
    RE_NO_DATA,
    RECOVERED,
    RENOTIFY,
    TRIGGERED,
    sample_alert,
    stale_event,
    stale_incident,
)
from tests.contexts import action_context as ctx
from tests.contexts import incident_view as incident
from tests.fakes.datadog import FakeDatadog
from tests.test_datadog_actions import (
    API_KEY,
    APP_KEY,
    WORKFLOW,
    failure,
    make_actions,
    run,
)

TITLE = "High Payment Failure Rate"


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


@pytest.fixture
def dd(fake: FakeDatadog) -> dict[str, Action]:
    return make_actions(fake)


def declare(dd: dict[str, Action], params: dict[str, Any] | None = None, **kw: Any) -> ActionResult:
    return run(dd, "datadog.incident", params, **kw)


# -- datadog.incident ---------------------------------------------------------------------------


def test_incident_is_declared_with_fields_and_links(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    refs = {
        "slack": {
            "channel": "C0PAY",
            "ts": "1.2",
            "url": "https://acme.slack.com/archives/C0PAY/p12",
        }
    }
    result = declare(dd, view=incident(refs=refs))
    (stored,) = fake.incidents()
    assert stored.title.startswith(f"{TITLE} [rsp-") and stored.title.endswith("]")
    fields = stored.attributes["fields"]
    assert fields["severity"]["value"] == "SEV-1"  # P1
    assert fields["state"]["value"] == "active"
    assert fields["detection_method"]["value"] == "monitor"
    assert fields["services"]["value"] == ["payment"]  # the alert's service tag
    assert fields["teams"]["value"] is None
    assert stored.attributes["customer_impacted"] is False
    (cell,) = stored.initial_cells
    text = cell["content"]["content"]
    assert "[Monitor](https://app.datadoghq.com/monitors/148275309)" in text
    assert "[Event](https://app.datadoghq.com/event/event?id=7716548234011234567)" in text
    assert "[Slack thread](https://acme.slack.com/archives/C0PAY/p12)" in text
    assert "Payment failure rate is above 5%" in text
    assert "@webhook-responder" not in text  # a mention in the message would page someone
    ref = {
        "id": stored.id,
        "public_id": stored.public_id,
        "url": f"https://app.datadoghq.com/incidents/{stored.public_id}",
    }
    assert result.refs == {"datadog_incident": ref}
    assert result.response == {
        **ref,
        "title": stored.title,
        "severity": "SEV-1",
        "customer_impacted": False,
        "adopted": False,
    }
    assert [c.route for c in fake.calls] == ["CreateIncident"]


def test_incident_params_shape_the_request(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    params = {
        "severity": "SEV-3",
        "title": "Payments degraded",
        "customer_impacted": True,
        "customer_impact_scope": "EU card payments fail",
        "teams": ["payments", "sre"],
        "services": ["payment-api"],
        "commander_team": "sre",
    }
    declare(dd, params)
    (stored,) = fake.incidents()
    assert stored.title.startswith("Payments degraded [rsp-")
    fields = stored.attributes["fields"]
    assert fields["severity"]["value"] == "SEV-3"
    assert fields["teams"]["value"] == ["sre", "payments"]  # the commanding team first
    assert fields["services"]["value"] == ["payment-api"]
    assert stored.attributes["customer_impacted"] is True
    assert stored.attributes["customer_impact_scope"] == "EU card payments fail"


@pytest.mark.parametrize(
    ("priority", "severity"), [("P2", "SEV-2"), ("P5", "SEV-5"), (None, "UNKNOWN")]
)
def test_severity_defaults_from_the_priority(
    fake: FakeDatadog, dd: dict[str, Action], priority: str | None, severity: str
) -> None:
    declare(dd, alert=replace(TRIGGERED, priority=priority), view=incident(priority=priority))
    assert fake.incidents()[0].attributes["severity"] == severity


def test_alert_text_is_escaped_for_markdown(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    hostile = replace(
        TRIGGERED,
        monitor_name="[pay](https://evil.example) @channel",
        status_text="**x** > 5 <script>",
        message="```\n[phish](https://evil.example)\n@oncall-payments",
    )
    declare(dd, alert=hostile)
    text = fake.incidents()[0].initial_cells[0]["content"]["content"]
    assert "[pay](https://evil" not in text and "@channel" not in text
    assert "<script>" not in text and "**x**" not in text
    assert "@oncall-payments" not in text
    assert "````\n```\n[phish](https://evil.example)" in text  # verbatim inside a longer fence


def test_uncertain_create_adopts_instead_of_duplicating(fake: FakeDatadog) -> None:
    quick = make_actions(fake, timeout=0.3)
    fake.delay_next("CreateIncident", 1.0)
    error = failure(lambda: declare(quick))
    assert error.retryable is True
    assert len(fake.incidents()) == 1  # Datadog created it; only the answer was lost
    retry = declare(quick, uncertain=True)
    assert retry.response["adopted"] is True
    (stored,) = fake.incidents()
    assert retry.refs["datadog_incident"]["id"] == stored.id
    assert [c.route for c in fake.calls] == ["CreateIncident", "SearchIncidents"]
    search = fake.calls_to("SearchIncidents")[0]
    assert search.query["sort"] == "-created"


def test_a_retry_without_an_earlier_incident_creates_one(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    declare(dd, run_id="other")  # someone else's incident: a different marker
    retry = declare(dd, attempt=2)
    assert retry.response["adopted"] is False
    assert len(fake.incidents()) == 2


def test_a_busy_search_retries_rather_than_declaring_twice(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    fake.fail_next("SearchIncidents", 503)
    error = failure(lambda: declare(dd, uncertain=True))
    assert error.retryable is True
    assert fake.incidents() == []


def test_a_refused_search_still_declares_with_a_note(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    fake.fail_next("SearchIncidents", 403)
    result = declare(dd, uncertain=True)
    assert result.response["adopted"] is False
    assert "not checked for an earlier incident" in result.response["note"]
    assert len(fake.incidents()) == 1


def test_describe_names_the_request(dd: dict[str, Action]) -> None:
    described = dd["datadog.incident"].describe(ctx("datadog.incident", {"severity": "SEV-2"}))
    assert described["method"] == "CreateIncident"
    assert described["fields"]["severity"] == {"type": "dropdown", "value": "SEV-2"}
    assert described["search_first"] is None
    uncertain = dd["datadog.incident"].describe(ctx("datadog.incident", uncertain=True))
    assert uncertain["search_first"] == "state:(active OR stable OR resolved)"


@pytest.mark.parametrize(
    "params",
    [
        {"customer_impacted": True},
        {"customer_impacted": True, "customer_impact_scope": "  "},
        {"severity": "SEV-9"},
        {"severity": "sev-1"},
        {"commander": "sre"},
        {"teams": "payments"},
    ],
)
def test_incident_params_are_strict(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IncidentParams.model_validate(params)


def test_invalid_params_at_run_time_are_permanent(dd: dict[str, Action]) -> None:
    error = failure(lambda: declare(dd, {"severity": "SEV-9"}))
    assert error.retryable is False and "invalid params" in error.message


@pytest.mark.parametrize(
    ("transition", "follow"),
    [
        (Transition.RECOVERED, FollowUp("datadog.incident_resolve", {})),
        (Transition.RENOTIFY, FollowUp("datadog.incident_timeline", {})),
        (Transition.RE_TRIGGERED, FollowUp("datadog.incident_timeline", {})),
        (Transition.TRIGGERED, FollowUp("datadog.incident_timeline", {})),  # Warn -> Triggered
    ],
)
def test_follow_ups(dd: dict[str, Action], transition: Transition, follow: FollowUp) -> None:
    assert dd["datadog.incident"].follow_up(transition, {"severity": "SEV-2"}) == follow


# -- datadog.incident_timeline -----------------------------------------------------------------


def test_timeline_adds_a_link_to_the_notification(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = declare(dd).response
    result = run(dd, "datadog.incident_timeline", alert=RENOTIFY, parent=parent)
    (stored,) = fake.incidents()
    (attachment,) = stored.attachments
    attributes = attachment["attributes"]
    assert attributes["attachment_type"] == "link"
    assert attributes["attachment"]["documentUrl"] == RENOTIFY.link
    title = attributes["attachment"]["title"]
    assert title.startswith("Renotify at ") and "sum:fraud.check{env:prod}" in title
    assert result.response == {
        "incident_id": stored.id,
        "attachment_id": attachment["id"],
        "title": title,
        "url": RENOTIFY.link,
        "adopted": False,
    }
    assert result.refs == {}


def test_timeline_finds_the_incident_in_refs(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    refs = declare(dd).refs
    run(dd, "datadog.incident_timeline", alert=RENOTIFY, view=incident(refs=refs))
    assert len(fake.incidents()[0].attachments) == 1


def test_timeline_retry_adopts_its_entry(fake: FakeDatadog) -> None:
    quick = make_actions(fake, timeout=0.3)
    parent = declare(quick).response
    fake.delay_next("CreateIncidentAttachment", 1.0)
    failure(lambda: run(quick, "datadog.incident_timeline", alert=RENOTIFY, parent=parent))
    retry = run(quick, "datadog.incident_timeline", alert=RENOTIFY, parent=parent, attempt=2)
    assert retry.response["adopted"] is True
    assert len(fake.incidents()[0].attachments) == 1


@pytest.mark.parametrize("name", ["datadog.incident_timeline", "datadog.incident_resolve"])
@pytest.mark.parametrize("parent", [None, {}, {"id": ""}])
def test_follow_ups_skip_without_an_incident(
    fake: FakeDatadog, dd: dict[str, Action], name: str, parent: dict[str, Any] | None
) -> None:
    result = run(dd, name, alert=RECOVERED, parent=parent)
    assert result.skipped_reason == "no Datadog incident for this incident"
    assert fake.calls == []
    assert (
        dd[name].describe(ctx(name, alert=RECOVERED, parent=parent))["skip"]
        == result.skipped_reason
    )


# -- datadog.incident_resolve ----------------------------------------------------------------------


def test_resolve_sets_the_state_and_is_idempotent(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = declare(dd).response
    first = run(dd, "datadog.incident_resolve", alert=RECOVERED, parent=parent)
    (stored,) = fake.incidents()
    assert stored.state == "resolved"
    resolved_at = stored.attributes["resolved"]
    assert resolved_at is not None
    assert first.response == {
        "id": stored.id,
        "public_id": stored.public_id,
        "url": parent["url"],
        "state": "resolved",
        "resolved": resolved_at,
        "recovered_at": RECOVERED.date.isoformat(),
    }
    again = run(dd, "datadog.incident_resolve", alert=RECOVERED, parent=parent, attempt=2)
    assert again.response["resolved"] == resolved_at
    assert fake.incidents()[0].attributes["resolved"] == resolved_at
    assert len(stored.patches) == 2
    assert "customer_impact_end" not in stored.patches[0]["attributes"]


def test_resolve_ends_the_customer_impact(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    params = {"customer_impacted": True, "customer_impact_scope": "checkout fails"}
    parent = declare(dd, params).response
    run(dd, "datadog.incident_resolve", alert=RECOVERED, parent=parent)
    (stored,) = fake.incidents()
    assert stored.patches[0]["attributes"]["customer_impact_end"] == RECOVERED.date.isoformat()


def test_resolving_a_deleted_incident_is_permanent(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    parent = {"id": "00000000-0000-0000-0000-000000000000", "public_id": 1, "url": "https://x"}
    error = failure(lambda: run(dd, "datadog.incident_resolve", alert=RECOVERED, parent=parent))
    assert error.retryable is False
    assert error.response == {"status": 404, "errors": ["Not found"]}


def test_resolve_describe(dd: dict[str, Action]) -> None:
    parent = {"id": "abc", "public_id": 7, "url": "https://x", "customer_impacted": True}
    described = dd["datadog.incident_resolve"].describe(
        ctx(
            "datadog.incident_resolve",
            alert=sample_alert("payment-failure-rate.recovered"),
            parent=parent,
        )
    )
    assert described["method"] == "UpdateIncident"
    assert described["incident_id"] == "abc"
    assert described["attributes"]["fields"]["state"]["value"] == "resolved"
    assert described["attributes"]["customer_impact_end"] == RECOVERED.date.isoformat()


# -- alert streams: No Data, stale -------------------------------------------------------------

STALE_NOTE = (
    "Resolved as stale at 03:40 UTC: no delivery for 1d, since 2026-11-23 03:40 UTC;"
    " Datadog never reported a recovery"
)
MONITOR = "https://app.datadoghq.com/monitors/148275309"


@pytest.mark.parametrize(
    ("alert", "start"),
    [
        (NO_DATA, "No Data at 22:01 UTC: the monitor stopped receiving data (sum:trace.flask"),
        (RE_NO_DATA, "Re-No Data at 22:11 UTC: the monitor still receives no data (sum:trace"),
    ],
)
def test_timeline_says_what_no_data_means(
    fake: FakeDatadog, dd: dict[str, Action], alert: Alert, start: str
) -> None:
    parent = declare(dd).response
    run(dd, "datadog.incident_timeline", alert=alert, parent=parent)
    (attachment,) = fake.incidents()[0].attachments
    title = attachment["attributes"]["attachment"]["title"]
    assert title.startswith(start)
    assert title.endswith("has not reported data for 10m)")


def test_a_stale_resolve_says_so_on_the_incident(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = declare(dd).response
    resolved = run(
        dd, "datadog.incident_resolve", alert=stale_event(), parent=parent, view=stale_incident()
    )
    (stored,) = fake.incidents()
    assert stored.state == "resolved"
    (attachment,) = stored.attachments
    assert attachment["attributes"]["attachment"] == {"title": STALE_NOTE, "documentUrl": MONITOR}
    assert resolved.response["resolution"] == "stale"
    assert resolved.response["resolved_at"] == "2026-11-24T03:40:00+00:00"
    assert resolved.response["note"] == STALE_NOTE
    assert resolved.response["note_adopted"] is False
    assert "recovered_at" not in resolved.response


def test_a_stale_resolve_retried_writes_its_note_once(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    parent = declare(dd).response
    fake.fail_next("UpdateIncident", 503)
    stale: dict[str, Any] = {"alert": stale_event(), "parent": parent, "view": stale_incident()}
    assert failure(lambda: run(dd, "datadog.incident_resolve", **stale)).retryable is True
    retry = run(dd, "datadog.incident_resolve", attempt=2, **stale)
    assert retry.response["note_adopted"] is True
    (stored,) = fake.incidents()
    assert len(stored.attachments) == 1
    assert stored.state == "resolved"


def test_a_recovered_resolve_writes_no_stale_note(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    parent = declare(dd).response
    view = incident(status="resolved", resolution="recovered", resolved_at=RECOVERED.date)
    result = run(dd, "datadog.incident_resolve", alert=RECOVERED, parent=parent, view=view)
    assert fake.incidents()[0].attachments == []
    assert "resolution" not in result.response
    described = dd["datadog.incident_resolve"].describe(
        ctx("datadog.incident_resolve", alert=RECOVERED, parent=parent, view=view)
    )
    assert "first" not in described


def test_a_stale_resolve_describes_its_note(dd: dict[str, Action]) -> None:
    parent = {"id": "abc", "public_id": 7, "url": "https://x"}
    described = dd["datadog.incident_resolve"].describe(
        ctx("datadog.incident_resolve", alert=stale_event(), parent=parent, view=stale_incident())
    )
    assert described["first"]["method"] == "CreateIncidentAttachment"
    assert described["first"]["title"] == STALE_NOTE
