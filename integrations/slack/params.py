"""What a playbook step may say to the Slack actions, checked when the playbook loads."""

from __future__ import annotations

import re

from pydantic import field_validator

from responder.actions import StepParams

# One or more Slack mentions: <!here>, <!channel>, <@U123>, <!subteam^S123|@team>, <#C123>.
_MENTION = re.compile(r"^(?:<[!@#][^<>]+>\s*)+$")


class PostParams(StepParams):
    """`slack.post`: where to post the incident's root message, plus optional author text."""

    channel: str  # "#name" or a conversation ID
    text: str | None = None  # an extra line, already rendered with Slack escaping
    mention: str | None = None  # "<!here>", "<@U123>": written by the playbook author, sent as is

    @field_validator("channel")
    @classmethod
    def _channel_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("channel is empty; write '#name' or a channel ID")
        return value.strip()

    @field_validator("mention")
    @classmethod
    def _mention_is_slack_syntax(cls, value: str | None) -> str | None:
        # "@here" would be posted as plain words and page nobody: refuse it at load time.
        if value is not None and not _MENTION.match(value.strip()):
            raise ValueError('mention must be Slack syntax such as "<!here>" or "<@U123ABC>"')
        return value.strip() if value else None


class ThreadParams(StepParams):
    """`slack.reply` / `slack.resolve`: the channel of the root post (the root's own is used)."""

    channel: str
    # Our own words for the thread (a failed page, a failed workflow); plain text, escaped
    # when sent. Without it a reply describes the alert's transition.
    notice: str | None = None
