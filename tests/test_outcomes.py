"""What one attempt amounts to: the action's context, early settlements, results and errors."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from responder.actions import ActionError, ActionResult
from responder.domain import IncidentStatus, RunState, Transition
from responder.pipeline.backoff import retry_delay
from responder.pipeline.outcomes import (
    POLLING,
    context,
    from_error,
    from_result,
    polled,
    run_summary,
    settle_early,
)
from responder.records import IncidentRecord, RunRecord
from tests.stagekit import NOW, CallAction, alert, incident, run


def attempt(**changes: Any) -> RunRecord:
    """A run on its first attempt (unless told), due five minutes ago, expiring in 55 minutes."""
    changes.setdefault("attempts", 1)
    return run(run_id=41, state=RunState.RUNNING, **changes)


def resolved(**changes: Any) -> IncidentRecord:
    return incident(incident_id=7, status=IncidentStatus.RESOLVED.value, resolved_at=NOW, **changes)


# --- context --------------------------------------------------------------------------------


def test_context_shows_the_run_the_incident_and_the_alert() -> None:
    current = attempt(uncertain=True, transition="Recovered")
    known = resolved(refs={"slack": {"ts": "1.2"}})
    history = [{"action": "slack.post", "state": "succeeded"}]
    ctx = context(current, known, alert("Recovered"), None, history)
    assert (ctx.run_id, ctx.action, ctx.attempt, ctx.uncertain) == ("41", "test.call", 1, True)
    assert dict(ctx.params) == {"target": "web"}
    assert ctx.transition is Transition.RECOVERED
    assert ctx.idempotency_key == "p:7:main:0"
    assert ctx.incident.id == "7"
    assert ctx.incident.status == "resolved"
    assert ctx.incident.opened_at == NOW
    assert ctx.incident.resolved_at == NOW
    assert dict(ctx.incident.refs) == {"slack": {"ts": "1.2"}}
    assert ctx.alert == alert("Recovered")
    assert (ctx.parent, ctx.previous) == (None, None)
    assert list(ctx.runs) == history
    assert ctx.may_have_acted


def test_context_of_an_open_incident_has_no_resolved_time() -> None:
    ctx = context(attempt(), incident(incident_id=7), alert(), None)
    assert ctx.incident.resolved_at is None
    assert not ctx.may_have_acted
    assert list(ctx.runs) == []


def test_context_carries_the_parents_result() -> None:
    parent = run(run_id=40, result={"ts": "1.2", "channel": "C1"})
    ctx = context(attempt(parent_id=40), incident(), alert(), parent)
    assert ctx.parent == {"ts": "1.2", "channel": "C1"}
    # a parent that left no result is still a parent: an empty one, not None
    empty = context(attempt(parent_id=40), incident(), alert(), run(run_id=40, result=None))
    assert empty.parent == {}


def test_context_carries_the_last_poll_as_previous() -> None:
    current = attempt(result={POLLING: {"instance": "wf-1", "status": "running"}})
    ctx = context(current, incident(), alert(), None)
    assert ctx.previous == {"instance": "wf-1", "status": "running"}


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({POLLING: {"instance": "wf-1"}}, {"instance": "wf-1"}),
        ({POLLING: {}}, {}),
        (None, None),
        ({"ok": True}, None),
        ({POLLING: "wf-1"}, None),
        ({"error": "boom", POLLING: {"instance": "wf-1"}}, {"instance": "wf-1"}),
    ],
)
def test_polled_is_only_a_mapping_kept_under_polling(
    result: dict[str, object] | None, expected: dict[str, object] | None
) -> None:
    assert polled(attempt(result=result)) == expected


def test_run_summary_is_one_line_of_the_timeline() -> None:
    finished = run(run_id=40, finished_at=NOW, last_error="boom", state=RunState.FAILED)
    assert run_summary(finished) == {
        "action": "test.call",
        "playbook": "main",
        "state": "failed",
        "transition": "Triggered",
        "finished_at": NOW.isoformat(),
        "error": "boom",
    }
    assert run_summary(run(run_id=40))["finished_at"] is None


# --- settle_early ---------------------------------------------------------------------------


def test_a_delayed_step_for_a_resolved_incident_is_skipped() -> None:
    current = attempt(condition="incident.open")
    known = resolved()
    out = settle_early(current, known, CallAction(), context(current, known, alert(), None), NOW)
    assert out is not None
    assert (out.state, out.kind) == (RunState.SKIPPED, "run.skipped")
    assert out.result == {"reason": "incident resolved before this delayed step was due"}
    assert (out.error, out.not_before, out.refs) == (None, None, None)


def test_a_delayed_step_for_an_open_incident_goes_ahead() -> None:
    current = attempt(condition="incident.open")
    known = incident()
    assert (
        settle_early(current, known, CallAction(), context(current, known, alert(), None), NOW)
        is None
    )


def test_a_step_without_the_condition_runs_even_for_a_resolved_incident() -> None:
    current = attempt()  # e.g. the resolve that follows a page up
    known = resolved()
    assert (
        settle_early(current, known, CallAction(), context(current, known, alert(), None), NOW)
        is None
    )


def test_a_run_past_its_maximum_age_fails() -> None:
    current = attempt(attempts=4)
    known = incident()
    ctx = context(current, known, alert(), None)
    late = current.expires_at + timedelta(seconds=1)
    out = settle_early(current, known, CallAction(), ctx, late)
    assert out is not None
    assert (out.state, out.kind) == (RunState.FAILED, "run.failed")
    assert out.error == "gave up after 3 attempts: older than its maximum age"
    assert out.result is None
    # at its very expiry it may still go
    assert settle_early(current, known, CallAction(), ctx, current.expires_at) is None


def test_an_unconfigured_action_is_skipped_with_the_request_it_would_send() -> None:
    current = attempt()
    known = incident()
    ctx = context(current, known, alert(), None)
    out = settle_early(current, known, CallAction(configured=False), ctx, NOW)
    assert out is not None
    assert (out.state, out.kind) == (RunState.SKIPPED, "run.skipped")
    assert out.result == {
        "reason": "integration not configured",
        "request": {"action": "test.call", "target": "web"},
    }


def test_the_condition_is_told_before_the_age_and_the_age_before_the_configuration() -> None:
    current = attempt(condition="incident.open")
    known = resolved()
    action = CallAction(configured=False)
    late = current.expires_at + timedelta(hours=1)
    ctx = context(current, known, alert(), None)
    first = settle_early(current, known, action, ctx, late)
    assert first is not None and first.result is not None
    assert first.result["reason"] == "incident resolved before this delayed step was due"
    second = settle_early(current, incident(), action, ctx, late)
    assert second is not None
    assert second.kind == "run.failed"


# --- from_result ----------------------------------------------------------------------------


def test_a_result_with_a_skip_reason_is_skipped() -> None:
    out = from_result(ActionResult({"channel": "C1"}, skipped_reason="no root post"), NOW)
    assert (out.state, out.kind) == (RunState.SKIPPED, "run.skipped")
    assert out.result == {"reason": "no root post", "response": {"channel": "C1"}}
    assert (out.refs, out.not_before) == (None, None)


def test_a_result_asking_to_be_polled_stays_pending_with_its_answer() -> None:
    result = ActionResult({"instance": "wf-1"}, {"datadog_workflow": {"id": "wf-1"}}, poll_after=15)
    out = from_result(result, NOW)
    assert (out.state, out.kind) == (RunState.PENDING, "run.polling")
    assert out.result == {POLLING: {"instance": "wf-1"}}
    assert out.not_before == NOW + timedelta(seconds=15)
    assert out.refs == {"datadog_workflow": {"id": "wf-1"}}
    assert out.error is None


def test_a_negative_poll_delay_polls_now() -> None:
    out = from_result(ActionResult({"instance": "wf-1"}, poll_after=-5), NOW)
    assert out.not_before == NOW


def test_a_plain_result_succeeds_with_its_refs() -> None:
    out = from_result(ActionResult({"ts": "1.2"}, {"slack": {"ts": "1.2"}}), NOW)
    assert (out.state, out.kind) == (RunState.SUCCEEDED, "run.succeeded")
    assert (out.result, out.refs, out.not_before) == ({"ts": "1.2"}, {"slack": {"ts": "1.2"}}, None)


# --- from_error -----------------------------------------------------------------------------


def test_a_permanent_error_fails_at_once_with_the_answer() -> None:
    err = ActionError("bad channel", retryable=False, response={"error": "channel_not_found"})
    out = from_error(attempt(), err, "bad channel", NOW)
    assert (out.state, out.kind, out.error) == (RunState.FAILED, "run.failed", "bad channel")
    assert out.result == {"error": "bad channel", "response": {"error": "channel_not_found"}}
    assert out.not_before is None


@pytest.mark.parametrize(
    ("attempts", "low", "high"), [(1, 1.0, 2.0), (3, 4.0, 8.0), (20, 150.0, 300.0)]
)
def test_a_retryable_error_retries_within_the_backoff_bounds(
    attempts: int, low: float, high: float
) -> None:
    current = attempt(attempts=attempts, expires_at=NOW + timedelta(hours=1))
    for _ in range(30):
        out = from_error(current, ActionError("timeout", retryable=True), "timeout", NOW)
        assert (out.state, out.kind, out.error) == (RunState.PENDING, "run.retry", "timeout")
        assert out.not_before is not None and out.result is not None
        waited = (out.not_before - NOW).total_seconds()
        assert low <= waited <= high
        # shown cut to the millisecond
        assert 0 <= waited - out.result["retry_in_seconds"] < 0.0011


def test_a_retry_honours_retry_after() -> None:
    err = ActionError("slow down", retryable=True, retry_after=30)
    out = from_error(attempt(), err, "slow down", NOW)
    assert out.not_before is not None
    assert NOW + timedelta(seconds=30) <= out.not_before <= NOW + timedelta(seconds=33)


def test_the_retry_scale_compresses_backoff_and_retry_after_alike() -> None:
    slow_down = ActionError("slow down", retryable=True, retry_after=3600)
    out = from_error(attempt(), slow_down, "slow down", NOW, retry_scale=0.001)
    assert out.not_before is not None
    assert NOW + timedelta(seconds=3.6) <= out.not_before <= NOW + timedelta(seconds=3.96)
    late = attempt(attempts=20, expires_at=NOW + timedelta(hours=1))
    out = from_error(late, ActionError("down", retryable=True), "down", NOW, retry_scale=0.01)
    assert out.not_before is not None and out.result is not None
    assert 1.5 <= (out.not_before - NOW).total_seconds() <= 3.0  # 150-300 s, a hundredth
    assert out.result["retry_in_seconds"] <= 3.0  # the audit tells the wait actually taken


def test_no_retry_past_the_runs_maximum_age() -> None:
    current = attempt(expires_at=NOW + timedelta(seconds=10))
    err = ActionError("slow down", retryable=True, retry_after=60)
    out = from_error(current, err, "slow down", NOW)
    assert (out.state, out.kind) == (RunState.FAILED, "run.failed")
    assert out.error == "slow down (no retry: next attempt would pass the run's maximum age)"
    assert out.not_before is None
    assert out.result is not None and "retry_in_seconds" not in out.result


@pytest.mark.parametrize("retryable", [True, False])
def test_a_failed_poll_keeps_what_it_was_polling(retryable: bool) -> None:
    current = attempt(result={POLLING: {"instance": "wf-1"}})
    out = from_error(current, ActionError("502", retryable=retryable), "502", NOW)
    assert out.result is not None
    assert out.result[POLLING] == {"instance": "wf-1"}
    assert out.result["error"] == "502"


def test_an_error_of_a_run_not_polled_has_no_polling_answer() -> None:
    out = from_error(attempt(result={"ok": True}), ActionError("x", retryable=True), "x", NOW)
    assert out.result is not None and POLLING not in out.result


# --- retry_delay edges ----------------------------------------------------------------------


def test_retry_after_is_capped_at_an_hour_plus_jitter() -> None:
    rng = random.Random(3)
    for _ in range(50):
        assert 3600.0 <= retry_delay(1, 86_400.0, rng) <= 3960.0


def test_a_zero_retry_after_means_now() -> None:
    assert retry_delay(5, 0.0, random.Random(1)) == 0.0


def test_a_negative_retry_after_falls_back_to_backoff() -> None:
    rng = random.Random(5)
    for _ in range(50):
        assert 4.0 <= retry_delay(3, -1.0, rng) <= 8.0


def test_attempt_zero_backs_off_like_the_first() -> None:
    rng = random.Random(9)
    for _ in range(50):
        assert 1.0 <= retry_delay(0, None, rng) <= 2.0
