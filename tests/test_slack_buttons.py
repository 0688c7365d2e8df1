"""The incident's buttons on its Slack root message: present while it is open, the
acknowledgement line once a person has acknowledged, none once resolved; within Block Kit's
limits, which the Slack fake enforces as Slack does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from integrations.slack import blocks as bk
from integrations.slack import slack_actions
from responder.actions import Action
from responder.main import Service
from tests.contexts import RECOVERED
from tests.contexts import action_context as ctx
from tests.contexts import incident_view as incident
from tests.fakes.slack import FakeSlack
from tests.harness import SLACK_TOKEN, drain, post, running, sample, settings_for

CHANNELS = {"#payments-alerts": "C0PAY"}
ACKED_AT = datetime(2026, 11, 18, 12, 14, 30, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(token=SLACK_TOKEN, channels=CHANNELS) as server:
        yield server


@pytest.fixture
def slack(fake: FakeSlack) -> dict[str, Action]:
    return {a.name: a for a in slack_actions(SLACK_TOKEN, fake.base_url, channel_interval=0)}


def buttons(blocks: list[dict[str, Any]] | None) -> list[tuple[str, str, str]]:
    """(text, action_id, value) of each button of the message's actions blocks."""
    return [
        (element["text"]["text"], element["action_id"], element["value"])
        for block in blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_an_open_incidents_root_has_the_three_buttons(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    slack["slack.post"].execute(ctx("slack.post", {"channel": "#payments-alerts"}))
    (root,) = fake.root_messages("C0PAY")
    assert buttons(root.blocks) == [
        ("Acknowledge", "responder.ack", "42"),
        ("Resolve", "responder.resolve", "42"),
        ("Silence 1h", "responder.silence", "42"),
    ]
    assert root.blocks is not None and root.blocks[-1]["type"] == "actions"
    assert "Acknowledged" not in str(root.blocks)


def test_an_acknowledged_root_says_who_and_when_and_drops_acknowledge(
    fake: FakeSlack, slack: dict[str, Action]
) -> None:
    view = incident(
        status="acknowledged", acknowledged_by="alice <!channel> (slack)", acknowledged_at=ACKED_AT
    )
    slack["slack.post"].execute(ctx("slack.post", {"channel": "#payments-alerts"}, view=view))
    (root,) = fake.root_messages("C0PAY")
    contexts = [
        element["text"]
        for block in root.blocks or []
        if block["type"] == "context"
        for element in block["elements"]
    ]
    assert "Acknowledged by alice &lt;!channel&gt; (slack) at 12:14 UTC" in contexts
    assert [action for _, action, _ in buttons(root.blocks)] == [
        "responder.resolve",
        "responder.silence",
    ]


def test_a_resolved_root_has_no_buttons(fake: FakeSlack, slack: dict[str, Action]) -> None:
    posted = slack["slack.post"].execute(ctx("slack.post", {"channel": "#payments-alerts"}))
    resolved = incident(status="resolved", resolved_at=RECOVERED.date)
    parent = dict(posted.response)
    slack["slack.resolve"].execute(
        ctx(
            "slack.resolve",
            {"channel": "#payments-alerts"},
            view=resolved,
            alert=RECOVERED,
            parent=parent,
        )
    )
    slack["slack.refresh"].execute(
        ctx("slack.refresh", {"channel": "#payments-alerts"}, view=resolved, parent=parent)
    )
    (root,) = fake.root_messages("C0PAY")
    assert len(root.edits) == 2
    assert buttons(root.blocks) == []


def test_buttons_stay_within_block_kits_limits() -> None:
    card = bk.IncidentCard(
        title="t" * 500,
        monitor="m",
        monitor_id=None,
        priority=None,
        scope="",
        service=None,
        env=None,
        transition="Triggered",
        status=None,
        message="x",
        event_link=None,
        snapshot=None,
        incident_id="9" * 3000,
    )
    blocks = bk.root_blocks(card)
    assert len(blocks) <= bk.BLOCKS_MAX
    for text, action_id, value in buttons(blocks):
        assert len(text) <= bk.BUTTON_TEXT_MAX
        assert len(action_id) <= bk.ACTION_ID_MAX
        assert len(value) <= bk.BUTTON_VALUE_MAX
    # A card that is about no one incident (no id) has none.
    assert buttons(bk.root_blocks(replace(card, incident_id=None))) == []


def _button(**overrides: Any) -> dict[str, Any]:
    element = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Resolve"},
        "action_id": "responder.resolve",
        "value": "42",
    }
    return {**element, **overrides}


@pytest.mark.parametrize(
    "elements",
    [
        [_button(text={"type": "plain_text", "text": "r" * 76})],
        [_button(text={"type": "mrkdwn", "text": "*Resolve*"})],
        [_button(action_id="a" * 256)],
        [_button(value="v" * 2001)],
        [_button(style="loud")],
        [_button(), _button()],
        [{"type": "marquee"}],
        [_button()] * 0,
    ],
    ids=[
        "text>75",
        "mrkdwn-text",
        "action_id>255",
        "value>2000",
        "style",
        "same-id",
        "kind",
        "none",
    ],
)
def test_the_fake_refuses_buttons_slack_refuses(fake: FakeSlack, elements: list[Any]) -> None:
    web = WebClient(token=SLACK_TOKEN, base_url=fake.base_url, retry_handlers=[])
    blocks = [{"type": "actions", "elements": elements}]
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="C0PAY", text="x", blocks=blocks)
    assert info.value.response["error"] == "invalid_blocks"
    assert fake.messages("C0PAY") == []


def test_the_fake_takes_buttons_at_the_limits(fake: FakeSlack) -> None:
    web = WebClient(token=SLACK_TOKEN, base_url=fake.base_url, retry_handlers=[])
    element = _button(
        text={"type": "plain_text", "text": "r" * 75},
        action_id="a" * 255,
        value="v" * 2000,
        style="danger",
    )
    blocks = [{"type": "actions", "elements": [element]}]
    assert web.chat_postMessage(channel="C0PAY", text="x", blocks=blocks)["ok"] is True


def test_through_the_service_the_buttons_carry_the_incident_id(
    migrated_url: str, fake: FakeSlack, samples_dir: Path
) -> None:
    settings = settings_for(
        migrated_url,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        RESPONDER_SLACK_API_URL=fake.base_url,
        RESPONDER_SLACK_CHANNEL_INTERVAL="0",
    )
    with running(settings) as (service, client):
        assert (
            post(client, sample(samples_dir, "payment-failure-rate.triggered")).status_code == 202
        )
        drain(service)
        incident_id = _only_incident(service)
        (root,) = fake.root_messages("C0PAY")
        assert {value for _, _, value in buttons(root.blocks)} == {str(incident_id)}
        assert (
            post(client, sample(samples_dir, "payment-failure-rate.recovered")).status_code == 202
        )
        drain(service)
        (root,) = fake.root_messages("C0PAY")
        assert root.edits, "the root was never rewritten as resolved"
        assert buttons(root.blocks) == []


def _only_incident(service: Service) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT id FROM incident")).scalar_one())
