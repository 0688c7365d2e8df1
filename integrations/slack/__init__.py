"""Slack integration: the incident's root message, thread replies and its resolved rewrite,
and a channel's storm summary."""

from __future__ import annotations

from integrations.slack.actions import (
    CHANNEL_INTERVAL,
    PostAction,
    RefreshAction,
    ReplyAction,
    ResolveAction,
)
from integrations.slack.client import SlackApi, build_web_client
from integrations.slack.params import PostParams, StormParams, ThreadParams
from integrations.slack.storm import StormAction
from responder.actions import Action, Conversation

__all__ = [
    "PostAction",
    "PostParams",
    "RefreshAction",
    "ReplyAction",
    "ResolveAction",
    "StormAction",
    "StormParams",
    "ThreadParams",
    "slack_actions",
]

# The incident's Slack thread is its conversation: the root post opens it, replies tell it
# what other runs did, and a refresh adds their links to the root message. In an alert
# storm a channel's one summary message stands for the roots held back.
CONVERSATION = Conversation(
    root=PostAction.name,
    reply=ReplyAction.name,
    refresh=RefreshAction.name,
    summary=StormAction.name,
)


def slack_actions(
    token: str | None,
    base_url: str,
    timeout: float = 10.0,
    channel_interval: float = CHANNEL_INTERVAL,
) -> list[Action]:
    """slack.post, .reply, .resolve, .refresh and .storm; without a token they report
    configured=False."""
    token = token.strip() if token else None
    api = SlackApi(build_web_client(token, base_url, timeout)) if token else None
    return [
        action(api, channel_interval)
        for action in (PostAction, ReplyAction, ResolveAction, RefreshAction, StormAction)
    ]
