"""slack.storm against the Slack fake: one summary posted, then rewritten in place; alert
text escaped; a retry finds its own earlier post; nothing to rewrite when the post failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from integrations.slack import StormAction, slack_actions
from integrations.slack.storm import NO_SUMMARY
from responder.actions import Action
from tests.contexts import action_context as ctx
from tests.fakes.slack import FakeSlack

TOKEN = "xoxb-storm-test"
PARAMS: dict[str, Any] = {
    "channel": "#security-alerts",
    "started_at": "2026-11-18T12:00:00+00:00",
    "incidents": 12,
    "open": 9,
    "pages": 2,
    "top": [["fraud <!channel>", 8], ["checkout", 4]],
    "rate": 10,
    "quiet": "5m",
}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN, channels={"#security-alerts": "C0SEC"}) as server:
        yield server


@pytest.fixture
def storm(fake: FakeSlack) -> Action:
    return next(a for a in slack_actions(TOKEN, fake.base_url) if a.name == StormAction.name)


def test_the_summary_is_posted_then_rewritten_in_place(fake: FakeSlack, storm: Action) -> None:
    first = storm.execute(ctx("slack.storm", PARAMS, run_id="31"))
    assert first.refs == {}  # the incident's Slack reference stays its own thread
    assert first.response["channel"] == "C0SEC"
    [message] = fake.root_messages("C0SEC")
    assert (
        message.text
        == "🌩️ Alert storm in #security-alerts: 12 new incidents, 9 still open, 2 pages sent"
    )
    shown = json.dumps(message.blocks, ensure_ascii=False)
    assert "fraud &lt;!channel&gt;: 8" in shown and "<!channel>" not in shown
    assert message.metadata is not None
    assert message.metadata["event_payload"]["run_id"] == "31"

    ended = {**PARAMS, "update": True, "open": 0, "ended_at": "2026-11-18T12:20:00+00:00"}
    second = storm.execute(ctx("slack.storm", ended, parent=first.response))
    assert second.response["updated"] is True
    [message] = fake.root_messages("C0SEC")
    assert len(message.edits) == 1
    assert (message.text or "").startswith("✅ Alert storm over in #security-alerts")
    assert "It lasted 20m from 12:00 UTC" in json.dumps(message.blocks, ensure_ascii=False)


def test_an_update_without_a_posted_summary_is_skipped(fake: FakeSlack, storm: Action) -> None:
    update = ctx("slack.storm", {**PARAMS, "update": True}, parent={"error": "channel_not_found"})
    assert storm.execute(update).skipped_reason == NO_SUMMARY
    assert storm.describe(update)["skip"] == NO_SUMMARY
    assert fake.calls_to("chat.update") == [] and fake.calls_to("chat.postMessage") == []


def test_a_retried_post_finds_its_earlier_summary(fake: FakeSlack, storm: Action) -> None:
    first = storm.execute(ctx("slack.storm", PARAMS, run_id="31"))
    again = storm.execute(ctx("slack.storm", PARAMS, run_id="31", attempt=2))
    assert again.response["adopted"] is True and again.response["ts"] == first.response["ts"]
    assert len(fake.root_messages("C0SEC")) == 1


def test_describe_names_the_call(storm: Action) -> None:
    assert storm.describe(ctx("slack.storm", PARAMS))["method"] == "chat.postMessage"
    parent = {"channel": "C0SEC", "ts": "1.000100"}
    request = storm.describe(ctx("slack.storm", {**PARAMS, "update": True}, parent=parent))
    assert (request["method"], request["ts"]) == ("chat.update", "1.000100")
