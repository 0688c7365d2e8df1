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


class StormParams(StepParams):
    """`slack.storm`: a channel's storm summary, as storm mode plans it (not for playbooks).

    The figures are the pipeline's at planning time; a later run rewrites the message."""

    channel: str  # where the storm is, as the playbooks write it
    update: bool = False  # False: post the summary; True: rewrite the one posted
    started_at: str  # ISO 8601
    ended_at: str | None = None  # set once the storm is over
    incidents: int = 0  # new incidents told here instead of in their own root messages
    open: int = 0  # of them, still open
    pages: int = 0  # pages sent during the storm (one per routing key)
    top: tuple[tuple[str, int], ...] = ()  # most affected services or monitors, raw text
    rate: int = 0  # new incidents a minute above which the channel is in a storm
    quiet: str = ""  # how long it must stay at or below that before the storm ends
