"""datadog.workflow: start an instance, poll it to its end, adopt after a lost answer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.datadog import WorkflowParams
from responder.actions import Action, ActionResult
from responder.domain import Transition
from tests.contexts import action_context as ctx
from tests.fakes.datadog import FakeDatadog
from tests.test_datadog_actions import (
    API_KEY,
    APP_KEY,
    WORKFLOW,
    failure,
    make_actions,
    run,
)

PARAMS = {"workflow_id": WORKFLOW, "inputs": {"service": "payment", "replicas": 6}}
NAME = "datadog.workflow"


@pytest.fixture
def fake() -> Iterator[FakeDatadog]:
    with FakeDatadog(api_key=API_KEY, app_key=APP_KEY, workflows={WORKFLOW}) as server:
        yield server


@pytest.fixture
def dd(fake: FakeDatadog) -> dict[str, Action]:
    return make_actions(fake)


def start(dd: dict[str, Action], params: Mapping[str, Any] = PARAMS, **kw: Any) -> ActionResult:
    return run(dd, NAME, params, **kw)


def poll(
    dd: dict[str, Action], previous: Mapping[str, Any], params: Mapping[str, Any] = PARAMS
) -> ActionResult:
    polls = int(previous.get("polls") or 0)
    return run(dd, NAME, params, previous=previous, attempt=polls + 2)


def test_start_runs_the_workflow_with_our_key(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    result = start(dd)
    (instance,) = fake.instances()
    assert instance.workflow_id == WORKFLOW
    key = instance.payload.pop("responder_key")
    assert key.startswith("rsp-")
    assert instance.payload == {"service": "payment", "replicas": 6}
    url = f"https://app.datadoghq.com/workflow/{WORKFLOW}?instance={instance.id}"
    assert result.poll_after == 5
    assert result.refs == {
        "datadog_workflow": {"id": WORKFLOW, "instance_id": instance.id, "url": url}
    }
    started = datetime.fromisoformat(result.response["started_at"])
    assert abs((datetime.now(UTC) - started).total_seconds()) < 5
    assert result.response == {
        "workflow_id": WORKFLOW,
        "instance_id": instance.id,
        "status": "running",
        "started_at": result.response["started_at"],
        "polls": 0,
        "adopted": False,
    }


def test_polling_backs_off_then_succeeds(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    fake.finish_instances("SUCCEEDED", after_polls=5)
    result = start(dd)
    delays = [result.poll_after]
    while result.poll_after is not None:
        result = poll(dd, result.response)
        delays.append(result.poll_after)
    assert delays == [5, 10, 20, 40, 60, 60, None]
    assert result.response["status"] == "succeeded"
    assert result.response["polls"] == 6
    assert result.response["finished_at"] is not None
    assert result.refs["datadog_workflow"]["instance_id"] == fake.instances()[0].id
    assert len(fake.calls_to("CreateWorkflowInstance")) == 1
    assert len(fake.calls_to("GetWorkflowInstance")) == 6


@pytest.mark.parametrize(("datadog", "status"), [("FAILED", "failed"), ("CANCELED", "cancelled")])
def test_a_failed_instance_fails_the_run(
    fake: FakeDatadog, dd: dict[str, Action], datadog: str, status: str
) -> None:
    fake.finish_instances(datadog, after_polls=1)
    running = poll(dd, start(dd).response)
    assert running.poll_after == 10
    error = failure(lambda: poll(dd, running.response))
    instance_id = fake.instances()[0].id
    assert error.retryable is False
    assert instance_id in error.message and status in error.message
    assert error.response["status"] == status
    assert error.response["datadog_status"] == datadog
    assert error.response["instance_id"] == instance_id


def test_a_slow_instance_times_out(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    params = {**PARAMS, "timeout": 600}
    started = start(dd, params).response
    long_ago = (datetime.now(UTC) - timedelta(seconds=601)).isoformat()
    error = failure(lambda: poll(dd, {**started, "started_at": long_ago, "polls": 4}, params))
    instance_id = started["instance_id"]
    assert error.retryable is False
    assert error.message == (
        f"datadog workflow instance {instance_id} did not finish within 600s "
        "(last status IN_PROGRESS)"
    )
    assert error.response["status"] == "timed_out"


def test_the_last_poll_lands_at_the_deadline(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    params = {**PARAMS, "timeout": 30}
    started = start(dd, params).response
    nearly = (datetime.now(UTC) - timedelta(seconds=25)).isoformat()
    result = poll(dd, {**started, "started_at": nearly, "polls": 3}, params)
    assert result.poll_after is not None and 5 <= result.poll_after <= 7


def test_a_poll_that_fails_is_retryable(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    started = start(dd).response
    fake.fail_next("GetWorkflowInstance", 503)
    assert failure(lambda: poll(dd, started)).retryable is True
    assert poll(dd, started).response["status"] == "running"


def test_a_vanished_instance_is_permanent(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    previous = {"workflow_id": WORKFLOW, "instance_id": "gone", "polls": 1, "started_at": "x"}
    error = failure(lambda: poll(dd, previous))
    assert error.retryable is False
    assert error.response["errors"][0]["code"] == "INSTANCE_NOT_FOUND"


def test_uncertain_start_adopts_instead_of_starting_twice(fake: FakeDatadog) -> None:
    quick = make_actions(fake, timeout=0.3)
    fake.add_instance(WORKFLOW, {"service": "payment", "responder_key": "rsp-someone-else"})
    fake.delay_next("CreateWorkflowInstance", 1.0)
    error = failure(lambda: start(quick))
    assert error.retryable is True
    ours = fake.instances()[-1]
    fake.add_instance(WORKFLOW, {"service": "payment"})  # newer, not ours either
    retry = start(quick, uncertain=True)
    assert retry.response["adopted"] is True
    assert retry.response["instance_id"] == ours.id
    assert retry.response["started_at"] == datetime.fromisoformat(ours.started).isoformat()
    assert retry.poll_after == 5
    assert len(fake.instances()) == 3
    assert len(fake.calls_to("CreateWorkflowInstance")) == 1


def test_a_retry_with_nothing_to_adopt_starts_one(fake: FakeDatadog, dd: dict[str, Action]) -> None:
    fake.add_instance(WORKFLOW, {"responder_key": "rsp-000000000000"})
    result = start(dd, attempt=2)
    assert result.response["adopted"] is False
    assert len(fake.instances()) == 2


def test_a_refused_lookup_still_starts_with_a_note(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    fake.fail_next("ListWorkflowInstances", 403)
    result = start(dd, uncertain=True)
    assert result.response["adopted"] is False
    assert "not checked for an earlier workflow instance" in result.response["note"]


def test_a_busy_lookup_retries_rather_than_starting_twice(
    fake: FakeDatadog, dd: dict[str, Action]
) -> None:
    fake.fail_next("ListWorkflowInstances", 429, retry_after="4")
    error = failure(lambda: start(dd, uncertain=True))
    assert (error.retryable, error.retry_after) == (True, 4.0)
    assert fake.instances() == []


def test_describe_shows_the_start_or_the_poll(dd: dict[str, Action]) -> None:
    described = dd[NAME].describe(ctx(NAME, PARAMS))
    assert described["method"] == "CreateWorkflowInstance"
    assert described["payload"]["replicas"] == 6
    assert described["timeout_seconds"] == 600
    previous = {"workflow_id": WORKFLOW, "instance_id": "i-1", "polls": 2}
    assert dd[NAME].describe(ctx(NAME, PARAMS, previous=previous)) == {
        "method": "GetWorkflowInstance",
        "workflow_id": WORKFLOW,
        "instance_id": "i-1",
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"workflow_id": "  "},
        {"workflow_id": WORKFLOW, "inputs": {"responder_key": "mine"}},
        {"workflow_id": WORKFLOW, "timeout": 5},
        {"workflow_id": WORKFLOW, "timeout": 86401},
        {"workflow_id": WORKFLOW, "after": "10m"},
    ],
)
def test_workflow_params_are_strict(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkflowParams.model_validate(params)


@pytest.mark.parametrize("transition", list(Transition))
def test_no_follow_up(dd: dict[str, Action], transition: Transition) -> None:
    assert dd[NAME].follow_up(transition, PARAMS) is None
