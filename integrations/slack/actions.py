"""slack.post, slack.reply and slack.resolve: an incident's root message and its thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from integrations.slack import blocks as bk
from integrations.slack.client import SlackApi
from integrations.slack.lookup import earlier_message, earlier_reply, run_metadata
from integrations.slack.messages import (
    Message,
    reply_message,
    resolve_reply,
    resolved_root,
    root_message,
)
from integrations.slack.params import PostParams, ThreadParams
from responder.actions import (
    Action,
    ActionContext,
    ActionError,
    ActionResult,
    FollowUp,
    Pace,
    StepParams,
    step_params,
)
from responder.domain import Transition

NO_ROOT = "no root message to reply to"
CHANNEL_INTERVAL = 1.1  # seconds between messages to one channel; Slack's limit is about 1/s


@dataclass(frozen=True, slots=True)
class _Root:
    channel: str
    ts: str


class _SlackAction(Action):
    params: ClassVar[type[StepParams]]
    markup: ClassVar[str] = "slack"
    needs: ClassVar[str] = "SLACK_BOT_TOKEN"

    def __init__(self, api: SlackApi | None, channel_interval: float = CHANNEL_INTERVAL) -> None:
        self._api = api
        self._interval = channel_interval

    @property
    def configured(self) -> bool:
        return self._api is not None

    def pace(self, ctx: ActionContext) -> Pace | None:
        # Slack allows about one message a second per channel and may drop a burst above it
        # without a 429: every post, reply and root update counts against its channel.
        if self._interval <= 0:
            return None
        # Keyed by the step's own channel, as written: the post and every follow-up of it
        # carry the same words, so a name and the ID Slack answers with never split a pace.
        channel = str(ctx.params.get("channel", ""))
        return Pace(f"slack:{channel.lstrip('#').lower()}", self._interval)

    def _client(self) -> SlackApi:
        if self._api is None:
            # The runner records unconfigured runs as skipped; reaching this is a wiring bug.
            raise ActionError("slack is not configured (no bot token)", retryable=False)
        return self._api


class PostAction(_SlackAction):
    """The incident's root message, posted once per run even across crashes."""

    name: ClassVar[str] = "slack.post"
    params: ClassVar[type[StepParams]] = PostParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(PostParams, ctx)
        text, blocks = root_message(ctx, params)
        return {
            "method": "chat.postMessage",
            "channel": params.channel,
            "text": text,
            "blocks": len(blocks),
            "thread_ts": None,
            "metadata": run_metadata(ctx),
            "check_history_first": ctx.may_have_acted,
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(PostParams, ctx)
        api = self._client()
        said: dict[str, Any] = {}
        if ctx.may_have_acted:
            try:
                channel_id = api.channel_id(params.channel)
            except ActionError as exc:
                if exc.retryable:
                    raise
                channel_id = None  # e.g. missing_scope for conversations.list
            if channel_id is None:
                # conversations.history takes IDs only; posting may duplicate, not posting
                # could lose the alert.
                said["note"] = (
                    f"not checked for an earlier post: no channel ID known for {params.channel}"
                )
            else:
                lookup = earlier_message(api, channel_id, ctx)
                if lookup.ts is not None:
                    return _root_result(
                        api, channel_id, lookup.ts, adopted=True, said=lookup.said()
                    )
                said = lookup.said()
        text, blocks = root_message(ctx, params)
        posted = api.post_message(
            channel=params.channel, text=text, blocks=blocks, metadata=run_metadata(ctx)
        )
        return _root_result(api, posted["channel"], posted["ts"], adopted=False, said=said)

    def follow_up(self, transition: Transition, params: Mapping[str, Any]) -> FollowUp | None:
        channel = params.get("channel")
        if transition.is_recovery:
            return FollowUp("slack.resolve", {"channel": channel})
        # Repeats, and Triggered/Warn/No Data reaching an open incident (an escalation),
        # are news for the people in the thread, not a reason for a new root message.
        return FollowUp("slack.reply", {"channel": channel})


class ReplyAction(_SlackAction):
    """A short thread reply about a later transition of the incident."""

    name: ClassVar[str] = "slack.reply"
    params: ClassVar[type[StepParams]] = ThreadParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(ThreadParams, ctx)
        root = _root(ctx.parent)
        text, blocks = reply_message(ctx, params.notice)
        request = _thread_request(params, root, text, blocks)
        return {**request, "check_thread_first": ctx.may_have_acted}

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(ThreadParams, ctx)
        root = _root(ctx.parent)
        if root is None:
            return ActionResult(response={}, skipped_reason=NO_ROOT)
        api = self._client()
        said: dict[str, Any] = {}
        if ctx.may_have_acted:
            # A plain reply is not in the channel's history: the thread is read instead.
            lookup = earlier_reply(api, root.channel, root.ts, ctx)
            if lookup.ts is not None:
                adopted = {"channel": root.channel, "ts": lookup.ts, "thread_ts": root.ts}
                return ActionResult(response={**adopted, "adopted": True, **lookup.said()})
            said = lookup.said()
        text, blocks = reply_message(ctx, params.notice)
        posted = api.post_message(
            channel=root.channel,
            thread_ts=root.ts,
            text=text,
            blocks=blocks,
            metadata=run_metadata(ctx),
        )
        # No refs: the incident's Slack reference must stay the root message.
        return ActionResult(response={**posted, "thread_ts": root.ts, "adopted": False, **said})


class ResolveAction(_SlackAction):
    """A broadcast "Recovered after ..." (or "Resolved as stale: ...") reply, then the root
    message rewritten as resolved."""

    name: ClassVar[str] = "slack.resolve"
    params: ClassVar[type[StepParams]] = ThreadParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(ThreadParams, ctx)
        root = _root(ctx.parent)
        text, blocks = resolve_reply(ctx)
        update_text, update_blocks = resolved_root(ctx)
        request = _thread_request(params, root, text, blocks)
        return {
            **request,
            "reply_broadcast": True,
            "then": {
                "method": "chat.update",
                "channel": request["channel"],
                "ts": root.ts if root else None,
                "text": update_text,
                "blocks": len(update_blocks),
            },
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        step_params(ThreadParams, ctx)
        root = _root(ctx.parent)
        if root is None:
            return ActionResult(response={}, skipped_reason=NO_ROOT)
        api = self._client()
        reply_ts: str | None = None
        said: dict[str, Any] = {}
        if ctx.may_have_acted:
            # The thread is as sure a place to look as the channel, and smaller.
            lookup = earlier_reply(api, root.channel, root.ts, ctx)
            reply_ts, said = lookup.ts, lookup.said()
        adopted = reply_ts is not None
        if reply_ts is None:
            text, blocks = resolve_reply(ctx)
            reply_ts = api.post_message(
                channel=root.channel,
                thread_ts=root.ts,
                reply_broadcast=True,
                text=text,
                blocks=blocks,
                metadata=run_metadata(ctx),
            )["ts"]
        # chat.update is naturally idempotent: a retry rewrites the same content.
        text, blocks = resolved_root(ctx)
        api.update_message(channel=root.channel, ts=root.ts, text=text, blocks=blocks)
        return ActionResult(
            response={
                "channel": root.channel,
                "ts": root.ts,
                "reply_ts": reply_ts,
                "reply_adopted": adopted,
                "updated": True,
                **said,
            }
        )


class RefreshAction(_SlackAction):
    """The root message rewritten with links that other runs made since it was posted."""

    name: ClassVar[str] = "slack.refresh"
    params: ClassVar[type[StepParams]] = PostParams

    def describe(self, ctx: ActionContext) -> Mapping[str, Any]:
        params = step_params(PostParams, ctx)
        root = _root(ctx.parent)
        text, blocks = self._message(ctx, params)
        request: dict[str, Any] = {
            "method": "chat.update",
            "channel": root.channel if root else params.channel,
            "ts": root.ts if root else None,
            "text": text,
            "blocks": len(blocks),
        }
        if root is None:
            request["skip"] = NO_ROOT
        return request

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(PostParams, ctx)
        root = _root(ctx.parent)
        if root is None:
            return ActionResult(response={}, skipped_reason=NO_ROOT)
        text, blocks = self._message(ctx, params)
        # chat.update rewrites the same content on a retry: nothing to check first.
        self._client().update_message(channel=root.channel, ts=root.ts, text=text, blocks=blocks)
        return ActionResult(response={"channel": root.channel, "ts": root.ts, "updated": True})

    @staticmethod
    def _message(ctx: ActionContext, params: PostParams) -> Message:
        # A recovery may have rewritten the root as resolved meanwhile: keep it resolved.
        if ctx.incident.status == "resolved":
            return resolved_root(ctx)
        return root_message(ctx, params)


def _root(parent: Mapping[str, Any] | None) -> _Root | None:
    """The root message from the parent run's result (its response, or its refs)."""
    if not parent:
        return None
    nested = parent.get("slack")
    ref = nested if isinstance(nested, Mapping) else parent
    channel, ts = ref.get("channel"), ref.get("ts")
    if isinstance(channel, str) and channel and isinstance(ts, str) and ts:
        return _Root(channel=channel, ts=ts)
    return None


def _root_result(
    api: SlackApi, channel: str, ts: str, *, adopted: bool, said: Mapping[str, Any]
) -> ActionResult:
    response: dict[str, Any] = {"channel": channel, "ts": ts, "adopted": adopted, **said}
    ref: dict[str, Any] = {"channel": channel, "ts": ts}
    url = api.permalink(channel, ts)
    if url:
        ref["url"] = url
    return ActionResult(response=response, refs={"slack": ref})


def _thread_request(
    params: ThreadParams, root: _Root | None, text: str, blocks: list[bk.Block]
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "method": "chat.postMessage",
        "channel": root.channel if root else params.channel,
        "text": text,
        "blocks": len(blocks),
        "thread_ts": root.ts if root else None,
    }
    if root is None:
        request["skip"] = NO_ROOT
    return request
