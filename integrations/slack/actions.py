"""slack.post, slack.reply and slack.resolve: an incident's root message and its thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from integrations.slack import blocks as bk
from integrations.slack.client import SlackApi
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

METADATA_EVENT = "responder_action"
NO_ROOT = "no root message to reply to"
CHANNEL_INTERVAL = 1.1  # seconds between messages to one channel; Slack's limit is about 1/s


@dataclass(frozen=True, slots=True)
class _Root:
    channel: str
    ts: str


class _SlackAction(Action):
    params: ClassVar[type[StepParams]]
    markup: ClassVar[str] = "slack"

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
            "metadata": _metadata(ctx),
            "check_history_first": ctx.may_have_acted,
        }

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(PostParams, ctx)
        api = self._client()
        note: str | None = None
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
                note = f"not checked for an earlier post: no channel ID known for {params.channel}"
            else:
                ts, note = _earlier_message(api, channel_id, ctx.run_id)
                if ts is not None:
                    return _root_result(api, channel_id, ts, adopted=True)
        text, blocks = root_message(ctx, params)
        posted = api.post_message(
            channel=params.channel, text=text, blocks=blocks, metadata=_metadata(ctx)
        )
        return _root_result(api, posted["channel"], posted["ts"], adopted=False, note=note)

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
        return _thread_request(params, root, text, blocks)

    def execute(self, ctx: ActionContext) -> ActionResult:
        params = step_params(ThreadParams, ctx)
        root = _root(ctx.parent)
        if root is None:
            return ActionResult(response={}, skipped_reason=NO_ROOT)
        api = self._client()
        text, blocks = reply_message(ctx, params.notice)
        # No duplicate check here, on purpose: a plain thread reply is not in
        # conversations.history, and a second "Renotify" line in a thread costs little.
        # The root post (slack.post) is the message that must never be doubled.
        posted = api.post_message(
            channel=root.channel,
            thread_ts=root.ts,
            text=text,
            blocks=blocks,
            metadata=_metadata(ctx),
        )
        # No refs: the incident's Slack reference must stay the root message.
        return ActionResult(response={**posted, "thread_ts": root.ts})


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
        if ctx.may_have_acted:
            # A broadcast reply is also a channel message, so unlike slack.reply it can be
            # found in history; a miss there (busy channel) costs a duplicate reply only.
            reply_ts, _ = _earlier_message(api, root.channel, ctx.run_id)
        adopted = reply_ts is not None
        if reply_ts is None:
            text, blocks = resolve_reply(ctx)
            reply_ts = api.post_message(
                channel=root.channel,
                thread_ts=root.ts,
                reply_broadcast=True,
                text=text,
                blocks=blocks,
                metadata=_metadata(ctx),
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


def _metadata(ctx: ActionContext) -> dict[str, Any]:
    return {
        "event_type": METADATA_EVENT,
        "event_payload": {"run_id": ctx.run_id, "incident_id": ctx.incident.id},
    }


def _earlier_message(api: SlackApi, channel_id: str, run_id: str) -> tuple[str | None, str | None]:
    """(ts of our earlier message for this run, or None; a note when history could not tell)."""
    try:
        return _find_run(api.history(channel_id), run_id), None
    except ActionError as exc:
        if exc.retryable:
            raise  # busy or down: retry later rather than post blind
        # A permanent refusal (say missing_scope: history needs channels:history) would fail
        # this run on every retry and lose the alert; a possible duplicate is the lesser harm.
        reason = exc.response.get("error", "an error")
        return None, f"not checked for an earlier post: conversations.history answered {reason}"


def _find_run(messages: list[dict[str, Any]], run_id: str) -> str | None:
    """The ts of a message we posted for `run_id`, found through its metadata."""
    for message in messages:
        metadata = message.get("metadata")
        if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT:
            continue
        payload = metadata.get("event_payload")
        ts = message.get("ts")
        if isinstance(payload, Mapping) and payload.get("run_id") == run_id and isinstance(ts, str):
            return ts
    return None


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
    api: SlackApi, channel: str, ts: str, *, adopted: bool, note: str | None = None
) -> ActionResult:
    response: dict[str, Any] = {"channel": channel, "ts": ts, "adopted": adopted}
    if note:
        response["note"] = note
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
