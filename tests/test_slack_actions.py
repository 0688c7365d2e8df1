"""slack.post / slack.reply / slack.resolve with the real WebClient against the local fake."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.slack import PostParams, slack_actions
from integrations.slack.blocks import clip, escape
from responder.actions import (
    Action,
    ActionError,
    ActionResult,
    FollowUp,
)
from responder.domain import Alert, Transition
from tests.contexts import (
    LAST_REPEAT_AT,
    NO_DATA,
    RE_NO_DATA,
    RECOVERED,
    TRIGGERED,
    sample_alert,
    stale_event,
    stale_incident,
)
from tests.contexts import action_context as ctx
from tests.contexts import incident_view as incident
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-1234567890-SECRETSECRET"
CHANNELS = {"#payments-alerts": "C0PAY", "#ops": "C0OPS"}
PAY = "C0PAY"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels=CHANNELS) as server:
        yield server


def actions(fake: FakeSlack, token: str | None = TOKEN, timeout: float = 5.0) -> dict[str, Action]:
    return {a.name: a for a in slack_actions(token, fake.base_url, timeout=timeout)}


@pytest.fixture
def slack(fake: FakeSlack) -> dict[str, Action]:
    return actions(fake)


def post(slack: dict[str, Action], **kwargs: Any) -> ActionResult:
    params = kwargs.pop("params", {"channel": "#payments-alerts"})
    return slack["slack.post"].execute(ctx("slack.post", params, **kwargs))


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# -- slack.post ----------------------------------------------------------------------------


def test_post_builds_the_root_message(fake: FakeSlack, slack: dict[str, Action]) -> None:
    result = post(slack)
    (message,) = fake.root_messages(PAY)
    assert result.response == {"channel": PAY, "ts": message.ts, "adopted": False}
    # The permalink is built from the workspace URL that auth.test gives.
    permalink = f"https://fake.slack.com/archives/{PAY}/p{message.ts.replace('.', '')}"
    assert result.refs == {"slack": {"channel": PAY, "ts": message.ts, "url": permalink}}
    assert result.skipped_reason is None

    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context", "actions"]
    assert [(e["action_id"], e["value"]) for e in blocks[4]["elements"]] == [
        ("responder.ack", "42"),
        ("responder.resolve", "42"),
        ("responder.silence", "42"),
    ]
    assert blocks[0]["text"]["text"] == "[Triggered] High Payment Failure Rate"
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Priority*\nP1" in fields
    assert "*Monitor*\nHigh Payment Failure Rate" in fields
    assert "*Scope*\n(all)" in fields
    assert "*Service / Env*\npayment / prod" in fields
    assert "*Transition*\nTriggered" in fields
    assert any(f.startswith("*Status*\n( sum:payment.completions") for f in fields)
    assert blocks[2]["text"]["text"].startswith("Payment failure rate is above 5%")
    links = blocks[3]["elements"][0]["text"]
    assert "<https://app.datadoghq.com/monitors/148275309|Monitor>" in links
    assert "event?id=7716548234011234567|Event>" in links
    assert ".png|Graph snapshot>" in links

    assert message.text == "[Triggered] High Payment Failure Rate (P1, service payment, env prod)"
    assert message.metadata == {
        "event_type": "responder_action",
        "event_payload": {"run_id": "7", "incident_id": "42"},
    }
    assert message.thread_ts is None


def test_post_puts_mention_and_extra_line_first(fake: FakeSlack, slack: dict[str, Action]) -> None:
    params = {"channel": "C0PAY", "mention": "<!here>", "text": "Runbook: <https://wiki/pay|pay>"}
    post(slack, params=params)
    (message,) = fake.root_messages(PAY)
    assert message.text is not None and message.text.startswith("<!here> Runbook:")
    assert message.blocks is not None
    assert message.blocks[1]["text"]["text"] == "<!here> Runbook: <https://wiki/pay|pay>"


def test_post_escapes_alert_text(fake: FakeSlack, slack: dict[str, Action]) -> None:
    hostile = replace(
        TRIGGERED,
        title="<!channel> pay & <@U0BOSS> down",
        monitor_name="<!everyone>",
        message="see <https://evil.example|here> <!subteam^S1>",
        status_text="x > 5 & y < 3",
    )
    post(slack, alert=hostile)
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    assert blocks[0]["text"]["text"] == "&lt;!channel&gt; pay &amp; &lt;@U0BOSS&gt; down"
    sent = texts(blocks) + (message.text or "")
    for raw in ("<!channel>", "<!everyone>", "<@U0BOSS>", "<https://evil", "<!subteam"):
        assert raw not in sent
    assert "x &gt; 5 &amp; y &lt; 3" in sent


def test_post_trims_to_block_kit_limits(fake: FakeSlack, slack: dict[str, Action]) -> None:
    huge = replace(
        TRIGGERED,
        title="T&" * 400,
        status_text="s" * 5000,
        message="m<" * 4000,
        scope=",".join(f"host:h{i}" for i in range(600)),
    )
    post(slack, alert=huge)  # the fake enforces the limits: this would fail if one were broken
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("…")
    assert not re.search(r"&[a-z]*…$", header)  # no entity cut in half
    assert all(len(f["text"]) <= 2000 for f in blocks[1]["fields"])
    assert len(blocks[2]["text"]["text"]) <= 3000
    assert message.text is not None and len(message.text) <= 3000


def test_post_with_a_missing_message_skips_that_block(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    post(slack, alert=replace(TRIGGERED, message=None, snapshot=None))
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == ["header", "section", "context", "actions"]
    assert "Graph snapshot" not in texts(blocks)


def test_uncertain_retry_adopts_the_earlier_post(fake: FakeSlack, slack: dict[str, Action]) -> None:
    first = post(slack)
    again = post(slack, uncertain=True)
    assert again.response == {
        "channel": PAY,
        "ts": first.response["ts"],
        "adopted": True,
        "lookup": {"pages": 1, "examined": 1, "complete": True},
    }
    assert again.refs == first.refs
    assert len(fake.root_messages(PAY)) == 1
    (history,) = fake.calls_to("conversations.history")
    assert history["channel"] == PAY
    assert history["include_all_metadata"] == "1"
    assert history["limit"] == "200"
    # From an hour before the incident opened: nothing older can be this run's.
    opened = incident().opened_at.timestamp()
    assert float(history["oldest"]) == opened - 3600


def test_uncertain_retry_of_another_run_posts(fake: FakeSlack, slack: dict[str, Action]) -> None:
    post(slack)
    other = post(slack, run_id="run-2", uncertain=True)
    assert other.response["adopted"] is False
    assert len(fake.root_messages(PAY)) == 2


def test_uncertain_retry_with_a_channel_id_needs_no_cache(fake: FakeSlack) -> None:
    first = post(actions(fake), params={"channel": PAY})
    restarted = actions(fake)  # a new process: nothing learned yet
    again = post(restarted, params={"channel": PAY}, uncertain=True)
    assert again.response["adopted"] is True
    assert again.response["ts"] == first.response["ts"]
    assert len(fake.root_messages(PAY)) == 1


def test_uncertain_retry_after_a_restart_looks_the_name_up(fake: FakeSlack) -> None:
    first = post(actions(fake))
    result = post(actions(fake), uncertain=True)  # a new process: no name learned yet
    assert result.response["adopted"] is True
    assert result.response["ts"] == first.response["ts"]
    assert len(fake.calls_to("conversations.list")) == 1
    assert len(fake.root_messages(PAY)) == 1


def test_uncertain_retry_without_channels_read_posts_and_says_so(fake: FakeSlack) -> None:
    post(actions(fake))
    fake.fail_next("conversations.list", status=200, error="missing_scope", retry_after=None)
    result = post(actions(fake), uncertain=True)
    assert result.response["adopted"] is False
    assert "no channel ID known for #payments-alerts" in result.response["note"]
    assert fake.calls_to("conversations.history") == []


def test_channel_lookup_follows_the_cursor(fake: FakeSlack) -> None:
    names = {f"#team-{i:04d}": f"C{i:04d}X" for i in range(1500)}
    with FakeSlack(token=fake.token, channels={**names, "#payments-alerts": PAY}) as big:
        post(actions(big))
        result = post(actions(big), uncertain=True)
        assert result.response["adopted"] is True
        assert len(big.calls_to("conversations.list")) == 2


def test_timeout_is_retryable_and_the_retry_adopts(fake: FakeSlack) -> None:
    slack = actions(fake, timeout=0.3)
    fake.delay_next("chat.postMessage", 1.0)
    with pytest.raises(ActionError) as info:
        post(slack, params={"channel": PAY})
    assert info.value.retryable is True
    assert info.value.response["error"] == "timeout"
    retry = post(slack, params={"channel": PAY}, attempt=2)
    assert retry.response["adopted"] is True
    assert len(fake.root_messages(PAY)) == 1


def test_history_failure_on_an_uncertain_retry_never_posts_blind(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    post(slack)
    fake.fail_next("conversations.history", status=503, error="service_unavailable")
    with pytest.raises(ActionError) as info:
        post(slack, uncertain=True)
    assert info.value.retryable is True
    assert len(fake.root_messages(PAY)) == 1


def test_history_refused_for_good_still_posts_and_says_why(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    post(slack)
    fake.fail_next("conversations.history", status=200, error="missing_scope", retry_after=None)
    result = post(slack, uncertain=True)
    assert result.response["adopted"] is False
    assert "conversations.history answered missing_scope" in result.response["note"]
    assert len(fake.root_messages(PAY)) == 2


# -- follow-ups -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "expected"),
    [
        (Transition.RECOVERED, "slack.resolve"),
        (Transition.RE_TRIGGERED, "slack.reply"),
        (Transition.RE_WARN, "slack.reply"),
        (Transition.RE_NO_DATA, "slack.reply"),
        (Transition.RENOTIFY, "slack.reply"),
        (Transition.TRIGGERED, "slack.reply"),
        (Transition.WARN, "slack.reply"),
        (Transition.NO_DATA, "slack.reply"),
    ],
)
def test_post_follow_ups(slack: dict[str, Action], transition: Transition, expected: str) -> None:
    follow = slack["slack.post"].follow_up(transition, {"channel": "#payments-alerts"})
    assert follow == FollowUp(expected, {"channel": "#payments-alerts"})


def test_reply_and_resolve_have_no_follow_ups(slack: dict[str, Action]) -> None:
    for name in ("slack.reply", "slack.resolve"):
        assert slack[name].follow_up(Transition.RECOVERED, {"channel": PAY}) is None


# -- slack.reply ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "start"),
    [
        (Transition.RENOTIFY, "Renotify: still failing: ( sum:payment"),
        (Transition.RE_TRIGGERED, "Re-Triggered: ( sum:payment"),
        (Transition.TRIGGERED, "Escalated to Triggered: ( sum:payment"),
    ],
)
def test_reply_lands_in_the_thread(
    fake: FakeSlack, slack: dict[str, Action], transition: Transition, start: str
) -> None:
    root = post(slack)
    alert = replace(TRIGGERED, transition=transition)
    params = {"channel": "#payments-alerts"}
    context = ctx("slack.reply", params, alert=alert, run_id="run-2", parent=root.response)
    result = slack["slack.reply"].execute(context)
    (reply,) = fake.replies(PAY, root.response["ts"])
    assert reply.text is not None and reply.text.startswith(start)
    assert reply.reply_broadcast is False
    assert reply.blocks is not None and reply.blocks[0]["text"]["text"].startswith(start)
    assert result.response == {
        "channel": PAY,
        "ts": reply.ts,
        "thread_ts": root.response["ts"],
        "adopted": False,
    }
    assert result.refs == {}  # the incident keeps pointing at the root
    assert fake.calls_to("conversations.replies") == []  # a first attempt posts straight away
    assert len(fake.root_messages(PAY)) == 1


def test_reply_accepts_the_parent_refs_shape(fake: FakeSlack, slack: dict[str, Action]) -> None:
    root = post(slack)
    alert = sample_alert("fraud-detection-down.renotify")
    slack["slack.reply"].execute(
        ctx("slack.reply", {"channel": PAY}, alert=alert, parent=dict(root.refs))
    )
    (reply,) = fake.replies(PAY, root.response["ts"])
    assert reply.text is not None and reply.text.startswith("Renotify: still failing")


@pytest.mark.parametrize("parent", [None, {}, {"channel": PAY}, {"channel": PAY, "ts": ""}])
@pytest.mark.parametrize("name", ["slack.reply", "slack.resolve"])
def test_thread_actions_skip_without_a_root(
    fake: FakeSlack, slack: dict[str, Action], name: str, parent: dict[str, Any] | None
) -> None:
    result = slack[name].execute(ctx(name, {"channel": PAY}, alert=RECOVERED, parent=parent))
    assert result.response == {}
    assert result.skipped_reason == "no root message to reply to"
    assert fake.calls == []
    described = slack[name].describe(ctx(name, {"channel": PAY}, alert=RECOVERED, parent=parent))
    assert described["skip"] == "no root message to reply to"


# -- slack.resolve --------------------------------------------------------------------------


def resolve(slack: dict[str, Action], root: ActionResult, **kwargs: Any) -> ActionResult:
    context = ctx(
        "slack.resolve",
        {"channel": "#payments-alerts"},
        alert=RECOVERED,
        run_id=kwargs.pop("run_id", "run-3"),
        parent=root.response,
        **kwargs,
    )
    return slack["slack.resolve"].execute(context)


def test_resolve_broadcasts_and_updates_the_root(fake: FakeSlack, slack: dict[str, Action]) -> None:
    root = post(slack)
    result = resolve(slack, root)
    ts = root.response["ts"]
    (reply,) = fake.replies(PAY, ts)
    assert reply.reply_broadcast is True
    assert reply.text == "Recovered after 23m"  # 1795384800 -> 1795386180
    (message,) = fake.root_messages(PAY)
    assert len(message.edits) == 1
    assert message.text is not None and message.text.startswith(
        "✅ Resolved: High Payment Failure Rate"
    )
    blocks = message.blocks or []
    assert blocks[0]["text"]["text"] == "✅ Resolved: High Payment Failure Rate"
    assert "Recovered after 23m" in texts(blocks)
    assert "*Transition*\nRecovered" in [f["text"] for f in blocks[2]["fields"]]
    assert result.response == {
        "channel": PAY,
        "ts": ts,
        "reply_ts": reply.ts,
        "reply_adopted": False,
        "updated": True,
    }


def test_resolve_duration_falls_back_to_resolved_at(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack)
    # Not a recovery, so its date is when it fired: the incident's resolved_at is the end.
    alert = TRIGGERED
    view = incident(
        resolved_at=datetime(2026, 11, 22, 10, 12, 30, tzinfo=UTC),
        opened_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
    )
    slack["slack.resolve"].execute(
        ctx("slack.resolve", {"channel": PAY}, alert=alert, parent=root.response, view=view)
    )
    (reply,) = fake.replies(PAY, root.response["ts"])
    assert reply.text == "Recovered after 12m 30s"


def test_resolve_retry_adopts_its_broadcast_reply(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack)
    fake.fail_next("chat.update", status=503, error="service_unavailable")
    with pytest.raises(ActionError) as info:
        resolve(slack, root)
    assert info.value.retryable is True
    retry = resolve(slack, root, attempt=2)
    assert retry.response["reply_adopted"] is True
    assert len(fake.replies(PAY, root.response["ts"])) == 1
    assert len(fake.root_messages(PAY)[0].edits) == 1


def test_resolve_describe_names_both_calls(slack: dict[str, Action]) -> None:
    parent = {"channel": PAY, "ts": "1795384800.000100"}
    described = slack["slack.resolve"].describe(
        ctx("slack.resolve", {"channel": "#payments-alerts"}, alert=RECOVERED, parent=parent)
    )
    assert described["method"] == "chat.postMessage"
    assert described["thread_ts"] == parent["ts"]
    assert described["reply_broadcast"] is True
    assert described["then"]["method"] == "chat.update"
    assert described["then"]["ts"] == parent["ts"]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("soon", None),
        (None, None),
    ],
)
def test_rate_limit_is_retryable_with_retry_after(
    fake: FakeSlack, slack: dict[str, Action], retry_after: str | None, expected: float | None
) -> None:
    fake.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after=retry_after)
    with pytest.raises(ActionError) as info:
        post(slack)
    assert info.value.retryable is True
    assert info.value.retry_after == expected
    assert info.value.response == {"status": 429, "error": "ratelimited"}


def test_channel_rate_limit_maps_to_retry_after_one_second(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    fake.rate_limit_channels(True)
    post(slack)
    with pytest.raises(ActionError) as info:
        post(slack, run_id="run-2")
    assert (info.value.retryable, info.value.retry_after) == (True, 1.0)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(
    fake: FakeSlack, slack: dict[str, Action], status: int
) -> None:
    fake.fail_next("chat.postMessage", status=status, error="internal_error", retry_after=None)
    with pytest.raises(ActionError) as info:
        post(slack)
    assert info.value.retryable is True
    assert info.value.response == {"status": status, "error": "internal_error"}


def test_the_sdk_makes_one_attempt_and_never_sleeps(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    fake.fail_next("chat.postMessage", status=429, error="ratelimited", retry_after="3")
    started = time.monotonic()
    with pytest.raises(ActionError):
        post(slack)
    fake.down()  # the SDK's default handler would retry a refused connection after a sleep
    with pytest.raises(ActionError):
        post(slack)
    assert time.monotonic() - started < 1.0
    assert len(fake.calls_to("chat.postMessage")) == 1


def test_connection_refused_is_retryable(fake: FakeSlack, slack: dict[str, Action]) -> None:
    fake.down()
    with pytest.raises(ActionError) as info:
        post(slack)
    assert info.value.retryable is True
    assert info.value.response["error"] == "connection_error"


def test_unknown_channel_is_permanent(fake: FakeSlack, slack: dict[str, Action]) -> None:
    with pytest.raises(ActionError) as info:
        post(slack, params={"channel": "#nowhere"})
    assert info.value.retryable is False
    assert info.value.response == {"status": 200, "error": "channel_not_found"}
    assert "channel_not_found" in str(info.value)


@pytest.mark.parametrize(
    "error", ["not_in_channel", "is_archived", "invalid_blocks", "missing_scope", "token_revoked"]
)
def test_permanent_slack_errors(fake: FakeSlack, slack: dict[str, Action], error: str) -> None:
    fake.fail_next("chat.postMessage", status=200, error=error, retry_after=None)
    with pytest.raises(ActionError) as info:
        post(slack)
    assert (info.value.retryable, info.value.response) == (False, {"status": 200, "error": error})


def test_bad_token_is_permanent(fake: FakeSlack) -> None:
    with pytest.raises(ActionError) as info:
        post(actions(fake, token="xoxb-wrong"))
    assert info.value.retryable is False
    assert info.value.response["error"] == "invalid_auth"


def test_the_token_never_leaks(
    fake: FakeSlack, slack: dict[str, Action], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    root = post(slack)
    seen += [repr(root.response), repr(root.refs)]
    seen.append(repr(slack["slack.post"].describe(ctx("slack.post", {"channel": PAY}))))
    failures = [
        lambda: fake.fail_next("chat.postMessage", error="ratelimited"),
        lambda: fake.fail_next("chat.postMessage", status=500, error="internal_error"),
        lambda: fake.fail_next("chat.postMessage", status=200, error="invalid_auth"),
        fake.down,
    ]
    for arrange in failures:
        arrange()
        with pytest.raises(ActionError) as info:
            post(slack, run_id="run-x")
        error = info.value
        seen += [str(error), repr(error), error.message, repr(error.response)]
        # Nothing chained either: the SDK's exception carries the request headers.
        assert error.__cause__ is None and error.__context__ is None
    for text in [*seen, caplog.text]:
        assert TOKEN not in text
        assert "SECRETSECRET" not in text


# -- configuration and describe -----------------------------------------------------------


def test_without_a_token_actions_are_unconfigured_but_describe(fake: FakeSlack) -> None:
    unconfigured = actions(fake, token=None)
    assert sorted(unconfigured) == [
        "slack.post",
        "slack.refresh",
        "slack.reply",
        "slack.resolve",
        "slack.storm",
    ]
    assert all(a.configured is False for a in unconfigured.values())
    assert all(a.markup == "slack" for a in unconfigured.values())
    described = unconfigured["slack.post"].describe(ctx("slack.post", {"channel": "#ops"}))
    assert described["method"] == "chat.postMessage"
    assert described["channel"] == "#ops"
    assert described["blocks"] == 5  # with the incident buttons
    assert described["thread_ts"] is None
    assert "High Payment Failure Rate" in described["text"]
    with pytest.raises(ActionError) as info:
        post(unconfigured)
    assert info.value.retryable is False
    assert fake.calls == []
    assert actions(fake, token="  ")["slack.post"].configured is False


def test_configured_with_a_token(slack: dict[str, Action]) -> None:
    assert all(a.configured for a in slack.values())


def test_post_params_are_strict() -> None:
    assert PostParams.model_validate({"channel": "#ops", "mention": "<!here>"}).mention == "<!here>"
    PostParams.model_validate({"channel": "#ops", "mention": "<@U123> <!subteam^S1|@oncall>"})
    for bad in (
        {"channel": "#ops", "mention": "@here"},
        {"channel": "  "},
        {"channel": "#ops", "colour": "red"},
        {},
    ):
        with pytest.raises(ValidationError):
            PostParams.model_validate(bad)


def test_invalid_params_at_run_time_are_permanent(slack: dict[str, Action]) -> None:
    with pytest.raises(ActionError) as info:
        post(slack, params={"chanel": "#ops"})
    assert info.value.retryable is False
    assert "invalid params" in info.value.message


# -- block helpers -------------------------------------------------------------------------


def test_clip_never_splits_an_entity_or_a_link() -> None:
    assert clip("abc", 3) == "abc"
    assert clip(escape("a&b"), 4) == "a…"
    assert clip("x <https://example.com|link> tail", 10) == "x …"
    assert len(clip(escape("<" * 1000), 150)) <= 150


# -- notices and links ---------------------------------------------------------------------


def test_a_notice_reply_is_our_text_escaped_in_the_thread(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack).response
    notice = "⚠️ pagerduty.trigger failed: <!channel> invalid event (HTTP 400)"
    params = {"channel": "#payments-alerts", "notice": notice}
    slack["slack.reply"].execute(ctx("slack.reply", params, run_id="run-2", parent=root))
    (reply,) = fake.replies(PAY, root["ts"])
    assert reply.text is not None
    assert "pagerduty.trigger failed" in reply.text
    assert "<!channel>" not in reply.text  # escaped: a vendor's words never ping anyone
    assert "&lt;!channel&gt;" in reply.text


def test_links_from_other_runs_show_in_the_root_and_refresh_rewrites_it(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack).response
    refs = {
        "slack": {"channel": PAY, "ts": root["ts"]},
        "datadog_incident": {"id": "abc", "url": "https://app.datadoghq.com/incidents/7"},
        "datadog_notebook": {"id": 9, "url": "https://app.datadoghq.com/notebook/9"},
        "pagerduty": {"dedup_key": "k"},  # nothing to open: no link
    }
    view = incident(refs=refs)
    refresh = slack["slack.refresh"]
    params = {"channel": "#payments-alerts", "mention": "<!here>"}
    result = refresh.execute(ctx("slack.refresh", params, run_id="run-3", parent=root, view=view))
    assert result.response["updated"] is True
    (message,) = fake.root_messages(PAY)
    shown = texts(message.blocks or [])
    assert "<https://app.datadoghq.com/incidents/7|Datadog incident>" in shown
    assert "<https://app.datadoghq.com/notebook/9|RCA notebook>" in shown
    assert "PagerDuty" not in shown
    assert "<!here>" in shown  # the author's mention survives the rewrite
    assert len(fake.root_messages(PAY)) == 1  # rewritten, not posted again

    # Once the incident resolved, a late refresh keeps the resolved look.
    resolved = incident(refs=refs, status="resolved", resolved_at=RECOVERED.date)
    refresh.execute(
        ctx("slack.refresh", params, run_id="run-4", parent=root, view=resolved, alert=RECOVERED)
    )
    (message,) = fake.root_messages(PAY)
    assert (message.text or "").startswith("✅ Resolved")


def test_refresh_without_a_root_is_skipped(slack: dict[str, Action]) -> None:
    result = slack["slack.refresh"].execute(ctx("slack.refresh", {"channel": "#ops"}))
    assert result.skipped_reason == "no root message to reply to"


def test_messages_are_paced_per_channel_unless_pacing_is_off(fake: FakeSlack) -> None:
    paced = {a.name: a for a in slack_actions(TOKEN, fake.base_url)}
    pace = paced["slack.post"].pace(ctx("slack.post", {"channel": "#Payments-Alerts"}))
    assert pace is not None and pace.key == "slack:payments-alerts" and pace.interval >= 1.0
    reply = paced["slack.reply"].pace(
        ctx("slack.reply", {"channel": "#x"}, parent={"channel": PAY, "ts": "1.2"})
    )
    assert reply is not None and reply.key == "slack:x"  # the step's channel, as written
    off = {a.name: a for a in slack_actions(TOKEN, fake.base_url, channel_interval=0)}
    assert off["slack.post"].pace(ctx("slack.post", {"channel": "#ops"})) is None


# -- alert streams: reminders, No Data, stale ----------------------------------------------

STALE_LINE = "Resolved as stale: no delivery for 1d, since 2026-11-23 03:40 UTC"
NO_DATA_STATUS = (
    "sum:trace.flask.request.errors{service:checkout-service,host:ip-10-0-3-18}.as_count()"
    " has not reported data for 10m"
)


def context_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["text"]
        for block in blocks
        if block["type"] == "context"
        for element in block["elements"]
    ]


def field_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [field["text"] for block in blocks for field in block.get("fields", [])]


@pytest.mark.parametrize(
    ("repeats", "last", "line"),
    [
        (7, datetime(2026, 11, 22, 22, 40, tzinfo=UTC), "Repeated 7 times · last 22:40 UTC"),
        (1, datetime(2026, 11, 22, 22, 10, tzinfo=UTC), "Repeated 1 time · last 22:10 UTC"),
        # Another day than the opening: the date goes with the time.
        (3, LAST_REPEAT_AT, "Repeated 3 times · last 2026-11-23 03:40 UTC"),
        (2, None, "Repeated 2 times"),
    ],
)
def test_the_root_says_how_often_datadog_repeated(
    fake: FakeSlack, slack: dict[str, Action], repeats: int, last: datetime | None, line: str
) -> None:
    post(slack, view=incident(repeats=repeats, last_repeat_at=last))
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    assert [b["type"] for b in blocks] == [
        "header",
        "section",
        "context",
        "section",
        "context",
        "actions",
    ]
    assert blocks[2]["elements"][0]["text"] == line


def test_a_root_without_repeats_has_no_repeat_line(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    post(slack, view=incident(repeats=0, last_repeat_at=None))
    (message,) = fake.root_messages(PAY)
    assert "Repeated" not in texts(message.blocks or [])


def test_a_refresh_after_a_reminder_rewrites_the_repeat_line(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack).response
    view = incident(repeats=4, last_repeat_at=LAST_REPEAT_AT)
    params = {"channel": "#payments-alerts"}
    reminder = sample_alert("payment-failure-rate.re-triggered")
    slack["slack.refresh"].execute(
        ctx("slack.refresh", params, alert=reminder, run_id="run-5", parent=root, view=view)
    )
    (message,) = fake.root_messages(PAY)
    assert len(message.edits) == 1
    assert "Repeated 4 times · last 2026-11-23 03:40 UTC" in context_texts(message.blocks or [])


def stale_resolve(slack: dict[str, Action], root: ActionResult, **kwargs: Any) -> ActionResult:
    kwargs.setdefault("view", stale_incident())
    kwargs.setdefault("run_id", "run-9")
    params = {"channel": "#payments-alerts"}
    return slack["slack.resolve"].execute(
        ctx("slack.resolve", params, alert=stale_event(), parent=root.response, **kwargs)
    )


def test_a_stale_resolution_never_claims_a_recovery(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack)
    stale_resolve(slack, root)
    (reply,) = fake.replies(PAY, root.response["ts"])
    assert reply.text == STALE_LINE
    assert reply.reply_broadcast is True
    assert (reply.blocks or [])[0]["text"]["text"] == f"💤 {STALE_LINE}"
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    assert blocks[0]["text"]["text"] == "💤 Resolved (stale): High Payment Failure Rate"
    assert blocks[1]["text"]["text"] == STALE_LINE
    assert "*Transition*\nResolved (stale)" in field_texts(blocks)
    assert "Repeated 7 times · last 2026-11-23 03:40 UTC" in context_texts(blocks)
    assert message.text == f"💤 Resolved (stale): High Payment Failure Rate ({STALE_LINE})"
    for sent in (reply.text or "", texts(reply.blocks or []), message.text, texts(blocks)):
        assert "Recovered" not in sent
        assert "✅" not in sent


def test_stale_comes_from_the_timers_event_until_the_incident_says_why(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    root = post(slack)
    stale_resolve(slack, root, view=stale_incident(resolution=None))
    (reply,) = fake.replies(PAY, root.response["ts"])
    assert reply.text == STALE_LINE
    # Once the incident says it recovered, that wins over the run's event.
    other = post(slack, run_id="run-10")
    stale_resolve(slack, other, view=stale_incident(resolution="recovered"), run_id="run-11")
    (recovered,) = fake.replies(PAY, other.response["ts"])
    assert recovered.text is not None and recovered.text.startswith("Recovered after ")


def test_a_late_refresh_keeps_the_stale_look(fake: FakeSlack, slack: dict[str, Action]) -> None:
    root = post(slack).response
    params = {"channel": "#payments-alerts"}
    slack["slack.refresh"].execute(
        ctx("slack.refresh", params, run_id="run-12", parent=root, view=stale_incident())
    )
    (message,) = fake.root_messages(PAY)
    assert (message.blocks or [])[0]["text"]["text"].startswith("💤 Resolved (stale): ")
    assert STALE_LINE in texts(message.blocks or [])


def test_a_recovered_root_keeps_the_repeat_line(fake: FakeSlack, slack: dict[str, Action]) -> None:
    root = post(slack)
    view = incident(repeats=2, last_repeat_at=datetime(2026, 11, 22, 22, 20, tzinfo=UTC))
    resolve(slack, root, view=view)
    (message,) = fake.root_messages(PAY)
    blocks = message.blocks or []
    assert blocks[0]["text"]["text"] == "✅ Resolved: High Payment Failure Rate"
    assert "Repeated 2 times · last 22:20 UTC" in context_texts(blocks)
    assert "Recovered after 23m" in texts(blocks)


@pytest.mark.parametrize(
    ("alert", "line"),
    [
        (NO_DATA, f"No Data: the monitor stopped receiving data ({NO_DATA_STATUS})"),
        (RE_NO_DATA, f"Re-No Data: the monitor still receives no data ({NO_DATA_STATUS})"),
        (replace(NO_DATA, status_text=None), "No Data: the monitor stopped receiving data"),
    ],
)
def test_no_data_reads_as_missing_data(
    fake: FakeSlack, slack: dict[str, Action], alert: Alert, line: str
) -> None:
    root = post(slack).response
    params = {"channel": "#payments-alerts"}
    slack["slack.reply"].execute(ctx("slack.reply", params, alert=alert, run_id="r", parent=root))
    (reply,) = fake.replies(PAY, root["ts"])
    assert reply.text == escape(line)
    assert (reply.blocks or [])[0]["text"]["text"] == escape(line)
    for wrong in ("Escalated", "Recovered", "still failing"):
        assert wrong not in (reply.text or "")


def test_a_no_data_root_says_what_no_data_means(fake: FakeSlack, slack: dict[str, Action]) -> None:
    post(slack, alert=NO_DATA)
    (message,) = fake.root_messages(PAY)
    fields = field_texts(message.blocks or [])
    assert "*Transition*\nNo Data: the monitor stopped receiving data" in fields
