"""What the incident's thread hears about other runs: the rules, and the runs they plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from responder.actions import Conversation, Registry
from responder.domain import RunState
from responder.pipeline.notices import Notice, NoticePlanner, NoticeRules, new_links
from responder.pipeline.outcomes import Outcome
from responder.records import IncidentRecord, RunRecord
from responder.redact import Redactor
from responder.store import incidents, runs
from responder.store.db import reader, run_bulk, transaction
from responder.store.tables import AuditEntry
from tests.stagekit import (
    MAX_AGE,
    CallAction,
    PagerTrigger,
    SlackPost,
    SlackReply,
    SlackUpdate,
    incident,
    run,
)

TALK = Conversation(root="slack.post", reply="slack.reply", refresh="slack.update")
SECRET = "sup3r-secret-value"
SLACK_REF = {"channel": "C0ALERTS", "ts": "1.2", "url": "https://slack.example/t/1"}
PD_REF = {"id": "PD1", "url": "https://pd.example/incidents/PD1"}
DD_REF = {"id": "DD1", "url": "https://dd.example/incidents/DD1"}
_AUDIT: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]


# --- new_links ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {"pagerduty": PD_REF}, True),
        ({"pagerduty": {"id": "PD1"}}, {"pagerduty": PD_REF}, True),  # the url came later
        ({"pagerduty": PD_REF}, {"pagerduty": PD_REF}, False),
        ({"pagerduty": PD_REF}, {"pagerduty": PD_REF, "datadog_incident": DD_REF}, True),
        ({}, {"pagerduty": {"id": "PD1"}}, False),  # nothing to open yet
        ({}, {"pagerduty": {"id": "PD1", "url": ""}}, False),
        ({}, {"pagerduty": "PD1"}, False),  # not a mapping
        ({"pagerduty": "https://x"}, {"pagerduty": PD_REF}, True),
        ({}, {}, False),
    ],
)
def test_new_links(before: Mapping[str, Any], after: Mapping[str, Any], expected: bool) -> None:
    assert new_links(before, after) is expected


# --- NoticeRules ----------------------------------------------------------------------------


def finished(
    run_id: int, action: str, state: RunState, **outcome: Any
) -> tuple[RunRecord, Outcome]:
    return run(run_id=run_id, incident_id=7, action=action, state=state), Outcome(state, **outcome)


def test_the_root_post_succeeding_is_told_as_root() -> None:
    found = NoticeRules(TALK).notices(
        [finished(40, "slack.post", RunState.SUCCEEDED, refs={"slack": SLACK_REF})],
        {7: ({}, {"slack": SLACK_REF})},
    )
    assert found == [Notice("root", 40, 7, 1, "slack.post")]


def test_the_conversations_own_runs_are_never_told() -> None:
    rules = NoticeRules(TALK)
    done = [
        finished(40, "slack.post", RunState.FAILED, error="channel_not_found"),
        finished(41, "slack.reply", RunState.FAILED, error="ratelimited"),
        finished(42, "slack.update", RunState.SUCCEEDED, refs={"slack": SLACK_REF}),
    ]
    assert rules.notices(done, {7: ({}, {"pagerduty": PD_REF})}) == []


def test_another_vendors_failure_is_told_with_its_error() -> None:
    found = NoticeRules(TALK).notices(
        [finished(41, "pagerduty.trigger", RunState.FAILED, error="401 Unauthorized")], {}
    )
    assert found == [Notice("failed", 41, 7, 1, "pagerduty.trigger", error="401 Unauthorized")]


def test_a_run_bringing_a_new_link_is_told_as_linked() -> None:
    rules = NoticeRules(TALK)
    done = [finished(41, "pagerduty.trigger", RunState.SUCCEEDED, refs={"pagerduty": PD_REF})]
    assert rules.notices(done, {7: ({}, {"pagerduty": PD_REF})}) == [
        Notice("linked", 41, 7, 1, "pagerduty.trigger")
    ]
    # the link was known already: nothing new to show
    assert rules.notices(done, {7: ({"pagerduty": PD_REF}, {"pagerduty": PD_REF})}) == []
    # no ref change recorded for the incident at all
    assert rules.notices(done, {}) == []


def test_a_run_without_refs_is_not_told_even_if_its_incident_gained_a_link() -> None:
    done = [finished(41, "test.call", RunState.SUCCEEDED)]
    assert NoticeRules(TALK).notices(done, {7: ({}, {"pagerduty": PD_REF})}) == []


@pytest.mark.parametrize("state", [RunState.SKIPPED, RunState.PENDING, RunState.CANCELLED])
def test_other_outcomes_are_not_told(state: RunState) -> None:
    done = [finished(41, "pagerduty.trigger", state, error="x")]
    assert NoticeRules(TALK).notices(done, {}) == []


# --- NoticePlanner (a real database) --------------------------------------------------------


def actions(*, reply: bool = True, refresh: bool = True, root: bool = True) -> Registry:
    chosen = [
        CallAction(),
        PagerTrigger(),
        *([SlackPost()] if root else []),
        *([SlackReply()] if reply else []),
        *([SlackUpdate()] if refresh else []),
    ]
    return Registry(list(chosen))


def planner(engine: sa.Engine, registry: Registry | None = None) -> NoticePlanner:
    return NoticePlanner(engine, registry or actions(), Redactor([SECRET]), MAX_AGE, TALK)


def root_post(state: RunState = RunState.SUCCEEDED) -> RunRecord:
    return run(
        run_id=40,
        incident_id=7,
        action="slack.post",
        step=0,
        state=state,
        params={"channel": "C0ALERTS", "target": "checkout"},
        result={"channel": "C0ALERTS", "ts": "1.2"},
    )


def page(error: str = f"401 Unauthorized: token {SECRET} refused") -> RunRecord:
    return run(
        run_id=41,
        incident_id=7,
        action="pagerduty.trigger",
        step=1,
        state=RunState.FAILED,
        last_error=error,
    )


def store(
    engine: sa.Engine, stored: Sequence[RunRecord], refs: Mapping[str, Any] | None = None
) -> IncidentRecord:
    known = incident(incident_id=7, refs=dict(refs or {}))
    with transaction(engine) as conn:
        run_bulk(conn, incidents.insert(engine, [known]))
        run_bulk(conn, runs.insert(engine, list(stored)))
    return known


def added(engine: sa.Engine) -> list[RunRecord]:
    """The runs the planner added to incident 7 (their keys start with "n:")."""
    with reader(engine).connect() as conn:
        every = runs.timelines(conn, incident_ids=[7]).get(7, [])
    return [r for r in every if r.idempotency_key.startswith("n:")]


def planned_records(engine: sa.Engine) -> list[tuple[str, int | None]]:
    with reader(engine).connect() as conn:
        rows = conn.execute(sa.select(_AUDIT.c.kind, _AUDIT.c.run_id).order_by(_AUDIT.c.seq))
        return [(kind, run_id) for kind, run_id in rows]


def failed_notice(run_id: int = 41, error: str | None = None) -> Notice:
    return Notice("failed", run_id, 7, 5, "pagerduty.trigger", error=error or page().last_error)


def test_a_failure_is_told_in_the_thread_once(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    before = datetime.now(UTC)
    assert planner(engine).plan([failed_notice()]) == 1
    [reply] = added(engine)
    assert (reply.action, reply.parent_id, reply.lane) == ("slack.reply", 40, "7:slack")
    assert reply.idempotency_key == "n:failed:41"
    assert (reply.event_id, reply.incident_id) == (5, 7)  # the event of the run that failed
    assert (reply.playbook, reply.step, reply.transition) == ("main", 0, "Triggered")
    assert dict(reply.params) == {
        "channel": "C0ALERTS",
        "notice": "⚠️ pagerduty.trigger failed: 401 Unauthorized: token [REDACTED] refused",
    }
    assert reply.state == "pending"
    assert before <= reply.scheduled_at <= datetime.now(UTC)
    assert reply.expires_at == reply.scheduled_at + MAX_AGE
    assert planned_records(engine) == [("run.planned", reply.id)]
    # told again (a recorder round repeated): nothing new
    assert planner(engine).plan([failed_notice()]) == 0
    assert len(added(engine)) == 1


def test_a_long_error_is_cut(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    assert planner(engine).plan([failed_notice(error="x" * 1000)]) == 1
    [reply] = added(engine)
    assert reply.params["notice"] == "⚠️ pagerduty.trigger failed: " + "x" * 300


def test_a_notice_without_details_says_so(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    notice = Notice("failed", 41, 7, 5, "pagerduty.trigger", error=None)
    assert planner(engine).plan([notice]) == 1
    assert added(engine)[0].params["notice"] == "⚠️ pagerduty.trigger failed: no details"


@pytest.mark.parametrize("root_state", [RunState.FAILED, RunState.PENDING])
def test_without_a_thread_there_is_no_one_to_tell(engine: sa.Engine, root_state: RunState) -> None:
    store(engine, [root_post(root_state), page()], refs={"pagerduty": PD_REF})
    linked = Notice("linked", 41, 7, 5, "pagerduty.trigger")
    assert planner(engine).plan([failed_notice(), linked]) == 0
    assert added(engine) == []
    assert planned_records(engine) == []


def test_without_the_root_action_nothing_is_planned(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    assert planner(engine, actions(root=False)).plan([failed_notice()]) == 0
    assert added(engine) == []


def test_without_the_reply_action_failures_are_not_told(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    assert planner(engine, actions(reply=False)).plan([failed_notice()]) == 0
    assert added(engine) == []


def test_no_notices_plan_nothing(engine: sa.Engine) -> None:
    assert planner(engine).plan([]) == 0


def test_a_new_link_refreshes_the_root_message_once(engine: sa.Engine) -> None:
    refs = {"slack": SLACK_REF, "pagerduty": PD_REF, "datadog_incident": DD_REF}
    store(engine, [root_post()], refs=refs)
    notices = [
        Notice("linked", 41, 7, 5, "pagerduty.trigger"),
        Notice("linked", 42, 7, 6, "datadog.incident"),
    ]
    assert planner(engine).plan(notices) == 1
    [refresh] = added(engine)
    assert (refresh.action, refresh.parent_id, refresh.lane) == ("slack.update", 40, "7:slack")
    # the thread's own link is left out; the rest, by title, make the key
    assert refresh.idempotency_key == "n:links:40:Datadog incident+PagerDuty incident"
    assert dict(refresh.params) == {"channel": "C0ALERTS", "target": "checkout"}
    assert refresh.event_id == 1  # the root post's event
    assert planner(engine).plan(notices) == 0  # the same links again: already planned


def test_a_link_refresh_needs_links_other_than_the_threads_own(engine: sa.Engine) -> None:
    store(engine, [root_post()], refs={"slack": SLACK_REF, "pagerduty": {"id": "PD1"}})
    assert planner(engine).plan([Notice("linked", 41, 7, 5, "pagerduty.trigger")]) == 0


def test_without_the_refresh_action_links_are_not_told(engine: sa.Engine) -> None:
    store(engine, [root_post()], refs={"pagerduty": PD_REF})
    notice = Notice("linked", 41, 7, 5, "pagerduty.trigger")
    assert planner(engine, actions(refresh=False)).plan([notice]) == 0


def test_the_root_post_going_out_tells_what_failed_and_linked_before_it(
    engine: sa.Engine,
) -> None:
    skipped = run(run_id=42, incident_id=7, action="test.call", step=2, state=RunState.SKIPPED)
    slack_failed = run(
        run_id=43, incident_id=7, action="slack.reply", step=3, state=RunState.FAILED
    )
    store(engine, [root_post(), page(), skipped, slack_failed], refs={"pagerduty": PD_REF})
    assert planner(engine).plan([Notice("root", 40, 7, 1, "slack.post")]) == 2
    told = {r.idempotency_key: r for r in added(engine)}
    assert set(told) == {"n:failed:41", "n:links:40:PagerDuty incident"}
    assert told["n:failed:41"].event_id == 1  # the failed run's own event
    assert told["n:failed:41"].params["notice"].startswith("⚠️ pagerduty.trigger failed: 401")


def test_a_failure_planned_before_the_root_post_is_not_told_twice(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    earlier = planner(engine)
    assert earlier.plan([failed_notice()]) == 1
    assert earlier.plan([Notice("root", 40, 7, 1, "slack.post")]) == 0
    assert [r.idempotency_key for r in added(engine)] == ["n:failed:41"]


def test_a_failure_finishing_with_the_root_post_is_told_once(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    notices = [Notice("root", 40, 7, 1, "slack.post"), failed_notice()]
    assert planner(engine).plan(notices) == 1
    assert [r.idempotency_key for r in added(engine)] == ["n:failed:41"]


def test_notices_of_several_incidents_reach_each_thread(engine: sa.Engine) -> None:
    store(engine, [root_post(), page()])
    other = incident(incident_id=8, key="other", group_key="other-group")
    other_root = run(
        run_id=44,
        incident_id=8,
        action="slack.post",
        params={"channel": "C0OTHER"},
        state=RunState.SUCCEEDED,
    )
    other_page = run(
        run_id=45,
        incident_id=8,
        action="pagerduty.trigger",
        step=1,
        state=RunState.FAILED,
        last_error="boom",
    )
    with transaction(engine) as conn:
        run_bulk(conn, incidents.insert(engine, [other]))
        run_bulk(conn, runs.insert(engine, [other_root, other_page]))
    notices = [failed_notice(), Notice("failed", 45, 8, 9, "pagerduty.trigger", error="boom")]
    assert planner(engine).plan(notices) == 2
    with reader(engine).connect() as conn:
        told = runs.existing_keys(conn, keys=["n:failed:41", "n:failed:45"])
        replies = [
            r
            for r in runs.timelines(conn, incident_ids=[8])[8]
            if r.idempotency_key == "n:failed:45"
        ]
    assert told == {"n:failed:41", "n:failed:45"}
    assert [(r.parent_id, r.lane, r.params["channel"]) for r in replies] == [
        (44, "8:slack", "C0OTHER")
    ]


def test_planned_notices_are_due_now_not_at_the_root_posts_time(engine: sa.Engine) -> None:
    old_root = run(
        run_id=40,
        incident_id=7,
        action="slack.post",
        state=RunState.SUCCEEDED,
        params={"channel": "C0ALERTS"},
        due=datetime.now(UTC) - timedelta(days=2),
    )
    store(engine, [old_root, page()])
    assert planner(engine).plan([failed_notice()]) == 1
    [reply] = added(engine)
    assert reply.scheduled_at > datetime.now(UTC) - timedelta(minutes=1)
